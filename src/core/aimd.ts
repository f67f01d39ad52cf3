/**
 * Adaptive concurrency for one model endpoint, AIMD as in TCP congestion control: every call that met no
 * rate limit adds 1/limit (about +1 per round of calls, "additive increase"); a call that met a 429 halves
 * the limit ("multiplicative decrease"), at most once per `cooldownMs` so a burst of 429s from calls that
 * were already in flight counts as one signal. The limit stays within [1, max] (max = the model's
 * configured maxConcurrency), and starts at max: a model that never rate-limits runs at full concurrency.
 */
export class AimdLimit {
  private value: number;
  private lastDecreaseMs = Number.NEGATIVE_INFINITY;
  /** Times the limit was halved. */
  decreases = 0;

  constructor(
    readonly max: number,
    private readonly cooldownMs = 1000,
  ) {
    if (!Number.isInteger(max) || max < 1)
      throw new RangeError(`max concurrency must be a whole number ≥ 1, got ${max}`);
    this.value = max;
  }

  /** The concurrency to use now: a whole number in [1, max]. */
  get limit(): number {
    return Math.max(1, Math.min(this.max, Math.floor(this.value)));
  }

  /** A call finished without meeting a rate limit. Returns the new limit. */
  onSuccess(): number {
    this.value = Math.min(this.max, this.value + 1 / Math.max(1, this.value));
    return this.limit;
  }

  /** A call met a 429 (at `nowMs`). Returns the new limit. */
  onRateLimited(nowMs: number): number {
    if (this.value > 1 && nowMs - this.lastDecreaseMs >= this.cooldownMs) {
      this.value = Math.max(1, this.value / 2);
      this.lastDecreaseMs = nowMs;
      this.decreases++;
    }
    return this.limit;
  }
}
