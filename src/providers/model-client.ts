/**
 * The model-client port: what the pipeline needs of any model provider (OpenAI-compatible endpoints,
 * Amazon Bedrock). Each provider lives in its own folder beside this file and implements {@link ModelClient}.
 */
import type { ChatMessage } from "../core/prompts.ts";
import type { ModelConfig } from "../core/schemas.ts";
import type { ModelOutcome } from "../core/verdicts.ts";

/** Raised before any call when a model's configuration cannot work (e.g. its key or credentials are missing). */
export class ModelConfigError extends Error {
  override readonly name = "ModelConfigError";
}

/** Per-call options beyond the model's configuration. */
export interface CompletionOptions {
  /** Ask for per-token log-probabilities with this many alternatives (`logprobs`, `top_logprobs`). */
  topLogprobs?: number;
  /** A lower token cap than the model's maxTokens (e.g. when only the first answer token matters). */
  maxTokens?: number;
  /**
   * A sampling seed, sent where the API takes one (OpenAI-compatible `seed`; Bedrock's Converse API has
   * none). Judges send one, as the benchmarks' official judge code does.
   */
  seed?: number;
  /**
   * Whether the answer may come from, and go to, the response cache (default true). Only a caching client
   * (adapters/response-cache.ts) reads it; it never changes the request.
   */
  cache?: boolean;
  /**
   * Waits for permission to start each attempt (the run-wide model budget: a slot, the attempt's turn) and
   * is told when it ended, with the tokens it used. Null: the caller stopped; no attempt may start.
   */
  beforeAttempt?: () => Promise<AttemptPermit | null>;
}

/** What {@link CompletionOptions.beforeAttempt} grants; `done` once the attempt ended. */
export interface AttemptPermit {
  done(tokens: number | null): void;
}

/** The caller stopped (its {@link CompletionOptions.beforeAttempt} said no) before the first attempt. */
export class CallNotStartedError extends Error {
  override readonly name = "CallNotStartedError";
}

/** A model's answer, as a {@link ModelClient} returns it. */
export type ModelAnswer = Extract<ModelOutcome, { kind: "answer" }>;

/**
 * Asks a model one question. Never throws for endpoint faults: they become error outcomes. What it returns
 * holds no trace of the model's key (answers, error messages and log-probability tokens are redacted).
 */
export interface ModelClient {
  /** Resolves what calling the model needs (its key, its credentials); throws ModelConfigError when it cannot be called. */
  prepare(model: ModelConfig): Promise<void>;
  complete(model: ModelConfig, messages: ChatMessage[], options?: CompletionOptions): Promise<ModelOutcome>;
  /**
   * Removes the model's key from an answer this client did not just produce (one read from the response
   * cache, which may predate redaction of answers). Clients that hold no key may leave it out.
   */
  redactAnswer?(model: ModelConfig, answer: ModelAnswer): Promise<ModelAnswer>;
}

/** Told about what the endpoint sent that could not be used as is (e.g. invalid token counts). */
export type ModelWarning = (message: string, details: Record<string, unknown>) => void;

/**
 * Most tokens one call can plausibly count, prompt or completion (no context window comes near); above it
 * a count is taken as garbage, like a negative or fractional one.
 */
export const MAX_TOKENS_PER_CALL = 100_000_000;

/** A token count the endpoint reported, or null when it is not a plausible one (missing, fractional, negative, absurd). */
export function tokenCount(value: unknown): number | null {
  return typeof value === "number" &&
    Number.isSafeInteger(value) &&
    value >= 0 &&
    value <= MAX_TOKENS_PER_CALL
    ? value
    : null;
}

/** How a reported value looks, for a warning: short, and never more than a few characters of a string. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "missing";
  if (typeof value === "string") return `a string of ${value.length} characters`;
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return Array.isArray(value) ? "an array" : "an object";
}

/**
 * The token counts of a response's usage object, read from the provider's two field names, each null when
 * the endpoint reported none or an invalid one (so a bad count cannot reach the verdicts, whose schema
 * Aggregate enforces), with what was wrong.
 */
export function usageCounts(
  usage: unknown,
  fields: { prompt: string; completion: string },
): { promptTokens: number | null; completionTokens: number | null; problem: string | null } {
  const values = typeof usage === "object" && usage !== null ? (usage as Record<string, unknown>) : {};
  const promptTokens = tokenCount(values[fields.prompt]);
  const completionTokens = tokenCount(values[fields.completion]);
  if (promptTokens !== null && completionTokens !== null)
    return { promptTokens, completionTokens, problem: null };
  const problem =
    typeof usage !== "object" || usage === null
      ? "no usage reported"
      : `usage.${fields.prompt} ${describeValue(values[fields.prompt])}, usage.${fields.completion} ${describeValue(values[fields.completion])}`;
  return { promptTokens, completionTokens, problem };
}
