/**
 * Where run-wide model budgets are kept: a DynamoDB table shared by every shard's Lambda (and by the local
 * runner's shard processes), or memory, when one process runs the whole run.
 *
 * Two kinds of item, both keyed by `pk`:
 * - slots (`slots#<scope>`): `inUse`, the number of call slots held, and `leases`, a map of lease id →
 *   expiry (ms since the epoch). A slot is taken only while `inUse < max`; a lease that was not renewed
 *   before its expiry (its holder died) is reclaimed by whoever next finds the slots full.
 * - pacing (`pace#<scope>`): `n`, requests counted, from `t0`; `tok`, tokens counted, from `t0t`. Request
 *   number n may start at t0 + (n − 1) × interval: the requests of every process are spaced evenly at the
 *   budget's rate.
 *
 * Every item has a `ttl` (epoch seconds) so the table cleans itself after a run.
 */
import {
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  UpdateCommand,
  type UpdateCommandInput,
} from "@aws-sdk/lib-dynamodb";
import { isConditionalCheckFailed } from "./dynamo-errors.ts";

/** A pacing item's counters, as one increment left them. */
export interface PaceState {
  /** Requests counted so far, this one included. */
  n: number;
  /** When request 1 was (or would have been) allowed, ms since the epoch. */
  t0: number;
  /** Tokens counted so far. */
  tok: number;
  /** When the token count started, ms since the epoch. */
  t0t: number;
}

export interface BudgetStore {
  /** Takes one of `max` slots under `leaseId`, valid until `expiresAt`; false when all are held. */
  takeSlot(scope: string, leaseId: string, expiresAt: number, max: number): Promise<boolean>;
  /** Extends held leases to `expiresAt`; returns the ids that were no longer held (reclaimed). */
  renewSlots(scope: string, leaseIds: readonly string[], expiresAt: number): Promise<string[]>;
  /** Gives a slot back (nothing happens when the lease is no longer held). */
  releaseSlot(scope: string, leaseId: string): Promise<void>;
  /** Frees the slots of leases that expired before `now`; returns how many were freed. */
  reclaimExpired(scope: string, now: number): Promise<number>;
  /** Counts one request (and reads the token count); starts the count at `now` when there is none. */
  countRequest(scope: string, now: number): Promise<PaceState>;
  /** Adds the tokens a call used. */
  countTokens(scope: string, tokens: number, now: number): Promise<void>;
  /**
   * Moves the start of a count that fell behind (no demand for a while) so that it does not allow a burst:
   * `field` t0 (requests) or t0t (tokens) becomes `to`, only if it still is `from`.
   */
  rebase(scope: string, field: "t0" | "t0t", from: number, to: number): Promise<void>;
}

/** How long budget items outlive their last use. */
const TTL_SECONDS = 24 * 3600;
const ttlAt = (now: number) => Math.floor(now / 1000) + TTL_SECONDS;

const slotsKey = (scope: string) => ({ pk: `slots#${scope}` });
const paceKey = (scope: string) => ({ pk: `pace#${scope}` });

/** Lease ids go into a map's keys; only these characters, so no expression can be built from them. */
const LEASE_ID = /^[A-Za-z0-9_-]{1,64}$/;
function checkLeaseId(id: string): string {
  if (!LEASE_ID.test(id)) throw new Error(`budget lease id ${JSON.stringify(id)} has unexpected characters`);
  return id;
}

/** The DynamoDB table created by the stack (`BudgetsTable`), or the local runner's embedded one. */
export class DynamoBudgetStore implements BudgetStore {
  constructor(
    private readonly client: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  /** A conditional update of one item; false when its condition did not hold. */
  private async updateIf(
    key: Record<string, string>,
    input: Omit<UpdateCommandInput, "TableName" | "Key">,
  ): Promise<boolean> {
    try {
      await this.client.send(new UpdateCommand({ TableName: this.table, Key: key, ...input }));
      return true;
    } catch (error: unknown) {
      if (isConditionalCheckFailed(error)) return false;
      throw error;
    }
  }

  async takeSlot(scope: string, leaseId: string, expiresAt: number, max: number): Promise<boolean> {
    for (let created = false; ; created = true) {
      const taken = await this.updateIf(slotsKey(scope), {
        UpdateExpression: "SET leases.#id = :exp, #ttl = :ttl ADD inUse :one",
        ConditionExpression: "attribute_exists(leases) AND inUse < :max",
        ExpressionAttributeNames: { "#id": checkLeaseId(leaseId), "#ttl": "ttl" },
        ExpressionAttributeValues: { ":exp": expiresAt, ":one": 1, ":max": max, ":ttl": ttlAt(expiresAt) },
      });
      if (taken) return true;
      // Full, or not there yet: the first taker creates it (once; a racing creator is as good).
      if (created) return false;
      try {
        await this.client.send(
          new PutCommand({
            TableName: this.table,
            Item: { ...slotsKey(scope), inUse: 0, leases: {}, ttl: ttlAt(expiresAt) },
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        );
      } catch (error: unknown) {
        if (!isConditionalCheckFailed(error)) throw error;
        return false;
      }
    }
  }

  async renewSlots(scope: string, leaseIds: readonly string[], expiresAt: number): Promise<string[]> {
    if (leaseIds.length === 0) return [];
    const names: Record<string, string> = { "#ttl": "ttl" };
    leaseIds.forEach((id, i) => {
      names[`#l${i}`] = checkLeaseId(id);
    });
    const all = await this.updateIf(slotsKey(scope), {
      UpdateExpression: `SET ${leaseIds.map((_, i) => `leases.#l${i} = :exp`).join(", ")}, #ttl = :ttl`,
      ConditionExpression: leaseIds.map((_, i) => `attribute_exists(leases.#l${i})`).join(" AND "),
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: { ":exp": expiresAt, ":ttl": ttlAt(expiresAt) },
    });
    if (all) return [];
    // Some lease was reclaimed: renew the others one by one.
    const lost: string[] = [];
    for (const id of leaseIds) {
      const renewed = await this.updateIf(slotsKey(scope), {
        UpdateExpression: "SET leases.#id = :exp",
        ConditionExpression: "attribute_exists(leases.#id)",
        ExpressionAttributeNames: { "#id": id },
        ExpressionAttributeValues: { ":exp": expiresAt },
      });
      if (!renewed) lost.push(id);
    }
    return lost;
  }

  async releaseSlot(scope: string, leaseId: string): Promise<void> {
    // Refused when already reclaimed: whoever reclaimed the lease freed its slot.
    await this.updateIf(slotsKey(scope), {
      UpdateExpression: "REMOVE leases.#id ADD inUse :minus",
      ConditionExpression: "attribute_exists(leases.#id)",
      ExpressionAttributeNames: { "#id": checkLeaseId(leaseId) },
      ExpressionAttributeValues: { ":minus": -1 },
    });
  }

  async reclaimExpired(scope: string, now: number): Promise<number> {
    const out = await this.client.send(
      new GetCommand({ TableName: this.table, Key: slotsKey(scope), ConsistentRead: true }),
    );
    const leases = (out.Item?.leases ?? {}) as Record<string, unknown>;
    let freed = 0;
    for (const [id, expiresAt] of Object.entries(leases)) {
      if (typeof expiresAt !== "number" || expiresAt >= now || !LEASE_ID.test(id)) continue;
      const reclaimed = await this.updateIf(slotsKey(scope), {
        UpdateExpression: "REMOVE leases.#id ADD inUse :minus",
        // Only the expiry seen: a lease renewed meanwhile is alive.
        ConditionExpression: "leases.#id = :exp",
        ExpressionAttributeNames: { "#id": id },
        ExpressionAttributeValues: { ":exp": expiresAt, ":minus": -1 },
      });
      if (reclaimed) freed++;
    }
    return freed;
  }

  async countRequest(scope: string, now: number): Promise<PaceState> {
    const out = await this.client.send(
      new UpdateCommand({
        TableName: this.table,
        Key: paceKey(scope),
        UpdateExpression:
          "ADD n :one SET t0 = if_not_exists(t0, :now), t0t = if_not_exists(t0t, :now), tok = if_not_exists(tok, :zero), #ttl = :ttl",
        ExpressionAttributeNames: { "#ttl": "ttl" },
        ExpressionAttributeValues: { ":one": 1, ":now": now, ":zero": 0, ":ttl": ttlAt(now) },
        ReturnValues: "ALL_NEW",
      }),
    );
    return paceStateOf(out.Attributes, scope);
  }

  async countTokens(scope: string, tokens: number, now: number): Promise<void> {
    await this.client.send(
      new UpdateCommand({
        TableName: this.table,
        Key: paceKey(scope),
        UpdateExpression: "ADD tok :tokens SET t0t = if_not_exists(t0t, :now), #ttl = :ttl",
        ExpressionAttributeNames: { "#ttl": "ttl" },
        ExpressionAttributeValues: { ":tokens": tokens, ":now": now, ":ttl": ttlAt(now) },
      }),
    );
  }

  async rebase(scope: string, field: "t0" | "t0t", from: number, to: number): Promise<void> {
    // Refused when another process moved it first: as good.
    await this.updateIf(paceKey(scope), {
      UpdateExpression: "SET #f = :to",
      ConditionExpression: "#f = :from",
      ExpressionAttributeNames: { "#f": field },
      ExpressionAttributeValues: { ":to": to, ":from": from },
    });
  }
}

function paceStateOf(item: Record<string, unknown> | undefined, scope: string): PaceState {
  const { n, t0, tok, t0t } = item ?? {};
  if (typeof n !== "number" || typeof t0 !== "number" || typeof tok !== "number" || typeof t0t !== "number")
    throw new Error(`budget item pace#${scope} is malformed: ${JSON.stringify(item)}`);
  return { n, t0, tok, t0t };
}

/** The same items in memory: one process holds the whole run (the local runner's default). */
export class MemoryBudgetStore implements BudgetStore {
  private readonly slots = new Map<string, Map<string, number>>();
  private readonly paces = new Map<string, PaceState>();

  private leases(scope: string): Map<string, number> {
    let leases = this.slots.get(scope);
    if (!leases) {
      leases = new Map();
      this.slots.set(scope, leases);
    }
    return leases;
  }

  async takeSlot(scope: string, leaseId: string, expiresAt: number, max: number): Promise<boolean> {
    const leases = this.leases(scope);
    if (leases.size >= max) return false;
    leases.set(leaseId, expiresAt);
    return true;
  }

  async renewSlots(scope: string, leaseIds: readonly string[], expiresAt: number): Promise<string[]> {
    const leases = this.leases(scope);
    const lost: string[] = [];
    for (const id of leaseIds) {
      if (leases.has(id)) leases.set(id, expiresAt);
      else lost.push(id);
    }
    return lost;
  }

  async releaseSlot(scope: string, leaseId: string): Promise<void> {
    this.leases(scope).delete(leaseId);
  }

  async reclaimExpired(scope: string, now: number): Promise<number> {
    const leases = this.leases(scope);
    let freed = 0;
    for (const [id, expiresAt] of leases)
      if (expiresAt < now) {
        leases.delete(id);
        freed++;
      }
    return freed;
  }

  async countRequest(scope: string, now: number): Promise<PaceState> {
    const pace = this.paces.get(scope) ?? { n: 0, t0: now, tok: 0, t0t: now };
    pace.n++;
    this.paces.set(scope, pace);
    return { ...pace };
  }

  async countTokens(scope: string, tokens: number, now: number): Promise<void> {
    const pace = this.paces.get(scope) ?? { n: 0, t0: now, tok: 0, t0t: now };
    pace.tok += tokens;
    this.paces.set(scope, pace);
  }

  async rebase(scope: string, field: "t0" | "t0t", from: number, to: number): Promise<void> {
    const pace = this.paces.get(scope);
    if (pace && pace[field] === from) pace[field] = to;
  }
}
