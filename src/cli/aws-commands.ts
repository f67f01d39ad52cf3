/**
 * The commands that work with the deployed stack: `deploy`, `start`, `runs` and `report` (the last two also
 * with `--local`, against the embedded servers `mmsafe run` uses).
 *
 * Each command is a function taking its SDK clients and output streams, so tests drive it with recorded SDK
 * responses or the embedded servers instead of spawning processes; `registerAwsCommands` wires them into the
 * command line with real clients.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
// Step Functions and CloudFormation clients are loaded when a command needs them (types only here), so
// the other commands start no slower; DynamoDB and S3 are loaded by the CLI anyway.
import type { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { DynamoDBClient, QueryCommand } from "@aws-sdk/client-dynamodb";
import { ListObjectsV2Command, type S3Client } from "@aws-sdk/client-s3";
import type { DescribeExecutionCommandOutput, SFNClient } from "@aws-sdk/client-sfn";
import { DynamoDBDocumentClient, GetCommand, ScanCommand } from "@aws-sdk/lib-dynamodb";
import { type Command, InvalidArgumentError } from "commander";
import { createS3Client } from "../adapters/aws-clients.ts";
import { S3ObjectStore } from "../adapters/object-store.ts";
import { type RunOwner, runOwnerSchema } from "../adapters/run-store.ts";
import type { StackOutputs } from "../adapters/stack-outputs.ts";
import type { Headline } from "../benchmarks/mmsafeaware/report.ts";
import { describeAffected, type RunCompletion } from "../core/completion.ts";
import { type DatasetProvenance, datasetProvenanceSchema } from "../core/provenance.ts";
import { describeZodError, executionInputSchema } from "../core/schemas.ts";
import { formatPercent } from "../core/text.ts";
import {
  RUNS_TABLE_KEYS,
  reportJsonKey,
  reportPrefix,
  VERDICTS_TABLE_KEYS,
} from "../deployment/storage-layout.ts";
import { headlineTable, mmsafeCommand, noPaint, type Paint, painterFor, terminalSafe } from "./format.ts";
import { EXIT, readableCause, UsageError } from "./main.ts";
import { ProgressDisplay } from "./progress.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The stack name bin/app.ts gives the pipeline. */
export const DEFAULT_STACK = "Mmsafe";

/** Milliseconds between DescribeExecution polls while `start` watches a run. */
export const POLL_INTERVAL_MS = 2000;

/** Run ids as the execution input accepts them (the `runId` field of executionInputSchema). */
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** CloudFormation stack names. */
const STACK_NAME = /^[A-Za-z][A-Za-z0-9-]{0,127}$/;

type Out = NodeJS.WritableStream;
const sleepMs = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

// ---------------------------------------------------------------------------------------------- deploy

/** Runs a command with inherited stdio and resolves with its exit code. Injectable for tests. */
export type Spawner = (
  command: string,
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
) => Promise<number>;

export const spawnInherited: Spawner = (command, args, options) =>
  new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawn(command, [...args], { ...options, stdio: "inherit" });
    } catch (error: unknown) {
      reject(error);
      return;
    }
    child.once("error", reject);
    child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });

export interface DeployOptions {
  stack: string;
  /** Arguments after `--`, passed to `cdk deploy` as they are. */
  cdkArgs?: readonly string[];
}

/** The `cdk deploy` command line `mmsafe deploy` runs. */
export function cdkDeployCommand(options: DeployOptions): { command: string; args: string[] } {
  const extra = [...(options.cdkArgs ?? [])];
  const approval = extra.some((a) => a === "--require-approval" || a.startsWith("--require-approval="))
    ? []
    : // Security-widening changes (IAM, security groups) still ask; everything else goes through.
      ["--require-approval", "broadening"];
  return { command: "npx", args: ["cdk", "deploy", options.stack, ...approval, "--no-notices", ...extra] };
}

/** `mmsafe deploy`: the CDK deployment of the stack, its output streamed; exit 0 when it deployed, else 1. */
export async function deployStack(
  options: DeployOptions,
  deps: { spawn?: Spawner; err: Out; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<number> {
  if (!STACK_NAME.test(options.stack))
    throw new UsageError(`--stack: "${options.stack}" is not a CloudFormation stack name`);
  const { command, args } = cdkDeployCommand(options);
  deps.err.write(`$ ${command} ${args.join(" ")}\n`);
  let code: number;
  try {
    code = await (deps.spawn ?? spawnInherited)(command, args, {
      cwd: deps.cwd ?? REPO_ROOT,
      env: { ...(deps.env ?? process.env), CDK_DISABLE_VERSION_CHECK: "1" },
    });
  } catch (error: unknown) {
    deps.err.write(`mmsafe: could not run ${command}: ${terminalSafe(messageOf(error))}\n`);
    return EXIT.runFailed;
  }
  if (code !== 0) {
    deps.err.write(`cdk deploy exited with code ${code}\n`);
    return EXIT.runFailed;
  }
  deps.err.write(
    `\nDeployed ${options.stack}. Next: upload a dataset and config/models.json (README: Deploying to AWS), then\n` +
      `  $ ${mmsafeCommand(`start --stack ${options.stack}`)}\n`,
  );
  return EXIT.ok;
}

// ---------------------------------------------------------------------------------------------- start

/** Where a value that looks like a credential sits in the input (its JSON path), or null. Never the value. */
export function findSecretLike(value: unknown, at = "(root)"): string | null {
  if (typeof value === "string") {
    // OpenAI/Anthropic-style keys (sk-…, sk-proj-…, sk-ant-…) and AWS access key ids.
    return /(^|[^A-Za-z0-9])sk-[A-Za-z0-9_-]{8,}/.test(value) || /\b(AKIA|ASIA)[0-9A-Z]{16}\b/.test(value)
      ? at
      : null;
  }
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = findSecretLike(item, `${at === "(root)" ? "" : `${at}.`}${i}`);
      if (found) return found;
    }
    return null;
  }
  if (value !== null && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      const here = at === "(root)" ? key : `${at}.${key}`;
      if (findSecretLike(key) !== null) return here;
      if (/^(api[_-]?key|secret[_-]?access[_-]?key|password|token|authorization)$/i.test(key) && item)
        return here;
      const found = findSecretLike(item, here);
      if (found) return found;
    }
  }
  return null;
}

/** Reads an execution input file: a JSON object, valid for the state machine, holding no credentials. */
export async function readExecutionInput(file: string | undefined): Promise<Record<string, unknown>> {
  if (file === undefined) return {};
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error: unknown) {
    throw new UsageError(`--input: cannot read ${file} (${messageOf(error)})`);
  }
  const refuse = (where: string) =>
    new UsageError(
      `${file}: ${where} looks like an API key or credential. Refusing to start: the execution input is ` +
        "stored in the execution history for everyone with read access. Keep keys out of it: a model names " +
        "its key's Secrets Manager secret (apiKeySecret) or environment variable (apiKeyEnv) instead.",
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error: unknown) {
    // The parser's message may quote the text: never when it holds what looks like a key.
    if (findSecretLike(text) !== null) throw refuse("something");
    throw new UsageError(`${file}: not JSON (${messageOf(error)})`);
  }
  if (json === null || typeof json !== "object" || Array.isArray(json))
    throw new UsageError(`${file}: the execution input must be a JSON object, e.g. {} or {"limit": 50}`);
  const secret = findSecretLike(json);
  if (secret !== null) throw refuse(secret);
  const parsed = executionInputSchema.safeParse(json);
  if (!parsed.success) throw new UsageError(describeZodError(parsed.error, file));
  return json as Record<string, unknown>;
}

/** An execution name for a run id: Step Functions names take no ':' (run ids may). */
export function executionNameFor(runId: string, retryAt?: Date): string {
  const base = runId.replace(/:/g, "-");
  if (!retryAt) return base;
  // Standard workflows keep a name for 90 days: a resumed run needs a new name (its input keeps the runId).
  const stamp = retryAt.toISOString().replace(/[-:]/g, "").replace(/\.\d+/, "");
  return `${base.slice(0, 80 - stamp.length - 1)}-${stamp}`;
}

/** Counts the verdicts of a run (all, and errors) with Select COUNT queries on its partition. */
export async function countVerdicts(
  dynamo: DynamoDBClient,
  verdictsTable: string,
  runId: string,
): Promise<{ done: number; errors: number }> {
  const count = async (errorsOnly: boolean) => {
    let total = 0;
    let startKey: QueryCommand["input"]["ExclusiveStartKey"];
    do {
      const out = await dynamo.send(
        new QueryCommand({
          TableName: verdictsTable,
          KeyConditionExpression: "#pk = :run",
          ...(errorsOnly ? { FilterExpression: "#status = :error" } : {}),
          ExpressionAttributeNames: {
            "#pk": VERDICTS_TABLE_KEYS.partitionKey,
            ...(errorsOnly ? { "#status": "status" } : {}),
          },
          ExpressionAttributeValues: {
            ":run": { S: runId },
            ...(errorsOnly ? { ":error": { S: "error" } } : {}),
          },
          Select: "COUNT",
          ExclusiveStartKey: startKey,
        }),
      );
      total += out.Count ?? 0;
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return total;
  };
  const [done, errors] = await Promise.all([count(false), count(true)]);
  return { done, errors };
}

/** The run record's item, or null (read as plain data: only a few fields are needed). */
async function getRunItem(
  dynamo: DynamoDBClient,
  runsTable: string,
  runId: string,
): Promise<Record<string, unknown> | null> {
  const doc = DynamoDBDocumentClient.from(dynamo);
  const out = await doc.send(
    new GetCommand({
      TableName: runsTable,
      Key: { [RUNS_TABLE_KEYS.partitionKey]: runId },
      ConsistentRead: true,
    }),
  );
  return out.Item ?? null;
}

const ACTIVE = new Set(["RUNNING", "PENDING_REDRIVE"]);

export interface StartOptions {
  stack: string;
  input?: string | undefined;
  runId?: string | undefined;
  quiet?: boolean | undefined;
}

export interface StartDeps {
  cfn: CloudFormationClient;
  sfn: SFNClient;
  dynamo: DynamoDBClient;
  out: Out;
  /** Progress and errors; a live bar when it is a terminal. */
  err: NodeJS.WriteStream;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  newRunId?: () => string;
}

/**
 * `mmsafe start`: starts an execution of the stack's state machine and watches it — verdicts counted in the
 * verdicts table against the run record's planned total — until it ends.
 */
export async function startRun(options: StartOptions, deps: StartDeps): Promise<number> {
  const sleep = deps.sleep ?? sleepMs;
  const now = deps.now ?? Date.now;
  if (options.runId !== undefined && !RUN_ID.test(options.runId))
    throw new UsageError(`--run-id: "${options.runId}" must be 1–64 letters, digits, '.', '_', ':' or '-'`);
  const input = await readExecutionInput(options.input);
  if (typeof input.runId === "string" && options.runId !== undefined && input.runId !== options.runId)
    throw new UsageError(
      `--run-id ${options.runId} differs from the runId ${input.runId} in ${options.input}`,
    );
  const runId =
    (typeof input.runId === "string" ? input.runId : options.runId) ??
    (deps.newRunId ?? (await import("../local/runner.ts")).newRunId)();
  const outputs = await stackOutputs(deps.cfn, options.stack);
  const { DescribeExecutionCommand, StartExecutionCommand } = await import("@aws-sdk/client-sfn");

  const body = JSON.stringify({ ...input, runId });
  let executionArn: string | undefined;
  let name = executionNameFor(runId);
  try {
    executionArn = (
      await deps.sfn.send(
        new StartExecutionCommand({ stateMachineArn: outputs.stateMachineArn, name, input: body }),
      )
    ).executionArn;
  } catch (error: unknown) {
    if (!(error instanceof Error && error.name === "ExecutionAlreadyExists")) throw error;
    // An earlier execution of this run: resume it under a new execution name, same runId.
    name = executionNameFor(runId, new Date(now()));
    executionArn = (
      await deps.sfn.send(
        new StartExecutionCommand({ stateMachineArn: outputs.stateMachineArn, name, input: body }),
      )
    ).executionArn;
  }
  if (!executionArn) throw new Error("StartExecution returned no executionArn");
  const region = executionArn.split(":")[3] ?? "";
  deps.err.write(
    `started run ${runId} on ${options.stack} (execution ${name})\n` +
      `  https://${region}.console.aws.amazon.com/states/home?region=${region}#/v2/executions/details/${executionArn}\n` +
      `  Ctrl-C stops watching, not the run (see it later with: ${mmsafeCommand(`runs --stack ${options.stack}`)})\n`,
  );

  const progress = new ProgressDisplay(deps.err, options.quiet);
  const started = now();
  let planned: { total: number; atMs: number; alreadyDone: number } | null = null;
  const report = async (final: boolean) => {
    if (!planned) return;
    const { done, errors } = await countVerdicts(deps.dynamo, outputs.verdictsTableName, runId);
    progress.handle({
      type: "progress",
      runId,
      done,
      total: planned.total,
      errors,
      alreadyDone: planned.alreadyDone,
      elapsedMs: now() - started,
      runStartedMs: planned.atMs,
      final,
    });
  };

  let execution: DescribeExecutionCommandOutput;
  try {
    for (;;) {
      execution = await deps.sfn.send(new DescribeExecutionCommand({ executionArn }));
      if (!planned) {
        // The total is known once Plan has recorded this execution's run (a resume re-records it).
        const record = await getRunItem(deps.dynamo, outputs.runsTableName, runId);
        if (record?.executionId === executionArn && typeof record.plannedVerdicts === "number") {
          const { done } = await countVerdicts(deps.dynamo, outputs.verdictsTableName, runId);
          planned = { total: record.plannedVerdicts, atMs: now() - started, alreadyDone: done };
          progress.handle({ type: "planned", runId, verdicts: record.plannedVerdicts, alreadyDone: done });
        }
      }
      if (!ACTIVE.has(execution.status ?? "RUNNING")) break;
      await report(false);
      await sleep(POLL_INTERVAL_MS);
    }
    await report(true);
  } finally {
    progress.stop();
  }

  const again = mmsafeCommand(
    [`start --stack ${options.stack} --run-id ${runId}`, options.input ? `--input ${options.input}` : ""]
      .filter(Boolean)
      .join(" "),
  );
  if (execution.status !== "SUCCEEDED") {
    const error = execution.error ?? "";
    deps.err.write(
      `run ${runId} ${execution.status}${error ? `: ${terminalSafe(error)}` : ""}\n` +
        (execution.cause ? `${terminalSafe(readableCause(execution.cause))}\n` : ""),
    );
    if (error === "InvalidExecutionInput" || error === "ModelUnavailable" || error === "ModelConfigError")
      return EXIT.badInput;
    deps.err.write(
      `Verdicts already written are kept; resume with the same run id (no model call is repeated):\n  $ ${again}\n`,
    );
    return EXIT.runFailed;
  }
  const completion = printSucceeded(deps.out, runId, execution.output, options.stack);
  if (completion === null || completion.outcome === "complete") return EXIT.ok;
  deps.out.write(
    `\n${completion.affected.map((a) => terminalSafe(describeAffected(a))).join("\n")}\n` +
      `resume to retry them (answers are never asked again):\n  $ ${again}\n`,
  );
  return EXIT.incomplete;
}

/** Prints a succeeded execution's headline and report; returns how the run ended, when the output says. */
function printSucceeded(
  out: Out,
  runId: string,
  outputText: string | undefined,
  stack: string,
): RunCompletion | null {
  let output: unknown;
  try {
    output = JSON.parse(outputText ?? "");
  } catch {
    output = null;
  }
  const result = output as Partial<{
    headline: Headline[];
    report: { json?: string; markdown?: string; html?: string; responses?: string[] };
    completion: RunCompletion;
  }> | null;
  const paint = painterFor(out);
  out.write(`\n${paint("bold", `Run ${runId} SUCCEEDED — paper scoring (accuracy %)`)}\n\n`);
  if (Array.isArray(result?.headline)) out.write(`${headlineTable(result.headline, paint)}\n\n`);
  else out.write(`execution output: ${terminalSafe(outputText ?? "(none)")}\n\n`);
  const report = result?.report;
  const uri = (value: unknown) => (typeof value === "string" ? terminalSafe(value) : "?");
  out.write(`report: ${uri(report?.markdown)}\n        ${uri(report?.json)}\n`);
  if (typeof report?.html === "string") out.write(`        ${uri(report.html)}\n`);
  const responses = Array.isArray(report?.responses) ? report.responses : [];
  for (const [i, r] of responses.entries()) out.write(`${i === 0 ? "responses:" : "          "} ${uri(r)}\n`);
  out.write(
    `download it: ${mmsafeCommand(`report ${runId} --stack ${stack}`)}  (then open it: ${mmsafeCommand(`open ${runId}`)})\n`,
  );
  const completion = result?.completion;
  return completion && Array.isArray(completion.affected) ? completion : null;
}

async function stackOutputs(cfn: CloudFormationClient, stack: string): Promise<StackOutputs> {
  if (!STACK_NAME.test(stack)) throw new UsageError(`--stack: "${stack}" is not a CloudFormation stack name`);
  const { readStackOutputs, StackOutputsError } = await import("../adapters/stack-outputs.ts");
  try {
    return await readStackOutputs(cfn, stack);
  } catch (error: unknown) {
    if (error instanceof StackOutputsError) throw new UsageError(error.message);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------- runs

/** A run as `mmsafe runs` shows it (and prints it with `--json`). */
export interface RunSummary {
  runId: string;
  status: string;
  startedAt: string;
  finishedAt: string | undefined;
  plannedVerdicts: number | undefined;
  error: string | undefined;
  /** The dataset's name, as Plan recorded it (undefined in a record without one). */
  dataset: string | undefined;
  /** What the dataset was when the run was planned; undefined for runs planned before it was recorded. */
  provenance: DatasetProvenance | undefined;
  /**
   * Per model × strategy: MMSafeAware's Total and Balanced, or a plug-in benchmark's rates by column and
   * aggregate key (`rates`; Total and Balanced are then null).
   */
  headline: {
    modelId: string;
    strategy: string;
    total: number | null;
    balanced: number | null;
    rates?: Record<string, number | null>;
  }[];
  /** The local process recorded as working on the run (local runs only). */
  owner: RunOwner | undefined;
}

/**
 * A local home's runs table says RUNNING for a run whose process died without a word (SIGKILL, a crash).
 * Only the process that serves the home (`holder`, its lock's owner; null when none does, e.g. because this
 * listing took the lock) can be working on a run: any other RUNNING run is shown INTERRUPTED.
 */
export function withLocalLiveness(run: RunSummary, holder: RunOwner | null): RunSummary {
  if (run.status !== "RUNNING") return run;
  const live =
    holder !== null &&
    run.owner !== undefined &&
    run.owner.pid === holder.pid &&
    run.owner.host === holder.host;
  if (live) return run;
  const gone = run.owner ? `its process (pid ${run.owner.pid}) is gone` : "no process works on it";
  return { ...run, status: "INTERRUPTED", error: run.error ?? gone };
}

const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);
const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** A run record as `runs` needs it; read field by field, so a record of another version still lists. */
function summarize(item: Record<string, unknown>): RunSummary {
  const headline = Array.isArray(item.headline) ? (item.headline as unknown[]) : [];
  return {
    runId: str(item[RUNS_TABLE_KEYS.partitionKey]) ?? "?",
    status: str(item.status) ?? "?",
    startedAt: str(item.startedAt) ?? "",
    finishedAt: str(item.finishedAt),
    plannedVerdicts: num(item.plannedVerdicts) ?? undefined,
    error: str(item.error),
    dataset: str(item.dataset),
    provenance: datasetProvenanceSchema.safeParse(item.datasetProvenance).data,
    owner: runOwnerSchema.safeParse(item.owner).data,
    headline: headline
      .filter((h): h is Record<string, unknown> => h !== null && typeof h === "object")
      .map((h) => ({
        modelId: str(h.modelId) ?? "?",
        strategy: str(h.strategy) ?? "?",
        total: num(h.total),
        balanced: num(h.balanced),
        ...(h.rates !== null && typeof h.rates === "object"
          ? {
              rates: Object.fromEntries(
                Object.entries(h.rates as Record<string, unknown>).map(([key, value]) => [key, num(value)]),
              ),
            }
          : {}),
      })),
  };
}

/** "850 ms", "12.3 s", "4 m 05 s", "1 h 02 m". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  return h > 0 ? `${h} h ${String(m).padStart(2, "0")} m` : `${m} m ${String(sec).padStart(2, "0")} s`;
}

/** The provenance in a word or two: "official", "modified copy", "generated sample"; "?" when not recorded. */
export function provenanceLabel(provenance: DatasetProvenance | undefined): string {
  switch (provenance?.kind) {
    case "official":
      return "official";
    case "modified":
      return "modified copy";
    case "sample":
      return "generated sample";
    case "own":
      return "your own";
    default:
      // Runs planned before provenance was recorded.
      return "?";
  }
}

/** A run's dataset cell: `mmsafeaware (official)`. */
const datasetCell = (run: RunSummary): string =>
  run.dataset === undefined ? "–" : `${terminalSafe(run.dataset)} (${provenanceLabel(run.provenance)})`;

/**
 * The table `mmsafe runs` prints: a line per run, then a line per further model × strategy of its headline.
 * The header is styled bold by `paint` (none by default).
 */
export function runsTable(runs: readonly RunSummary[], paint: Paint = noPaint): string {
  const withRates = runs.some((run) => run.headline.some((h) => h.rates !== undefined));
  const header = [
    "run",
    "status",
    "started (UTC)",
    "duration",
    "verdicts",
    "dataset",
    "model/strategy",
    "Total",
    "Balanced",
    // Runs of MOSSBench, VLGuard or your own dataset: their columns' rates, by key.
    ...(withRates ? ["rates"] : []),
  ];
  const rows: string[][] = [];
  for (const run of runs) {
    const duration =
      run.finishedAt && run.startedAt
        ? formatDuration(Date.parse(run.finishedAt) - Date.parse(run.startedAt))
        : run.status === "RUNNING"
          ? "running"
          : "–";
    const cells = [
      terminalSafe(run.runId),
      terminalSafe(run.status),
      run.startedAt ? terminalSafe(run.startedAt.replace("T", " ").slice(0, 19)) : "–",
      duration,
      run.plannedVerdicts === undefined ? "–" : String(run.plannedVerdicts),
      datasetCell(run),
    ];
    if (run.headline.length === 0) {
      const note = run.error ? `error: ${terminalSafe(run.error).slice(0, 60)}` : "–";
      rows.push([...cells, note, "–", "–", ...(withRates ? [""] : [])]);
      continue;
    }
    run.headline.forEach((h, i) => {
      rows.push([
        ...(i === 0 ? cells : cells.map(() => "")),
        terminalSafe(`${h.modelId}/${h.strategy}`),
        formatPercent(h.total),
        formatPercent(h.balanced),
        ...(withRates
          ? [
              Object.entries(h.rates ?? {})
                .map(([key, rate]) => `${terminalSafe(key)} ${formatPercent(rate)}`)
                .join(", "),
            ]
          : []),
      ]);
    });
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const numeric = new Set([4, 7, 8]);
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [paint("bold", line(header)), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

/** A run as `mmsafe runs --json` prints it. */
export interface RunJson {
  runId: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  plannedVerdicts: number | null;
  dataset: { name: string | null; provenance: DatasetProvenance | null; label: string };
  error: string | null;
  headline: RunSummary["headline"];
}

const runJson = (run: RunSummary): RunJson => ({
  runId: run.runId,
  status: run.status,
  startedAt: run.startedAt || null,
  finishedAt: run.finishedAt ?? null,
  durationMs: run.finishedAt && run.startedAt ? Date.parse(run.finishedAt) - Date.parse(run.startedAt) : null,
  plannedVerdicts: run.plannedVerdicts ?? null,
  dataset: {
    name: run.dataset ?? null,
    provenance: run.provenance ?? null,
    label: provenanceLabel(run.provenance),
  },
  error: run.error ?? null,
  headline: run.headline,
});

/**
 * `mmsafe runs`: the most recent runs of a runs table, newest first. For a local home, `localHolder` is the
 * process serving it (null when none does), so a run whose process is gone shows INTERRUPTED, not RUNNING.
 * With `json`, one JSON document on `out` (`{runsTable, total, runs}`) and nothing else.
 */
export async function listRuns(
  options: { runsTable: string; limit: number; localHolder?: RunOwner | null; json?: boolean },
  deps: { dynamo: DynamoDBClient; out: Out },
): Promise<number> {
  const doc = DynamoDBDocumentClient.from(deps.dynamo);
  const items: Record<string, unknown>[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await doc.send(
      new ScanCommand({ TableName: options.runsTable, ExclusiveStartKey: startKey }),
    );
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  const { localHolder } = options;
  const runs = items
    .map(summarize)
    .map((run) => (localHolder === undefined ? run : withLocalLiveness(run, localHolder)))
    .sort((a, b) => b.startedAt.localeCompare(a.startedAt) || a.runId.localeCompare(b.runId));
  if (options.json) {
    const document = {
      runsTable: options.runsTable,
      total: runs.length,
      runs: runs.slice(0, options.limit).map(runJson),
    };
    deps.out.write(`${JSON.stringify(document, null, 2)}\n`);
    return EXIT.ok;
  }
  if (runs.length === 0) {
    deps.out.write(`no runs yet in ${options.runsTable}\n`);
    return EXIT.ok;
  }
  deps.out.write(`${runsTable(runs.slice(0, options.limit), painterFor(deps.out))}\n`);
  const left = runs.length - options.limit;
  if (left > 0)
    deps.out.write(
      `(${left} older run${left === 1 ? "" : "s"} not shown; --limit ${runs.length} shows all)\n`,
    );
  return EXIT.ok;
}

// ---------------------------------------------------------------------------------------------- report

/** The report files of a run, relative to `reports/<runId>/` (storage-layout.ts: reportJsonKey and beside it). */
const REPORT_FILES = ["report.md", "report.json", "report.html"] as const;
const isReportFile = (relative: string): boolean =>
  (REPORT_FILES as readonly string[]).includes(relative) ||
  /^responses\/[A-Za-z0-9][A-Za-z0-9._:-]*\.jsonl$/.test(relative);

/**
 * `mmsafe report`: downloads a run's report (report.md, report.json, report.html, responses/*.jsonl) into
 * `<outDir>/<runId>/`, where `mmsafe open` finds the page, and prints the paths.
 */
export async function downloadReport(
  options: { runId: string; outDir: string; bucket: string; runsTable: string; resumeHint: string },
  deps: { s3: S3Client; dynamo: DynamoDBClient; out: Out; err: Out },
): Promise<number> {
  const { runId } = options;
  if (!RUN_ID.test(runId))
    throw new UsageError(`"${runId}" is not a run id (1–64 letters, digits, '.', '_', ':' or '-')`);
  const prefix = reportPrefix(runId);
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await deps.s3.send(
      new ListObjectsV2Command({ Bucket: options.bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const files = keys.map((k) => k.slice(prefix.length)).filter(isReportFile);

  if (!keys.includes(reportJsonKey(runId))) {
    const run = await getRunItem(deps.dynamo, options.runsTable, runId);
    if (!run)
      throw new UsageError(
        `no run "${runId}" in ${options.runsTable} (${mmsafeCommand("runs")} lists the runs there)`,
      );
    const status = str(run.status) ?? "?";
    if (status === "FAILED") {
      deps.err.write(
        `run ${runId} FAILED, so it has no report: ${terminalSafe(str(run.error) ?? "")}\n` +
          `${terminalSafe(str(run.cause) ?? "")}\n` +
          `Verdicts already written are kept; resume with: ${options.resumeHint}\n`,
      );
      return EXIT.runFailed;
    }
    throw new UsageError(
      status === "RUNNING"
        ? `run ${runId} is still RUNNING (started ${str(run.startedAt) ?? "?"}): its report is written when it ends`
        : `run ${runId} is ${terminalSafe(status)} but s3://${options.bucket}/${prefix} holds no report.json`,
    );
  }

  const dir = path.resolve(options.outDir, runId);
  const store = new S3ObjectStore(deps.s3, options.bucket);
  const written: string[] = [];
  // Markdown, JSON, the page, then the responses: the order they are printed in.
  const order = (f: string) => {
    const i = (REPORT_FILES as readonly string[]).indexOf(f);
    return i === -1 ? REPORT_FILES.length : i;
  };
  for (const file of files.sort((a, b) => order(a) - order(b) || a.localeCompare(b))) {
    const target = path.join(dir, ...file.split("/"));
    await mkdir(path.dirname(target), { recursive: true });
    await writeFile(target, await store.getBytes(`${prefix}${file}`));
    written.push(target);
  }
  deps.out.write(`run ${runId}: ${written.length} files from s3://${options.bucket}/${prefix}\n`);
  for (const file of written) deps.out.write(`  ${file}\n`);
  if (files.includes("report.html")) {
    const reports =
      path.resolve(options.outDir) === path.resolve("reports") ? "" : ` --reports ${options.outDir}`;
    deps.out.write(`open the page: ${mmsafeCommand(`open ${runId}${reports}`)}\n`);
  }
  return EXIT.ok;
}

// ---------------------------------------------------------------------------------------------- wiring

const positiveInt = (flag: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} takes a whole number ≥ 1`);
  return n;
};

interface Target {
  stack?: string;
  local?: boolean;
  home: string;
}

/**
 * The resources of `--stack NAME` (read from its outputs) or of `--local`, with clients for them. With
 * `readWhileInUse`, a local home that a live run uses is read through that run's servers (`localHolder`
 * names the run's process; null when this process serves the home itself).
 */
async function openTarget(
  target: Target,
  options: { readWhileInUse?: boolean } = {},
): Promise<{
  bucket: string;
  runsTable: string;
  s3: S3Client;
  dynamo: DynamoDBClient;
  resumeHint: (runId: string) => string;
  localHolder?: RunOwner | null;
  close: () => Promise<void>;
}> {
  if (target.local && target.stack)
    throw new UsageError("give either --stack NAME (a deployed stack) or --local, not both");
  if (target.local) {
    const { openLocalSession, closeLocalSession } = await import("../local/runner.ts");
    const { LOCAL_RESOURCES } = await import("../local/embedded-aws.ts");
    const session = await openLocalSession(target.home, {
      whenInUse: options.readWhileInUse ? "attach" : "refuse",
    });
    const holder = session.aws.attachedTo;
    return {
      bucket: LOCAL_RESOURCES.bucket,
      runsTable: LOCAL_RESOURCES.runsTable,
      s3: session.s3,
      dynamo: session.dynamodb,
      resumeHint: (runId) =>
        mmsafeCommand(`run --run-id ${runId}${target.home === ".mmsafe" ? "" : ` --home ${target.home}`}`),
      localHolder: holder ? { pid: holder.ownerPid, host: holder.host } : null,
      close: closeLocalSession,
    };
  }
  if (!target.stack)
    throw new UsageError(
      "give --stack NAME (the deployed stack, e.g. Mmsafe) or --local (this machine's runs)",
    );
  const stack = target.stack;
  const { CloudFormationClient } = await import("@aws-sdk/client-cloudformation");
  const cfn = new CloudFormationClient({});
  const s3 = createS3Client(process.env.MMSAFE_S3_FORCE_PATH_STYLE === "true");
  const dynamo = new DynamoDBClient({});
  try {
    const outputs = await stackOutputs(cfn, stack);
    return {
      bucket: outputs.bucketName,
      runsTable: outputs.runsTableName,
      s3,
      dynamo,
      resumeHint: (runId) => mmsafeCommand(`start --stack ${stack} --run-id ${runId}`),
      close: async () => {
        s3.destroy();
        dynamo.destroy();
      },
    };
  } catch (error: unknown) {
    s3.destroy();
    dynamo.destroy();
    throw error;
  } finally {
    cfn.destroy();
  }
}

const localOptions = (command: Command) =>
  command
    .option("--stack <name>", "the deployed stack (CloudFormation name, e.g. Mmsafe)")
    .option("--local", "the runs of this machine (the run command), in the embedded servers")
    .option("--home <dir>", "with --local: where the local servers keep their data", ".mmsafe");

const AWS_ENV_NOTE =
  "AWS credentials and region come from the standard environment (AWS_PROFILE, AWS_REGION, ...).";

/** Adds `deploy`, `start`, `runs` and `report` to the program. */
export function registerAwsCommands(program: Command, deps: { spawn?: Spawner } = {}): void {
  program
    .command("deploy")
    .description("Deploy the stack to AWS with the CDK (bucket, tables, Lambdas, state machine).")
    .argument("[cdk-args...]", "after --: further arguments for cdk deploy")
    .option("--stack <name>", "the stack to deploy", DEFAULT_STACK)
    .addHelpText(
      "after",
      `
Runs \`npx cdk deploy <stack> --require-approval broadening --no-notices\` in the project folder, its
output streamed: changes that widen permissions (IAM, security groups) still ask for approval. Bootstrap
the account and region once first (\`npx cdk bootstrap\`). Exit code 0 when deployed, else 1.
${AWS_ENV_NOTE}

Examples:
  $ npm run mmsafe -- deploy
  $ npm run mmsafe -- deploy -- --profile research
  $ npm run mmsafe -- deploy -- --require-approval never       # CI, after review`,
    )
    .action(async (cdkArgs: string[], options: { stack: string }) => {
      process.exitCode = await deployStack(
        { stack: options.stack, cdkArgs },
        { spawn: deps.spawn, err: process.stderr },
      );
    });

  program
    .command("start")
    .description(
      "Start a run on the deployed stack and follow it until it ends: progress, then the headline.",
    )
    .requiredOption("--stack <name>", "the deployed stack (CloudFormation name, e.g. Mmsafe)")
    .option("--input <file>", "execution input, a JSON object (README: Starting a run); default {}")
    .option("--run-id <id>", "name the run; re-using an id resumes it without repeating any model call")
    .option("-q, --quiet", "no progress output")
    .addHelpText(
      "after",
      `
The input never holds a key: a model names its key's Secrets Manager secret (apiKeySecret) or environment
variable (apiKeyEnv). An input that looks like it holds one (sk-..., an AWS access key id) is refused.
Progress counts the verdicts in the verdicts table; Ctrl-C stops watching, not the run.
Exit code 0 when every verdict is an answer, 1 when the run failed, 2 for bad input (or a model the
start-of-run check cannot ask), 3 when it finished with error or missing verdicts (resume to retry them).
${AWS_ENV_NOTE}

Examples:
  $ npm run mmsafe -- start --stack Mmsafe
  $ npm run mmsafe -- start --stack Mmsafe --input smoke.json      # e.g. {"limit": 50, "models": ["gpt-4o"]}
  $ npm run mmsafe -- start --stack Mmsafe --run-id nightly-01     # resume a run that failed`,
    )
    .action(async (options: { stack: string; input?: string; runId?: string; quiet?: boolean }) => {
      const [{ CloudFormationClient }, { SFNClient }] = await Promise.all([
        import("@aws-sdk/client-cloudformation"),
        import("@aws-sdk/client-sfn"),
      ]);
      const clients = {
        cfn: new CloudFormationClient({}),
        sfn: new SFNClient({}),
        dynamo: new DynamoDBClient({}),
      };
      try {
        process.exitCode = await startRun(options, { ...clients, out: process.stdout, err: process.stderr });
      } finally {
        for (const client of Object.values(clients)) client.destroy();
      }
    });

  localOptions(
    program
      .command("runs")
      .description(
        "List recent runs, newest first: status, duration, planned verdicts, dataset and its provenance, headline scores.",
      ),
  )
    .option("--limit <n>", "show at most n runs", positiveInt("--limit"), 20)
    .option("--json", "print the runs as one JSON document on stdout ({runsTable, total, runs: [...]})")
    .addHelpText(
      "after",
      `
Total and Balanced are paper-scoring accuracies (%) of each model × strategy. The dataset is the name the
run recorded and what it was when planned: official (every file matches the published tree), modified copy,
or generated sample ("?" for runs made before mmsafe recorded it).
${AWS_ENV_NOTE}

Examples:
  $ npm run mmsafe -- runs --stack Mmsafe
  $ npm run mmsafe -- runs --local --limit 5
  $ npm run mmsafe -- runs --local --json            # e.g. | jq '.runs[0].headline'`,
    )
    .action(async (options: Target & { limit: number; json?: boolean }) => {
      // Locally, a run in progress keeps the home: its servers are read, so it shows as RUNNING.
      const target = await openTarget(options, { readWhileInUse: true });
      try {
        process.exitCode = await listRuns(
          {
            runsTable: target.runsTable,
            limit: options.limit,
            localHolder: target.localHolder,
            json: options.json === true,
          },
          { dynamo: target.dynamo, out: process.stdout },
        );
      } finally {
        await target.close();
      }
    });

  localOptions(
    program
      .command("report <run-id>")
      .description(
        "Download a run's report (report.md, report.json, report.html, responses/*.jsonl) to <out>/<run-id>/.",
      ),
  )
    .option("--out <dir>", "where to write the report (<dir>/<run-id>/)", "reports")
    .option(
      "--rebuild",
      "with --local: build the report again from the run's verdicts first (no model is called), e.g. after a failed Aggregate",
    )
    .addHelpText(
      "after",
      `
Exit code 2 when there is no such run or it has no report yet, 1 when the run failed (its error is printed).
The page is then where \`open\` looks for it (same --out as open's --reports).
On AWS, a report is built again by starting the run again with the same id
(\`${mmsafeCommand("start --stack NAME --run-id ID")}\`): every verdict is there, so no model is asked and
only Aggregate does work.
${AWS_ENV_NOTE}

Examples:
  $ npm run mmsafe -- report nightly-01 --stack Mmsafe && npm run mmsafe -- open nightly-01
  $ npm run mmsafe -- report nightly-01 --local --out /tmp/reports
  $ npm run mmsafe -- report nightly-01 --local --rebuild`,
    )
    .action(async (runId: string, options: Target & { out: string; rebuild?: boolean }) => {
      if (options.rebuild) {
        if (!options.local)
          throw new UsageError(
            `--rebuild builds a local run's report; on AWS start the run again: ${mmsafeCommand(`start --stack ${options.stack ?? "<stack>"} --run-id ${runId}`)}`,
          );
        if (!RUN_ID.test(runId))
          throw new UsageError(`"${runId}" is not a run id (1–64 letters, digits, '.', '_', ':' or '-')`);
        const { rebuildLocalReport, closeLocalSession } = await import("../local/runner.ts");
        try {
          const { reportDir, output } = await rebuildLocalReport({
            home: options.home,
            runId,
            reportsDir: options.out,
          });
          process.stdout.write(`rebuilt the report of ${runId} from its verdicts: ${reportDir}\n`);
          if (output.completion.outcome !== "complete")
            process.stdout.write(
              `${output.completion.affected.length} model × strategy rows lack answers (see report.md)\n`,
            );
        } finally {
          await closeLocalSession();
        }
        return;
      }
      const target = await openTarget(options);
      try {
        process.exitCode = await downloadReport(
          {
            runId,
            outDir: options.out,
            bucket: target.bucket,
            runsTable: target.runsTable,
            resumeHint: target.resumeHint(runId),
          },
          { s3: target.s3, dynamo: target.dynamo, out: process.stdout, err: process.stderr },
        );
      } finally {
        await target.close();
      }
    });
}
