/**
 * The response cache: model answers stored in S3 under `cache/` by a content-addressed key of the request
 * (core/cache-key.ts), shared by every run. Re-running an identical configuration makes no model call; adding
 * a model to an old configuration pays only for the new model.
 *
 * Only answers are stored, never errors (a rate limit or an outage must not be replayed). An entry that
 * cannot be read or parsed is a miss and is overwritten by the fresh answer. A cached answer comes back with
 * `cached: true` and no tokens (nothing was paid); the entry keeps the original usage.
 *
 * An entry holds the full answer text, not the bounded copy a verdict stores (S3 objects have no 400 KB
 * limit), so a hit gives exactly the verdict, scores included, that the call gave; an entry above
 * {@link MAX_CACHE_ENTRY_BYTES} is not stored at all rather than stored cut. What is stored is what the inner
 * client returned, already without the model's key; a hit is redacted again by the inner client (entries
 * written before answers were redacted), and an entry that still held a trace of the key is rewritten.
 */
import { z } from "zod";
import { type CacheRequest, cacheKeyOf, cacheRequest } from "../core/cache-key.ts";
import type { ChatMessage } from "../core/prompts.ts";
import { type ModelConfig, sentImageSchema } from "../core/schemas.ts";
import type { ModelOutcome } from "../core/verdicts.ts";
import { responseCacheKey } from "../deployment/storage-layout.ts";
import type { CompletionOptions, ModelAnswer, ModelClient } from "../providers/model-client.ts";
import type { ObjectStore } from "./object-store.ts";

/** Version of the entry format below; an entry of another version is a miss (and is overwritten). */
export const CACHE_ENTRY_VERSION = 1;

/**
 * Largest entry stored, in bytes of JSON: a few MB of answer text. Bigger answers (far beyond any token cap)
 * are not cached, so no entry ever holds a cut answer that would score differently from the call.
 */
export const MAX_CACHE_ENTRY_BYTES = 8 * 1024 * 1024;

const tokenLogprobsSchema = z
  .object({
    token: z.string(),
    logprob: z.number(),
    top: z.array(z.object({ token: z.string(), logprob: z.number() }).strict()),
  })
  .strict();

/** `cache/responses/<2 hex>/<key>.json`. */
export const cacheEntrySchema = z
  .object({
    schemaVersion: z.literal(CACHE_ENTRY_VERSION),
    key: z.string().regex(/^[0-9a-f]{64}$/),
    /** What was asked (images as hashes), so an entry can be audited without recomputing its key. */
    request: z.unknown(),
    answer: z
      .object({
        text: z.string(),
        finishReason: z.string().nullable(),
        logprobs: z.array(tokenLogprobsSchema).nullable(),
        /** Usage and latency of the call that paid for the answer (what every hit saves); null: not reported. */
        promptTokens: z.number().int().min(0).nullable(),
        completionTokens: z.number().int().min(0).nullable(),
        latencyMs: z.number().min(0),
        /** The downscaled image the answer is to, when the dataset's did not fit the provider's limits. */
        imageSent: sentImageSchema.optional(),
      })
      .strict(),
    createdAt: z.string(),
  })
  .strict();
export type CacheEntry = z.infer<typeof cacheEntrySchema>;

type Answer = ModelAnswer;

/** Options of {@link CachingModelClient}. */
export interface CachingModelClientOptions {
  /** Told about cache faults that did not fail the call (unreadable entry, failed lookup or write). */
  onWarning?: (message: string, details: Record<string, unknown>) => void;
  now?: () => Date;
}

/** The entry stored under `key`, or null when the text is not a valid entry for that key. */
export function parseCacheEntry(text: string, key: string): CacheEntry | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const parsed = cacheEntrySchema.safeParse(json);
  return parsed.success && parsed.data.key === key ? parsed.data : null;
}

/** A cached answer as an outcome: one "attempt", no tokens, the time it took to get it. */
function cachedOutcome(
  answer: Pick<Answer, "text" | "finishReason" | "logprobs" | "imageSent">,
  latencyMs: number,
): Answer {
  return {
    kind: "answer",
    text: answer.text,
    finishReason: answer.finishReason,
    logprobs: answer.logprobs ?? null,
    latencyMs,
    promptTokens: 0,
    completionTokens: 0,
    attempts: 1,
    cached: true,
    // The answer is to the image that was sent: a hit says so as the call did.
    ...(answer.imageSent ? { imageSent: answer.imageSent } : {}),
  };
}

const describe = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * A {@link ModelClient} in front of another: answers a call from the cache when it can, otherwise asks the
 * inner client and stores the answer. Whether a call may use the cache is the call's `cache` option
 * (default true; the shard event's `cache` flag, false with `--no-cache`): with `cache: false` the cache is
 * neither read nor written.
 *
 * Identical requests in flight at once in this process share one lookup and one call (the later ones count
 * as cached: they paid nothing). Writes do not hold up the answer; {@link CachingModelClient.flush} waits
 * for them (a Lambda handler calls it before returning, so no write is frozen with the container).
 */
export class CachingModelClient implements ModelClient {
  private readonly inflight = new Map<string, Promise<ModelOutcome>>();
  private readonly writes = new Set<Promise<void>>();
  private readonly warn: NonNullable<CachingModelClientOptions["onWarning"]>;
  private readonly now: () => Date;

  constructor(
    private readonly inner: ModelClient,
    private readonly store: ObjectStore,
    options: CachingModelClientOptions = {},
  ) {
    this.warn = options.onWarning ?? (() => undefined);
    this.now = options.now ?? (() => new Date());
  }

  prepare(model: ModelConfig): Promise<void> {
    return this.inner.prepare(model);
  }

  async complete(
    model: ModelConfig,
    messages: ChatMessage[],
    options: CompletionOptions = {},
  ): Promise<ModelOutcome> {
    const { cache = true, ...callOptions } = options;
    if (!cache) return this.inner.complete(model, messages, callOptions);
    const request = cacheRequest(model, messages, callOptions);
    const key = cacheKeyOf(request);

    const shared = this.inflight.get(key);
    if (shared) {
      const started = performance.now();
      const outcome = await shared;
      if (outcome.kind === "answer") return cachedOutcome(outcome, performance.now() - started);
      // Errors are never reused, not even in flight: this request asks on its own account.
      const { outcome: own } = await this.callAndStore(key, request, model, messages, callOptions);
      return own;
    }

    const first = this.lookupOrCall(key, request, model, messages, callOptions);
    const outcome = first.then(({ outcome }) => outcome);
    this.inflight.set(key, outcome);
    // Kept in flight until the answer is stored, so an identical request meanwhile does not pay again.
    void first
      .then(
        ({ stored }) => stored,
        () => undefined,
      )
      .finally(() => {
        if (this.inflight.get(key) === outcome) this.inflight.delete(key);
      });
    return outcome;
  }

  /** Waits for every cache write started so far. Never throws: a failed write only costs a later call. */
  async flush(): Promise<void> {
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }

  private async lookupOrCall(
    key: string,
    request: CacheRequest,
    model: ModelConfig,
    messages: ChatMessage[],
    options: CompletionOptions,
  ): Promise<{ outcome: ModelOutcome; stored: Promise<void> }> {
    const started = performance.now();
    const hit = await this.lookup(key);
    if (hit) {
      const outcome = cachedOutcome(hit.answer, performance.now() - started);
      return this.redactHit(key, request, model, hit, outcome);
    }
    return this.callAndStore(key, request, model, messages, options);
  }

  /**
   * A hit as the inner client would return it now: without the model's key. An entry that held a trace of it
   * (written before answers were redacted) is rewritten redacted, keeping its usage.
   */
  private async redactHit(
    key: string,
    request: CacheRequest,
    model: ModelConfig,
    entry: CacheEntry,
    outcome: Answer,
  ): Promise<{ outcome: ModelOutcome; stored: Promise<void> }> {
    if (!this.inner.redactAnswer) return { outcome, stored: Promise.resolve() };
    const redacted = await this.inner.redactAnswer(model, outcome);
    const shown = (a: Answer) => JSON.stringify([a.text, a.finishReason, a.logprobs ?? null]);
    if (shown(redacted) === shown(outcome)) return { outcome: redacted, stored: Promise.resolve() };
    this.warn("response cache entry held a trace of the model's key; rewritten without it", {
      key: responseCacheKey(key),
    });
    const { promptTokens, completionTokens, latencyMs } = entry.answer;
    const stored = this.write(key, request, { ...redacted, promptTokens, completionTokens, latencyMs });
    return { outcome: redacted, stored };
  }

  private async lookup(key: string): Promise<CacheEntry | null> {
    const objectKey = responseCacheKey(key);
    let text: string | null;
    try {
      text = await this.store.getTextIfExists(objectKey);
    } catch (error: unknown) {
      this.warn("response cache lookup failed; asking the model", { key: objectKey, error: describe(error) });
      return null;
    }
    if (text === null) return null;
    const entry = parseCacheEntry(text, key);
    if (!entry)
      this.warn("unreadable response cache entry; asking the model and overwriting it", { key: objectKey });
    return entry;
  }

  private async callAndStore(
    key: string,
    request: CacheRequest,
    model: ModelConfig,
    messages: ChatMessage[],
    options: CompletionOptions,
  ): Promise<{ outcome: ModelOutcome; stored: Promise<void> }> {
    const outcome = await this.inner.complete(model, messages, options);
    const stored = outcome.kind === "answer" ? this.write(key, request, outcome) : Promise.resolve();
    return { outcome, stored };
  }

  private write(key: string, request: CacheRequest, outcome: Answer): Promise<void> {
    const objectKey = responseCacheKey(key);
    const entry: CacheEntry = {
      schemaVersion: CACHE_ENTRY_VERSION,
      key,
      request,
      answer: {
        text: outcome.text,
        finishReason: outcome.finishReason,
        logprobs: outcome.logprobs ?? null,
        promptTokens: outcome.promptTokens,
        completionTokens: outcome.completionTokens,
        latencyMs: outcome.latencyMs,
        ...(outcome.imageSent ? { imageSent: outcome.imageSent } : {}),
      },
      createdAt: this.now().toISOString(),
    };
    const body = JSON.stringify(entry);
    if (Buffer.byteLength(body) > MAX_CACHE_ENTRY_BYTES) {
      this.warn("answer too large to cache; not stored (the verdict keeps its head, scored on all of it)", {
        key: objectKey,
        characters: outcome.text.length,
      });
      return Promise.resolve();
    }
    // What could not be read back (e.g. a non-finite log-probability, which JSON turns into null) is not
    // stored: it would be a miss forever, and a warning on every lookup.
    if (!parseCacheEntry(body, key)) {
      this.warn("answer not cacheable (it does not survive JSON); not stored", { key: objectKey });
      return Promise.resolve();
    }
    const write = this.store.put(objectKey, body, "application/json").catch((error: unknown) => {
      this.warn("response cache write failed; the answer is kept, a later run asks again", {
        key: objectKey,
        error: describe(error),
      });
    });
    this.writes.add(write);
    void write.finally(() => this.writes.delete(write));
    return write;
  }
}
