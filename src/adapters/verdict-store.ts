import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
} from "@aws-sdk/lib-dynamodb";
import {
  type BenchmarkVerdict,
  benchmarkVerdictSchema,
  type JudgeVerdict,
  judgeVerdictSchema,
  type StoredVerdict,
  type Verdict,
  verdictSchema,
} from "../core/schemas.ts";
import { VERDICTS_TABLE_KEYS } from "../deployment/storage-layout.ts";
import { isConditionalCheckFailed } from "./dynamo-errors.ts";

/** What a stored verdict says about whether its item must be asked again. */
export interface ExistingVerdict {
  status: Verdict["status"];
  /** Evaluations of the item so far (1 for a verdict written before this was recorded). */
  runAttempts: number;
  /** Model calls made for it so far. */
  attempts: number;
  /** When it was written (ISO 8601). */
  createdAt: string;
}

/**
 * Verdict persistence: one verdict per (run, model, strategy, item). An answer is never overwritten; an
 * error verdict may be replaced by the outcome of a later attempt (a resume), once.
 */
export interface VerdictStore {
  /** The verdicts these keys of the run already have (status and attempt counts), by key. */
  existing(runId: string, verdictKeys: readonly string[]): Promise<Map<string, ExistingVerdict>>;
  /**
   * Writes the verdict. With `replacing` null, only if the key has none; with the error verdict it replaces,
   * only if that error verdict is still there unchanged (same runAttempts), so two racing attempts leave
   * exactly one verdict. Returns false when another attempt wrote first.
   */
  put(verdict: StoredVerdict, replacing: ExistingVerdict | null): Promise<boolean>;
  /** Every verdict of a run, validated. */
  listRun(runId: string): Promise<Verdict[]>;
  /**
   * Every verdict of a plug-in benchmark's run (MOSSBench, VLGuard). Optional so that stores made for
   * MMSafeAware runs alone (test doubles) need not have it; the DynamoDB store has it.
   */
  listBenchmarkRun?(runId: string): Promise<{ verdicts: BenchmarkVerdict[]; judgements: JudgeVerdict[] }>;
  /**
   * The stored responses of these keys' answered verdicts (what a judge reads), by key; error verdicts and
   * keys without a verdict are absent. Optional like {@link listBenchmarkRun}.
   */
  answers?(runId: string, verdictKeys: readonly string[]): Promise<Map<string, string>>;
}

const { partitionKey: PK, sortKey: SK } = VERDICTS_TABLE_KEYS;

const positiveInt = (value: unknown): number =>
  typeof value === "number" && Number.isInteger(value) && value >= 1 ? value : 1;
const BATCH_GET_LIMIT = 100;

export class DynamoVerdictStore implements VerdictStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async existing(runId: string, verdictKeys: readonly string[]): Promise<Map<string, ExistingVerdict>> {
    const found = new Map<string, ExistingVerdict>();
    const items = await this.batchGet(runId, verdictKeys, "#sk, #status, runAttempts, attempts, createdAt");
    for (const item of items) {
      found.set(String(item[SK]), {
        status: item.status === "error" ? "error" : "answered",
        runAttempts: positiveInt(item.runAttempts),
        attempts: positiveInt(item.attempts),
        createdAt: typeof item.createdAt === "string" ? item.createdAt : "",
      });
    }
    return found;
  }

  async answers(runId: string, verdictKeys: readonly string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const item of await this.batchGet(runId, verdictKeys, "#sk, #status, #response")) {
      if (item.status === "answered" && typeof item.response === "string")
        found.set(String(item[SK]), item.response);
    }
    return found;
  }

  /** The items of these keys (projected), in batches, unprocessed keys retried with backoff. */
  private async batchGet(
    runId: string,
    verdictKeys: readonly string[],
    projection: string,
  ): Promise<Record<string, unknown>[]> {
    const found: Record<string, unknown>[] = [];
    for (let i = 0; i < verdictKeys.length; i += BATCH_GET_LIMIT) {
      let keys: Record<string, unknown>[] | undefined = verdictKeys
        .slice(i, i + BATCH_GET_LIMIT)
        .map((k) => ({ [PK]: runId, [SK]: k }));
      for (let attempt = 0; keys && keys.length > 0; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
        const out: BatchGetCommandOutput = await this.client.send(
          new BatchGetCommand({
            RequestItems: {
              [this.tableName]: {
                Keys: keys,
                ProjectionExpression: projection,
                ExpressionAttributeNames: {
                  "#sk": SK,
                  "#status": "status",
                  ...(projection.includes("#response") ? { "#response": "response" } : {}),
                },
              },
            },
          }),
        );
        found.push(...(out.Responses?.[this.tableName] ?? []));
        keys = out.UnprocessedKeys?.[this.tableName]?.Keys;
      }
    }
    return found;
  }

  async put(verdict: StoredVerdict, replacing: ExistingVerdict | null): Promise<boolean> {
    try {
      await this.client.send(
        new PutCommand(
          replacing === null
            ? {
                TableName: this.tableName,
                Item: verdict,
                ConditionExpression: "attribute_not_exists(#pk)",
                ExpressionAttributeNames: { "#pk": PK },
              }
            : {
                TableName: this.tableName,
                Item: verdict,
                // Verdicts written before runAttempts was recorded count as attempt 1.
                ConditionExpression:
                  replacing.runAttempts === 1
                    ? "#status = :error AND (runAttempts = :previous OR attribute_not_exists(runAttempts))"
                    : "#status = :error AND runAttempts = :previous",
                ExpressionAttributeNames: { "#status": "status" },
                ExpressionAttributeValues: { ":error": "error", ":previous": replacing.runAttempts },
              },
        ),
      );
      return true;
    } catch (error: unknown) {
      if (isConditionalCheckFailed(error)) return false;
      throw error;
    }
  }

  listRun(runId: string): Promise<Verdict[]> {
    return this.query(runId, (item) => verdictSchema.safeParse(item));
  }

  async listBenchmarkRun(
    runId: string,
  ): Promise<{ verdicts: BenchmarkVerdict[]; judgements: JudgeVerdict[] }> {
    const all = await this.query<BenchmarkVerdict | JudgeVerdict>(runId, (item) =>
      "judge" in item ? judgeVerdictSchema.safeParse(item) : benchmarkVerdictSchema.safeParse(item),
    );
    const verdicts: BenchmarkVerdict[] = [];
    const judgements: JudgeVerdict[] = [];
    for (const v of all) {
      if ("judge" in v) judgements.push(v);
      else verdicts.push(v);
    }
    return { verdicts, judgements };
  }

  /** Every verdict of the run, each parsed by `parse`; one that does not fit names itself and the run. */
  private async query<T>(
    runId: string,
    parse: (item: Record<string, unknown>) => { success: true; data: T } | { success: false; error: Error },
  ): Promise<T[]> {
    const verdicts: T[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const out = await this.client.send(
        new QueryCommand({
          TableName: this.tableName,
          KeyConditionExpression: "#pk = :run",
          ExpressionAttributeNames: { "#pk": PK },
          ExpressionAttributeValues: { ":run": runId },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of out.Items ?? []) {
        const parsed = parse(item);
        if (!parsed.success) {
          throw new Error(
            `verdict ${String(item[SK])} of run ${runId} does not match the verdict schema: ${parsed.error.message}`,
          );
        }
        verdicts.push(parsed.data);
      }
      startKey = out.LastEvaluatedKey;
    } while (startKey);
    return verdicts;
  }
}
