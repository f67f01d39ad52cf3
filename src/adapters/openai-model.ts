import { createHash } from "node:crypto";
import OpenAI from "openai";
import type { ChatMessage } from "../core/prompts.ts";
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
}

/** Asks a model one question. Never throws for endpoint faults: they become error outcomes. */
export interface ModelClient {
  /** Resolves what calling the model needs (its key); throws ModelConfigError when it cannot be called. */
  prepare(model: ModelConfig): Promise<void>;
  complete(model: ModelConfig, messages: ChatMessage[], options?: CompletionOptions): Promise<ModelOutcome>;
}

export { ModelConfigError };

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 4, baseDelayMs: 500, maxDelayMs: 20_000 };

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

/**
 * Removes API keys from text: the model's own key verbatim, and anything shaped like a provider key
 * (`sk-…`, including OpenAI's masked `sk-abc***xyz` echo).
 */
export function redactKeys(text: string, apiKey: string): string {
  let out = apiKey.length >= 8 ? text.split(apiKey).join("[redacted]") : text;
  out = out.replace(/\bsk-[A-Za-z0-9_*.-]{3,}/g, "sk-[redacted]");
  return out;
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

  constructor(
    private readonly keys: ApiKeySource,
    private readonly retry: RetryPolicy = DEFAULT_RETRY,
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {}

  /** Fails fast, before any call, with a clear message when a model's key cannot be found. */
  async prepare(model: ModelConfig): Promise<void> {
    await this.client(model);
  }

  /**
   * One SDK client per endpoint and key (keyed by a hash of the key, so a rotated secret gets a new client
   * and the key itself is never a map key).
   */
  private async client(model: ModelConfig): Promise<{ client: OpenAI; apiKey: string }> {
    const apiKey = (await this.keys.keyFor(model)) ?? "no-key-configured";
    const cacheKey = `${model.baseURL}\u0000${createHash("sha256").update(apiKey).digest("hex")}`;
    let client = this.clients.get(cacheKey);
    if (!client) {
      client = new OpenAI({ baseURL: model.baseURL, apiKey, maxRetries: 0 });
      this.clients.set(cacheKey, client);
    }
    return { client, apiKey };
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
    for (let attempt = 1; ; attempt++) {
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
        const promptTokens = completion.usage?.prompt_tokens ?? 0;
        const completionTokens = completion.usage?.completion_tokens ?? 0;
        const choice = completion.choices?.[0];
        if (!choice) {
          if (attempt < this.retry.maxAttempts) {
            await this.sleep(this.backoff(attempt, null));
            continue;
          }
          return {
            kind: "error",
            errorKind: "empty_choices",
            message: "the endpoint returned no choices",
            latencyMs,
            attempts: attempt,
            promptTokens,
            completionTokens,
          };
        }
        const text = choice.message?.content ?? choice.message?.refusal ?? null;
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
        return {
          kind: "answer",
          text,
          finishReason: choice.finish_reason ?? null,
          latencyMs,
          promptTokens,
          completionTokens,
          attempts: attempt,
          rateLimited,
          logprobs: tokenLogprobs(choice.logprobs?.content),
        };
      } catch (error: unknown) {
        const latencyMs = performance.now() - started;
        const fault = classify(error);
        if (fault.kind === "rate_limited") rateLimited++;
        if (fault.retryable && attempt < this.retry.maxAttempts) {
          await this.sleep(this.backoff(attempt, fault.retryAfterMs));
          continue;
        }
        // Endpoints echo (partly masked) keys in auth errors; the message goes into verdicts and reports.
        const message = redactKeys(fault.message, apiKey);
        return { kind: "error", errorKind: fault.kind, message, latencyMs, attempts: attempt, rateLimited };
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
