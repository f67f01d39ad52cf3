import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { CreateTableCommand, DynamoDBClient, ResourceInUseException } from "@aws-sdk/client-dynamodb";
import { z } from "zod";
import { UNSIGNED_REQUESTS_ENV } from "../adapters/aws-clients.ts";
import {
  BUDGETS_TABLE_KEYS,
  HANDLER_ENV,
  RUNS_TABLE_KEYS,
  VERDICTS_TABLE_KEYS,
} from "../deployment/storage-layout.ts";
import {
  EmbeddedAwsInUseError,
  EmbeddedAwsStartError,
  type ServersExit,
  type ServersHolder,
} from "./local-errors.ts";

/** Names of the local resources; on AWS these come from the stack. */
export const LOCAL_RESOURCES = {
  bucket: "mmsafe-local",
  runsTable: "mmsafe-runs",
  verdictsTable: "mmsafe-verdicts",
  /** Run-wide model budgets; used by shards in processes of their own (`--shard-processes`). */
  budgetsTable: "mmsafe-budgets",
  /** Events are recorded to `<home>/events.jsonl`: there is no bus to deliver them to locally. */
  eventBus: "mmsafe-local-events",
  region: "us-east-1",
} as const;

/** `<dataDir>/servers.json`, as the servers' process writes it (see aws-servers-process.mjs). */
const serversHolderSchema = z.object({
  pid: z.number().int(),
  ownerPid: z.number().int(),
  host: z.string(),
  s3Port: z.number().int(),
  dynamodbPort: z.number().int(),
  startedAt: z.string(),
}) satisfies z.ZodType<ServersHolder>;

/** The one line the servers' process prints: its ports, or the live process that already serves the folder. */
const childLineSchema = z.union([
  z.object({ s3Port: z.number().int(), dynamodbPort: z.number().int() }),
  z.object({ inUse: serversHolderSchema }),
]);

export interface EmbeddedAws {
  s3Endpoint: string;
  dynamodbEndpoint: string;
  /** The environment a handler sees: the standard AWS SDK endpoint variables plus mmsafe's own. */
  handlerEnv: Record<string, string>;
  /** The pid of the process hosting the servers (another process's, when attached). */
  pid: number;
  /** When attached: the live process whose servers these are (it owns the folder; nothing is started). */
  attachedTo: ServersHolder | null;
  /** Settles only if the servers' process ends without {@link close} having asked it to (it was killed). */
  unexpectedExit: Promise<ServersExit>;
  /** Stops the servers (closing dynalite's LevelDB) and waits for their process to exit; attached: nothing. */
  close(): Promise<void>;
}

/** Options of {@link startEmbeddedAws}. */
export interface EmbeddedAwsOptions {
  /**
   * When another live process already serves the folder: `"refuse"` (the default) throws
   * {@link EmbeddedAwsInUseError}; `"attach"` uses that process's servers (reading while a run works).
   */
  whenInUse?: "refuse" | "attach";
}

const SERVERS_ENTRY = new URL("./aws-servers-process.mjs", import.meta.url);

/**
 * Node flags of the servers' process. s3rver's ListObjectsV2 continuation token uses a cipher OpenSSL 3
 * only offers with the legacy provider. A young generation of at most 2 × 8 MB instead of V8's 2 × 16 MB
 * keeps about 10 MB less resident at no measurable CPU cost (their requests' garbage is short-lived).
 */
const SERVERS_NODE_FLAGS = ["--openssl-legacy-provider", "--max-semi-space-size=8"] as const;

/**
 * Extra Node flags for the servers' process, whitespace-separated, e.g. to profile it:
 * `MMSAFE_SERVERS_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof"` (NODE_OPTIONS would reach the
 * runner too, and rejects some flags).
 */
export const SERVERS_NODE_OPTIONS_ENV = "MMSAFE_SERVERS_NODE_OPTIONS";

/** How long {@link EmbeddedAws.close} waits for the servers to stop before killing their process. */
const CLOSE_TIMEOUT_MS = 20_000;

/**
 * Starts S3- and DynamoDB-compatible servers (s3rver, dynalite) on 127.0.0.1 with ephemeral ports, in a
 * child process of their own (so their work never delays the handlers' model calls), persisting under
 * `dataDir`, and creates the bucket and tables the pipeline uses.
 *
 * The child is tied to this process by its stdin pipe: it closes its servers and exits when the pipe
 * closes, which the kernel does even when this process is killed with SIGKILL, so a crashed run leaves no
 * server holding the ports or the LevelDB lock, and re-running the same run id resumes it (see
 * aws-servers-process.mjs, which also waits for a lock still held by servers that are closing).
 *
 * One live process serves a folder at a time (the folder's lock, held by the child): when another one
 * does, this refuses ({@link EmbeddedAwsInUseError}) or, with `whenInUse: "attach"`, uses its servers.
 */
export async function startEmbeddedAws(
  dataDir: string,
  options: EmbeddedAwsOptions = {},
): Promise<EmbeddedAws> {
  const child = spawn(
    process.execPath,
    [
      ...SERVERS_NODE_FLAGS,
      ...(process.env[SERVERS_NODE_OPTIONS_ENV] ?? "").split(/\s+/).filter(Boolean),
      SERVERS_ENTRY.pathname,
      dataDir,
      LOCAL_RESOURCES.bucket,
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  let closing = false;
  const exited = new Promise<ServersExit>((resolve) =>
    child.once("exit", (code, signal) => resolve({ pid: child.pid ?? -1, code, signal })),
  );
  const unexpectedExit = new Promise<ServersExit>((resolve) => {
    void exited.then((exit) => {
      if (!closing) resolve(exit);
    });
  });
  const line = await new Promise<z.infer<typeof childLineSchema>>((resolve, reject) => {
    child.once("error", reject);
    void exited.then(({ code, signal }) =>
      reject(
        new EmbeddedAwsStartError(
          `the embedded AWS servers (data in ${dataDir}) exited (${signal ?? `code ${code}`}) before listening`,
        ),
      ),
    );
    createInterface({ input: child.stdout }).once("line", (text) => {
      try {
        resolve(childLineSchema.parse(JSON.parse(text)));
      } catch (error: unknown) {
        reject(new EmbeddedAwsStartError(`the embedded AWS servers said: ${text}`, { cause: error }));
      }
    });
  });
  let attachedTo: ServersHolder | null = null;
  let ports: { s3Port: number; dynamodbPort: number };
  if ("inUse" in line) {
    // The child has nothing to serve and exits by itself.
    closing = true;
    if (options.whenInUse !== "attach") throw new EmbeddedAwsInUseError(dataDir, line.inUse);
    attachedTo = line.inUse;
    ports = line.inUse;
  } else ports = line;
  const s3Endpoint = `http://127.0.0.1:${ports.s3Port}`;
  const dynamodbEndpoint = `http://127.0.0.1:${ports.dynamodbPort}`;

  const handlerEnv: Record<string, string> = {
    AWS_REGION: LOCAL_RESOURCES.region,
    // Neither server needs a signature (see aws-clients.ts): the handlers' clients skip SigV4 signing and use
    // placeholder credentials of their own. No credentials are set here: the user's stay in force for
    // Bedrock models (profile, variables), and without any, the embedded servers need none.
    [UNSIGNED_REQUESTS_ENV]: "true",
    AWS_ENDPOINT_URL_S3: s3Endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: dynamodbEndpoint,
    // s3rver stores streamed bodies with their chunk framing unless checksums are only sent when required.
    AWS_REQUEST_CHECKSUM_CALCULATION: "WHEN_REQUIRED",
    AWS_RESPONSE_CHECKSUM_VALIDATION: "WHEN_REQUIRED",
    [HANDLER_ENV.bucket]: LOCAL_RESOURCES.bucket,
    [HANDLER_ENV.runsTable]: LOCAL_RESOURCES.runsTable,
    [HANDLER_ENV.verdictsTable]: LOCAL_RESOURCES.verdictsTable,
    [HANDLER_ENV.s3ForcePathStyle]: "true",
  };

  const client = new DynamoDBClient({
    endpoint: dynamodbEndpoint,
    region: LOCAL_RESOURCES.region,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  const createTable = async (name: string, keys: { partitionKey: string; sortKey?: string }) => {
    try {
      await client.send(
        new CreateTableCommand({
          TableName: name,
          BillingMode: "PAY_PER_REQUEST",
          AttributeDefinitions: [
            { AttributeName: keys.partitionKey, AttributeType: "S" },
            ...(keys.sortKey ? [{ AttributeName: keys.sortKey, AttributeType: "S" as const }] : []),
          ],
          KeySchema: [
            { AttributeName: keys.partitionKey, KeyType: "HASH" },
            ...(keys.sortKey ? [{ AttributeName: keys.sortKey, KeyType: "RANGE" as const }] : []),
          ],
        }),
      );
    } catch (error: unknown) {
      if (!(error instanceof ResourceInUseException)) throw error; // persisted from an earlier run
    }
  };
  try {
    await createTable(LOCAL_RESOURCES.runsTable, RUNS_TABLE_KEYS);
    await createTable(LOCAL_RESOURCES.verdictsTable, VERDICTS_TABLE_KEYS);
    await createTable(LOCAL_RESOURCES.budgetsTable, BUDGETS_TABLE_KEYS);
  } catch (error: unknown) {
    closing = true;
    child.stdin?.end(); // servers nobody will use
    throw error;
  } finally {
    client.destroy();
  }

  return {
    s3Endpoint,
    dynamodbEndpoint,
    handlerEnv,
    pid: attachedTo?.pid ?? child.pid ?? -1,
    attachedTo,
    unexpectedExit,
    async close() {
      closing = true;
      if (attachedTo) return; // the servers belong to the process that started them
      child.stdin?.end(); // the child stops when its stdin closes, which also happens if this process dies
      // It exits on its own within its stop timeout; this only guards against a child that hangs.
      const timer = setTimeout(() => child.kill("SIGKILL"), CLOSE_TIMEOUT_MS);
      try {
        await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
