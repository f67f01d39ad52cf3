/**
 * What a run cost on AWS, estimated from what it used: Lambda GB-seconds and requests, Step Functions
 * state transitions (the workflow's and its STANDARD shard child executions'), DynamoDB request units, S3
 * requests and EventBridge events, each multiplied by a list price written beside it. Model tokens are
 * priced elsewhere (`tokenCost` in metrics.ts, from the prices configured per model); this module only
 * renders them next to the AWS lines.
 *
 * Pure: no AWS SDK, no environment. The usage comes from the caller (the usage meter, the Lambda
 * contexts, the execution history) or from `estimateRunForItems` for a run that has not happened yet.
 */
import { PIPELINE_FUNCTIONS } from "./storage-layout.ts";

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

/** The run and the assumptions `estimateRunForItems` prices. */
export interface RunAssumptions {
  /** Runnable items evaluated. */
  items: number;
  models: number;
  strategies: number;
  shardSize: number;
  /** How long one model call takes. */
  modelLatencyMs: number;
  /** Calls a model takes at once (its `maxConcurrency`); models are called in parallel with each other. */
  maxConcurrency: number;
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

/** Items per dataset shard in S3 (dataset/upload.ts); the plan reads every one. */
const DATASET_SHARD_ITEMS = 100;

/**
 * The AWS cost of a run that has not happened yet, from its size and a model latency: the usage a
 * successful run of the deployed pipeline makes, priced by `estimateAwsCost`. Each shard's Lambda runs
 * for ceil(calls per model / maxConcurrency) × latency plus an overhead; the CheckModels invocation of the
 * same function asks each model one question (one wave) plus the overhead. The S3 and DynamoDB requests
 * are the ones plan, the check, the shards and aggregate make (see the notes in the result), with no
 * retries: each shard's child enters EvaluateShard once.
 */
export function estimateRunForItems(
  run: RunAssumptions,
  prices: AwsPrices = AWS_PRICES,
): CostEstimate & { usage: RunUsage; notes: string[] } {
  const callsPerItem = run.callsPerItem ?? 1;
  const shardOverheadMs = run.shardOverheadMs ?? 500;
  const planMs = run.planMs ?? 2000;
  const aggregateMs = run.aggregateMs ?? 3000;
  const verdictBytes = run.verdictBytes ?? 700;
  const runRecordBytes = run.runRecordBytes ?? 2048;
  const datasetRecords = run.datasetRecords ?? run.items;
  for (const [name, value] of Object.entries({
    items: run.items,
    models: run.models,
    strategies: run.strategies,
    shardSize: run.shardSize,
    maxConcurrency: run.maxConcurrency,
  })) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a whole number ≥ 1`);
  }

  const shardItems: number[] = [];
  for (let left = run.items; left > 0; left -= run.shardSize) shardItems.push(Math.min(run.shardSize, left));
  const shards = shardItems.length;
  const verdicts = run.items * run.models * run.strategies;

  const shardMs = shardItems.map(
    (n) =>
      Math.ceil((n * run.strategies * callsPerItem) / run.maxConcurrency) * run.modelLatencyMs +
      shardOverheadMs,
  );
  // CheckModels: each model's first question (its first item under the first strategy), models at once.
  const checkMs = Math.ceil(callsPerItem / run.maxConcurrency) * run.modelLatencyMs + shardOverheadMs;
  const evaluateMs = shardMs.reduce((sum, ms) => sum + Math.ceil(ms), Math.ceil(checkMs));
  // The check asks about the first item of the first shard under the first strategy; with one strategy
  // that leaves its shard nothing to ask about that item, so the shard does not read its image again.
  const firstShardKeys = (shardItems[0] ?? 0) * run.models * run.strategies;
  const imagesReadByShards = run.strategies === 1 ? run.items - 1 : run.items;

  const writeUnitsPer = (bytes: number) => Math.max(1, Math.ceil(bytes / 1024));
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
        invocations: 1 + shards, // CheckModels, then one per shard
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
    childTransitions: childTransitionsFor(shards),
    aws: {
      s3: {
        // plan: models config, dataset manifest, dataset shards; check: the run manifest, the first shard
        // and one image; map ItemReader: the run manifest; the shards: their shard files and the images
        // they still ask about; aggregate: the dataset manifest.
        get: 2 + Math.ceil(datasetRecords / DATASET_SHARD_ITEMS) + 3 + 1 + shards + imagesReadByShards + 1,
        // plan: the run's shards and manifest; ResultWriter: manifest.json and SUCCEEDED_0.json;
        // aggregate: one responses file per model × strategy, report.json and report.md.
        put: shards + 1 + 2 + run.models * run.strategies + 2,
        list: 0,
        other: 0,
      },
      dynamodb: {
        // plan: a consistent GetItem of the run (1); the check: one BatchGetItem key per verdict of the
        // first shard, and each shard: one per verdict of its own (eventually consistent, 0.5 each, found
        // or not); aggregate: the run (1) and a Query of the verdicts (0.5 per 4 KB read).
        readUnits:
          1 + (firstShardKeys + verdicts) * 0.5 + 1 + Math.ceil((verdicts * verdictBytes) / 4096) * 0.5,
        // plan: the run record; each verdict once (the check writes the verdicts of the questions it
        // asked, which the shards then skip); aggregate: the run record updated.
        writeUnits:
          writeUnitsPer(runRecordBytes) +
          verdicts * writeUnitsPer(verdictBytes) +
          writeUnitsPer(runRecordBytes),
        // plan: GetItem, PutItem; the check and the shards: BatchGetItem of 100 keys, a PutItem per
        // verdict; aggregate: GetItem, Query pages of 1 MB, UpdateItem.
        requests:
          2 +
          Math.ceil(firstShardKeys / 100) +
          shardItems.reduce((sum, n) => sum + Math.ceil((n * run.models * run.strategies) / 100), 0) +
          verdicts +
          2 +
          Math.max(1, Math.ceil((verdicts * verdictBytes) / 2 ** 20)),
      },
    },
    events: 1,
  };
  const notes = [
    `${shards} shard(s) of up to ${run.shardSize} items; a full shard takes ${Math.max(...shardMs) / 1000} s ` +
      `(${run.models} model(s) × ${run.strategies} strateg${run.strategies === 1 ? "y" : "ies"}, ` +
      `${run.modelLatencyMs} ms per call, ${run.maxConcurrency} calls at once per model, ` +
      `${shardOverheadMs} ms overhead); CheckModels, one more evaluate-shard invocation, ` +
      `takes ${checkMs / 1000} s.`,
    `Assumed: plan ${planMs} ms, aggregate ${aggregateMs} ms, verdicts of ${verdictBytes} bytes, no retries ` +
      "(each retry of a shard is one more invocation and one more state transition), " +
      "no free tier; not priced: CloudWatch Logs and EMF metrics, Secrets Manager key reads, and a " +
      "scheduled run's Scan of the runs table for its previous run (the usage meter counts that Scan).",
  ];
  const timeoutMs = PIPELINE_FUNCTIONS.evaluateShard.timeoutSeconds * 1000;
  if (Math.max(...shardMs) > timeoutMs) {
    notes.push(
      `A full shard needs more than the ${timeoutMs / 1000} s EvaluateShard timeout: each shard would stop ` +
        "short (ShardIncomplete) and be retried in its child execution, one more invocation and state " +
        "transition per retry (more than estimated); use a smaller shardSize.",
    );
  }
  return { ...estimateAwsCost(usage, prices), usage, notes };
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
