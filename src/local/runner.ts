import { randomBytes } from "node:crypto";
import { access, appendFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { type DynamoDBClient, GetItemCommand, QueryCommand } from "@aws-sdk/client-dynamodb";
import type { S3Client } from "@aws-sdk/client-s3";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { Context } from "aws-lambda";
import { createDynamoClient, createS3Client } from "../adapters/aws-clients.ts";
import { S3ObjectStore } from "../adapters/object-store.ts";
import { DynamoRunStore, type RunRecord } from "../adapters/run-store.ts";
import { thumbnailDataUrl } from "../adapters/thumbnails.ts";
import {
  CUSTOM_BENCHMARK,
  CUSTOM_DATASET_FILE,
  type CustomJudgePrompt,
} from "../benchmarks/custom/config.ts";
import {
  type FileHashCache,
  type FileHashEntry,
  readOfficialDataset,
} from "../benchmarks/mmsafeaware/layout.ts";
import {
  DEFAULT_BENCHMARK,
  type PluginBenchmark,
  RUNNABLE_BENCHMARKS,
  type RunnableBenchmark,
} from "../benchmarks/names.ts";
import { UnknownBenchmarkError } from "../benchmarks/registry.ts";
import { retriesOf, tokenCost } from "../core/call-accounting.ts";
import { type DatasetProvenance, describeProvenance } from "../core/provenance.ts";
import { type ModelConfig, modelEndpoint, type PlanOutput, planOutputSchema } from "../core/schemas.ts";
import { describeBenchmarkImport, readBenchmarkFolder } from "../dataset/benchmark-import.ts";
import { establishProvenance, SAMPLE_MARKER_FILE, writeSampleMarker } from "../dataset/provenance.ts";
import { describeImport, uploadDataset } from "../dataset/upload.ts";
import { uploadBenchmarkDataset } from "../dataset/upload-benchmark.ts";
import {
  type AslSubstitution,
  HANDLER_ENV,
  MODELS_CONFIG_KEY,
  PIPELINE_FUNCTIONS,
  REPORTS_INDEX_HTML_KEY,
  REPORTS_INDEX_JSON_KEY,
  RUNS_TABLE_KEYS,
  reportPrefix,
  VERDICTS_TABLE_KEYS,
  WORKFLOW_DEFINITION,
} from "../deployment/storage-layout.ts";
import type { AggregateOutput } from "../pipeline/aggregate.ts";
import { type EmbeddedAws, LOCAL_RESOURCES, startEmbeddedAws } from "./embedded-aws.ts";
import {
  EmbeddedAwsInUseError,
  EmbeddedServersExitedError,
  LocalHomeInUseError,
  RunFaultError,
  RunInterruptedError,
  RunNotKnownError,
  RunToRejudgeError,
  type ServersExit,
} from "./local-errors.ts";
import { JUDGE_MODELS, type ReferenceServer, startReferenceModelServer } from "./reference-model-server.ts";
import { ShardProcessPool } from "./shard-processes.ts";
import {
  type ExecutionResult,
  executeLocally,
  type Json,
  type LocalLambda,
  loadDefinition,
  type PublishedEvent,
} from "./step-functions.ts";

const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..", "..");

/** What a local run reports while it works. */
export type RunEvent =
  | { type: "info"; message: string }
  | { type: "planned"; runId: string; verdicts: number; alreadyDone: number }
  | {
      type: "dataset";
      lines: string[];
      provenance: DatasetProvenance;
      /** True when no data was found or given, so the generated sample stands in. */
      fallback: boolean;
      /** Where the real data would have been looked for (`.mmsafe/datasets/mossbench`), and the benchmark's title. */
      lookedIn?: string;
      benchmark?: string;
    }
  | {
      type: "progress";
      runId: string;
      done: number;
      total: number;
      errors: number;
      elapsedMs: number;
      /** Verdicts the run already had when this execution started (a resume). */
      alreadyDone: number;
      /** When the evaluation itself started (after upload and planning), in ms since the run began. */
      runStartedMs: number;
      final: boolean;
      /** Per model, in the plan's order (absent when only counts were gathered, e.g. `mmsafe start`). */
      models?: ModelProgress[];
      /** Model calls repeated after a fault, over the verdicts not answered from the cache. */
      retries?: number;
      /** Prompt + completion tokens of the verdicts written so far. */
      tokens?: number;
      /** USD so far at the configured prices of the models that have them; null when none has. */
      costUsd?: number | null;
      /** Verdicts answered from the response cache. */
      cached?: number;
      /** Per model with error verdicts: how many, of which kinds, a sample message. */
      errorSummaries?: ModelErrorSummary[];
      /** The judge's readings so far, when the run names a judge: one per verdict to read. */
      judge?: { id: string; done: number; errors: number; total: number };
    };

/** One model's share of a run's progress. */
export interface ModelProgress {
  id: string;
  /** Verdicts written for this model (all strategies). */
  done: number;
  /** Verdicts planned for this model (items × strategies). */
  total: number;
  errors: number;
  tokens: number;
  /** USD at the model's configured prices; null without prices. */
  costUsd: number | null;
}

/** A model's error verdicts so far, for the progress display's summary (locally there is no line per error). */
export interface ModelErrorSummary {
  id: string;
  /** The model's endpoint (a base URL never holds the key), to say where the errors come from. */
  baseURL: string;
  errors: number;
  /** Error verdicts per kind (connection, timeout, rate_limited, …). */
  kinds: Record<string, number>;
  /** A message of the most common kind (already redacted when the verdict was written), or null. */
  sample: string | null;
}

/** The attributes of a verdict the progress display needs (all a poll reads). */
export interface VerdictProgressRow {
  modelId: string;
  strategy: string;
  status: string;
  attempts: number;
  promptTokens: number;
  completionTokens: number;
  cached: boolean;
  /** When the verdict was written (ISO); an error verdict older than the execution may be retried by it. */
  createdAt?: string;
  errorKind?: string | null;
  errorMessage?: string | null;
}

/** What a poll of the verdicts table adds up to. */
export interface ProgressTally {
  done: number;
  errors: number;
  retries: number;
  tokens: number;
  costUsd: number | null;
  cached: number;
  models: ModelProgress[];
  /** The models with error verdicts, in the plan's order. */
  errorSummaries: ModelErrorSummary[];
}

/** How {@link tallyProgress} counts. */
export interface TallyOptions {
  /**
   * A resume that retries error verdicts: those written before this time (ISO) are still to do, so they are
   * not counted as done (their replacement is, once written).
   */
  retryingErrorsBefore?: string;
}

/**
 * Adds up verdict rows for the progress display: per model (in `models`' order, each planned
 * `perModelTotal` verdicts) and in all. Retries count like the report's: attempts beyond the first call,
 * beyond the first two for vcd (it calls the model twice per verdict), never for cached answers.
 */
export function tallyProgress(
  rows: Iterable<VerdictProgressRow>,
  models: readonly ModelConfig[],
  perModelTotal: number,
  options: TallyOptions = {},
): ProgressTally {
  const perModel = new Map<string, { done: number; errors: number; prompt: number; completion: number }>();
  for (const m of models) perModel.set(m.id, { done: 0, errors: 0, prompt: 0, completion: 0 });
  const errorsOf = new Map<string, { kinds: Map<string, number>; samples: Map<string, string> }>();
  const tally: ProgressTally = {
    done: 0,
    errors: 0,
    retries: 0,
    tokens: 0,
    costUsd: null,
    cached: 0,
    models: [],
    errorSummaries: [],
  };
  const before = options.retryingErrorsBefore;
  for (const row of rows) {
    const error = row.status === "error";
    if (error && before !== undefined && row.createdAt !== undefined && row.createdAt < before) continue;
    tally.done++;
    if (error) {
      tally.errors++;
      const kind = row.errorKind ?? "unknown";
      const of = errorsOf.get(row.modelId) ?? { kinds: new Map(), samples: new Map() };
      of.kinds.set(kind, (of.kinds.get(kind) ?? 0) + 1);
      if (!of.samples.has(kind) && row.errorMessage) of.samples.set(kind, row.errorMessage);
      errorsOf.set(row.modelId, of);
    }
    if (row.cached) tally.cached++;
    tally.retries += retriesOf(row);
    tally.tokens += row.promptTokens + row.completionTokens;
    const m = perModel.get(row.modelId);
    if (m) {
      m.done++;
      if (error) m.errors++;
      m.prompt += row.promptTokens;
      m.completion += row.completionTokens;
    }
  }
  for (const model of models) {
    const m = perModel.get(model.id) ?? { done: 0, errors: 0, prompt: 0, completion: 0 };
    const costUsd = tokenCost(model, m.prompt, m.completion);
    if (costUsd !== null) tally.costUsd = (tally.costUsd ?? 0) + costUsd;
    tally.models.push({
      id: model.id,
      done: m.done,
      total: perModelTotal,
      errors: m.errors,
      tokens: m.prompt + m.completion,
      costUsd,
    });
    const errors = errorsOf.get(model.id);
    if (errors) {
      const kinds = [...errors.kinds].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
      tally.errorSummaries.push({
        id: model.id,
        baseURL: modelEndpoint(model),
        errors: m.errors,
        kinds: Object.fromEntries(kinds),
        sample: errors.samples.get(kinds[0]?.[0] ?? "") ?? null,
      });
    }
  }
  return tally;
}

export interface LocalRunOptions {
  /** Folder for the embedded servers' data and generated datasets (default `.mmsafe`). */
  home: string;
  /**
   * A dataset in the official layout (your own dataset: its JSONL file, or a folder holding `dataset.jsonl`);
   * default: `<home>/datasets/<benchmark>` when present, else a generated sample.
   */
  datasetDir?: string;
  /** Your own dataset: the record field its columns are made of (default `column` when records have it). */
  columnField?: string;
  /** Your own dataset: the judge prompt, as read from your file (see `customJudgePrompt`). */
  judgePrompt?: CustomJudgePrompt;
  /** Models to evaluate; default: the reference baselines served on 127.0.0.1. */
  models?: ModelConfig[];
  /** Extra execution input (runId, strategies, categories, limit, shardSize, mapConcurrency, ...). */
  input?: Record<string, Json>;
  /**
   * Where to copy the report (`<reportsDir>/<runId>/`) and the history of runs (`<reportsDir>/index.html`,
   * `index.json`); default `reports`.
   */
  reportsDir?: string;
  /** Latency the reference baselines add to each answer, in ms. */
  baselineLatencyMs?: number;
  /** Concurrency per reference baseline (default 16). */
  baselineConcurrency?: number;
  onEvent?: (event: RunEvent) => void;
  /**
   * Stops the run when aborted. Its reason says why: a signal name (`"SIGINT"`, `"SIGTERM"`) interrupts it
   * (the run is marked INTERRUPTED and {@link RunInterruptedError} is thrown); an Error is a fault that
   * struck the process (e.g. an unhandled rejection), thrown back as {@link RunFaultError}, or as
   * {@link EmbeddedServersExitedError} when the embedded servers died. Work in flight is abandoned: the caller
   * closes the session and ends the process.
   */
  stop?: AbortSignal;
  /** Log level of the handlers, when this run opens the process's session (see {@link LocalSessionOptions}). */
  handlerLogLevel?: LocalSessionOptions["handlerLogLevel"];
  /** Shards in processes of their own, this many at most (see {@link LocalSessionOptions}). */
  shardProcesses?: number;
}

/** Options of the first {@link openLocalSession} of a process (later calls share its session). */
export interface LocalSessionOptions {
  /**
   * When another live mmsafe process serves the home: `"refuse"` (default, {@link LocalHomeInUseError}) or
   * `"attach"`, reading through its servers (listing runs while one works). A run never attaches.
   */
  whenInUse?: "refuse" | "attach";
  /** Log level of the handlers' Powertools loggers, unless POWERTOOLS_LOG_LEVEL is set (default WARN). */
  handlerLogLevel?: "WARN" | "ERROR" | "SILENT";
  /**
   * Runs each shard in a process of its own, as Lambda containers do, up to this many at once; the model
   * budgets are then shared through the embedded DynamoDB, as on AWS. Default: every shard in this process.
   */
  shardProcesses?: number;
}

export interface LocalRunResult {
  runId: string;
  execution: ExecutionResult;
  output: AggregateOutput | null;
  reportDir: string | null;
  datasetName: string;
  /** What the dataset was: official (verified file by file), a modified copy, or a generated sample. */
  provenance: DatasetProvenance;
  /** What the workflow published to its event bus (recorded locally in `<home>/events.jsonl`). */
  events: PublishedEvent[];
  /** Completion requests the reference baselines received in this run (null with real models). */
  baselineCalls: number | null;
  durationMs: number;
  /** Milliseconds from the start of the run to the end of each phase. */
  phases: { datasetReady: number; planned: number | null; evaluated: number; reportCopied: number };
}

/** Built once per process: embedded servers, the handler modules bound to them, SDK clients. */
interface LocalSession {
  home: string;
  aws: EmbeddedAws;
  lambdas: Map<string, LocalLambda>;
  s3: S3Client;
  dynamodb: DynamoDBClient;
  store: S3ObjectStore;
  baselines: ReferenceServer | null;
  /** The shard processes, when shards run in processes of their own. */
  shardProcesses: ShardProcessPool | null;
}

/** What a local shard is told it has left: more than any call needs (a finite number, as Lambda's is). */
const MAX_REMAINING_MS = 2 ** 31 - 1;

/**
 * Set when a run is halted (Ctrl-C, SIGTERM, the servers dying): shards are then told they have no time left,
 * as a Lambda near its timeout is, so they start no new call; the calls in flight finish and are written.
 */
let callsStopped = false;

/** Shard invocations under way; a halted run lets them finish their calls in flight before counting. */
const activeShards = new Set<Promise<unknown>>();

/**
 * How long a halted run waits for the calls in flight to land and be written before counting. No call starts
 * once halted, so this is one call's time at most; a second Ctrl-C quits at once.
 */
const STOP_DRAIN_MS = 30_000;

/** An invocation refused because the run was halted, as Lambda refuses one of a stopped execution. */
function haltedInvocation(name: string): Error {
  const error = new Error(`mmsafe-${name} not invoked: the run was stopped`);
  error.name = "States.Aborted";
  return error;
}

let session: Promise<LocalSession> | null = null;
let sessionHome: string | null = null;

const localFunctionArn = (name: string) =>
  `arn:aws:lambda:${LOCAL_RESOURCES.region}:000000000000:function:mmsafe-${name}`;

/**
 * Starts (once per process) the embedded S3 and DynamoDB servers, points the standard AWS SDK environment
 * at them, and loads the very handler modules that are deployed to Lambda. Throws
 * {@link LocalHomeInUseError} when another live mmsafe process uses the home (unless attaching).
 */
export function openLocalSession(home: string, options: LocalSessionOptions = {}): Promise<LocalSession> {
  const resolved = path.resolve(home);
  if (session && sessionHome !== resolved)
    throw new Error(`a local session for ${sessionHome} is already open in this process`);
  sessionHome = resolved;
  session ??= (async () => {
    let aws: EmbeddedAws;
    try {
      aws = await startEmbeddedAws(path.join(resolved, "aws"), { whenInUse: options.whenInUse });
    } catch (error: unknown) {
      if (error instanceof EmbeddedAwsInUseError)
        throw new LocalHomeInUseError(home, error.holder, { cause: error });
      throw error;
    }
    Object.assign(process.env, aws.handlerEnv);
    process.env.POWERTOOLS_LOG_LEVEL ??= options.handlerLogLevel ?? "WARN";
    // Embedded-metric-format lines are for CloudWatch; locally they would only flood the terminal.
    process.env.POWERTOOLS_METRICS_DISABLED ??= "true";
    // A WARN line per error verdict is for CloudWatch; locally the progress display sums them up per model
    // (read by lambdas/evaluate-shard/index.ts).
    process.env[HANDLER_ENV.logErrorVerdicts] ??= "false";
    const lambdas = new Map<string, LocalLambda>();
    const pool =
      options.shardProcesses === undefined
        ? null
        : new ShardProcessPool(
            options.shardProcesses,
            path.join(REPO_ROOT, PIPELINE_FUNCTIONS.evaluateShard.entry),
            { ...process.env, [HANDLER_ENV.budgetsTable]: LOCAL_RESOURCES.budgetsTable },
          );
    for (const [name, fn] of Object.entries(PIPELINE_FUNCTIONS)) {
      // Shards in processes of their own: this process never loads their handler.
      const inProcess = !(name === "evaluateShard" && pool);
      const module = inProcess
        ? ((await import(pathToFileURL(path.join(REPO_ROOT, fn.entry)).href)) as {
            handler: (event: unknown, context: Context) => Promise<unknown>;
          })
        : null;
      // A shard's time locally includes waiting for model slots that other shards hold (one process shares
      // the gates), so it has no deadline here; plan and aggregate keep their Lambda's.
      const untimed = name === "evaluateShard";
      lambdas.set(localFunctionArn(name), async (event) => {
        // A halted run starts no handler: the servers it would use are closing (the execution is being stopped).
        if (callsStopped) throw haltedInvocation(name);
        const deadline = Date.now() + fn.timeoutSeconds * 1000;
        const context = {
          functionName: `mmsafe-${name}`,
          functionVersion: "$LATEST",
          invokedFunctionArn: localFunctionArn(name),
          memoryLimitInMB: String(fn.memoryMb),
          awsRequestId: randomBytes(16).toString("hex"),
          logGroupName: `/aws/lambda/mmsafe-${name}`,
          logStreamName: "local",
          callbackWaitsForEmptyEventLoop: false,
          getRemainingTimeInMillis: () =>
            untimed ? (callsStopped ? 0 : MAX_REMAINING_MS) : Math.max(0, deadline - Date.now()),
          done: () => undefined,
          fail: () => undefined,
          succeed: () => undefined,
        } satisfies Context;
        const invocation = module ? module.handler(event, context) : pool ? pool.invoke(event) : null;
        if (!invocation) throw new Error(`no handler for ${name}`);
        if (untimed) {
          activeShards.add(invocation);
          void invocation.then(
            () => activeShards.delete(invocation),
            () => activeShards.delete(invocation),
          );
        }
        return (await invocation) as Json;
      });
    }
    const s3 = createS3Client(true);
    return {
      home: resolved,
      aws,
      lambdas,
      s3,
      dynamodb: createDynamoClient(),
      store: new S3ObjectStore(s3, LOCAL_RESOURCES.bucket),
      baselines: null,
      shardProcesses: pool,
    };
  })();
  // A session that failed to open is forgotten, so the next call tries again.
  const opened = session;
  opened.catch(() => {
    if (session === opened) {
      session = null;
      sessionHome = null;
    }
  });
  return opened;
}

/** Stops the embedded servers of this process's session. */
export async function closeLocalSession(): Promise<void> {
  if (!session) return;
  const opening = session;
  session = null;
  sessionHome = null;
  // A session that failed to open has nothing to close (its error went to whoever opened it).
  const s = await opening.catch(() => null);
  if (!s) return;
  await s.baselines?.close();
  await s.shardProcesses?.close();
  s.s3.destroy();
  s.dynamodb.destroy();
  await s.aws.close();
}

const isDirectory = (file: string) =>
  stat(file).then(
    (info) => info.isDirectory(),
    () => false,
  );

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/**
 * Reads what progress needs of every verdict of a run: one paginated Query projecting a few small
 * attributes (about 150 bytes a verdict, more for an error's message; a page holds thousands of them).
 */
/** A judge's readings of a run counted by {@link readVerdictProgress}. */
interface JudgeProgress {
  id: string;
  done: number;
  errors: number;
  /** Error readings written before this time (ISO) are still to do (a resume retries them). */
  retryingErrorsBefore?: string;
}

async function readVerdictProgress(
  dynamodb: DynamoDBClient,
  runId: string,
  judge?: JudgeProgress,
): Promise<VerdictProgressRow[]> {
  const rows: VerdictProgressRow[] = [];
  const judgePrefix = judge ? `judge#${judge.id}#` : null;
  let startKey: QueryCommand["input"]["ExclusiveStartKey"];
  do {
    const out = await dynamodb.send(
      new QueryCommand({
        TableName: LOCAL_RESOURCES.verdictsTable,
        KeyConditionExpression: "#pk = :run",
        ProjectionExpression:
          "#sk, modelId, strategy, #status, attempts, promptTokens, completionTokens, cached, createdAt, #error",
        ExpressionAttributeNames: {
          "#pk": VERDICTS_TABLE_KEYS.partitionKey,
          "#sk": VERDICTS_TABLE_KEYS.sortKey,
          "#status": "status",
          "#error": "error",
        },
        ExpressionAttributeValues: { ":run": { S: runId } },
        ExclusiveStartKey: startKey,
      }),
    );
    for (const item of out.Items ?? []) {
      // A judge's readings are the judge's calls: counted apart from the evaluated models' verdicts.
      const key = item[VERDICTS_TABLE_KEYS.sortKey]?.S ?? "";
      if (key.startsWith("judge#")) {
        if (!judge || !judgePrefix || !key.startsWith(judgePrefix)) continue;
        const error = item.status?.S === "error";
        const before = judge.retryingErrorsBefore;
        const createdAt = item.createdAt?.S;
        if (error && before !== undefined && createdAt !== undefined && createdAt < before) continue;
        judge.done++;
        if (error) judge.errors++;
        continue;
      }
      rows.push({
        modelId: item.modelId?.S ?? "",
        strategy: item.strategy?.S ?? "",
        status: item.status?.S ?? "",
        attempts: Number(item.attempts?.N ?? 1),
        promptTokens: Number(item.promptTokens?.N ?? 0),
        completionTokens: Number(item.completionTokens?.N ?? 0),
        cached: item.cached?.BOOL === true,
        createdAt: item.createdAt?.S,
        errorKind: item.error?.M?.kind?.S ?? null,
        errorMessage: item.error?.M?.message?.S ?? null,
      });
    }
    startKey = out.LastEvaluatedKey;
  } while (startKey);
  return rows;
}

/** Reads a dataset, re-hashing only images whose size or mtime changed since the last run. */
/**
 * Reads a dataset folder and establishes its provenance, with file hashes cached by size and mtime in
 * `cacheFile`: an unchanged folder is neither hashed nor decoded again.
 */
async function readWithHashCache(dir: string, cacheFile: string) {
  const cache: FileHashCache = new Map();
  try {
    for (const [file, entry] of Object.entries(
      // Entries are checked field by field where they are used; a stale or odd one is recomputed.
      JSON.parse(await readFile(cacheFile, "utf8")) as Record<string, FileHashEntry>,
    )) {
      cache.set(file, entry);
    }
  } catch {
    // No cache yet (or unreadable): every file is hashed.
  }
  const dataset = await readOfficialDataset(dir, { hashCache: cache });
  const { provenance } = await establishProvenance(dir, { cache });
  await mkdir(path.dirname(cacheFile), { recursive: true });
  await writeFile(cacheFile, JSON.stringify(Object.fromEntries(cache)));
  return { dataset, provenance };
}

/** A run id that sorts by time: run-20261128-134700-1a2b. */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `run-${stamp}-${randomBytes(2).toString("hex")}`;
}

/** What the steps of a run share with {@link runLocal}, which may abandon them. */
interface RunControl {
  /** Set when the run was stopped: the steps, still running in the background, report nothing more. */
  halted: boolean;
  /** Verdicts planned, once Plan has run. */
  planned: number | null;
  /** Stops the workflow's execution when the run is halted: no state (and no retry) starts after it. */
  execution: AbortController;
}

/** Why {@link runLocal} stopped waiting for its steps. */
type Halt =
  | { kind: "signal"; signal: string }
  | { kind: "fault"; error: unknown }
  | { kind: "servers"; exit: ServersExit };

/** How long a stopped run may take to record that it stopped (the servers may be going too). */
const STOP_RECORD_TIMEOUT_MS = 5_000;
/** How long a fault waits to see whether the embedded servers' death explains it. */
const SERVERS_EXIT_GRACE_MS = 2_000;

/** A promise that settles with `fallback` after `ms`, unless `promise` settles first. */
const within = <T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> =>
  Promise.race([promise, delay(ms, fallback, { ref: false })]);

/**
 * A complete local evaluation: embedded S3/DynamoDB, the dataset uploaded (official data when present, else
 * a generated sample), the workflow definition executed with the deployed handlers, the report copied to
 * `reports/<runId>/`.
 *
 * It stops early, throwing, when `options.stop` aborts ({@link RunInterruptedError}, {@link RunFaultError})
 * or the embedded servers die ({@link EmbeddedServersExitedError}); the work in flight is then abandoned,
 * and the caller closes the session and ends the process. Refuses a home another mmsafe process uses
 * ({@link LocalHomeInUseError}).
 */
/**
 * Copies a run's report files from the local bucket to `<reportsDir>/<runId>/`, and the history of runs
 * (index.html, index.json) to `<reportsDir>/`, where its links to `./<runId>/report.html` resolve; returns
 * the run's folder.
 */
async function copyReport(
  store: S3ObjectStore,
  output: AggregateOutput,
  runId: string,
  reportsDir = "reports",
): Promise<string> {
  const reportDir = path.resolve(reportsDir, runId);
  await mkdir(path.join(reportDir, "responses"), { recursive: true });
  const prefix = `s3://${store.bucket}/${reportPrefix(runId)}`;
  for (const uri of [
    output.report.json,
    output.report.markdown,
    output.report.html,
    ...output.report.responses,
  ]) {
    const key = uri.slice(`s3://${store.bucket}/`.length);
    await writeFile(path.join(reportDir, uri.slice(prefix.length)), await store.getBytes(key));
  }
  await copyHistory(store, path.resolve(reportsDir));
  return reportDir;
}

/**
 * Copies the bucket's current index.json and index.html, as the last Aggregate left them (this run's, or a
 * later one's that includes it). Never fails the run: the run's own report is copied already, and the next
 * run copies the index again. index.json goes first, so the page is never newer than its data.
 */
async function copyHistory(store: S3ObjectStore, reportsDir: string): Promise<void> {
  for (const [key, file] of [
    [REPORTS_INDEX_JSON_KEY, "index.json"],
    [REPORTS_INDEX_HTML_KEY, "index.html"],
  ] as const) {
    try {
      const text = await store.getTextIfExists(key);
      if (text !== null) await writeFile(path.join(reportsDir, file), text);
    } catch {
      return;
    }
  }
}

/**
 * Builds a run's report again from its verdicts (the Aggregate handler, as the workflow runs it): for a run
 * whose Aggregate failed, or whose report an older mmsafe wrote. No model is called. Copies the report to
 * `<reportsDir>/<runId>/`.
 */
export async function rebuildLocalReport(options: {
  home: string;
  runId: string;
  reportsDir?: string;
}): Promise<{ output: AggregateOutput; reportDir: string }> {
  const s = await openLocalSession(options.home);
  const aggregate = s.lambdas.get(localFunctionArn("aggregate"));
  if (!aggregate) throw new Error("the aggregate function is not bound locally");
  const record = await s.dynamodb.send(
    new GetItemCommand({
      TableName: LOCAL_RESOURCES.runsTable,
      Key: { [RUNS_TABLE_KEYS.partitionKey]: { S: options.runId } },
      ProjectionExpression: "#status",
      ExpressionAttributeNames: { "#status": "status" },
    }),
  );
  if (!record.Item)
    throw new RunNotKnownError(
      `no run "${options.runId}" in ${s.home} (npm run mmsafe -- runs --local lists the runs there)`,
    );
  const output = (await aggregate({
    runId: options.runId,
    bucket: s.store.bucket,
  })) as unknown as AggregateOutput;
  return { output, reportDir: await copyReport(s.store, output, options.runId, options.reportsDir) };
}

export async function runLocal(options: LocalRunOptions): Promise<LocalRunResult> {
  // Known from the start, so that an interrupt at any point can name the run to resume.
  const runId = typeof options.input?.runId === "string" ? options.input.runId : newRunId();
  const control: RunControl = { halted: false, planned: null, execution: new AbortController() };
  const halted = new Promise<Halt>((resolve) => {
    const signal = options.stop;
    if (!signal) return;
    const onAbort = () =>
      resolve(
        typeof signal.reason === "string"
          ? { kind: "signal", signal: signal.reason }
          : { kind: "fault", error: signal.reason },
      );
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  const halt = async (why: Halt, s: LocalSession | null): Promise<never> => {
    control.halted = true;
    callsStopped = true;
    control.execution.abort();
    s?.shardProcesses?.stop();
    if (why.kind === "signal") {
      const { kept, marked, settled } = s
        ? await recordInterrupt(s, runId, why.signal)
        : { kept: null, marked: false, settled: true };
      throw new RunInterruptedError(runId, why.signal, kept, control.planned, marked, settled);
    }
    const exit =
      why.kind === "servers"
        ? why.exit
        : s
          ? await within(s.aws.unexpectedExit, SERVERS_EXIT_GRACE_MS, null)
          : null;
    if (exit) throw new EmbeddedServersExitedError(runId, exit);
    throw new RunFaultError(runId, why.kind === "fault" ? why.error : undefined);
  };

  callsStopped = false;
  const opening = openLocalSession(options.home, {
    handlerLogLevel: options.handlerLogLevel,
    ...(options.shardProcesses === undefined ? {} : { shardProcesses: options.shardProcesses }),
  });
  const first = await Promise.race([opening.then((s) => ({ s })), halted.then((why) => ({ why }))]);
  if ("why" in first) return halt(first.why, null);
  const { s } = first;
  if (s.aws.attachedTo) throw new Error("a run cannot use a session attached to another process's servers");
  const steps = runSteps(s, { ...options, input: { ...options.input, runId } }, control);
  const outcome = await Promise.race([
    steps.then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    ),
    halted.then((why) => ({ why })),
    s.aws.unexpectedExit.then((exit) => ({ why: { kind: "servers", exit } as Halt })),
  ]);
  if ("why" in outcome) return halt(outcome.why, s);
  if ("error" in outcome) throw outcome.error;
  return outcome.result;
}

/** What {@link recordInterrupt} could record. */
interface InterruptRecord {
  /** Verdicts the run holds, or null when they could not be counted (servers going). */
  kept: number | null;
  /** Whether the run record now says INTERRUPTED. */
  marked: boolean;
  /** Whether every call in flight had landed and been written before the count (else it is a lower bound). */
  settled: boolean;
}

/**
 * Lets the calls in flight land and be written (no new call starts), then marks the run INTERRUPTED (when
 * Plan recorded it and it is still RUNNING), counts its verdicts and closes the session's servers. The count
 * is exact when the shards settled within {@link STOP_DRAIN_MS}; the marking and count give up after
 * {@link STOP_RECORD_TIMEOUT_MS} (servers going).
 */
async function recordInterrupt(s: LocalSession, runId: string, signal: string): Promise<InterruptRecord> {
  const runs = new DynamoRunStore(DynamoDBDocumentClient.from(s.dynamodb), LOCAL_RESOURCES.runsTable);
  // No new call starts (callsStopped); the answers in flight land and are written, then the count is exact.
  const drained = await within(
    Promise.allSettled([...activeShards]).then(() => true),
    STOP_DRAIN_MS,
    false,
  );
  const notRecorded: InterruptRecord = { kept: null, marked: false, settled: drained };
  const record = async (): Promise<InterruptRecord> => {
    const marked = await runs.markInterrupted(
      runId,
      new Date().toISOString(),
      `${signal}: mmsafe run (pid ${process.pid} on ${os.hostname()}) was stopped`,
    );
    return { kept: await countVerdicts(s.dynamodb, runId), marked, settled: drained };
  };
  const recorded = await within(
    record().catch(() => notRecorded),
    STOP_RECORD_TIMEOUT_MS,
    notRecorded,
  );
  // Closing again, as the caller will, is harmless.
  await s.aws.close();
  return recorded;
}

/** How many verdicts a run has (a COUNT query: no item is read out). */
async function countVerdicts(dynamodb: DynamoDBClient, runId: string): Promise<number> {
  let count = 0;
  let startKey: QueryCommand["input"]["ExclusiveStartKey"];
  do {
    const out = await dynamodb.send(
      new QueryCommand({
        TableName: LOCAL_RESOURCES.verdictsTable,
        KeyConditionExpression: "#pk = :run",
        ExpressionAttributeNames: { "#pk": VERDICTS_TABLE_KEYS.partitionKey },
        ExpressionAttributeValues: { ":run": { S: runId } },
        Select: "COUNT",
        ExclusiveStartKey: startKey,
      }),
    );
    count += out.Count ?? 0;
    startKey = out.LastEvaluatedKey;
  } while (startKey);
  return count;
}

/** The run a rejudge names, from the local runs table. */
async function rejudgedRun(s: LocalSession, runId: Json | undefined): Promise<RunRecord> {
  if (typeof runId !== "string") throw new RunToRejudgeError("rejudge: name the run to rejudge");
  const run = await new DynamoRunStore(
    DynamoDBDocumentClient.from(s.dynamodb),
    LOCAL_RESOURCES.runsTable,
  ).get(runId);
  if (!run)
    throw new RunToRejudgeError(`rejudge: there is no run ${runId} in this home (see \`runs --local\`)`);
  return run;
}

function rejudgedProvenance(run: RunRecord): DatasetProvenance {
  if (!run.datasetProvenance)
    throw new RunToRejudgeError(`rejudge: run ${run.runId} was planned before provenance was recorded`);
  return run.datasetProvenance;
}

/** The benchmark the run input names (MMSafeAware when it names none). */
function benchmarkOf(input: LocalRunOptions["input"]): RunnableBenchmark {
  const named = input?.benchmark;
  if (named === undefined) return DEFAULT_BENCHMARK;
  const known: readonly string[] = RUNNABLE_BENCHMARKS;
  if (typeof named !== "string" || !known.includes(named))
    throw new UnknownBenchmarkError(
      `unknown benchmark ${JSON.stringify(named)}: known benchmarks are ${RUNNABLE_BENCHMARKS.join(", ")}`,
    );
  return named as RunnableBenchmark;
}

/**
 * MMSafeAware's dataset: explicit, or the real data under .mmsafe, or a generated sample in the official
 * layout; read (hashes cached), its provenance established, uploaded.
 */
async function prepareMmsafeaware(
  s: LocalSession,
  options: LocalRunOptions,
  emit: (event: RunEvent) => void,
): Promise<{ datasetName: string; provenance: DatasetProvenance; answers?: boolean }> {
  const realDir = path.join(s.home, "datasets", "mmsafeaware");
  let datasetDir = options.datasetDir;
  let fallback = false;
  if (!datasetDir) {
    if (await exists(path.join(realDir, "data", "prompt.txt"))) datasetDir = realDir;
    else {
      datasetDir = path.join(s.home, "datasets", "sample");
      fallback = true;
      if (!(await exists(path.join(datasetDir, "data", "prompt.txt")))) {
        // Loaded only when needed: the image library is large.
        const { writeSampleDataset } = await import("../benchmarks/mmsafeaware/sample.ts");
        await writeSampleDataset(datasetDir);
      } else if (!(await exists(path.join(datasetDir, SAMPLE_MARKER_FILE)))) {
        // Written by a version that left no marker; this folder is only ever the runner's own sample.
        await writeSampleMarker(datasetDir, "small", 0);
      }
    }
  }
  const { dataset, provenance } = await readWithHashCache(
    datasetDir,
    path.join(s.home, "datasets", "image-hashes.json"),
  );
  const datasetName = provenance.kind === "sample" ? "mmsafeaware-sample" : "mmsafeaware";
  emit({
    type: "dataset",
    lines: [...describeImport(dataset), `provenance: ${describeProvenance(provenance)}`],
    provenance,
    fallback,
  });
  const upload = await uploadDataset(s.store, dataset, datasetName, provenance, new Date(), {
    thumbnail: thumbnailDataUrl,
  });
  emit({
    type: "info",
    message: upload.uploaded
      ? `uploaded dataset ${datasetName} to the local bucket`
      : `dataset ${datasetName} already uploaded (same checksum)`,
  });
  return { datasetName, provenance };
}

/**
 * A plug-in benchmark's dataset: explicit, or `<home>/datasets/<benchmark>` in its official layout, or a
 * generated sample of it; imported (every file checked against the benchmark's manifest) and uploaded.
 */
async function preparePlugin(
  s: LocalSession,
  benchmark: PluginBenchmark,
  options: LocalRunOptions,
  emit: (event: RunEvent) => void,
): Promise<{ datasetName: string; provenance: DatasetProvenance; answers?: boolean }> {
  const realDir = path.join(s.home, "datasets", benchmark);
  let dir = options.datasetDir;
  let fallback = false;
  if (!dir) {
    if (await exists(realDir)) dir = realDir;
    else {
      dir = path.join(s.home, "datasets", `${benchmark}-sample`);
      fallback = true;
      if (!(await exists(path.join(dir, SAMPLE_MARKER_FILE)))) {
        const samples = {
          mossbench: async (to: string) =>
            (await import("../benchmarks/mossbench/sample.ts")).writeMossbenchSample(to),
          vlguard: async (to: string) =>
            (await import("../benchmarks/vlguard/sample.ts")).writeVlguardSample(to),
          custom: async (to: string) =>
            (await import("../benchmarks/custom/sample.ts")).writeCustomSample(to),
        };
        await samples[benchmark](dir);
      }
    }
  }
  const imported = await readBenchmarkFolder(
    benchmark,
    benchmark === CUSTOM_BENCHMARK
      ? {
          jsonl: (await isDirectory(dir)) ? path.join(dir, CUSTOM_DATASET_FILE) : dir,
          ...(options.columnField === undefined ? {} : { columnField: options.columnField }),
          judgePrompt: options.judgePrompt ?? null,
        }
      : { dir },
  );
  try {
    const datasetName = imported.provenance.kind === "sample" ? `${benchmark}-sample` : benchmark;
    emit({
      type: "dataset",
      lines: describeBenchmarkImport(imported),
      provenance: imported.provenance,
      fallback,
      lookedIn: realDir,
      benchmark: imported.title,
    });
    const upload = await uploadBenchmarkDataset(s.store, imported, datasetName, new Date(), {
      thumbnail: thumbnailDataUrl,
    });
    emit({
      type: "info",
      message: upload.uploaded
        ? `uploaded dataset ${datasetName} to the local bucket`
        : `dataset ${datasetName} already uploaded (same checksum)`,
    });
    // Your own dataset of yes/no questions is answered by the yes/no baselines.
    return { datasetName, provenance: imported.provenance, answers: imported.custom?.kind === "answers" };
  } finally {
    await imported.close();
  }
}

/** The steps of {@link runLocal} (its run id already in `options.input`). */
async function runSteps(
  s: LocalSession,
  options: LocalRunOptions,
  control: RunControl,
): Promise<LocalRunResult> {
  const started = Date.now();
  // A stopped run's steps may go on in the background for a moment: they report nothing more.
  const emit = (event: RunEvent) => {
    if (!control.halted) options.onEvent?.(event);
  };

  const rejudged = options.input?.judgeOnly === true ? await rejudgedRun(s, options.input.runId) : null;
  const benchmark = rejudged ? (rejudged.benchmark ?? DEFAULT_BENCHMARK) : benchmarkOf(options.input);
  const { datasetName, provenance, answers } = rejudged
    ? // A rejudge reads the run's stored answers: its dataset is not read or uploaded again.
      { datasetName: rejudged.dataset, provenance: rejudgedProvenance(rejudged), answers: false }
    : benchmark === DEFAULT_BENCHMARK
      ? await prepareMmsafeaware(s, options, emit)
      : await preparePlugin(s, benchmark, options, emit);

  // Models: the configured ones, or the reference baselines on 127.0.0.1.
  let models = options.models;
  // The models evaluated when the input names none: every configured one but the judge.
  let evaluatedModels: string[] | null = null;
  if (!models) {
    s.baselines ??= await startBaselines(s.home, options.baselineLatencyMs ?? 0, emit);
    const concurrency = options.baselineConcurrency ?? 16;
    const reference = (name: string, maxTokens: number): ModelConfig => ({
      id: name,
      baseURL: s.baselines?.baseURL ?? "",
      model: name,
      kind: "baseline" as const,
      maxConcurrency: concurrency,
      maxTokens,
      temperature: 0,
      timeoutMs: 30_000,
    });
    const baselines =
      benchmark === DEFAULT_BENCHMARK || answers === true
        ? ["always-yes", "always-no", "random"]
        : ["always-comply", "always-refuse", "refuse:30"];
    models = baselines.map((name) => reference(name, 16));
    // The reference judges (MOSSBench's judge prompt, read by keywords), for `--judge judge` on the baselines.
    if (benchmark !== DEFAULT_BENCHMARK) {
      evaluatedModels = baselines;
      models = [...models, ...JUDGE_MODELS.map((name) => reference(name, 256))];
    }
  }
  const judgeId = typeof options.input?.judge === "string" ? options.input.judge : null;
  if (judgeId !== null && evaluatedModels === null)
    evaluatedModels = models.map((m) => m.id).filter((id) => id !== judgeId);
  await s.store.put(MODELS_CONFIG_KEY, JSON.stringify({ models }, null, 2), "application/json");
  const baselineCallsBefore = s.baselines?.stats().requests ?? 0;

  const runId = typeof options.input?.runId === "string" ? options.input.runId : newRunId();
  const input: Record<string, Json> = {
    dataset: datasetName,
    ...(evaluatedModels === null ? {} : { models: evaluatedModels }),
    ...options.input,
    runId,
  };
  // The same placeholders CDK substitutes, bound to the local functions and table.
  const substitutions: Record<AslSubstitution, string> = {
    ...(Object.fromEntries(
      Object.entries(PIPELINE_FUNCTIONS).map(([name, fn]) => [fn.substitution, localFunctionArn(name)]),
    ) as Record<(typeof PIPELINE_FUNCTIONS)[keyof typeof PIPELINE_FUNCTIONS]["substitution"], string>),
    RunsTableName: LOCAL_RESOURCES.runsTable,
    EventBusName: LOCAL_RESOURCES.eventBus,
  };
  const definition = await loadDefinition(path.join(REPO_ROOT, WORKFLOW_DEFINITION), substitutions);

  // Progress: verdicts read from DynamoDB (a few attributes each), once Plan has said how many to expect.
  let planned: {
    total: number;
    atMs: number;
    alreadyDone: number;
    models: ModelConfig[];
    perModel: number;
  } | null = null;
  let polling = false;
  // A poll reads every verdict of the run: at most once a second, and at most ~10% of the time on large runs.
  let nextPollAt = 0;
  // A resume that retries error verdicts: those older than this execution are still to do.
  const tallyOptions: TallyOptions =
    options.input?.retryErrors === false ? {} : { retryingErrorsBefore: new Date(started).toISOString() };
  const poll = async (final: boolean) => {
    // Nobody listening (benchmarks, tests): no verdict reads competing with the run.
    if (!options.onEvent || control.halted) return;
    if (!planned || (!final && (polling || Date.now() < nextPollAt))) return;
    polling = true;
    const pollStarted = Date.now();
    try {
      const judge: JudgeProgress | undefined =
        typeof options.input?.judge === "string"
          ? { id: options.input.judge, done: 0, errors: 0, ...tallyOptions }
          : undefined;
      const tally = tallyProgress(
        await readVerdictProgress(s.dynamodb, runId, judge),
        planned.models,
        planned.perModel,
        tallyOptions,
      );
      emit({
        type: "progress",
        runId,
        done: tally.done,
        total: planned.total,
        errors: tally.errors,
        alreadyDone: planned.alreadyDone,
        elapsedMs: Date.now() - started,
        runStartedMs: planned.atMs,
        final,
        models: tally.models,
        retries: tally.retries,
        tokens: tally.tokens,
        costUsd: tally.costUsd,
        cached: tally.cached,
        errorSummaries: tally.errorSummaries,
        ...(judge
          ? { judge: { id: judge.id, done: judge.done, errors: judge.errors, total: planned.total } }
          : {}),
      });
    } finally {
      polling = false;
      nextPollAt = Date.now() + 9 * (Date.now() - pollStarted);
    }
  };
  const progressTimer = setInterval(() => void poll(false).catch(() => undefined), 1000);
  const onPlanned = async (plan: PlanOutput) => {
    const perModel = plan.planned * plan.strategies.length;
    const total = perModel * plan.models.length;
    control.planned = total;
    // This process works on the run now: a listing tells a live run from one whose process is gone.
    await new DynamoRunStore(DynamoDBDocumentClient.from(s.dynamodb), LOCAL_RESOURCES.runsTable)
      .recordOwner(runId, { pid: process.pid, host: os.hostname() })
      .catch(() => false);
    const done = options.onEvent
      ? tallyProgress(await readVerdictProgress(s.dynamodb, runId), plan.models, perModel, tallyOptions).done
      : 0;
    planned = { total, atMs: Date.now() - started, alreadyDone: done, models: plan.models, perModel };
    emit({ type: "planned", runId, verdicts: total, alreadyDone: done });
  };
  const datasetReady = Date.now() - started;
  const events: PublishedEvent[] = [];
  let execution: ExecutionResult;
  try {
    execution = await executeLocally(
      definition,
      input,
      {
        lambdas: wrapPlan(s.lambdas, onPlanned),
        s3: s.s3,
        dynamodb: s.dynamodb,
        publishEvent: async (event) => {
          events.push(event);
          await appendFile(
            path.join(s.home, "events.jsonl"),
            `${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`,
          );
        },
      },
      runId,
      control.execution.signal,
    );
  } finally {
    clearInterval(progressTimer);
  }
  const evaluated = Date.now() - started;
  await poll(true);

  const output = execution.status === "SUCCEEDED" ? (execution.output as unknown as AggregateOutput) : null;
  const reportDir = output ? await copyReport(s.store, output, runId, options.reportsDir) : null;
  return {
    runId,
    execution,
    output,
    reportDir,
    datasetName,
    provenance,
    events,
    baselineCalls: s.baselines && !options.models ? s.baselines.stats().requests - baselineCallsBefore : null,
    durationMs: Date.now() - started,
    phases: {
      datasetReady,
      planned: (planned as { atMs: number } | null)?.atMs ?? null,
      evaluated,
      reportCopied: Date.now() - started,
    },
  };
}

/**
 * Starts the reference baselines on the port they had in the last run of this home (kept in
 * `<home>/baselines-port`) when it is free. Their baseURL is part of a run's configuration, so a run
 * started by one process (e.g. one that crashed) can only be resumed by another if the port is the same;
 * if it is taken, a new port is used and recorded, and runs started on the old one cannot be resumed.
 */
async function startBaselines(
  home: string,
  latencyMs: number,
  emit: (event: RunEvent) => void,
): Promise<ReferenceServer> {
  const file = path.join(home, "baselines-port");
  const saved = Number.parseInt(await readFile(file, "utf8").catch(() => ""), 10);
  let server: ReferenceServer | null = null;
  if (Number.isInteger(saved) && saved > 0 && saved <= 65_535) {
    server = await startReferenceModelServer({ port: saved, latencyMs }).catch(() => null);
  }
  server ??= await startReferenceModelServer({ latencyMs });
  const port = new URL(server.baseURL).port;
  if (port !== String(saved)) {
    if (Number.isInteger(saved))
      emit({
        type: "info",
        message: `port ${saved} of the reference baselines is taken: they now use ${port}, so runs started on ${saved} cannot be resumed`,
      });
    await writeFile(file, `${port}\n`);
  }
  return server;
}

/** Observes the Plan task's output (planned items, models, strategies) for the progress display. */
function wrapPlan(
  lambdas: Map<string, LocalLambda>,
  onPlanned: (plan: PlanOutput) => Promise<void>,
): Map<string, LocalLambda> {
  const wrapped = new Map(lambdas);
  const plan = lambdas.get(localFunctionArn("plan"));
  if (plan) {
    wrapped.set(localFunctionArn("plan"), async (event) => {
      const out = await plan(event);
      const parsed = planOutputSchema.safeParse(out);
      if (parsed.success) await onPlanned(parsed.data);
      return out;
    });
  }
  return wrapped;
}
