import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
} from "@aws-sdk/lib-dynamodb";
import { type Verdict, verdictSchema } from "../core/schemas.ts";
import { VERDICTS_TABLE_KEYS } from "../core/storage-layout.ts";
import { isConditionalCheckFailed } from "./dynamo-errors.ts";

/** Verdict persistence. One verdict per (run, model, strategy, item), never overwritten. */
export interface VerdictStore {
  /** Which of these verdict keys of the run already have a verdict. */
  existingKeys(runId: string, verdictKeys: readonly string[]): Promise<Set<string>>;
  /** Writes the verdict unless one exists; returns false when it already existed (a retry or a race). */
  putIfAbsent(verdict: Verdict): Promise<boolean>;
  /** Every verdict of a run, validated. */
  listRun(runId: string): Promise<Verdict[]>;
}

const { partitionKey: PK, sortKey: SK } = VERDICTS_TABLE_KEYS;
const BATCH_GET_LIMIT = 100;

export class DynamoVerdictStore implements VerdictStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  async existingKeys(runId: string, verdictKeys: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
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
                ProjectionExpression: "#sk",
                ExpressionAttributeNames: { "#sk": SK },
              },
            },
          }),
        );
        for (const item of out.Responses?.[this.tableName] ?? []) found.add(String(item[SK]));
        keys = out.UnprocessedKeys?.[this.tableName]?.Keys;
      }
    }
    return found;
  }

  async putIfAbsent(verdict: Verdict): Promise<boolean> {
    try {
      await this.client.send(
        new PutCommand({
          TableName: this.tableName,
          Item: verdict,
          ConditionExpression: "attribute_not_exists(#pk)",
          ExpressionAttributeNames: { "#pk": PK },
        }),
      );
      return true;
    } catch (error: unknown) {
      if (isConditionalCheckFailed(error)) return false;
      throw error;
    }
  }

  async listRun(runId: string): Promise<Verdict[]> {
    const verdicts: Verdict[] = [];
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
        const parsed = verdictSchema.safeParse(item);
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
