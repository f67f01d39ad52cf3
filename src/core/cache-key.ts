/**
 * Content-addressed keys of the response cache (see adapters/response-cache.ts): two requests get the same
 * key exactly when the endpoint is asked the same thing, so an answer is paid for once and reused by every
 * later run, whatever its run id or the model's id in the config.
 *
 * The key covers what changes the answer: the endpoint (an OpenAI-compatible baseURL; for Bedrock the
 * provider and region), the model name or id, the sampling parameters
 * as sent (max_tokens after capping, temperature, logprobs/top_logprobs) and the messages, each `data:`
 * URL replaced by the SHA-256 of the URL (its media type and bytes) so images are hashed, not embedded.
 *
 * It deliberately leaves out:
 * - the API key and where it comes from (`apiKeyEnv`, `apiKeySecret`). Who pays does not change the answer,
 *   so the same request made locally (key in a variable) and on AWS (key in Secrets Manager), or before and
 *   after a key rotation, shares its entry. And the request descriptor is stored in S3 next to the answer,
 *   readable by whoever can read the cache: no secret, nor a hash of one (an oracle for guessing it), nor
 *   even the name of where one lives belongs there.
 * - the model's id (a label in reports), `kind`, `pricing`, `timeoutMs` and `maxConcurrency`: none is sent.
 *
 * With `temperature` > 0 the endpoint samples; a cached answer is then the sample drawn the first time.
 * `node:crypto`'s hash is pure computation (no I/O), which the core allows.
 */
import { createHash } from "node:crypto";
import { isBedrock, type ModelConfig } from "./model-config.ts";
import type { ChatMessage } from "./prompts.ts";

/** Bumped when the key's inputs or their encoding change: older entries are then simply never looked up. */
export const CACHE_KEY_VERSION = 1;

/** The per-call options that reach the request (a subset of providers/model-client.ts CompletionOptions). */
export interface CacheKeyOptions {
  topLogprobs?: number;
  maxTokens?: number;
  /** A sampling seed (judges send one); absent from the key when not given, so older entries keep theirs. */
  seed?: number;
}

/** Everything about a chat-completions request that changes its answer, with images as hashes. */
export interface CacheRequest {
  v: number;
  /** Only for providers other than OpenAI-compatible ones (absent there, so older entries keep their keys). */
  provider?: "bedrock";
  /** The OpenAI-compatible endpoint, or `bedrock:<region>` (a VPC endpoint override gives the same answers). */
  baseURL: string;
  model: string;
  /** max_tokens as sent: the model's maxTokens, capped by the call's maxTokens. */
  maxTokens: number;
  temperature: number;
  /** top_logprobs as sent (logprobs is then true); null when log-probabilities were not requested. */
  topLogprobs: number | null;
  /** The sampling seed, when the request sends one. */
  seed?: number;
  messages: ChatMessage[];
}

const sha256Hex = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/** `sha256:<hex>` of a data URL's text: its media type and bytes, in the canonical base64 mmsafe writes. */
export const hashedDataUrl = (url: string): string => `sha256:${sha256Hex(url)}`;

/** The request descriptor of a call; `data:` URLs become {@link hashedDataUrl}, other URLs stay as they are. */
export function cacheRequest(
  model: ModelConfig,
  messages: readonly ChatMessage[],
  options: CacheKeyOptions = {},
): CacheRequest {
  return {
    v: CACHE_KEY_VERSION,
    ...(isBedrock(model)
      ? { provider: "bedrock" as const, baseURL: `bedrock:${model.region}` }
      : // "https://host/v1/" and "https://host/v1" are the same endpoint to the SDK.
        { baseURL: model.baseURL.replace(/\/+$/, "") }),
    model: model.model,
    maxTokens: Math.min(model.maxTokens, options.maxTokens ?? model.maxTokens),
    temperature: model.temperature,
    topLogprobs: options.topLogprobs ?? null,
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    messages: messages.map((message): ChatMessage => {
      if (message.role === "system") return { role: "system", content: message.content };
      return {
        role: "user",
        content: message.content.map((part) =>
          part.type === "text"
            ? { type: "text", text: part.text }
            : {
                type: "image_url",
                image_url: {
                  ...part.image_url,
                  url: part.image_url.url.startsWith("data:")
                    ? hashedDataUrl(part.image_url.url)
                    : part.image_url.url,
                },
              },
        ),
      };
    }),
  };
}

/**
 * JSON with object keys sorted (recursively) and `undefined` members dropped, so equal values always give
 * the same text whatever order their keys were written in. Array order is kept: it is meaningful.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(v).sort()) sorted[key] = (v as Record<string, unknown>)[key];
    return sorted;
  });
}

/** The cache key of a request descriptor: 64 hex digits (SHA-256 of its canonical JSON). */
export const cacheKeyOf = (request: CacheRequest): string => sha256Hex(canonicalJson(request));

/** The cache key of a call: {@link cacheKeyOf} its {@link cacheRequest}. */
export function cacheKey(
  model: ModelConfig,
  messages: readonly ChatMessage[],
  options: CacheKeyOptions = {},
): string {
  return cacheKeyOf(cacheRequest(model, messages, options));
}
