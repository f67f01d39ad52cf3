import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
  UpdateCommand,
} from "@aws-sdk/lib-dynamodb";
import { z } from "zod";
import type { Headline } from "../benchmarks/mmsafeaware/report.ts";
import { RUNNABLE_BENCHMARKS } from "../benchmarks/names.ts";
import type { BenchmarkHeadline } from "../core/column-metrics.ts";
import { datasetProvenanceSchema } from "../core/provenance.ts";
import { executionInputSchema, modelConfigSchema, STRATEGIES } from "../core/schemas.ts";
import { vcdOptionsSchema } from "../core/strategies.ts";
import { USAGE_COUNTERS, type UsageCounters } from "../deployment/run-usage.ts";
import { RUNS_TABLE_KEYS } from "../deployment/storage-layout.ts";
import { isConditionalCheckFailed } from "./dynamo-errors.ts";

/**
 * How a run stands. RUNNING while an execution works on it; SUCCEEDED once Aggregate wrote its report;
 * FAILED when a step failed (the workflow's MarkRunFailed); INTERRUPTED when the local runner was stopped
 * (Ctrl-C, SIGTERM). A FAILED or INTERRUPTED run resumes like a RUNNING one: the same runId again.
 */
export const RUN_STATUSES = ["RUNNING", "SUCCEEDED", "FAILED", "INTERRUPTED"] as const;

/** The local process working on a run (recorded by the local runner; absent on AWS). */
export const runOwnerSchema = z.object({ pid: z.number().int(), host: z.string() });
export type RunOwner = z.infer<typeof runOwnerSchema>;

/** The run record: one item per run in the runs table. */
export const runRecordSchema = z.object({
  runId: z.string(),
  status: z.enum(RUN_STATUSES),
  executionId: z.string(),
  /** Locally, the runner process that works on the run, so a listing can tell a live run from a dead one. */
  owner: runOwnerSchema.optional(),
  /** The benchmark evaluated; absent in runs planned before benchmarks were named (MMSafeAware). */
  benchmark: z.enum(RUNNABLE_BENCHMARKS).optional(),
  dataset: z.string(),
  datasetChecksum: z.string(),
  /** What the dataset was when the run was planned (absent in runs planned before it was recorded). */
  datasetProvenance: datasetProvenanceSchema.optional(),
  /** Hash of everything that decides which verdicts the run should have; a resume must match it. */
  configHash: z.string(),
  models: z.array(modelConfigSchema),
  strategies: z.array(z.enum(STRATEGIES)),
  /** The judge the report scores with (the latest: a rejudge replaces it); absent without a judge. */
  judge: modelConfigSchema.optional(),
  /** The no-judge scorer the run's input chose (your own dataset's `strict`); absent: the benchmark's default. */
  scorer: z.string().max(40).optional(),
  /** What the run used on AWS so far: handler durations and requests (see deployment/run-usage.ts). */
  usage: z.record(z.enum(USAGE_COUNTERS), z.number()).optional(),
  /** The schedule that started the run, if one did (regressions are checked against its previous run). */
  schedule: z.string().optional(),
  /** The vcd strategy's parameters, when the run evaluates it. */
  vcd: vcdOptionsSchema.optional(),
  categories: executionInputSchema.shape.categories,
  limit: executionInputSchema.shape.limit,
  /**
   * Under a limit: the runnable items per category the sample was drawn from (after the categories filter),
   * so the report can describe the sample without reading the dataset again. Absent without a limit, and in
   * runs planned before it was recorded.
   */
  eligible: z.record(z.string(), z.number().int().min(0)).optional(),
  plannedItems: z.number().int(),
  plannedVerdicts: z.number().int(),
  shards: z.number().int(),
  startedAt: z.string(),
  updatedAt: z.string(),
  attempts: z.number().int().min(1),
  finishedAt: z.string().optional(),
  headline: z.array(z.record(z.string(), z.unknown())).optional(),
  report: z.object({ json: z.string(), markdown: z.string() }).optional(),
  error: z.string().optional(),
  cause: z.string().optional(),
});
export type RunRecord = z.infer<typeof runRecordSchema>;

/** Raised when a run id is re-used with a different configuration (resuming must not mix two runs). */
export class RunConflictError extends Error {
  override readonly name = "RunConflictError";
}

export interface RunStore {
  get(runId: string): Promise<RunRecord | null>;
  /** Adds one invocation's usage to the run's counters (created by Plan). */
  addUsage(runId: string, counters: UsageCounters): Promise<void>;
  /** The latest SUCCEEDED run of a schedule that started before `startedBefore`, or null. */
  previousOfSchedule(schedule: string, startedBefore: string): Promise<RunRecord | null>;
  /**
   * Records a new run, or re-opens an existing one with the same configuration (a resume), whatever its
   * status: RUNNING (a crashed process), FAILED, INTERRUPTED or SUCCEEDED. The record is replaced as RUNNING,
   * without the previous error or owner.
   */
  startOrResume(record: RunRecord): Promise<RunRecord>;
  markSucceeded(
    runId: string,
    finishedAt: string,
    headline: readonly (Headline | BenchmarkHeadline)[],
    report: { json: string; markdown: string },
  ): Promise<void>;
}

const PK = RUNS_TABLE_KEYS.partitionKey;

export class DynamoRunStore implements RunStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async get(runId: string): Promise<RunRecord | null> {
    const out = await this.client.send(
      new GetCommand({ TableName: this.tableName, Key: { [PK]: runId }, ConsistentRead: true }),
    );
    return out.Item ? runRecordSchema.parse(out.Item) : null;
  }

  async addUsage(runId: string, counters: UsageCounters): Promise<void> {
    const keys = USAGE_COUNTERS.filter((k) => counters[k] !== 0);
    if (keys.length === 0) return;
    const names: Record<string, string> = { "#pk": PK, "#usage": "usage" };
    const values: Record<string, number> = { ":zero": 0 };
    const sets = keys.map((k, i) => {
      names[`#k${i}`] = k;
      values[`:v${i}`] = counters[k];
      return `#usage.#k${i} = if_not_exists(#usage.#k${i}, :zero) + :v${i}`;
    });
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { [PK]: runId },
        UpdateExpression: `SET ${sets.join(", ")}`,
        // Only runs Plan recorded (it creates the usage map); a stray invocation must not create a record.
        ConditionExpression: "attribute_exists(#pk) AND attribute_exists(#usage)",
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      }),
    );
  }

  async previousOfSchedule(schedule: string, startedBefore: string): Promise<RunRecord | null> {
    // A scan, not an index: the runs table holds one small item per run, and this runs once per run.
    let latest: RunRecord | null = null;
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.client.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: "#schedule = :schedule AND #status = :ok AND startedAt < :before",
          ExpressionAttributeNames: { "#schedule": "schedule", "#status": "status" },
          ExpressionAttributeValues: { ":schedule": schedule, ":ok": "SUCCEEDED", ":before": startedBefore },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        const parsed = runRecordSchema.safeParse(item);
        if (parsed.success && (!latest || parsed.data.startedAt > latest.startedAt)) latest = parsed.data;
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return latest;
  }

  async startOrResume(record: RunRecord): Promise<RunRecord> {
    const existing = await this.get(record.runId);
    if (existing && existing.configHash !== record.configHash) {
      throw new RunConflictError(
        `run ${record.runId} already exists with a different configuration (dataset, models, strategies or filters); ` +
          "resume it with the same input, or choose a new runId",
      );
    }
    // A resume keeps the run's start and what it has used so far.
    const next: RunRecord = existing
      ? {
          ...record,
          startedAt: existing.startedAt,
          attempts: existing.attempts + 1,
          usage: existing.usage ?? record.usage,
        }
      : record;
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: next,
          ConditionExpression: "attribute_not_exists(#pk) OR configHash = :hash",
          ExpressionAttributeNames: { "#pk": PK },
          ExpressionAttributeValues: { ":hash": record.configHash },
        }),
      );
    } catch (error: unknown) {
      if (isConditionalCheckFailed(error)) {
        throw new RunConflictError(
          `run ${record.runId} was created concurrently with a different configuration`,
          { cause: error },
        );
      }
      throw error;
    }
    return next;
  }

  /**
   * Names the local process that works on a RUNNING run (Plan's record does not know it). Returns false when
   * the run is not RUNNING (or not recorded).
   */
  async recordOwner(runId: string, owner: RunOwner): Promise<boolean> {
    return this.updateIfRunning(runId, "SET #owner = :owner", { "#owner": "owner" }, { ":owner": owner });
  }

  /**
   * Marks a RUNNING run INTERRUPTED (the local runner was stopped), with why in `error`/`cause`; its verdicts
   * stay, and the same runId resumes it. A run that already ended (SUCCEEDED, FAILED) is left as it is:
   * returns false then, or when there is no such run.
   */
  async markInterrupted(runId: string, at: string, cause: string): Promise<boolean> {
    return this.updateIfRunning(
      runId,
      "SET #status = :interrupted, updatedAt = :at, #error = :error, #cause = :cause",
      { "#error": "error", "#cause": "cause" },
      { ":interrupted": "INTERRUPTED", ":at": at, ":error": "Interrupted", ":cause": cause },
    );
  }

  private async updateIfRunning(
    runId: string,
    update: string,
    names: Record<string, string>,
    values: Record<string, unknown>,
  ): Promise<boolean> {
    try {
      await this.client.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { [PK]: runId },
          UpdateExpression: update,
          ConditionExpression: "attribute_exists(#pk) AND #status = :running",
          ExpressionAttributeNames: { "#pk": PK, "#status": "status", ...names },
          ExpressionAttributeValues: { ":running": "RUNNING", ...values },
        }),
      );
      return true;
    } catch (error: unknown) {
      if (isConditionalCheckFailed(error)) return false;
      throw error;
    }
  }

  async markSucceeded(
    runId: string,
    finishedAt: string,
    headline: readonly (Headline | BenchmarkHeadline)[],
    report: { json: string; markdown: string },
  ): Promise<void> {
    await this.client.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: { [PK]: runId },
        UpdateExpression:
          "SET #status = :ok, finishedAt = :at, updatedAt = :at, headline = :headline, #report = :report REMOVE #error, #cause",
        ConditionExpression: "attribute_exists(#pk)",
        ExpressionAttributeNames: {
          "#pk": PK,
          "#status": "status",
          "#report": "report",
          "#error": "error",
          "#cause": "cause",
        },
        ExpressionAttributeValues: {
          ":ok": "SUCCEEDED",
          ":at": finishedAt,
          ":headline": headline,
          ":report": report,
        },
      }),
    );
  }
}
