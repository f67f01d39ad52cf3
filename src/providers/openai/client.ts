/**
 * The OpenAI provider: the `openai` SDK against any OpenAI-compatible chat-completions endpoint (OpenAI,
 * Azure OpenAI, vLLM, Ollama, Gemini's and Anthropic's OpenAI-compatible endpoints…), with an API key from
 * an environment variable or Secrets Manager (./api-keys.ts).
 */
import { createHash } from "node:crypto";
import OpenAI from "openai";
import type { TokenLogprobs } from "../../benchmarks/mmsafeaware/vcd.ts";
import type { ChatMessage } from "../../core/prompts.ts";
import { redactSecret, redactSequence } from "../../core/redaction.ts";
import { isBedrock, type ModelConfig, type OpenAIModelConfig } from "../../core/schemas.ts";
import type { ModelOutcome } from "../../core/verdicts.ts";
import { attemptCall, DEFAULT_RETRY, type Fault, type RetryPolicy } from "../attempts.ts";
import {
  type CompletionOptions,
  type ModelAnswer,
  type ModelClient,
  ModelConfigError,
  type ModelWarning,
  usageCounts,
} from "../model-client.ts";
import type { ApiKeySource } from "./api-keys.ts";

/** Classifies a failed call: the kind recorded on the error verdict, and whether trying again may help. */
function classify(error: unknown): Fault {
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

/**
 * The token counts of a response's `usage`, each null when the endpoint reported none or an invalid one (so
 * a bad count cannot reach the verdicts, whose schema Aggregate enforces), with what was wrong.
 */
export function tokenUsage(usage: unknown): ReturnType<typeof usageCounts> {
  return usageCounts(usage, { prompt: "prompt_tokens", completion: "completion_tokens" });
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
    await this.client(openAIModel(model));
  }

  async redactAnswer(model: ModelConfig, answer: ModelAnswer): Promise<ModelAnswer> {
    const { apiKey } = await this.client(openAIModel(model));
    return redactAnswer(answer, apiKey);
  }

  /**
   * One SDK client per endpoint and key (keyed by a hash of the key, so a rotated secret gets a new client
   * and the key itself is never a map key). `apiKey` is null when the model has none configured.
   */
  private async client(model: OpenAIModelConfig): Promise<{ client: OpenAI; apiKey: string | null }> {
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
    config: ModelConfig,
    messages: ChatMessage[],
    options: CompletionOptions = {},
  ): Promise<ModelOutcome> {
    const model = openAIModel(config);
    const { client, apiKey } = await this.client(model);
    const logprobs =
      options.topLogprobs === undefined ? {} : { logprobs: true, top_logprobs: options.topLogprobs };
    const spec = {
      modelId: model.id,
      options,
      policy: this.retry,
      sleep: this.sleep,
      classify,
      // Endpoints echo (partly masked) keys in auth errors; the message goes into verdicts and reports.
      redact: (message: string) => redactSecret(message, apiKey),
    };
    return attemptCall(spec, async () => {
      const completion = await client.chat.completions.create(
        {
          model: model.model,
          messages,
          max_tokens: Math.min(model.maxTokens, options.maxTokens ?? model.maxTokens),
          temperature: model.temperature,
          ...logprobs,
          ...(options.seed === undefined ? {} : { seed: options.seed }),
        },
        { timeout: model.timeoutMs },
      );
      // Validated here, where the response enters: a bad count would otherwise fail Aggregate forever.
      const { promptTokens, completionTokens } = this.usageOf(model, completion.usage, apiKey);
      const tokens = (promptTokens ?? 0) + (completionTokens ?? 0);
      const choice = completion.choices?.[0];
      if (!choice) {
        return {
          outcome: {
            kind: "error",
            errorKind: "empty_choices",
            message: "the endpoint returned no choices",
            promptTokens,
            completionTokens,
          },
          tokens,
          retry: true,
        };
      }
      // Typed by the SDK, but whatever the endpoint sent: only a string is an answer.
      const content: unknown = choice.message?.content ?? choice.message?.refusal ?? null;
      const text = typeof content === "string" ? content : null;
      if (text === null) {
        const filtered = choice.finish_reason === "content_filter";
        return {
          outcome: {
            kind: "error",
            errorKind: filtered ? "content_filter" : "empty_message",
            message: filtered
              ? "the endpoint's content filter withheld the answer"
              : "the answer had no text content",
            promptTokens,
            completionTokens,
          },
          tokens,
        };
      }
      // Endpoints echo keys inside answers too; nothing of one may reach the cache, verdicts or reports.
      const answer = redactAnswer(
        {
          kind: "answer",
          text,
          finishReason: typeof choice.finish_reason === "string" ? choice.finish_reason : null,
          latencyMs: 0,
          promptTokens,
          completionTokens,
          attempts: 1,
          logprobs: tokenLogprobs(choice.logprobs?.content),
        },
        apiKey,
      );
      return { outcome: answer, tokens };
    });
  }
}

/** The config of a model this client can call; a Bedrock model reaching it is a wiring bug. */
function openAIModel(model: ModelConfig): OpenAIModelConfig {
  if (isBedrock(model))
    throw new ModelConfigError(
      `model "${model.id}": a Bedrock model was given to the OpenAI-compatible client`,
    );
  return model;
}
