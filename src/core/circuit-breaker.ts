/**
 * A per-model circuit breaker. After `threshold` consecutive outcomes that say the endpoint is not there
 * (connection failures, timeouts, 5xx: each already retried with backoff), the breaker opens: the model is
 * not called for `openMs`, and its items get an `endpoint_unavailable` error verdict at once, which a resume
 * retries. Then one trial call is let through (half-open): an answer closes the breaker, another endpoint
 * failure opens it again.
 *
 * State lives in one process: the whole run locally; one Lambda container on AWS (each container learns
 * on its own, after `threshold` failures of its own).
 */
export class CircuitBreaker {
  private consecutive = 0;
  private openedAtMs: number | null = null;
  private trialInFlight = false;
  private lastFailure = "";
  /** Times the breaker opened. */
  opened = 0;

  constructor(
    readonly threshold = 10,
    readonly openMs = 60_000,
  ) {}

  /** Error kinds that mean the endpoint itself is down or broken (not the request, not a rate limit). */
  static readonly ENDPOINT_FAILURES: ReadonlySet<string> = new Set(["connection", "timeout", "server_error"]);

  /**
   * Whether a call may start now. While open, none may; once `openMs` has passed, one trial call may (the
   * caller must then report its outcome with {@link record}).
   */
  allow(nowMs: number): boolean {
    if (this.openedAtMs === null) return true;
    if (this.trialInFlight || nowMs - this.openedAtMs < this.openMs) return false;
    this.trialInFlight = true;
    return true;
  }

  /** The outcome of a call: an endpoint failure kind, or null for anything else (answers included). */
  record(endpointFailure: string | null, message: string, nowMs: number): void {
    const wasTrial = this.trialInFlight;
    this.trialInFlight = false;
    if (endpointFailure === null) {
      this.consecutive = 0;
      this.openedAtMs = null;
      return;
    }
    this.consecutive++;
    this.lastFailure = message;
    if (wasTrial || (this.openedAtMs === null && this.consecutive >= this.threshold)) {
      if (this.openedAtMs === null || wasTrial) this.opened++;
      this.openedAtMs = nowMs;
    }
  }

  get isOpen(): boolean {
    return this.openedAtMs !== null;
  }

  /** Why calls are not made: the count and the last failure's message. */
  describe(): string {
    return `${this.consecutive} calls in a row failed (last: ${this.lastFailure})`;
  }
}
