/**
 * Run-wide model budgets: a model's `maxConcurrency`, `requestsPerMinute` and `tokensPerMinute` hold for the
 * whole run, across every shard and every process (Lambda containers on AWS, shard processes locally).
 *
 * - Concurrency: each HTTP attempt holds one of the model's `maxConcurrency` slots, leased in the
 *   {@link BudgetStore} for {@link LEASE_MS} and renewed every third of that while held. A slot freed by a
 *   process goes at once to a call of the same process waiting for one, else back to the store. The slots
 *   of a process that died come free when their lease expires (at most {@link LEASE_MS} later).
 * - Requests per minute: every attempt is counted; attempt n may start at t0 + (n − 1) × 60 000 / rpm, so
 *   the attempts of every process are spaced evenly at the rate (see adapters/budget-store.ts).
 * - Tokens per minute: the tokens each call used are counted after it; a new attempt waits until the tokens
 *   counted so far are paid for at the rate. The calls in flight can overshoot by their own tokens.
 *
 * After a pause (a count falling behind the clock), the count's start is moved up, so a pause never buys a
 * burst above the rate beyond {@link CATCH_UP_MS} of it.
 */
import { randomBytes } from "node:crypto";
import type { BudgetStore } from "../adapters/budget-store.ts";

/** A model's limits that hold for the whole run. */
export interface BudgetLimits {
  maxConcurrency: number;
  requestsPerMinute?: number | undefined;
  tokensPerMinute?: number | undefined;
}

/** Permission for one attempt; `done` once it ended, with the tokens it used (null: unknown). */
export interface CallPermit {
  done(tokens: number | null): void;
}

/** How a call asks for a permit; what the model client is given. */
export interface CallBudgets {
  /**
   * Waits for a slot and the attempt's turn under the limits of `scope` (a run × model). Resolves null when
   * `stopped()` became true while waiting (no attempt may start).
   */
  acquire(scope: string, limits: BudgetLimits, stopped: () => boolean): Promise<CallPermit | null>;
}

/** How long a slot lease lasts without renewal: the longest a dead process's slots stay taken. */
export const LEASE_MS = 30_000;
/** How far behind the clock a count may fall before its start is moved up. */
export const CATCH_UP_MS = 1_000;
/** Waits between tries when every slot is held. */
const POLL_MIN_MS = 25;
const POLL_MAX_MS = 500;
/** How often a process waiting for a slot looks for expired leases (a read of the slots item). */
const RECLAIM_EVERY_MS = 5_000;

interface Waiter {
  resolve: (leaseId: string | null) => void;
  stopped: () => boolean;
}

/** One scope's slots held by this process. */
class ScopeSlots {
  readonly busy = new Set<string>();
  /** Leases the store no longer holds for us (reclaimed while we could not renew): not reused. */
  readonly lost = new Set<string>();
  readonly waiters: Waiter[] = [];
  taking = false;
  max = 1;
  /** When this process last looked for expired leases. */
  reclaimedAt = 0;
}

export interface RunBudgetsOptions {
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** Told when the store fails (it is retried; calls wait meanwhile). */
  onStoreError?: (error: unknown) => void;
}

/** {@link CallBudgets} over a {@link BudgetStore}; one per process, shared by its shards. */
export class RunBudgets implements CallBudgets {
  private readonly scopes = new Map<string, ScopeSlots>();
  private readonly pending = new Set<Promise<unknown>>();
  private heartbeat: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly onStoreError: (error: unknown) => void;

  constructor(
    private readonly store: BudgetStore,
    options: RunBudgetsOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.onStoreError = options.onStoreError ?? (() => undefined);
  }

  async acquire(scope: string, limits: BudgetLimits, stopped: () => boolean): Promise<CallPermit | null> {
    const slots = this.slotsOf(scope);
    slots.max = limits.maxConcurrency;
    const leaseId = await new Promise<string | null>((resolve) => {
      slots.waiters.push({ resolve, stopped });
      this.pump(scope, slots);
    });
    if (leaseId === null) return null;
    try {
      const ready = await this.waitForTurn(scope, limits, stopped);
      if (!ready) {
        this.release(scope, slots, leaseId);
        return null;
      }
    } catch (error: unknown) {
      this.release(scope, slots, leaseId);
      throw error;
    }
    let ended = false;
    return {
      done: (tokens) => {
        if (ended) return;
        ended = true;
        if (limits.tokensPerMinute === undefined || tokens === null || tokens <= 0) {
          this.release(scope, slots, leaseId);
          return;
        }
        // The slot goes on only once the tokens are counted: the next call on it sees them.
        this.track(
          this.store
            .countTokens(scope, tokens, this.now())
            .finally(() => this.release(scope, slots, leaseId)),
        );
      },
    };
  }

  /** Waits for the writes still under way (slot releases, token counts); for the end of an invocation. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private slotsOf(scope: string): ScopeSlots {
    let slots = this.scopes.get(scope);
    if (!slots) {
      slots = new ScopeSlots();
      this.scopes.set(scope, slots);
    }
    return slots;
  }

  /** Hands a freed slot to a waiting call of this process, else gives it back to the store. */
  private release(scope: string, slots: ScopeSlots, leaseId: string): void {
    slots.busy.delete(leaseId);
    if (slots.lost.delete(leaseId)) {
      this.stopHeartbeatIfIdle();
      return;
    }
    for (let waiter = slots.waiters.shift(); waiter; waiter = slots.waiters.shift()) {
      if (waiter.stopped()) {
        waiter.resolve(null);
        continue;
      }
      slots.busy.add(leaseId);
      waiter.resolve(leaseId);
      return;
    }
    this.track(this.store.releaseSlot(scope, leaseId));
    this.stopHeartbeatIfIdle();
  }

  /** Takes slots from the store for the waiting calls, one taker per scope and process. */
  private pump(scope: string, slots: ScopeSlots): void {
    if (slots.taking) return;
    slots.taking = true;
    const take = async () => {
      let pause = POLL_MIN_MS;
      for (;;) {
        dropStopped(slots.waiters);
        if (slots.waiters.length === 0) return;
        const leaseId = randomBytes(9).toString("base64url");
        let taken = false;
        try {
          taken = await this.store.takeSlot(scope, leaseId, this.now() + LEASE_MS, slots.max);
          // Every slot held: some may belong to a process that died. Looked for now and then, not each try.
          if (!taken && this.now() - slots.reclaimedAt >= RECLAIM_EVERY_MS) {
            slots.reclaimedAt = this.now();
            if ((await this.store.reclaimExpired(scope, this.now())) > 0) continue;
          }
        } catch (error: unknown) {
          this.onStoreError(error);
        }
        if (!taken) {
          await this.sleep(pause * (0.5 + Math.random()));
          pause = Math.min(POLL_MAX_MS, pause * 2);
          continue;
        }
        pause = POLL_MIN_MS;
        slots.busy.add(leaseId);
        this.startHeartbeat();
        // The waiter may have stopped meanwhile: the slot then goes to the next, or back.
        const waiter = slots.waiters.shift();
        if (waiter && !waiter.stopped()) waiter.resolve(leaseId);
        else {
          waiter?.resolve(null);
          this.release(scope, slots, leaseId);
        }
      }
    };
    void take().finally(() => {
      slots.taking = false;
      // A call may have started waiting as the taker ended.
      if (slots.waiters.length > 0) this.pump(scope, slots);
    });
  }

  /** Waits until the attempt may start under the requests and tokens per minute; false when stopped. */
  private async waitForTurn(scope: string, limits: BudgetLimits, stopped: () => boolean): Promise<boolean> {
    const { requestsPerMinute: rpm, tokensPerMinute: tpm } = limits;
    if (rpm === undefined && tpm === undefined) return true;
    const now = this.now();
    const pace = await this.store.countRequest(scope, now);
    let turn = now;
    if (rpm !== undefined) {
      const interval = 60_000 / rpm;
      const mine = pace.t0 + (pace.n - 1) * interval;
      if (mine < now - CATCH_UP_MS)
        this.track(this.store.rebase(scope, "t0", pace.t0, now - (pace.n - 1) * interval));
      else turn = Math.max(turn, mine);
    }
    if (tpm !== undefined) {
      const paidAt = pace.t0t + (pace.tok * 60_000) / tpm;
      if (paidAt < now - CATCH_UP_MS)
        this.track(this.store.rebase(scope, "t0t", pace.t0t, now - (pace.tok * 60_000) / tpm));
      else turn = Math.max(turn, paidAt);
    }
    // Wait in steps, so a stop is noticed.
    for (let left = turn - this.now(); left > 0; left = turn - this.now()) {
      if (stopped()) return false;
      await this.sleep(Math.min(left, 1_000));
    }
    return !stopped();
  }

  private track(write: Promise<unknown>): void {
    const tracked = write.catch((error: unknown) => this.onStoreError(error));
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(() => this.renew(), LEASE_MS / 3);
    // A process with nothing else to do may end; its leases then expire.
    this.heartbeat.unref();
  }

  private stopHeartbeatIfIdle(): void {
    if (!this.heartbeat) return;
    for (const slots of this.scopes.values()) if (slots.busy.size > 0) return;
    clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  private renew(): void {
    for (const [scope, slots] of this.scopes) {
      const held = [...slots.busy].filter((id) => !slots.lost.has(id));
      if (held.length === 0) continue;
      this.track(
        this.store.renewSlots(scope, held, this.now() + LEASE_MS).then((lost) => {
          for (const id of lost) if (slots.busy.has(id)) slots.lost.add(id);
        }),
      );
    }
  }
}

function dropStopped(waiters: Waiter[]): void {
  for (let i = waiters.length - 1; i >= 0; i--) {
    const waiter = waiters[i];
    if (waiter?.stopped()) {
      waiters.splice(i, 1);
      waiter.resolve(null);
    }
  }
}
