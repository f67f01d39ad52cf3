import { type AwsUsage, type RunUsage, standardTransitionsFor } from "./cost.ts";
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

/** Express child executions cost a little beyond the Lambda they wait for (state entry, invoke overhead). */
const EXPRESS_OVERHEAD_MS = 100;
const roundUpTo100 = (ms: number) => Math.ceil(ms / 100) * 100;

/**
 * The run's usage for the AWS estimate of a finished run: Lambda GB-seconds from measured durations and
 * configured memory, the Standard workflow's transitions, one Express child per shard invocation (its
 * duration that of the shard Lambda plus overhead), the S3 and DynamoDB requests counted, and the one
 * completion event.
 */
export function runUsageFromCounters(counters: Partial<UsageCounters>, shards: number): RunUsage {
  const c = addCounters(zeroCounters(), counters);
  const lambda = (["plan", "evaluateShard", "aggregate"] as const).map((fn) => ({
    function: fn,
    memoryMb: PIPELINE_FUNCTIONS[fn].memoryMb,
    invocations: c[`${fn}Invocations`],
    billedMs: c[`${fn}Ms`],
  }));
  const executions = c.evaluateShardInvocations;
  return {
    lambda,
    standardTransitions: standardTransitionsFor(shards, "succeeded"),
    express: {
      executions,
      billedMs: executions === 0 ? 0 : roundUpTo100(c.evaluateShardMs + EXPRESS_OVERHEAD_MS * executions),
      memoryMb: 64,
    },
    aws: {
      s3: { get: c.s3Get, put: c.s3Put, list: c.s3List, other: c.s3Other },
      dynamodb: { readUnits: c.dynamoReadUnits, writeUnits: c.dynamoWriteUnits, requests: c.dynamoRequests },
    },
    events: 1,
  };
}
