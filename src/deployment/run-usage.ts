import { type AwsUsage, childTransitionsFor, type RunUsage, standardTransitionsFor } from "./cost.ts";
import { PIPELINE_FUNCTIONS } from "./storage-layout.ts";

export type PipelineFunctionName = keyof typeof PIPELINE_FUNCTIONS;

/**
 * What a run used, as counters on its run record: each handler invocation adds its billed duration and the
 * S3 and DynamoDB requests it made. Flat keys, so one DynamoDB update adds them all.
 */
export const USAGE_COUNTERS = [
  "planInvocations",
  "planMs",
  "evaluateShardInvocations",
  "evaluateShardMs",
  "aggregateInvocations",
  "aggregateMs",
  "s3Get",
  "s3Put",
  "s3List",
  "s3Other",
  "dynamoReadUnits",
  "dynamoWriteUnits",
  "dynamoRequests",
] as const;
export type UsageCounter = (typeof USAGE_COUNTERS)[number];
export type UsageCounters = Record<UsageCounter, number>;

export const zeroCounters = (): UsageCounters =>
  Object.fromEntries(USAGE_COUNTERS.map((k) => [k, 0])) as UsageCounters;

/** Lambda bills duration rounded up to the millisecond. */
const billed = (ms: number) => Math.ceil(Math.max(0, ms));

/** The counters one invocation adds. */
export function invocationCounters(
  fn: PipelineFunctionName,
  durationMs: number,
  aws: AwsUsage,
): UsageCounters {
  const counters = zeroCounters();
  counters[`${fn}Invocations`] = 1;
  counters[`${fn}Ms`] = billed(durationMs);
  counters.s3Get = aws.s3.get;
  counters.s3Put = aws.s3.put;
  counters.s3List = aws.s3.list;
  counters.s3Other = aws.s3.other;
  counters.dynamoReadUnits = aws.dynamodb.readUnits;
  counters.dynamoWriteUnits = aws.dynamodb.writeUnits;
  counters.dynamoRequests = aws.dynamodb.requests;
  return counters;
}

export function addCounters(a: Partial<UsageCounters>, b: Partial<UsageCounters>): UsageCounters {
  const sum = zeroCounters();
  for (const k of USAGE_COUNTERS) sum[k] = (a[k] ?? 0) + (b[k] ?? 0);
  return sum;
}

/**
 * The run's usage for the AWS estimate of a finished run: Lambda GB-seconds from measured durations and
 * configured memory, the workflow's state transitions, the transitions of its STANDARD shard children, the
 * S3 and DynamoDB requests counted, and the one completion event.
 *
 * The evaluate-shard counters hold both the CheckModels invocations and the shards' attempts. Each
 * execution of the run invokes Plan once and then CheckModels once, so the Plan invocations stand for the
 * checks (one too many for an execution that failed in Plan, which made no check); every other
 * evaluate-shard invocation is one attempt of EvaluateShard in a child, one transition there
 * (`childTransitionsFor`), so the children's retries are counted. Never fewer than one per shard: an
 * attempt the Lambda runtime cut short records no counters.
 */
export function runUsageFromCounters(counters: Partial<UsageCounters>, shards: number): RunUsage {
  const c = addCounters(zeroCounters(), counters);
  const lambda = (["plan", "evaluateShard", "aggregate"] as const).map((fn) => ({
    function: fn,
    memoryMb: PIPELINE_FUNCTIONS[fn].memoryMb,
    invocations: c[`${fn}Invocations`],
    billedMs: c[`${fn}Ms`],
  }));
  const shardAttempts = c.evaluateShardInvocations - c.planInvocations;
  const retries = Math.max(0, shardAttempts - shards);
  return {
    lambda,
    standardTransitions: standardTransitionsFor(shards, "succeeded"),
    childTransitions: childTransitionsFor(shards, retries),
    aws: {
      s3: { get: c.s3Get, put: c.s3Put, list: c.s3List, other: c.s3Other },
      dynamodb: { readUnits: c.dynamoReadUnits, writeUnits: c.dynamoWriteUnits, requests: c.dynamoRequests },
    },
    events: 1,
  };
}
