import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { CreateTableCommand, DynamoDBClient, ResourceInUseException } from "@aws-sdk/client-dynamodb";
import { HANDLER_ENV, RUNS_TABLE_KEYS, VERDICTS_TABLE_KEYS } from "../core/storage-layout.ts";

/** Names of the local resources; on AWS these come from the stack. */
export const LOCAL_RESOURCES = {
  bucket: "mmsafe-local",
  runsTable: "mmsafe-runs",
  verdictsTable: "mmsafe-verdicts",
  /** Events are recorded to `<home>/events.jsonl`: there is no bus to deliver them to locally. */
  eventBus: "mmsafe-local-events",
  region: "us-east-1",
} as const;

export interface EmbeddedAws {
  s3Endpoint: string;
  dynamodbEndpoint: string;
  /** The environment a handler sees: the standard AWS SDK endpoint variables plus mmsafe's own. */
  handlerEnv: Record<string, string>;
  /** The pid of the child process hosting the servers. */
  pid: number;
  /** Stops the servers (closing dynalite's LevelDB) and waits for their process to exit. */
  close(): Promise<void>;
}

const SERVERS_ENTRY = new URL("./aws-servers-process.mjs", import.meta.url);

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
 */
export async function startEmbeddedAws(dataDir: string): Promise<EmbeddedAws> {
  const child = spawn(
    process.execPath,
    // s3rver's ListObjectsV2 continuation token uses a cipher OpenSSL 3 only offers with the legacy provider.
    ["--openssl-legacy-provider", SERVERS_ENTRY.pathname, dataDir, LOCAL_RESOURCES.bucket],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ports = await new Promise<{ s3Port: number; dynamodbPort: number }>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      reject(
        new Error(
          `the embedded AWS servers (data in ${dataDir}) exited (${signal ?? `code ${code}`}) before listening`,
        ),
      ),
    );
    createInterface({ input: child.stdout }).once("line", (line) => resolve(JSON.parse(line)));
  });
  const s3Endpoint = `http://127.0.0.1:${ports.s3Port}`;
  const dynamodbEndpoint = `http://127.0.0.1:${ports.dynamodbPort}`;

  const handlerEnv: Record<string, string> = {
    AWS_REGION: LOCAL_RESOURCES.region,
    // s3rver checks signatures against its fixed credentials; dynalite ignores them.
    AWS_ACCESS_KEY_ID: "S3RVER",
    AWS_SECRET_ACCESS_KEY: "S3RVER",
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
  await createTable(LOCAL_RESOURCES.runsTable, RUNS_TABLE_KEYS);
  await createTable(LOCAL_RESOURCES.verdictsTable, VERDICTS_TABLE_KEYS);
  client.destroy();

  return {
    s3Endpoint,
    dynamodbEndpoint,
    handlerEnv,
    pid: child.pid ?? -1,
    async close() {
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
