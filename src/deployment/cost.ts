/**
 * What a run cost on AWS, estimated from what it used: Lambda GB-seconds and requests, Step Functions
 * state transitions (the workflow's and its STANDARD shard child executions'), DynamoDB request units, S3
 * requests and EventBridge events, each multiplied by a list price written beside it. Model tokens are
 * priced elsewhere (`tokenCost` in call-accounting.ts, from the prices configured per model); this module only
 * renders them next to the AWS lines.
 *
 * Pure: no AWS SDK, no environment. The usage comes from the caller (the usage meter, the Lambda
 * contexts, the execution history) or from `estimateRunForItems` for a run that has not happened yet,
 * which also says where such a run stands against the Step Functions limits; `scaleTable` renders that for
 * a few run sizes (README "Scale", `npm run scale-table`).
 */

import { MODEL_DEFAULTS } from "../core/model-config.ts";
import {
  evaluateShardEventSchema,
  executionInputSchema,
  modelConfigSchema,
  planOutputSchema,
} from "../core/schemas.ts";
import { STRATEGIES, vcdOptionsSchema } from "../core/strategies.ts";
import { defaultMapConcurrency, MAX_DEFAULT_MAP_CONCURRENCY } from "./map-concurrency.ts";
import { PIPELINE_FUNCTIONS, runManifestKey, runMapResultsPrefix, runShardKey } from "./storage-layout.ts";

/**
 * AWS requests a run made through the SDK clients, as counted by `UsageMeter` (adapters/usage-meter.ts).
 * S3 requests are grouped as S3 bills them; DynamoDB by request units consumed.
 */
export interface AwsUsage {
  s3: {
    /** GetObject (billed with "GET, SELECT and all other requests"). */
    get: number;
    /** PutObject, CopyObject, POST and multipart upload requests (billed with LIST). */
    put: number;
    /** ListObjectsV2 and other LIST requests. */
    list: number;
    /** HeadObject and everything else (billed at the GET price; DELETE is free, so this over-counts slightly). */
    other: number;
  };
  dynamodb: { readUnits: number; writeUnits: number; requests: number };
}

export const emptyAwsUsage = (): AwsUsage => ({
  s3: { get: 0, put: 0, list: 0, other: 0 },
  dynamodb: { readUnits: 0, writeUnits: 0, requests: 0 },
});

/** The sum of two usages (e.g. the meters of several Lambda invocations). */
export function addUsage(a: AwsUsage, b: AwsUsage): AwsUsage {
  return {
    s3: {
      get: a.s3.get + b.s3.get,
      put: a.s3.put + b.s3.put,
      list: a.s3.list + b.s3.list,
      other: a.s3.other + b.s3.other,
    },
    dynamodb: {
      readUnits: a.dynamodb.readUnits + b.dynamodb.readUnits,
      writeUnits: a.dynamodb.writeUnits + b.dynamodb.writeUnits,
      requests: a.dynamodb.requests + b.dynamodb.requests,
    },
  };
}

/** The list prices an estimate uses, in USD. */
export interface AwsPrices {
  region: string;
  /** When the prices were read from AWS's public pricing pages (YYYY-MM-DD). */
  asOf: string;
  lambda: { arm64PerGbSecond: number; perMillionRequests: number };
  /** Standard workflows, the shard child executions included (they are STANDARD too). */
  stepFunctions: { standardPerThousandTransitions: number };
  dynamodb: { perMillionWriteUnits: number; perMillionReadUnits: number };
  s3: { perThousandPutCopyPostList: number; perThousandGetAndOther: number };
  eventBridge: { perMillionCustomEvents: number };
  cloudWatchLogs: { ingestionPerGb: number };
}

/** Overrides of some prices (a different region, a negotiated rate); the rest keep the defaults. */
export type AwsPriceOverrides = {
  [K in keyof AwsPrices]?: AwsPrices[K] extends object ? Partial<AwsPrices[K]> : AwsPrices[K];
};

/**
 * On-demand list prices, us-east-1, as published on AWS's public pricing pages (Lambda, Step Functions,
 * DynamoDB, S3, EventBridge, CloudWatch) as of January 2026 — verify at aws.amazon.com/pricing before
 * relying on them. First tiers only (a single run never leaves them) and no free tier (the estimate is the
 * marginal cost of the run, whatever else the account does that month).
 *
 * - Lambda arm64 (the stack deploys arm64): $0.0000133334 per GB-second, $0.20 per million requests.
 * - Step Functions Standard: $0.025 per 1,000 state transitions, retries included. The shard child
 *   executions are STANDARD, so they are billed by the same price (no request or duration charge).
 * - DynamoDB on-demand: $0.625 per million write request units, $0.125 per million read request units
 *   (the prices since the November 2024 on-demand reduction).
 * - S3 Standard: $0.005 per 1,000 PUT, COPY, POST or LIST requests; $0.0004 per 1,000 GET and all other
 *   requests. S3 storage is ignored: the run's scratch data under runs/ expires (a lifecycle rule), the
 *   reports are a few hundred KB (well under a cent a month at $0.023 per GB-month) and the dataset is
 *   shared by every run.
 * - EventBridge: $1.00 per million custom events (each 64 KB chunk of an event counts as one).
 * - CloudWatch Logs: $0.50 per GB ingested (standard class); optional, only priced when a usage gives it.
 */
export const AWS_PRICES: AwsPrices = {
  region: "us-east-1",
  asOf: "2026-01-15",
  lambda: { arm64PerGbSecond: 0.0000133334, perMillionRequests: 0.2 },
  stepFunctions: { standardPerThousandTransitions: 0.025 },
  dynamodb: { perMillionWriteUnits: 0.625, perMillionReadUnits: 0.125 },
  s3: { perThousandPutCopyPostList: 0.005, perThousandGetAndOther: 0.0004 },
  eventBridge: { perMillionCustomEvents: 1.0 },
  cloudWatchLogs: { ingestionPerGb: 0.5 },
};

/** The default prices with some replaced. */
export function withPriceOverrides(overrides: AwsPriceOverrides, base: AwsPrices = AWS_PRICES): AwsPrices {
  return {
    region: overrides.region ?? base.region,
    asOf: overrides.asOf ?? base.asOf,
    lambda: { ...base.lambda, ...overrides.lambda },
    stepFunctions: { ...base.stepFunctions, ...overrides.stepFunctions },
    dynamodb: { ...base.dynamodb, ...overrides.dynamodb },
    s3: { ...base.s3, ...overrides.s3 },
    eventBridge: { ...base.eventBridge, ...overrides.eventBridge },
    cloudWatchLogs: { ...base.cloudWatchLogs, ...overrides.cloudWatchLogs },
  };
}

/** Invocations of one Lambda function. `billedMs` is the sum of the invocations' billed durations. */
export interface LambdaUsage {
  function: string;
  memoryMb: number;
  invocations: number;
  billedMs: number;
}

/** What one run used on AWS. */
export interface RunUsage {
  lambda: LambdaUsage[];
  /**
   * State transitions of the run's (parent) execution, the one billed for each child execution the
   * Evaluate map starts included; see `standardTransitionsFor`.
   */
  standardTransitions: number;
  /** State transitions inside the STANDARD child executions of Evaluate; see `childTransitionsFor`. */
  childTransitions: number;
  aws: AwsUsage;
  /** EventBridge custom events put (PublishCompleted / PublishFailed). */
  events: number;
  /** CloudWatch Logs ingested, in GB; left out of the estimate when absent. */
  logsGb?: number;
}

export interface CostLine {
  item: string;
  quantity: number;
  unit: string;
  unitPriceUsd: number;
  usd: number;
  /** The list price as AWS states it, e.g. "$0.625 per million WRU". */
  price: string;
}

export interface CostEstimate {
  totalUsd: number;
  lines: CostLine[];
  prices: { region: string; asOf: string };
}

const MB_PER_GB = 1024;

/** A price as AWS writes it: at least two decimals, every significant digit kept ($0.20, $0.0000133334). */
const dollars = (usd: number): string => {
  const text = String(usd);
  return `$${(text.split(".")[1]?.length ?? 0) >= 2 ? text : usd.toFixed(2)}`;
};

/**
 * The AWS cost of a usage at the given prices: one line per priced quantity (lines with a zero quantity
 * are left out), and the total. Lambda GB-seconds are memory (MB / 1024) × billed seconds, per function.
 */
export function estimateAwsCost(usage: RunUsage, prices: AwsPrices = AWS_PRICES): CostEstimate {
  const lines: CostLine[] = [];
  const line = (item: string, quantity: number, unit: string, unitPriceUsd: number, price: string) => {
    if (quantity > 0) lines.push({ item, quantity, unit, unitPriceUsd, usd: quantity * unitPriceUsd, price });
  };

  for (const fn of usage.lambda) {
    line(
      `Lambda ${fn.function} compute (${fn.memoryMb} MB arm64)`,
      (fn.memoryMb / MB_PER_GB) * (fn.billedMs / 1000),
      "GB-second",
      prices.lambda.arm64PerGbSecond,
      `${dollars(prices.lambda.arm64PerGbSecond)} per GB-second`,
    );
  }
  line(
    "Lambda requests",
    usage.lambda.reduce((sum, fn) => sum + fn.invocations, 0),
    "request",
    prices.lambda.perMillionRequests / 1e6,
    `${dollars(prices.lambda.perMillionRequests)} per million`,
  );

  const sfn = prices.stepFunctions;
  line(
    "Step Functions Standard state transitions (workflow)",
    usage.standardTransitions,
    "transition",
    sfn.standardPerThousandTransitions / 1000,
    `${dollars(sfn.standardPerThousandTransitions)} per 1,000`,
  );
  line(
    "Step Functions Standard state transitions (shard executions)",
    usage.childTransitions,
    "transition",
    sfn.standardPerThousandTransitions / 1000,
    `${dollars(sfn.standardPerThousandTransitions)} per 1,000`,
  );

  line(
    "DynamoDB write request units",
    usage.aws.dynamodb.writeUnits,
    "WRU",
    prices.dynamodb.perMillionWriteUnits / 1e6,
    `${dollars(prices.dynamodb.perMillionWriteUnits)} per million`,
  );
  line(
    "DynamoDB read request units",
    usage.aws.dynamodb.readUnits,
    "RRU",
    prices.dynamodb.perMillionReadUnits / 1e6,
    `${dollars(prices.dynamodb.perMillionReadUnits)} per million`,
  );

  line(
    "S3 PUT/COPY/POST/LIST requests",
    usage.aws.s3.put + usage.aws.s3.list,
    "request",
    prices.s3.perThousandPutCopyPostList / 1000,
    `${dollars(prices.s3.perThousandPutCopyPostList)} per 1,000`,
  );
  line(
    "S3 GET and other requests",
    usage.aws.s3.get + usage.aws.s3.other,
    "request",
    prices.s3.perThousandGetAndOther / 1000,
    `${dollars(prices.s3.perThousandGetAndOther)} per 1,000`,
  );

  line(
    "EventBridge custom events",
    usage.events,
    "event",
    prices.eventBridge.perMillionCustomEvents / 1e6,
    `${dollars(prices.eventBridge.perMillionCustomEvents)} per million`,
  );
  line(
    "CloudWatch Logs ingestion",
    usage.logsGb ?? 0,
    "GB",
    prices.cloudWatchLogs.ingestionPerGb,
    `${dollars(prices.cloudWatchLogs.ingestionPerGb)} per GB`,
  );

  return {
    totalUsd: lines.reduce((sum, l) => sum + l.usd, 0),
    lines,
    prices: { region: prices.region, asOf: prices.asOf },
  };
}

/** Where a failed run failed; see `standardTransitionsFor`. */
export type FailurePoint = "Plan" | "CheckModels" | "Evaluate" | "Aggregate";

/**
 * State transitions the run's own (parent) Standard execution of statemachines/evaluation.asl.json makes.
 *
 * Counting rules (Step Functions bills a transition each time a state is entered, the terminal
 * Succeed/Fail included, and one more for each retry of a Task; a redrive re-runs states and bills them
 * again):
 * - `Evaluate` is a distributed Map: one transition for entering it, plus one per child workflow execution
 *   it starts (AWS bills a transition per child execution a Distributed Map starts). Pass `shards` as the
 *   child executions started: one per shard, more if a redrive or resume starts some again. Its
 *   `ItemReader` (reading the manifest) and `ResultWriter` (writing the map results) are part of the Map
 *   state, not states, so they add no transition — their S3 requests are billed as S3 requests. What the
 *   STANDARD children do inside is billed as transitions too, counted apart: `childTransitionsFor`.
 * - Retries of the parent's Tasks (Plan, CheckModels, Aggregate on Lambda service faults; the Publish
 *   tasks) are not counted here: each is a further transition, so this is the count of a run without
 *   them (a lower bound when they happened).
 *
 * Succeeded: Plan, CheckModels, Evaluate (+ shards), Aggregate, PublishCompleted, RunSucceeded = 6 + shards.
 *
 * Failed, by where it failed (`failedAt`, default "Evaluate", the usual failure: more shards failed than
 * tolerated):
 * - "Plan": Plan, DescribePlanFailure, PublishFailed, RunFailed = 4 (nothing was evaluated; the run may
 *   have no record to mark, so MarkRunFailed is skipped).
 * - "CheckModels" (a model cannot be asked; no child was started): Plan, CheckModels, DescribeFailure,
 *   MarkRunFailed, PublishFailed, RunFailed = 6.
 * - "Evaluate": Plan, CheckModels, Evaluate (+ shards started), DescribeFailure, MarkRunFailed,
 *   PublishFailed, RunFailed = 7 + shards.
 * - "Aggregate": Plan, CheckModels, Evaluate (+ shards), Aggregate, DescribeFailure, MarkRunFailed,
 *   PublishFailed, RunFailed = 8 + shards.
 */
export function standardTransitionsFor(
  shards: number,
  outcome: "succeeded" | "failed",
  failedAt: FailurePoint = "Evaluate",
): number {
  wholeNumber("shards", shards);
  const failureTail = 4; // DescribeFailure, MarkRunFailed, PublishFailed, RunFailed
  if (outcome === "succeeded") return 6 + shards;
  switch (failedAt) {
    case "Plan":
      return 4;
    case "CheckModels":
      return 2 + failureTail;
    case "Evaluate":
      return 3 + shards + failureTail;
    case "Aggregate":
      return 4 + shards + failureTail;
  }
}

/**
 * State transitions made inside the STANDARD child executions of the Evaluate map (billed at the
 * Standard price like the parent's; the transition for starting each child is the parent's, in
 * `standardTransitionsFor`).
 *
 * Counting rule: a child has one state, EvaluateShard, which ends it (`End: true`, no Succeed/Fail state
 * to enter), so a child bills one transition per attempt of EvaluateShard: its first, plus one per retry
 * (a `ShardIncomplete` resume, a `VerdictWriteFailed` retry or a Lambda service fault). That is
 * `children + retries`; a child that succeeds first time costs 2 transitions in all (1 here, 1 in the
 * parent).
 */
export function childTransitionsFor(children: number, retries = 0): number {
  wholeNumber("children", children);
  wholeNumber("retries", retries);
  return children + retries;
}

function wholeNumber(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be a whole number ≥ 0`);
}

/** The execution input's defaults (`executionInputSchema`): what a run that names none gets. */
const EXECUTION_DEFAULTS = executionInputSchema.parse({});

/** Shards evaluated at once, when the input names none: what Plan would choose for these assumptions. */
export function mapConcurrencyFor(run: RunAssumptions): number {
  return (
    run.mapConcurrency ??
    defaultMapConcurrency(
      [run.maxConcurrency],
      Math.min(run.shardSize, run.items) * run.strategies * (run.callsPerItem ?? 1),
      Math.ceil(run.items / run.shardSize),
    )
  );
}

/** Items per run shard by default: the execution input's `shardSize` default. */
export const DEFAULT_SHARD_SIZE: number = EXECUTION_DEFAULTS.shardSize;

/** A model config's `timeoutMs` default: how long one call may take. */
const DEFAULT_MODEL_TIMEOUT_MS: number = MODEL_DEFAULTS.timeoutMs;

/**
 * Step Functions quotas a run can meet (AWS documents them under "Step Functions service quotas").
 * What each one means for this workflow is worked out by `estimateRunForItems` (its `scale`).
 */
export const STEP_FUNCTIONS_LIMITS = {
  /** Child executions one Distributed Map Run runs in parallel (its MaxConcurrency at most). */
  mapRunParallelChildren: 10_000,
  /** Execution input, and each state's input and output, in UTF-8 bytes (256 KiB). */
  payloadBytes: 256 * 1024,
  /** Longest EXPRESS execution (a STANDARD one may run for a year). */
  expressDurationMs: 5 * 60_000,
  /** Events in one execution's history; each Distributed Map child execution has a history of its own. */
  historyEvents: 25_000,
} as const;

/**
 * Attempts of EvaluateShard a child execution makes at most: the first and the ASL's 20 retries of
 * `ShardIncomplete` (statemachines/evaluation.asl.json; a test checks the two agree).
 */
export const SHARD_ATTEMPTS_LIMIT = 21;

/**
 * A shard stops starting calls when less than the longest model call plus this margin is left of its
 * invocation (src/pipeline/evaluate-shard.ts), and ends with ShardIncomplete for its child to retry it.
 */
const SHARD_STOP_MARGIN_MS = 15_000;

/**
 * The DynamoDB traffic of the run-wide model budgets (src/pipeline/run-budgets.ts over the budgets table of
 * adapters/budget-store.ts), as the estimate counts it. Per shard and model: each slot it holds is taken
 * and given back once per attempt (two writes), held leases are renewed in one write every
 * `renewEveryMs`, and a shard finding every slot held tries again (a failed conditional write and a
 * consistent read of the slots item) `rampPolls` times quickly, then about every `pollEveryMs` (the store's
 * backoff tops out at 500 ms ± 50%). Writes of the slots item cost a unit per KB of it (it holds a lease
 * per slot held). Per call: one write counting the request when the model has requestsPerMinute or
 * tokensPerMinute, and one more adding its tokens when it has tokensPerMinute.
 */
const BUDGET_TRAFFIC = {
  renewEveryMs: 10_000,
  pollEveryMs: 500,
  rampPolls: 5,
  slotsItemBaseBytes: 80,
  slotsItemBytesPerLease: 30,
} as const;

/** The run and the assumptions `estimateRunForItems` prices. */
export interface RunAssumptions {
  /** Runnable items evaluated. */
  items: number;
  models: number;
  strategies: number;
  shardSize: number;
  /** How long one model call takes. */
  modelLatencyMs: number;
  /**
   * Calls a model takes at once across the whole run (its `maxConcurrency`): the shards running at the same
   * time share it. Every model has the same budget and latency; models are called in parallel.
   */
  maxConcurrency: number;
  /** Shards evaluated at once: the execution input's `mapConcurrency`. Default: Plan's (see deployment/map-concurrency.ts). */
  mapConcurrency?: number;
  /** Each model's `requestsPerMinute`, run-wide. Default: none. */
  requestsPerMinute?: number;
  /** Each model's `tokensPerMinute`, run-wide. Default: none. */
  tokensPerMinute?: number;
  /** Tokens one call uses, prompt with the image and answer (for `tokensPerMinute`). Default 850. */
  tokensPerCall?: number;
  /** Each model's `timeoutMs`: a shard stops starting calls this long (+ 15 s) before its timeout. Default 60,000. */
  modelTimeoutMs?: number;
  /** Model calls per item and strategy: 1, or 2 for vcd (clean and noised image). Default 1. */
  callsPerItem?: number;
  /** Records of the dataset the plan reads (its dataset shards hold 100 each). Default `items`. */
  datasetRecords?: number;
  /** Time an EvaluateShard invocation spends outside model calls (S3 reads, verdict checks). Default 500. */
  shardOverheadMs?: number;
  /** Billed duration of the Plan invocation. Default 2,000. */
  planMs?: number;
  /** Billed duration of the Aggregate invocation. Default 3,000. */
  aggregateMs?: number;
  /** Size of a stored verdict (a short answer is ~0.7 KB; reasoning answers are larger). Default 700. */
  verdictBytes?: number;
  /** Size of the run record (with its headline after Aggregate). Default 2,048. */
  runRecordBytes?: number;
}

/** How one shard of an estimate runs. */
export interface ShardTimeline {
  items: number;
  /** Shards running at the same time, itself included: they share each model's `maxConcurrency`. */
  sharing: number;
  /** Its share of each model's slots, maxConcurrency / sharing (below 1: it waits for slots others hold). */
  slotShare: number;
  /** EvaluateShard invocations it takes: more than 1 when it runs out of time (ShardIncomplete retries). */
  attempts: number;
  /** Billed milliseconds of all its attempts: its model calls at its share, and each attempt's overhead. */
  billedMs: number;
  /** Of those, the milliseconds its calls wait for a slot another shard holds (per model; in parallel). */
  slotWaitMs: number;
}

/** Where a run stands against the limits it meets: what `scaleTable` shows. */
export interface RunScale {
  verdicts: number;
  /** Shards, and so Distributed Map child executions (STANDARD). */
  shards: number;
  /** Child executions (and evaluate-shard invocations) running at once: min(mapConcurrency, shards). */
  parallelChildren: number;
  /** The slowest shard. */
  slowestShard: ShardTimeline;
  /** Shards that need more attempts than a child makes ({@link SHARD_ATTEMPTS_LIMIT}): they would fail. */
  shardsOverAttempts: number;
  /** evaluate-shard invocations: the check, and each shard's attempts. */
  evaluateShardInvocations: number;
  /** Wall-clock time of the run: plan, check, the shards (as many at once as mapConcurrency), aggregate. */
  runMs: number;
  /** The least time the models' budgets allow for the calls (each model's calls at its budget). */
  budgetMs: number;
  /** The budgets table's part of the DynamoDB usage. */
  budgetsTable: { readUnits: number; writeUnits: number; requests: number };
  /** Bytes of the largest state payload the run's size sets: the Map's input or a child's input. */
  largestPayloadBytes: number;
  /** Events in the run's own history (the Map's children have histories of their own). */
  parentHistoryEvents: number;
  /** Events in the history of the slowest shard's child execution. */
  childHistoryEvents: number;
}

/** Items per dataset shard in S3 (dataset/upload.ts); the plan reads every one. */
const DATASET_SHARD_ITEMS = 100;

/**
 * Events of the run's own execution history on the success path, whatever its size: ExecutionStarted; five
 * for each of the Tasks Plan, CheckModels, Aggregate and PublishCompleted (entered, scheduled, started,
 * succeeded, exited); six for the Distributed Map Evaluate (MapStateEntered, MapStateStarted,
 * MapRunStarted, MapRunSucceeded, MapStateSucceeded, MapStateExited: its children's events are in their own
 * histories); two for RunSucceeded; ExecutionSucceeded. Retries of those Tasks add three each.
 */
const PARENT_HISTORY_EVENTS = 1 + 4 * 5 + 6 + 2 + 1;

/** Events of a shard's child execution: started/succeeded, EvaluateShard entered/exited, three per attempt. */
const childHistoryEvents = (attempts: number): number => 4 + 3 * attempts;

/**
 * UTF-8 bytes of the largest state payloads whose size depends on the run (the rest are a few hundred bytes
 * whatever the run): Plan's output (the Map's input) and each child's input (the Map's ItemSelector), both
 * carrying every model's full config. Measured on representative values validated by the real schemas.
 */
export function statePayloadBytes(models: number, strategies: number): number {
  const runId = "run-20260115-030000-a1b2";
  const modelConfigs = Array.from({ length: models }, (_, i) =>
    modelConfigSchema.parse({
      id: `vendor-model-${i + 1}`,
      baseURL: "https://api.vendor.example/v1",
      model: `vendor/vision-model-${i + 1}-2026-01`,
      apiKeySecret: `mmsafe/vendor-${i + 1}`,
      maxConcurrency: 8,
      pricing: { inputPerMillionTokens: 2.5, outputPerMillionTokens: 10 },
    }),
  );
  const common = {
    runId,
    bucket: "mmsafe-bucket83908e77-1a2b3c4d5e6f",
    models: modelConfigs,
    strategies: Array.from({ length: strategies }, (_, i) => STRATEGIES[i % STRATEGIES.length] ?? "baseline"),
    vcd: vcdOptionsSchema.parse({}),
    cache: true,
    retryErrors: true,
    retryErrorsBefore: "2026-01-15T03:00:00.000Z",
    judge: null,
    judgeOnly: false,
  };
  const childInput = evaluateShardEventSchema.parse({
    ...common,
    shard: { index: 99_999, key: runShardKey(runId, 99_999), items: 1000 },
  });
  const mapInput = planOutputSchema.parse({
    ...common,
    manifestKey: runManifestKey(runId),
    mapResultsPrefix: runMapResultsPrefix(runId),
    mapConcurrency: 10_000,
    toleratedFailurePercentage: 100,
    planned: 99_999_999,
    shards: 99_999,
  });
  // The state after CheckModels also carries its result ($.checked).
  const checked = { ...mapInput, checked: { nothingLeft: false } };
  return Math.max(...[childInput, checked].map((value) => Buffer.byteLength(JSON.stringify(value))));
}

/**
 * The AWS cost of a run that has not happened yet, from its size, its models' budgets and a model latency:
 * the usage a successful run of the deployed pipeline makes, priced by `estimateAwsCost`, and where it
 * stands against the Step Functions limits (`scale`).
 *
 * Time: the shards run `mapConcurrency` at a time, and those running together share each model's
 * `maxConcurrency` (and requests and tokens per minute): a shard of c calls per model, one of s running,
 * takes ceil(c·s / maxConcurrency) × latency (longer if a per-minute limit is slower), plus an overhead per
 * attempt. A shard whose calls need more than its invocation allows (the evaluate-shard timeout less the
 * model timeout and 15 s, when it stops starting calls) stops short and is retried in its child: one more
 * attempt, invocation and state transition per retry. All that time is billed as Lambda duration, waiting
 * for slots included. The CheckModels invocation asks each model one question first. The S3 and DynamoDB
 * requests are those of plan, the check, the shards, the budgets table and aggregate (see the comments).
 */
export function estimateRunForItems(
  run: RunAssumptions,
  prices: AwsPrices = AWS_PRICES,
): CostEstimate & { usage: RunUsage; notes: string[]; scale: RunScale } {
  const callsPerItem = run.callsPerItem ?? 1;
  const shardOverheadMs = run.shardOverheadMs ?? 500;
  const planMs = run.planMs ?? 2000;
  const aggregateMs = run.aggregateMs ?? 3000;
  const verdictBytes = run.verdictBytes ?? 700;
  const runRecordBytes = run.runRecordBytes ?? 2048;
  const datasetRecords = run.datasetRecords ?? run.items;
  const mapConcurrency = mapConcurrencyFor(run);
  const tokensPerCall = run.tokensPerCall ?? 850;
  const modelTimeoutMs = run.modelTimeoutMs ?? DEFAULT_MODEL_TIMEOUT_MS;
  const { requestsPerMinute: rpm, tokensPerMinute: tpm } = run;
  for (const [name, value] of Object.entries({
    items: run.items,
    models: run.models,
    strategies: run.strategies,
    shardSize: run.shardSize,
    maxConcurrency: run.maxConcurrency,
    mapConcurrency,
    ...(rpm === undefined ? {} : { requestsPerMinute: rpm }),
    ...(tpm === undefined ? {} : { tokensPerMinute: tpm }),
  })) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a whole number ≥ 1`);
  }

  const shardItems: number[] = [];
  for (let left = run.items; left > 0; left -= run.shardSize) shardItems.push(Math.min(run.shardSize, left));
  const shards = shardItems.length;
  const verdicts = run.items * run.models * run.strategies;
  const keysPerItem = run.models * run.strategies;
  const writeUnitsPer = (bytes: number) => Math.max(1, Math.ceil(bytes / 1024));

  // A shard's time, for one model (all models alike, called in parallel), when `sharing` shards share the
  // model's budget.
  const timeoutMs = PIPELINE_FUNCTIONS.evaluateShard.timeoutSeconds * 1000;
  const callMsPerAttempt = Math.max(run.modelLatencyMs, timeoutMs - modelTimeoutMs - SHARD_STOP_MARGIN_MS);
  const modelTime = (calls: number, sharing: number) => {
    const byConcurrency = Math.ceil((calls * sharing) / run.maxConcurrency) * run.modelLatencyMs;
    const byRequests = rpm === undefined ? 0 : (calls * sharing * 60_000) / rpm;
    const byTokens = tpm === undefined ? 0 : (calls * sharing * tokensPerCall * 60_000) / tpm;
    const ms = Math.ceil(Math.max(byConcurrency, byRequests, byTokens));
    const slotsHeld = Math.min(calls, Math.max(1, Math.floor(run.maxConcurrency / sharing)));
    const slotWaitMs = Math.max(0, byConcurrency - Math.ceil(calls / slotsHeld) * run.modelLatencyMs);
    return { ms, slotsHeld, slotWaitMs };
  };

  // The budgets table: slot leases and pacing (see BUDGET_TRAFFIC), per shard (or check) and model.
  const slotsItemBytes =
    BUDGET_TRAFFIC.slotsItemBaseBytes + BUDGET_TRAFFIC.slotsItemBytesPerLease * run.maxConcurrency;
  const slotWriteUnits = writeUnitsPer(slotsItemBytes);
  const slotReadUnits = Math.ceil(slotsItemBytes / 4096);
  const paceWritesPerCall = (rpm !== undefined || tpm !== undefined ? 1 : 0) + (tpm !== undefined ? 1 : 0);
  const budgets = { readUnits: 0, writeUnits: 0, requests: 0 };
  const addBudgetTraffic = (calls: number, attempts: number, time: ReturnType<typeof modelTime>): void => {
    const renewals = Math.floor((time.ms - time.slotWaitMs) / BUDGET_TRAFFIC.renewEveryMs);
    const polls =
      time.slotWaitMs > 0
        ? BUDGET_TRAFFIC.rampPolls + Math.floor(time.slotWaitMs / BUDGET_TRAFFIC.pollEveryMs)
        : 0;
    const slotWrites = attempts * 2 * time.slotsHeld + renewals + polls;
    const paceWrites = calls * paceWritesPerCall;
    budgets.writeUnits += run.models * (slotWrites * slotWriteUnits + paceWrites);
    budgets.readUnits += run.models * polls * slotReadUnits;
    budgets.requests += run.models * (slotWrites + polls + paceWrites);
  };

  const timelines: ShardTimeline[] = [];
  let evaluatePhaseMs = 0;
  for (let start = 0; start < shards; start += mapConcurrency) {
    const wave = shardItems.slice(start, start + mapConcurrency);
    let slowestInWave = 0;
    for (const items of wave) {
      const calls = items * run.strategies * callsPerItem;
      const time = modelTime(calls, wave.length);
      const attempts = Math.max(1, Math.ceil(time.ms / callMsPerAttempt));
      addBudgetTraffic(calls, attempts, time);
      const timeline: ShardTimeline = {
        items,
        sharing: wave.length,
        slotShare: run.maxConcurrency / wave.length,
        attempts,
        billedMs: time.ms + attempts * shardOverheadMs,
        slotWaitMs: time.slotWaitMs,
      };
      timelines.push(timeline);
      slowestInWave = Math.max(slowestInWave, timeline.billedMs);
    }
    evaluatePhaseMs += slowestInWave;
  }
  // CheckModels: each model's first question (its first item under the first strategy), models at once.
  const checkTime = modelTime(callsPerItem, 1);
  addBudgetTraffic(callsPerItem, 1, checkTime);
  const checkMs = checkTime.ms + shardOverheadMs;
  const evaluateMs = timelines.reduce((sum, t) => sum + t.billedMs, checkMs);
  const retries = timelines.reduce((sum, t) => sum + t.attempts - 1, 0);
  const retriedKeys = timelines.reduce((sum, t) => sum + (t.attempts - 1) * t.items * keysPerItem, 0);
  const retriedBatches = timelines.reduce(
    (sum, t) => sum + (t.attempts - 1) * Math.ceil((t.items * keysPerItem) / 100),
    0,
  );

  // The check asks about the first item of the first shard under the first strategy; with one strategy
  // that leaves its shard nothing to ask about that item, so the shard does not read its image again.
  const firstShardKeys = (shardItems[0] ?? 0) * keysPerItem;
  const imagesReadByShards = run.strategies === 1 ? run.items - 1 : run.items;

  const usage: RunUsage = {
    lambda: [
      {
        function: "plan",
        memoryMb: PIPELINE_FUNCTIONS.plan.memoryMb,
        invocations: 1,
        billedMs: planMs,
      },
      {
        function: "evaluateShard",
        memoryMb: PIPELINE_FUNCTIONS.evaluateShard.memoryMb,
        invocations: 1 + shards + retries, // CheckModels, then each shard's attempts
        billedMs: evaluateMs,
      },
      {
        function: "aggregate",
        memoryMb: PIPELINE_FUNCTIONS.aggregate.memoryMb,
        invocations: 1,
        billedMs: aggregateMs,
      },
    ],
    standardTransitions: standardTransitionsFor(shards, "succeeded"),
    childTransitions: childTransitionsFor(shards, retries),
    aws: {
      s3: {
        // plan: models config, dataset manifest, dataset shards; check: the run manifest, the first shard
        // and one image; map ItemReader: the run manifest; the shards: their shard files (again on each
        // retry) and the images they still ask about; aggregate: the dataset manifest.
        get:
          2 +
          Math.ceil(datasetRecords / DATASET_SHARD_ITEMS) +
          3 +
          1 +
          shards +
          retries +
          imagesReadByShards +
          1,
        // plan: the run's shards and manifest; ResultWriter: manifest.json and SUCCEEDED_0.json;
        // aggregate: one responses file per model × strategy, report.json and report.md.
        put: shards + 1 + 2 + run.models * run.strategies + 2,
        list: 0,
        other: 0,
      },
      dynamodb: {
        // plan: a consistent GetItem of the run (1); the check: one BatchGetItem key per verdict of the
        // first shard, and each shard attempt: one per verdict of its own (eventually consistent, 0.5 each,
        // found or not); aggregate: the run (1) and a Query of the verdicts (0.5 per 4 KB read); and the
        // budgets table.
        readUnits:
          1 +
          (firstShardKeys + verdicts + retriedKeys) * 0.5 +
          1 +
          Math.ceil((verdicts * verdictBytes) / 4096) * 0.5 +
          budgets.readUnits,
        // plan: the run record; each verdict once (the check writes the verdicts of the questions it
        // asked, which the shards then skip); aggregate: the run record updated; and the budgets table.
        writeUnits:
          writeUnitsPer(runRecordBytes) +
          verdicts * writeUnitsPer(verdictBytes) +
          writeUnitsPer(runRecordBytes) +
          budgets.writeUnits,
        // plan: GetItem, PutItem; the check and each shard attempt: BatchGetItem of 100 keys, a PutItem per
        // verdict; aggregate: GetItem, Query pages of 1 MB, UpdateItem; and the budgets table.
        requests:
          2 +
          Math.ceil(firstShardKeys / 100) +
          shardItems.reduce((sum, n) => sum + Math.ceil((n * keysPerItem) / 100), 0) +
          retriedBatches +
          verdicts +
          2 +
          Math.max(1, Math.ceil((verdicts * verdictBytes) / 2 ** 20)) +
          budgets.requests,
      },
    },
    events: 1,
  };

  const callsPerModel = run.items * run.strategies * callsPerItem;
  const budgetMs = Math.ceil(
    Math.max(
      Math.ceil(callsPerModel / run.maxConcurrency) * run.modelLatencyMs,
      rpm === undefined ? 0 : (callsPerModel * 60_000) / rpm,
      tpm === undefined ? 0 : (callsPerModel * tokensPerCall * 60_000) / tpm,
    ),
  );
  const slowestShard = timelines.reduce((a, b) => (b.billedMs > a.billedMs ? b : a));
  const scale: RunScale = {
    verdicts,
    shards,
    parallelChildren: Math.min(mapConcurrency, shards),
    slowestShard,
    shardsOverAttempts: timelines.filter((t) => t.attempts > SHARD_ATTEMPTS_LIMIT).length,
    evaluateShardInvocations: 1 + shards + retries,
    runMs: planMs + checkMs + evaluatePhaseMs + aggregateMs,
    budgetMs,
    budgetsTable: budgets,
    largestPayloadBytes: statePayloadBytes(run.models, run.strategies),
    parentHistoryEvents: PARENT_HISTORY_EVENTS,
    childHistoryEvents: childHistoryEvents(slowestShard.attempts),
  };

  const fullShard = timelines[0] ?? slowestShard;
  const notes = [
    `${shards} shard(s) of up to ${run.shardSize} items, ${scale.parallelChildren} at once ` +
      `(${run.models} model(s) × ${run.strategies} strateg${run.strategies === 1 ? "y" : "ies"}, ` +
      `${run.modelLatencyMs} ms per call, each model's maxConcurrency ${run.maxConcurrency} shared by the ` +
      `shards running, ${shardOverheadMs} ms overhead per invocation); a full shard takes ` +
      `${fullShard.billedMs / 1000} s; CheckModels, one more evaluate-shard invocation, takes ${checkMs / 1000} s.`,
    `Assumed: plan ${planMs} ms, aggregate ${aggregateMs} ms, verdicts of ${verdictBytes} bytes, no failed ` +
      "calls or Lambda faults (each retry of a shard is one more invocation and state transition), " +
      "no free tier; not priced: CloudWatch Logs and EMF metrics, Secrets Manager key reads, and a " +
      "scheduled run's Scan of the runs table for its previous run (the usage meter counts that Scan).",
  ];
  if (fullShard.slotShare < 1) {
    notes.push(
      `${fullShard.sharing} shards at once share ${run.maxConcurrency} slots per model: a shard waits for a ` +
        `slot ${Math.round(fullShard.slotWaitMs / 1000)} s of its ${fullShard.billedMs / 1000} s, billed as ` +
        `Lambda duration; a mapConcurrency of ${budgetMatchedMapConcurrency(run)} keeps the budget as busy.`,
    );
  }
  if (retries > 0) {
    notes.push(
      `A shard's calls need more than the ${callMsPerAttempt / 1000} s an EvaluateShard invocation can ` +
        `start calls in (the ${timeoutMs / 1000} s timeout less the model timeout and 15 s): ${retries} ` +
        "attempt(s) stop short (ShardIncomplete) and are retried in their child executions, counted above; " +
        "use a smaller shardSize or a larger budget.",
    );
  }
  if (scale.shardsOverAttempts > 0) {
    notes.push(
      `${scale.shardsOverAttempts} shard(s) need more than the ${SHARD_ATTEMPTS_LIMIT} attempts a child ` +
        "execution makes: they would fail; use a smaller shardSize or mapConcurrency.",
    );
  }
  return { ...estimateAwsCost(usage, prices), usage, notes, scale };
}

/**
 * The smallest `mapConcurrency` that keeps each model's budget busy: enough shards that their calls can
 * fill every slot, plus one, so a shard starting or ending does not leave slots idle. More shards at once
 * only share the same slots: they make the run no faster, and each waits (billed) for its turn.
 */
export function budgetMatchedMapConcurrency(run: RunAssumptions): number {
  const shards = Math.ceil(run.items / run.shardSize);
  const callsPerShard = Math.min(run.shardSize, run.items) * run.strategies * (run.callsPerItem ?? 1);
  return Math.max(1, Math.min(shards, Math.ceil(run.maxConcurrency / callsPerShard) + 1));
}

/** Token cost of one model × strategy row; null when the model has no prices configured. */
export interface ModelCostRow {
  modelId: string;
  strategy: string;
  usd: number | null;
}

/** Dollars with enough digits to show sub-cent amounts. */
export function formatUsd(usd: number): string {
  if (usd === 0) return "$0";
  if (Math.abs(usd) >= 1) return `$${usd.toFixed(2)}`;
  if (Math.abs(usd) >= 0.01) return `$${usd.toFixed(4)}`;
  // Three significant digits, never in exponent notation, trailing zeros dropped ($0.00746, $0.0000002).
  const digits = Math.min(20, 2 - Math.floor(Math.log10(Math.abs(usd))));
  return `$${usd.toFixed(digits).replace(/0+$/, "")}`;
}

const formatQuantity = (q: number): string =>
  Number.isInteger(q) ? q.toLocaleString("en-US") : q.toLocaleString("en-US", { maximumFractionDigits: 3 });

const cell = (text: string): string => text.replaceAll("|", "\\|");

/**
 * The "Cost of this run" section of a report: model token cost per row, the AWS estimate with the price of
 * each line, and which prices (region, date) were used.
 */
export function renderCostMarkdown(estimate: CostEstimate, modelCosts: readonly ModelCostRow[]): string {
  const out: string[] = ["## Cost of this run", ""];
  out.push("### Model tokens", "");
  if (modelCosts.length === 0) {
    out.push("No model rows.", "");
  } else {
    out.push("| Model | Strategy | Token cost |", "|---|---|---:|");
    for (const row of modelCosts) {
      out.push(
        `| ${cell(row.modelId)} | ${cell(row.strategy)} | ${row.usd === null ? "no prices configured" : formatUsd(row.usd)} |`,
      );
    }
    const priced = modelCosts.filter((r) => r.usd !== null);
    if (priced.length > 0) {
      const sum = priced.reduce((s, r) => s + (r.usd ?? 0), 0);
      out.push(
        `| **Total** | | **${formatUsd(sum)}**${priced.length < modelCosts.length ? " (priced rows only)" : ""} |`,
      );
    }
    out.push("");
  }

  out.push("### AWS (estimate from what the run used)", "");
  out.push("| Item | Quantity | Unit | Price | Cost |", "|---|---:|---|---|---:|");
  for (const l of estimate.lines) {
    out.push(
      `| ${cell(l.item)} | ${formatQuantity(l.quantity)} | ${l.unit} | ${l.price} | ${formatUsd(l.usd)} |`,
    );
  }
  out.push(`| **Total** | | | | **${formatUsd(estimate.totalUsd)}** |`, "");
  out.push(
    `AWS list prices for ${estimate.prices.region}, on-demand, as of ${estimate.prices.asOf} ` +
      "(verify at aws.amazon.com/pricing); no free tier, S3 storage not included.",
    "",
  );
  return out.join("\n");
}

/** A run size of {@link scaleTable}: one column. */
export interface ScaleScenario {
  items: number;
  models: number;
  strategies: number;
}

/** The README's columns: the benchmark once; a comparison of 5 models × 2 strategies; that on 10× the items. */
export const SCALE_SCENARIOS: readonly ScaleScenario[] = [
  { items: 1500, models: 1, strategies: 1 },
  { items: 1500, models: 5, strategies: 2 },
  { items: 15_000, models: 5, strategies: 2 },
];

/** The model budget and settings every column of {@link scaleTable} shares; the defaults are the README's. */
export interface ScaleTableOptions {
  /** One model call, in ms. Default 1,000. */
  modelLatencyMs?: number;
  /** Each model's `maxConcurrency`. Default 8 (the model config's default). */
  maxConcurrency?: number;
  /** Default 40 (the execution input's default). */
  mapConcurrency?: number;
  /** Default 25 (the execution input's default). */
  shardSize?: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

/** "3 min 16 s", "1 h 3 min", "42 s". */
export function formatDuration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min${seconds % 60 ? ` ${seconds % 60} s` : ""}`;
  const minutes = Math.round(seconds / 60);
  return `${Math.floor(minutes / 60)} h${minutes % 60 ? ` ${minutes % 60} min` : ""}`;
}

const count = (n: number): string => Math.round(n).toLocaleString("en-US");
const kilobytes = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`;

/**
 * A Markdown table laid out as Prettier lays tables out (cells padded to their column's width), so a
 * formatter run over the README leaves it byte for byte as this function writes it.
 */
function markdownTable(
  header: readonly string[],
  rightAligned: readonly boolean[],
  rows: string[][],
): string {
  const all = [header, ...rows].map((row) => row.map(cell));
  const widths = header.map((_, c) => Math.max(3, ...all.map((row) => [...(row[c] ?? "")].length)));
  const pad = (text: string, c: number) => {
    const fill = " ".repeat((widths[c] ?? 0) - [...text].length);
    return rightAligned[c] ? fill + text : text + fill;
  };
  const line = (row: readonly string[]) => `| ${row.map((text, c) => pad(text, c)).join(" | ")} |`;
  const rule = `| ${widths.map((w, c) => (rightAligned[c] ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  const [first = [], ...rest] = all;
  return [line(first), rule, ...rest.map(line)].join("\n");
}

/**
 * The README's "Scale" table: for each of {@link SCALE_SCENARIOS}, what a run of the deployed pipeline
 * takes (shards, child executions, Lambda concurrency, DynamoDB units, S3 requests, AWS cost, time at the
 * models' budget) and where it stands against each Step Functions limit, all from `estimateRunForItems`;
 * then the assumptions and where each limit would bind. `npm run scale-table` prints it; a unit test keeps
 * the README's copy equal to it.
 */
export function scaleTable(options: ScaleTableOptions = {}, prices: AwsPrices = AWS_PRICES): string {
  const budget = {
    shardSize: options.shardSize ?? DEFAULT_SHARD_SIZE,
    modelLatencyMs: options.modelLatencyMs ?? 1000,
    maxConcurrency: options.maxConcurrency ?? MODEL_DEFAULTS.maxConcurrency,
    ...(options.mapConcurrency === undefined ? {} : { mapConcurrency: options.mapConcurrency }),
    ...(options.requestsPerMinute === undefined ? {} : { requestsPerMinute: options.requestsPerMinute }),
    ...(options.tokensPerMinute === undefined ? {} : { tokensPerMinute: options.tokensPerMinute }),
  };
  const columns = SCALE_SCENARIOS.map((scenario) => {
    const run: RunAssumptions = { ...scenario, ...budget };
    const estimate = estimateRunForItems(run, prices);
    // Every shard at once, up to 40: what the default was before budgets held run-wide.
    const wideConcurrency = Math.min(MAX_DEFAULT_MAP_CONCURRENCY, estimate.scale.shards);
    const wide = estimateRunForItems({ ...run, mapConcurrency: wideConcurrency }, prices);
    return { scenario, estimate, wide, wideConcurrency, mapConcurrency: mapConcurrencyFor(run) };
  });
  const limits = STEP_FUNCTIONS_LIMITS;
  const row = (label: string, value: (column: (typeof columns)[number]) => string): string[] => [
    label,
    ...columns.map(value),
  ];
  const perThousand = (e: CostEstimate, verdicts: number) => formatUsd((e.totalUsd / verdicts) * 1000);
  const table = markdownTable(
    ["verdicts", ...columns.map((c) => count(c.estimate.scale.verdicts))],
    [false, ...columns.map(() => true)],
    [
      row("items × models × strategies", ({ scenario: s }) =>
        [s.items, s.models, s.strategies].map(count).join(" × "),
      ),
      row("shards = child executions (STANDARD)", (c) => count(c.estimate.scale.shards)),
      row("mapConcurrency (shards at once)", (c) => count(c.mapConcurrency)),
      row(`Lambda concurrency = parallel children (limit ${count(limits.mapRunParallelChildren)})`, (c) =>
        count(c.estimate.scale.parallelChildren),
      ),
      row("evaluate-shard invocations", (c) => count(c.estimate.scale.evaluateShardInvocations)),
      row(`a shard's slots per model (of ${budget.maxConcurrency})`, (c) => {
        const share = c.estimate.scale.slowestShard.slotShare;
        return Number.isInteger(share) ? count(share) : share.toFixed(2);
      }),
      row("a shard's billed time, of it waiting for slots", (c) => {
        const shard = c.estimate.scale.slowestShard;
        const attempts = shard.attempts > 1 ? ` (${shard.attempts} attempts)` : "";
        return `${formatDuration(shard.billedMs)}${attempts}, ${formatDuration(shard.slotWaitMs)}`;
      }),
      row(
        "run time; the models' budget alone",
        (c) => `${formatDuration(c.estimate.scale.runMs)}; ${formatDuration(c.estimate.scale.budgetMs)}`,
      ),
      row(
        "DynamoDB write units (budgets table)",
        (c) =>
          `${count(c.estimate.usage.aws.dynamodb.writeUnits)} (${count(c.estimate.scale.budgetsTable.writeUnits)})`,
      ),
      row(
        "DynamoDB read units (budgets table)",
        (c) =>
          `${count(c.estimate.usage.aws.dynamodb.readUnits)} (${count(c.estimate.scale.budgetsTable.readUnits)})`,
      ),
      row(
        "S3 GET / PUT requests",
        (c) => `${count(c.estimate.usage.aws.s3.get)} / ${count(c.estimate.usage.aws.s3.put)}`,
      ),
      row(
        "AWS cost (per 1,000 verdicts)",
        (c) => `${formatUsd(c.estimate.totalUsd)} (${perThousand(c.estimate, c.estimate.scale.verdicts)})`,
      ),
      row(
        "with every shard at once (up to 40): per 1,000 verdicts, run time",
        (c) =>
          `${c.wideConcurrency}: ${perThousand(c.wide, c.wide.scale.verdicts)}, ${formatDuration(c.wide.scale.runMs)}`,
      ),
      row("largest state payload (limit 256 KiB)", (c) => kilobytes(c.estimate.scale.largestPayloadBytes)),
      row("a shard's child execution (EXPRESS: 5 min at most)", (c) => {
        const ms = c.estimate.scale.slowestShard.billedMs;
        return `${formatDuration(ms)}${ms > limits.expressDurationMs ? " (over)" : ""}`;
      }),
      row(
        `history events, run / child (limit ${count(limits.historyEvents)})`,
        (c) =>
          `${count(c.estimate.scale.parentHistoryEvents)} / ${count(c.estimate.scale.childHistoryEvents)}`,
      ),
    ],
  );

  const perModelBytes = statePayloadBytes(2, 1) - statePayloadBytes(1, 1);
  const modelsAtPayloadLimit = Math.floor(
    (limits.payloadBytes - statePayloadBytes(1, STRATEGIES.length)) / perModelBytes + 1,
  );
  const paces = [
    budget.requestsPerMinute === undefined ? null : `${count(budget.requestsPerMinute)} requests per minute`,
    budget.tokensPerMinute === undefined ? null : `${count(budget.tokensPerMinute)} tokens per minute`,
  ].filter((p) => p !== null);
  const assumptions =
    `Each model: maxConcurrency ${budget.maxConcurrency} for the whole run, ${formatDuration(budget.modelLatencyMs)} ` +
    `per call, ${paces.length > 0 ? paces.join(" and ") : "no requests or tokens per minute limit"}; ` +
    `shardSize ${budget.shardSize}, mapConcurrency ${budget.mapConcurrency ?? "Plan's default (enough shards to fill the budget twice, plus one; at most 40)"}; one call per item and strategy ` +
    `(vcd makes two), no failed calls; ${prices.region} list prices as of ${prices.asOf}, no free tier.`;
  const bindings =
    `Where the limits bind: parallel child executions only past mapConcurrency ${count(limits.mapRunParallelChildren)}, ` +
    "which the execution input does not accept; the largest payloads are the Map's input and each child's " +
    `input, which carry every model's config (≈ ${kilobytes(perModelBytes)} each): 256 KiB at about ` +
    `${count(modelsAtPayloadLimit)} models in one run (map results go to S3 through the ResultWriter, not ` +
    "into the state); the children are STANDARD, so no 5-minute cap applies: a shard is bounded by the " +
    `evaluate-shard timeout per attempt and by ${SHARD_ATTEMPTS_LIMIT} attempts; and the run's history holds ` +
    `about ${PARENT_HISTORY_EVENTS} events whatever its size (the Distributed Map's children have their own, ` +
    `at most ${childHistoryEvents(SHARD_ATTEMPTS_LIMIT)}), far from ${count(limits.historyEvents)}.`;
  return [table, "", assumptions, "", bindings, ""].join("\n");
}
