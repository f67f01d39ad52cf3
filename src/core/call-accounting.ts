/**
 * What every benchmark's rows say about the calls behind them, whatever they score: how each planned item
 * ended, errors by kind, tokens and their cost, latency percentiles. Shared by MMSafeAware's metrics and the
 * plug-in benchmarks' column metrics.
 */
import type { ModelConfig, Verdict } from "./schemas.ts";

/** Every planned item × model × strategy ends in exactly one of these. */
export interface RowCounts {
  planned: number;
  answered: number;
  errored: number;
  /** Planned but no verdict (e.g. a shard that failed within the tolerated failure percentage). */
  missing: number;
  /** Records of the selected categories that could not be evaluated (no or bad image, malformed record). */
  skipped: number;
  /** Answers taken from the response cache (no call made). */
  cached: number;
  /** Model calls repeated after a fault (attempts beyond the first). */
  retries: number;
  /** Verdicts that needed more than one evaluation: an error verdict a resume retried (runAttempts > 1). */
  reattempted: number;
  /** Answers too long to store whole: kept truncated on the verdict, scored on the full text. */
  truncated: number;
  /** Verdicts whose endpoint reported no valid token counts (missing, fractional, negative, absurd): summed as 0. */
  invalidUsage: number;
  /**
   * Items whose image was sent downscaled, not as the dataset's bytes, because those exceeded the provider's
   * limits (Bedrock: 3.75 MB, 8,000 px a side); the verdict's `imageSent` says what was sent.
   */
  imageDownscaled: number;
}

/** {@link callAccounting}'s result. */
export interface CallAccounting {
  counts: RowCounts;
  errorsByKind: Record<string, number>;
  usage: { promptTokens: number; completionTokens: number; costUsd: number | null };
  latencyMs: { p50: number | null; p95: number | null };
}

/** Nearest-rank percentile of a sorted array. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? null;
}

/** Cost in USD of token usage at the model's configured prices; null when no prices are configured. */
export function tokenCost(model: ModelConfig, promptTokens: number, completionTokens: number): number | null {
  if (!model.pricing) return null;
  return (
    (promptTokens * model.pricing.inputPerMillionTokens +
      completionTokens * model.pricing.outputPerMillionTokens) /
    1e6
  );
}

/**
 * Model calls a verdict repeated after faults. vcd makes two calls per verdict (clean and noised image):
 * only attempts beyond those are retries; a cached answer made no call at all.
 */
export function retriesOf(v: { attempts: number; strategy: string; cached: boolean }): number {
  return v.cached ? 0 : Math.max(0, v.attempts - (v.strategy === "vcd" ? 2 : 1));
}

/** What every benchmark's verdicts record of the call, whatever they score. */
export type CallRecord = Pick<
  Verdict,
  | "status"
  | "error"
  | "promptTokens"
  | "completionTokens"
  | "latencyMs"
  | "cached"
  | "attempts"
  | "strategy"
  | "runAttempts"
  | "truncated"
  | "imageSent"
>;

/**
 * The accounting of one model × strategy's verdicts, for any benchmark: how each planned item ended, errors
 * by kind, tokens and their cost, latency percentiles of the answers.
 */
export function callAccounting(
  model: ModelConfig,
  verdicts: readonly CallRecord[],
  planned: number,
  skipped: number,
): CallAccounting {
  const answered = verdicts.filter((v) => v.status === "answered");
  const errored = verdicts.filter((v) => v.status === "error");
  const errorsByKind: Record<string, number> = {};
  for (const v of errored) {
    const kind = v.error?.kind ?? "unknown";
    errorsByKind[kind] = (errorsByKind[kind] ?? 0) + 1;
  }
  // Null counts (the endpoint reported no valid one) add nothing; counts.invalidUsage says how many.
  const promptTokens = verdicts.reduce((s, v) => s + (v.promptTokens ?? 0), 0);
  const completionTokens = verdicts.reduce((s, v) => s + (v.completionTokens ?? 0), 0);
  const latencies = answered.map((v) => v.latencyMs).sort((a, b) => a - b);
  return {
    counts: {
      planned,
      answered: answered.length,
      errored: errored.length,
      missing: Math.max(0, planned - answered.length - errored.length),
      skipped,
      cached: verdicts.filter((v) => v.cached).length,
      retries: verdicts.reduce((sum, v) => sum + retriesOf(v), 0),
      reattempted: verdicts.filter((v) => v.runAttempts > 1).length,
      truncated: verdicts.filter((v) => v.truncated).length,
      invalidUsage: verdicts.filter((v) => v.promptTokens === null || v.completionTokens === null).length,
      imageDownscaled: verdicts.filter((v) => v.imageSent !== null).length,
    },
    errorsByKind,
    usage: { promptTokens, completionTokens, costUsd: tokenCost(model, promptTokens, completionTokens) },
    latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95) },
  };
}
