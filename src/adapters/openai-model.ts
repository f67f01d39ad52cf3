import { createHash } from "node:crypto";
import OpenAI from "openai";
import type { ChatMessage } from "../core/prompts.ts";
import { redactSecret, redactSequence } from "../core/redaction.ts";
import type { ModelConfig } from "../core/schemas.ts";
import type { TokenLogprobs } from "../core/vcd.ts";
import type { ModelOutcome } from "../core/verdicts.ts";
import { type ApiKeySource, ModelConfigError } from "./api-keys.ts";

/** Per-call options beyond the model's configuration. */
export interface CompletionOptions {
  /** Ask for per-token log-probabilities with this many alternatives (`logprobs`, `top_logprobs`). */
  topLogprobs?: number;
  /** A lower token cap than the model's maxTokens (e.g. when only the first answer token matters). */
  maxTokens?: number;
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
  /** Resolves what calling the model needs (its key); throws ModelConfigError when it cannot be called. */
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

export { ModelConfigError };

export interface RetryPolicy {
  maxAttempts: number;
  /**
   * Attempts when the endpoint answers 429 (it is there, and says when to come back): more than for other
   * faults, so a rate-limit storm delays answers rather than turning them into errors. Default maxAttempts.
   */
  rateLimitedAttempts?: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 4,
  rateLimitedAttempts: 12,
  baseDelayMs: 500,
  maxDelayMs: 20_000,
};

/** Classifies a failed call: the kind recorded on the error verdict, and whether trying again may help. */
function classify(error: unknown): {
  kind: string;
  retryable: boolean;
  retryAfterMs: number | null;
  message: string;
} {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof OpenAI.APIConnectionTimeoutError)
    return { kind: "timeout", retryable: true, retryAfterMs: null, message };
  if (error instanceof OpenAI.APIConnectionError)
    return { kind: "connection", retryable: true, retryAfterMs: null, message };
  if (error instanceof OpenAI.APIError) {
    const status = error.status ?? 0;
    const retryAfter = retryAfterMs(error.headers);
    if (status === 429) return { kind: "rate_limited", retryable: true, retryAfterMs: retryAfter, message };
    if (status >= 500) return { kind: "server_error", retryable: true, retryAfterMs: retryAfter, message };
    if (status === 401 || status === 403)
      return { kind: "auth", retryable: false, retryAfterMs: null, message };
    if (status === 404) return { kind: "not_found", retryable: false, retryAfterMs: null, message };
    if (status === 408 || status === 409)
      return { kind: `http_${status}`, retryable: true, retryAfterMs: retryAfter, message };
    return {
      kind: status ? `http_${status}` : "malformed_response",
      retryable: !status,
      retryAfterMs: null,
      message,
    };
  }
  // JSON parse failures of a garbage body and similar surface as plain errors.
  return { kind: "malformed_response", retryable: true, retryAfterMs: null, message };
}

/** The SDK's per-token log-probabilities in the core's shape; null when the endpoint returned none. */
function tokenLogprobs(
  content:
    | readonly { token: string; logprob: number; top_logprobs?: { token: string; logprob: number }[] }[]
    | null
    | undefined,
): TokenLogprobs[] | null {
  if (!content || content.length === 0) return null;
  return content.map((t) => ({
    token: t.token,
    logprob: t.logprob,
    top: (t.top_logprobs ?? []).map(({ token, logprob }) => ({ token, logprob })),
  }));
}

/**
 * An answer without any trace of `apiKey` (see core/redaction.ts): its text, its finish reason and its
 * log-probability tokens (the chosen tokens redacted as a sequence, so a key spread over several is caught).
 */
export function redactAnswer(answer: ModelAnswer, apiKey: string | null): ModelAnswer {
  const logprobs = answer.logprobs ?? null;
  const chosen = logprobs
    ? redactSequence(
        logprobs.map((t) => t.token),
        apiKey,
      )
    : [];
  return {
    ...answer,
    text: redactSecret(answer.text, apiKey),
    finishReason: answer.finishReason === null ? null : redactSecret(answer.finishReason, apiKey),
    logprobs:
      logprobs?.map((t, i) => ({
        ...t,
        token: chosen[i] ?? redactSecret(t.token, apiKey),
        top: t.top.map((alt) => ({ ...alt, token: redactSecret(alt.token, apiKey) })),
      })) ?? null,
  };
}

/** A token count the endpoint reported, or null when it is not a plausible one (missing, fractional, negative, absurd). */
function tokenCount(value: unknown): number | null {
  return typeof value === "number" &&
    Number.isSafeInteger(value) &&
    value >= 0 &&
    value <= MAX_TOKENS_PER_CALL
    ? value
    : null;
}

/** How a reported value looks, for a warning: short, and never more than a few characters of a string. */
function describeValue(value: unknown): string {
  if (value === undefined) return "missing";
  if (typeof value === "string") return `a string of ${value.length} characters`;
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return Array.isArray(value) ? "an array" : "an object";
}

/**
 * The token counts of a response's `usage`, each null when the endpoint reported none or an invalid one (so
 * a bad count cannot reach the verdicts, whose schema Aggregate enforces), with what was wrong.
 */
export function tokenUsage(usage: unknown): {
  promptTokens: number | null;
  completionTokens: number | null;
  problem: string | null;
} {
  const fields = typeof usage === "object" && usage !== null ? (usage as Record<string, unknown>) : {};
  const promptTokens = tokenCount(fields.prompt_tokens);
  const completionTokens = tokenCount(fields.completion_tokens);
  if (promptTokens !== null && completionTokens !== null)
    return { promptTokens, completionTokens, problem: null };
  const problem =
    typeof usage !== "object" || usage === null
      ? "no usage reported"
      : `usage.prompt_tokens ${describeValue(fields.prompt_tokens)}, usage.completion_tokens ${describeValue(fields.completion_tokens)}`;
  return { promptTokens, completionTokens, problem };
}

function retryAfterMs(headers: Headers | undefined): number | null {
  const ms = headers?.get("retry-after-ms");
  if (ms && Number.isFinite(Number(ms))) return Number(ms);
  const seconds = headers?.get("retry-after");
  if (!seconds) return null;
  if (Number.isFinite(Number(seconds))) return Number(seconds) * 1000;
  const date = Date.parse(seconds);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/**
 * The `openai` SDK against any OpenAI-compatible endpoint. One SDK client per endpoint and key variable,
 * created once and reused; retries are done here (not by the SDK) so each verdict records its attempts.
 */
export class OpenAIModelClient implements ModelClient {
  private readonly clients = new Map<string, OpenAI>();

  /**
   * @param onWarning told, once per response, when the endpoint's token counts were missing or invalid (they
   *   are recorded as null: unknown); the report counts those verdicts.
   */
  constructor(
    private readonly keys: ApiKeySource,
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
    private readonly onWarning: ModelWarning = () => undefined,
  ) {}

  /** Fails fast, before any call, with a clear message when a model's key cannot be found. */
  async prepare(model: ModelConfig): Promise<void> {
    await this.client(model);
  }

  async redactAnswer(model: ModelConfig, answer: ModelAnswer): Promise<ModelAnswer> {
    const { apiKey } = await this.client(model);
    return redactAnswer(answer, apiKey);
  }

  /**
   * One SDK client per endpoint and key (keyed by a hash of the key, so a rotated secret gets a new client
   * and the key itself is never a map key). `apiKey` is null when the model has none configured.
   */
  private async client(model: ModelConfig): Promise<{ client: OpenAI; apiKey: string | null }> {
    const apiKey = (await this.keys.keyFor(model)) ?? null;
    // The SDK insists on a key; endpoints without auth ignore this one (and it is no secret to redact).
    const sent = apiKey ?? "no-key-configured";
    const cacheKey = `${model.baseURL}\u0000${createHash("sha256").update(sent).digest("hex")}`;
    let client = this.clients.get(cacheKey);
    if (!client) {
      client = new OpenAI({ baseURL: model.baseURL, apiKey: sent, maxRetries: 0 });
      this.clients.set(cacheKey, client);
    }
    return { client, apiKey };
  }

  /** The response's token counts, validated; a warning when they were unusable. */
  private usageOf(model: ModelConfig, usage: unknown, apiKey: string | null) {
    const { promptTokens, completionTokens, problem } = tokenUsage(usage);
    if (problem !== null)
      this.onWarning("the endpoint reported no valid token counts; recorded as unknown (null)", {
        model: model.id,
        problem: redactSecret(problem, apiKey),
      });
    return { promptTokens, completionTokens };
  }

  async complete(
    model: ModelConfig,
    messages: ChatMessage[],
    options: CompletionOptions = {},
  ): Promise<ModelOutcome> {
    const { client, apiKey } = await this.client(model);
    const logprobs =
      options.topLogprobs === undefined ? {} : { logprobs: true, top_logprobs: options.topLogprobs };
    let rateLimited = 0;
    let lastFault: ModelOutcome | null = null;
    for (let attempt = 1; ; attempt++) {
      const permit = options.beforeAttempt ? await options.beforeAttempt() : null;
      if (options.beforeAttempt && permit === null) {
        if (lastFault === null) throw new CallNotStartedError(`${model.id}: the call was not started`);
        // A retry the run stopped before it began: the attempts made so far decide the outcome.
        return lastFault;
      }
      const started = performance.now();
      try {
        const completion = await client.chat.completions.create(
          {
            model: model.model,
            messages,
            max_tokens: Math.min(model.maxTokens, options.maxTokens ?? model.maxTokens),
            temperature: model.temperature,
            ...logprobs,
          },
          { timeout: model.timeoutMs },
        );
        const latencyMs = performance.now() - started;
        // Validated here, where the response enters: a bad count would otherwise fail Aggregate forever.
        const { promptTokens, completionTokens } = this.usageOf(model, completion.usage, apiKey);
        permit?.done((promptTokens ?? 0) + (completionTokens ?? 0));
        const choice = completion.choices?.[0];
        if (!choice) {
          const empty: ModelOutcome = {
            kind: "error",
            errorKind: "empty_choices",
            message: "the endpoint returned no choices",
            latencyMs,
            attempts: attempt,
            promptTokens,
            completionTokens,
          };
          if (attempt < this.retry.maxAttempts) {
            lastFault = empty;
            await this.sleep(this.backoff(attempt, null));
            continue;
          }
          return empty;
        }
        // Typed by the SDK, but whatever the endpoint sent: only a string is an answer.
        const content: unknown = choice.message?.content ?? choice.message?.refusal ?? null;
        const text = typeof content === "string" ? content : null;
        if (text === null) {
          const filtered = choice.finish_reason === "content_filter";
          return {
            kind: "error",
            errorKind: filtered ? "content_filter" : "empty_message",
            message: filtered
              ? "the endpoint's content filter withheld the answer"
              : "the answer had no text content",
            latencyMs,
            attempts: attempt,
            promptTokens,
            completionTokens,
          };
        }
        // Endpoints echo keys inside answers too; nothing of one may reach the cache, verdicts or reports.
        return redactAnswer(
          {
            kind: "answer",
            text,
            finishReason: typeof choice.finish_reason === "string" ? choice.finish_reason : null,
            latencyMs,
            promptTokens,
            completionTokens,
            attempts: attempt,
            rateLimited,
            logprobs: tokenLogprobs(choice.logprobs?.content),
          },
          apiKey,
        );
      } catch (error: unknown) {
        // The slot is not held through the backoff: other calls use it meanwhile. (Idempotent.)
        permit?.done(null);
        const latencyMs = performance.now() - started;
        const fault = classify(error);
        if (fault.kind === "rate_limited") rateLimited++;
        const attempts =
          fault.kind === "rate_limited"
            ? (this.retry.rateLimitedAttempts ?? this.retry.maxAttempts)
            : this.retry.maxAttempts;
        // Endpoints echo (partly masked) keys in auth errors; the message goes into verdicts and reports.
        const message = redactSecret(fault.message, apiKey);
        const failed: ModelOutcome = {
          kind: "error",
          errorKind: fault.kind,
          message,
          latencyMs,
          attempts: attempt,
          rateLimited,
        };
        if (fault.retryable && attempt < attempts) {
          lastFault = failed;
          await this.sleep(this.backoff(attempt, fault.retryAfterMs));
          continue;
        }
        return failed;
      }
    }
  }

  /** Exponential backoff with full jitter, or the server's Retry-After when it gives one. */
  private backoff(attempt: number, retryAfter: number | null): number {
    if (retryAfter !== null) return Math.min(retryAfter, this.retry.maxDelayMs);
    const cap = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
    return Math.random() * cap;
  }
}
