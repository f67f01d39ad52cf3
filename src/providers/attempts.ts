/**
 * The attempt loop every provider shares: each attempt waits for its permit under the run-wide budget,
 * faults are classified by the provider, retried with backoff (more often for rate limits, which delay
 * answers rather than fail them), and every outcome records its attempts and the rate limits it met.
 */
import type { ModelOutcome } from "../core/verdicts.ts";
import { CallNotStartedError, type CompletionOptions } from "./model-client.ts";

export interface RetryPolicy {
  maxAttempts: number;
  /**
   * Attempts when the endpoint rate-limits (it is there, and says when to come back): more than for other
   * faults, so a rate-limit storm delays answers rather than turning them into errors. Default maxAttempts.
   */
  rateLimitedAttempts?: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 4,
  rateLimitedAttempts: 12,
  baseDelayMs: 500,
  maxDelayMs: 20_000,
};

/** A failed call as its provider classifies it: the kind recorded on the error verdict, and whether to retry. */
export interface Fault {
  kind: string;
  retryable: boolean;
  /** How long the endpoint asked to wait before the next attempt; null when it did not say. */
  retryAfterMs: number | null;
  message: string;
}

/** An outcome without what the loop fills in: latency, attempts and rate limits met. */
export type AttemptOutcome =
  | Omit<Extract<ModelOutcome, { kind: "answer" }>, "latencyMs" | "attempts" | "rateLimited">
  | Omit<Extract<ModelOutcome, { kind: "error" }>, "latencyMs" | "attempts" | "rateLimited">;

/** What one attempt that got a response gave: its outcome, the tokens it used, and whether to try again. */
export interface AttemptResult {
  outcome: AttemptOutcome;
  /** Tokens the attempt used (prompt + completion), for the run-wide tokens-per-minute budget. */
  tokens: number | null;
  /** A response that is a glitch rather than an answer (no choices, no content): retried like a fault. */
  retry?: boolean;
}

/** How a provider's attempts are made and judged. */
export interface AttemptSpec {
  /** For the error when the caller stopped before the first attempt. */
  modelId: string;
  options: CompletionOptions;
  policy: RetryPolicy;
  sleep: (ms: number) => Promise<void>;
  /** Classifies what an attempt threw (a transport fault, an error response, an unreadable body). */
  classify: (error: unknown) => Fault;
  /** Removes any trace of a secret from a fault's message (it goes into verdicts and reports). */
  redact: (message: string) => string;
}

/**
 * Makes attempts until one gives an outcome to keep, or the policy says stop. Never throws for endpoint
 * faults: they become error outcomes.
 *
 * @throws CallNotStartedError when the caller stopped (its permit was refused) before the first attempt.
 */
export async function attemptCall(
  spec: AttemptSpec,
  attempt: (n: number) => Promise<AttemptResult>,
): Promise<ModelOutcome> {
  const { options, policy } = spec;
  let rateLimited = 0;
  let lastFault: ModelOutcome | null = null;
  for (let n = 1; ; n++) {
    const permit = options.beforeAttempt ? await options.beforeAttempt() : null;
    if (options.beforeAttempt && permit === null) {
      if (lastFault === null) throw new CallNotStartedError(`${spec.modelId}: the call was not started`);
      // A retry the run stopped before it began: the attempts made so far decide the outcome.
      return lastFault;
    }
    const started = performance.now();
    try {
      const result = await attempt(n);
      const latencyMs = performance.now() - started;
      permit?.done(result.tokens);
      const outcome = { ...result.outcome, latencyMs, attempts: n, rateLimited } as ModelOutcome;
      if (result.retry === true && n < policy.maxAttempts) {
        lastFault = outcome;
        await spec.sleep(backoff(policy, n, null));
        continue;
      }
      return outcome;
    } catch (error: unknown) {
      // The slot is not held through the backoff: other calls use it meanwhile. (Idempotent.)
      permit?.done(null);
      const latencyMs = performance.now() - started;
      const fault = spec.classify(error);
      if (fault.kind === "rate_limited") rateLimited++;
      const attempts =
        fault.kind === "rate_limited"
          ? (policy.rateLimitedAttempts ?? policy.maxAttempts)
          : policy.maxAttempts;
      const failed: ModelOutcome = {
        kind: "error",
        errorKind: fault.kind,
        message: spec.redact(fault.message),
        latencyMs,
        attempts: n,
        rateLimited,
      };
      if (fault.retryable && n < attempts) {
        lastFault = failed;
        await spec.sleep(backoff(policy, n, fault.retryAfterMs));
        continue;
      }
      return failed;
    }
  }
}

/** Exponential backoff with full jitter, or the server's Retry-After when it gives one. */
function backoff(policy: RetryPolicy, attempt: number, retryAfter: number | null): number {
  if (retryAfter !== null) return Math.min(retryAfter, policy.maxDelayMs);
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return Math.random() * cap;
}
