/**
 * The response cache: content-addressed keys (core/cache-key.ts) and the caching model client
 * (adapters/response-cache.ts), against a fake model client and an in-memory object store.
 *
 * Run: node --import tsx --test tests/unit/response-cache.test.ts
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { describe, it } from "node:test";
import type { ObjectStore } from "../../src/adapters/object-store.ts";
import {
  CACHE_ENTRY_VERSION,
  type CacheEntry,
  CachingModelClient,
  MAX_CACHE_ENTRY_BYTES,
  parseCacheEntry,
} from "../../src/adapters/response-cache.ts";
import type { TokenLogprobs } from "../../src/benchmarks/mmsafeaware/vcd.ts";
import { cacheKey, cacheRequest, canonicalJson } from "../../src/core/cache-key.ts";
import { type OpenAIModelConfig, openAIModelSchema } from "../../src/core/model-config.ts";
import type { ChatMessage } from "../../src/core/prompts.ts";
import { buildChatMessages } from "../../src/core/prompts.ts";
import { type ModelConfig, modelConfigSchema } from "../../src/core/schemas.ts";
import { buildVerdict, type ModelOutcome } from "../../src/core/verdicts.ts";
import { responseCacheKey, S3_PREFIXES } from "../../src/deployment/storage-layout.ts";
import { echoedKeyForms } from "../../src/local/reference-model-server.ts";
import type { CompletionOptions, ModelAnswer, ModelClient } from "../../src/providers/model-client.ts";
import { EnvOrSecretsKeySource } from "../../src/providers/openai/api-keys.ts";
import { OpenAIModelClient, redactAnswer } from "../../src/providers/openai/client.ts";
import { datasetItem } from "../fixtures/dataset-item.ts";

const dataUrl = (bytes: number[], mediaType = "image/png") =>
  `data:${mediaType};base64,${Buffer.from(bytes).toString("base64")}`;
const IMAGE = dataUrl([1, 2, 3, 4]);

const MODEL: OpenAIModelConfig = openAIModelSchema.parse({
  id: "m1",
  baseURL: "https://api.example.com/v1",
  model: "gpt-test",
  maxTokens: 64,
  temperature: 0,
});

const messages = (text = "Is this safe?", image = IMAGE): ChatMessage[] => [
  {
    role: "user",
    content: [
      { type: "text", text },
      { type: "image_url", image_url: { url: image } },
    ],
  },
];

const LOGPROBS: TokenLogprobs[] = [
  {
    token: "Yes",
    logprob: Math.log(0.6),
    top: [
      { token: "Yes", logprob: Math.log(0.6) },
      { token: "No", logprob: Math.log(0.4) },
    ],
  },
];

const answer = (text = "Yes.", extra: Partial<Extract<ModelOutcome, { kind: "answer" }>> = {}) =>
  ({
    kind: "answer",
    text,
    finishReason: "stop",
    latencyMs: 1234,
    promptTokens: 100,
    completionTokens: 3,
    attempts: 2,
    logprobs: null,
    ...extra,
  }) satisfies ModelOutcome;

const rateLimited: ModelOutcome = {
  kind: "error",
  errorKind: "rate_limited",
  message: "429",
  latencyMs: 10,
  attempts: 4,
};

/** A model client that records its calls and answers from a script (default: always `answer()`). */
class FakeModels implements ModelClient {
  readonly calls: { model: ModelConfig; messages: ChatMessage[]; options: CompletionOptions | undefined }[] =
    [];
  prepared = 0;
  constructor(
    private readonly respond: (n: number) => ModelOutcome | Promise<ModelOutcome> = () => answer(),
  ) {}
  async prepare(): Promise<void> {
    this.prepared++;
  }
  async complete(model: ModelConfig, messages: ChatMessage[], options?: CompletionOptions) {
    this.calls.push({ model, messages, options });
    return this.respond(this.calls.length);
  }
}

/** The ObjectStore interface over a Map, counting reads and writes; `fail` makes an operation throw. */
class MemoryStore implements ObjectStore {
  readonly bucket = "test-bucket";
  readonly objects = new Map<string, string>();
  gets = 0;
  puts = 0;
  fail: { get?: boolean; put?: boolean } = {};
  putDelay: Promise<void> | null = null;

  async getBytes(key: string): Promise<Uint8Array> {
    return new TextEncoder().encode(await this.getText(key));
  }
  async getText(key: string): Promise<string> {
    const text = await this.getTextIfExists(key);
    if (text === null) throw new Error(`no object ${key}`);
    return text;
  }
  async getTextIfExists(key: string): Promise<string | null> {
    this.gets++;
    if (this.fail.get) throw new Error("S3 is down");
    return this.objects.get(key) ?? null;
  }
  async put(key: string, body: Uint8Array | string): Promise<void> {
    this.puts++;
    if (this.putDelay) await this.putDelay;
    if (this.fail.put) throw new Error("AccessDenied");
    this.objects.set(key, typeof body === "string" ? body : new TextDecoder().decode(body));
  }
  async exists(key: string): Promise<boolean> {
    return this.objects.has(key);
  }
}

const setup = (respond?: (n: number) => ModelOutcome | Promise<ModelOutcome>) => {
  const inner = new FakeModels(respond);
  const store = new MemoryStore();
  const warnings: string[] = [];
  const client = new CachingModelClient(inner, store, {
    onWarning: (message) => warnings.push(message),
    now: () => new Date("2026-01-02T03:04:05Z"),
  });
  return { inner, store, client, warnings };
};

const entryOf = (store: MemoryStore, key: string): CacheEntry => {
  const text = store.objects.get(responseCacheKey(key));
  assert.ok(text, `no cache entry ${key}`);
  const entry = parseCacheEntry(text, key);
  assert.ok(entry, `invalid cache entry ${key}`);
  return entry;
};

describe("cache key", () => {
  const key = (model: Partial<OpenAIModelConfig> = {}, msgs = messages(), options: CompletionOptions = {}) =>
    cacheKey({ ...MODEL, ...model }, msgs, options);

  it("is 64 hex digits, the same for identical requests built separately", () => {
    assert.match(key(), /^[0-9a-f]{64}$/);
    assert.equal(key(), key());
    const item = datasetItem(3);
    assert.equal(
      cacheKey(MODEL, buildChatMessages(item, "baseline", IMAGE)),
      cacheKey({ ...MODEL }, buildChatMessages(datasetItem(3), "baseline", dataUrl([1, 2, 3, 4]))),
    );
  });

  it("does not depend on the order object keys were written in", () => {
    const reordered: ChatMessage[] = [
      {
        content: [
          { text: "Is this safe?", type: "text" },
          { image_url: { url: IMAGE }, type: "image_url" },
        ],
        role: "user",
      } as ChatMessage,
    ];
    assert.equal(key({}, reordered), key());
    assert.equal(canonicalJson({ b: 1, a: { d: [2, 1], c: null } }), '{"a":{"c":null,"d":[2,1]},"b":1}');
    assert.equal(canonicalJson({ a: 1, b: undefined }), canonicalJson({ a: 1 }));
  });

  it("changes with everything that changes the answer", () => {
    const base = key();
    const variants: Record<string, string> = {
      model: key({ model: "gpt-other" }),
      baseURL: key({ baseURL: "https://other.example.com/v1" }),
      temperature: key({ temperature: 0.7 }),
      "model maxTokens": key({ maxTokens: 32 }),
      "call maxTokens below the model's": key({}, messages(), { maxTokens: 8 }),
      topLogprobs: key({}, messages(), { topLogprobs: 20 }),
      "other topLogprobs": key({}, messages(), { topLogprobs: 5 }),
      "prompt text": key({}, messages("Is this unsafe?")),
      "image bytes": key({}, messages(undefined, dataUrl([1, 2, 3, 5]))),
      "image media type": key({}, messages(undefined, dataUrl([1, 2, 3, 4], "image/jpeg"))),
      "system prompt": key({}, [{ role: "system", content: "Be safe." }, ...messages()]),
      "image detail": key({}, [
        {
          role: "user",
          content: [
            { type: "text", text: "Is this safe?" },
            { type: "image_url", image_url: { url: IMAGE, detail: "low" } },
          ],
        },
      ]),
    };
    for (const [what, variant] of Object.entries(variants)) assert.notEqual(variant, base, what);
    assert.equal(new Set(Object.values(variants)).size, Object.keys(variants).length, "all distinct");
  });

  it("does not change with what is never sent: key source, id, kind, limits, pricing", () => {
    const base = key();
    assert.equal(key({ apiKeyEnv: "OPENAI_API_KEY" }), base);
    assert.equal(key({ apiKeySecret: "mmsafe/openai" }), base);
    assert.equal(key({ apiKeyEnv: "OTHER_KEY", apiKeySecret: "mmsafe/other" }), base);
    assert.equal(key({ id: "renamed" }), base);
    assert.equal(key({ kind: "baseline" }), base);
    assert.equal(key({ timeoutMs: 1000, maxConcurrency: 1 }), base);
    assert.equal(key({ pricing: { inputPerMillionTokens: 1, outputPerMillionTokens: 2 } }), base);
    // max_tokens as sent: a call cap above the model's changes nothing.
    assert.equal(key({}, messages(), { maxTokens: 10_000 }), base);
    assert.equal(key({ baseURL: "https://api.example.com/v1/" }), base);
    assert.equal(key({}, messages(), { cache: false } as CompletionOptions), base);
  });

  it("describes the request with images as hashes and without any key or key name", () => {
    const request = cacheRequest(
      { ...MODEL, apiKeyEnv: "OPENAI_API_KEY", apiKeySecret: "mmsafe/openai" } as ModelConfig,
      messages(),
      { topLogprobs: 20, maxTokens: 8 },
    );
    const text = canonicalJson(request);
    assert.doesNotMatch(text, /data:|base64|apiKey|OPENAI_API_KEY|mmsafe\/openai/);
    assert.match(text, /"url":"sha256:[0-9a-f]{64}"/);
    assert.deepEqual(
      { ...request, messages: undefined },
      {
        v: 1,
        baseURL: MODEL.baseURL,
        model: MODEL.model,
        maxTokens: 8,
        temperature: 0,
        topLogprobs: 20,
        messages: undefined,
      },
    );
  });
});

describe("CachingModelClient", () => {
  it("miss: asks the model, returns its outcome and stores the answer with its usage and logprobs", async () => {
    const { inner, store, client } = setup(() => answer("No.", { logprobs: LOGPROBS }));
    const outcome = await client.complete(MODEL, messages(), { topLogprobs: 20, maxTokens: 8, cache: true });
    await client.flush();
    assert.equal(inner.calls.length, 1);
    assert.deepEqual(inner.calls[0]?.options, { topLogprobs: 20, maxTokens: 8 }, "cache is not passed on");
    assert.deepEqual(outcome, answer("No.", { logprobs: LOGPROBS }));
    const key = cacheKey(MODEL, messages(), { topLogprobs: 20, maxTokens: 8 });
    assert.deepEqual([...store.objects.keys()], [responseCacheKey(key)]);
    assert.ok(responseCacheKey(key).startsWith(`${S3_PREFIXES.cache}responses/${key.slice(0, 2)}/`));
    const entry = entryOf(store, key);
    assert.equal(entry.schemaVersion, CACHE_ENTRY_VERSION);
    assert.deepEqual(entry.answer, {
      text: "No.",
      finishReason: "stop",
      logprobs: LOGPROBS,
      promptTokens: 100,
      completionTokens: 3,
      latencyMs: 1234,
    });
    assert.equal(entry.createdAt, "2026-01-02T03:04:05.000Z");
  });

  it("hit: no call, the stored answer marked cached, one attempt, no tokens paid", async () => {
    // The call took an hour: a lookup, however loaded the machine, takes less.
    const { inner, client } = setup(() => answer("No.", { logprobs: LOGPROBS, latencyMs: 3_600_000 }));
    await client.complete(MODEL, messages(), { topLogprobs: 20 });
    await client.flush();
    const hit = await client.complete(MODEL, messages(), { topLogprobs: 20, cache: true });
    assert.equal(inner.calls.length, 1);
    assert.equal(hit.kind, "answer");
    assert.ok(hit.kind === "answer");
    assert.equal(hit.cached, true);
    assert.equal(hit.text, "No.");
    assert.equal(hit.finishReason, "stop");
    assert.deepEqual(hit.logprobs, LOGPROBS);
    assert.deepEqual([hit.attempts, hit.promptTokens, hit.completionTokens], [1, 0, 0]);
    assert.ok(
      hit.latencyMs >= 0 && hit.latencyMs < 3_600_000,
      `lookup time, not the call's: ${hit.latencyMs}`,
    );
  });

  it("caching defaults to on; a request that differs in anything that matters is a miss", async () => {
    const { inner, client } = setup();
    await client.complete(MODEL, messages());
    await client.flush();
    await client.complete(MODEL, messages());
    assert.equal(inner.calls.length, 1);
    await client.complete({ ...MODEL, model: "gpt-other" }, messages());
    await client.complete(MODEL, messages(undefined, dataUrl([9])));
    await client.complete(MODEL, messages(), { topLogprobs: 20 });
    assert.equal(inner.calls.length, 4);
    // Another model id for the same endpoint and model name is the same request.
    await client.flush();
    await client.complete({ ...MODEL, id: "alias", apiKeyEnv: "OTHER_KEY" }, messages());
    assert.equal(inner.calls.length, 4);
  });

  it("never stores errors: the next identical request asks again", async () => {
    const { inner, store, client } = setup((n) => (n === 1 ? rateLimited : answer()));
    assert.deepEqual(await client.complete(MODEL, messages()), rateLimited);
    await client.flush();
    assert.equal(store.objects.size, 0);
    const second = await client.complete(MODEL, messages());
    assert.equal(inner.calls.length, 2);
    assert.ok(second.kind === "answer" && !second.cached);
    await client.flush();
    assert.equal(store.objects.size, 1);
  });

  for (const [what, corrupt] of [
    ["not JSON", "{ truncated"],
    ["another entry version", (entry: CacheEntry) => JSON.stringify({ ...entry, schemaVersion: 99 })],
    ["an entry of another key", (entry: CacheEntry) => JSON.stringify({ ...entry, key: "f".repeat(64) })],
    [
      "an answer without text",
      (entry: CacheEntry) => JSON.stringify({ ...entry, answer: { ...entry.answer, text: 42 } }),
    ],
  ] as const) {
    it(`treats ${what} as a miss and overwrites it`, async () => {
      const { inner, store, client, warnings } = setup();
      const key = cacheKey(MODEL, messages());
      const valid: CacheEntry = {
        schemaVersion: CACHE_ENTRY_VERSION,
        key,
        request: cacheRequest(MODEL, messages()),
        answer: {
          text: "Old",
          finishReason: "stop",
          logprobs: null,
          promptTokens: 1,
          completionTokens: 1,
          latencyMs: 1,
        },
        createdAt: "2026-01-01T00:00:00.000Z",
      };
      store.objects.set(responseCacheKey(key), typeof corrupt === "string" ? corrupt : corrupt(valid));
      const outcome = await client.complete(MODEL, messages());
      await client.flush();
      assert.equal(inner.calls.length, 1);
      assert.ok(outcome.kind === "answer" && !outcome.cached);
      assert.equal(entryOf(store, key).answer.text, "Yes.");
      assert.match(warnings.join("\n"), /unreadable response cache entry/);
    });
  }

  it("shares one call between identical requests in flight at once", async () => {
    let release: (outcome: ModelOutcome) => void = () => undefined;
    const pending = new Promise<ModelOutcome>((resolve) => {
      release = resolve;
    });
    const { inner, store, client } = setup(() => pending);
    const first = client.complete(MODEL, messages());
    const second = client.complete(MODEL, messages());
    const other = client.complete(MODEL, messages("Another question"));
    await new Promise((r) => setImmediate(r));
    release(answer("No."));
    const [a, b] = await Promise.all([first, second, other]);
    assert.equal(inner.calls.length, 2, "one call for the two identical requests, one for the other");
    assert.ok(a.kind === "answer" && b.kind === "answer");
    assert.deepEqual([a.text, b.text], ["No.", "No."]);
    assert.deepEqual([a.cached ?? false, b.cached], [false, true]);
    assert.deepEqual([b.promptTokens, b.completionTokens, b.attempts], [0, 0, 1]);
    await client.flush();
    assert.equal(store.puts, 2);
  });

  it("does not share an error in flight: a waiting identical request asks on its own", async () => {
    let release: (outcome: ModelOutcome) => void = () => undefined;
    const pending = new Promise<ModelOutcome>((resolve) => {
      release = resolve;
    });
    const { inner, client } = setup((n) => (n === 1 ? pending : answer()));
    const first = client.complete(MODEL, messages());
    const second = client.complete(MODEL, messages());
    await new Promise((r) => setImmediate(r));
    release(rateLimited);
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.kind, "error");
    assert.ok(b.kind === "answer" && !b.cached);
    assert.equal(inner.calls.length, 2);
  });

  it("an identical request while the answer is being stored shares it instead of paying again", async () => {
    const { inner, store, client } = setup();
    let releasePut: () => void = () => undefined;
    store.putDelay = new Promise((resolve) => {
      releasePut = resolve;
    });
    const first = await client.complete(MODEL, messages());
    assert.ok(first.kind === "answer" && !first.cached, "the answer does not wait for its write");
    const second = await client.complete(MODEL, messages());
    assert.ok(second.kind === "answer" && second.cached === true);
    assert.equal(inner.calls.length, 1);
    let flushed = false;
    const flushing = client.flush().then(() => {
      flushed = true;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(flushed, false, "flush waits for the pending write");
    releasePut();
    await flushing;
    assert.equal(store.objects.size, 1);
  });

  it("cache: false bypasses the cache: no lookup, no write, the model is asked", async () => {
    const { inner, store, client } = setup(() => answer("Fresh"));
    await client.complete(MODEL, messages());
    await client.flush();
    const [gets, puts] = [store.gets, store.puts];
    const before = store.objects.get(responseCacheKey(cacheKey(MODEL, messages())));
    const outcome = await client.complete(MODEL, messages(), { cache: false, maxTokens: 8 });
    await client.flush();
    assert.equal(inner.calls.length, 2);
    assert.deepEqual(inner.calls[1]?.options, { maxTokens: 8 });
    assert.ok(outcome.kind === "answer" && !outcome.cached);
    assert.deepEqual([store.gets, store.puts], [gets, puts]);
    assert.equal(store.objects.get(responseCacheKey(cacheKey(MODEL, messages()))), before);
    // Bypassing requests are not shared either: each asks.
    await Promise.all([
      client.complete(MODEL, messages(), { cache: false }),
      client.complete(MODEL, messages(), { cache: false }),
    ]);
    assert.equal(inner.calls.length, 4);
  });

  it("a failed lookup or write never fails the call, and is reported", async () => {
    const { inner, store, client, warnings } = setup();
    store.fail = { get: true, put: true };
    const outcome = await client.complete(MODEL, messages());
    await client.flush();
    assert.ok(outcome.kind === "answer" && outcome.text === "Yes.");
    assert.equal(inner.calls.length, 1);
    assert.equal(store.objects.size, 0);
    assert.match(warnings.join("\n"), /lookup failed/);
    assert.match(warnings.join("\n"), /write failed/);
  });

  it("does not store an answer that would not read back (non-finite log-probability)", async () => {
    const bad: TokenLogprobs[] = [{ token: "Yes", logprob: Number.NEGATIVE_INFINITY, top: [] }];
    const { store, client, warnings } = setup(() => answer("Yes", { logprobs: bad }));
    const outcome = await client.complete(MODEL, messages(), { topLogprobs: 5 });
    await client.flush();
    assert.ok(outcome.kind === "answer" && outcome.logprobs === bad);
    assert.equal(store.puts, 0);
    assert.match(warnings.join("\n"), /not cacheable/);
  });

  it("prepare is the inner client's", async () => {
    const { inner, client } = setup();
    await client.prepare(MODEL);
    assert.equal(inner.prepared, 1);
  });
});

describe("CachingModelClient with untrusted answers", () => {
  const KEY = "MMSAFE_TEST_KEY_9876543210";
  /** Runs of more than 4 characters of KEY in `text`. */
  const leaked = (text: string) =>
    Array.from({ length: KEY.length - 4 }, (_, i) => KEY.slice(i, i + 5)).filter((p) => text.includes(p));

  /** A fake client that redacts with KEY, as the OpenAI client does with the model's key. */
  class RedactingModels extends FakeModels {
    async redactAnswer(_model: ModelConfig, outcome: ModelAnswer): Promise<ModelAnswer> {
      return redactAnswer(outcome, KEY);
    }
  }

  it("stores a 2 MB answer whole, so a hit gives exactly the verdict the call gave", async () => {
    const text = `${"Let me think this through step by step. ".repeat(52_000)}\nFinal answer: Yes.`;
    const { store, client } = setup(() => answer(text));
    const first = await client.complete(MODEL, messages());
    await client.flush();
    const key = cacheKey(MODEL, messages());
    assert.equal(entryOf(store, key).answer.text, text);
    const again = new CachingModelClient(new FakeModels(() => rateLimited), store);
    const hit = await again.complete(MODEL, messages());
    assert.ok(hit.kind === "answer" && hit.cached);
    const item = datasetItem(1);
    const scored = (o: ModelOutcome) => {
      const v = buildVerdict("r", "m1", "contextual-reasoning", item, o, new Date(0));
      return [
        v.response,
        v.scoredResponse,
        v.correctPaper,
        v.correctStrict,
        v.strictAnswer,
        v.truncated,
        v.responseLength,
      ];
    };
    assert.deepEqual(scored(hit), scored(first));
    assert.equal(scored(hit)[5], true, "the verdict is the truncated one");
  });

  it("does not store an answer above the entry cap (rather than a cut one that would score differently)", async () => {
    const { store, client, warnings } = setup(() => answer("a".repeat(MAX_CACHE_ENTRY_BYTES + 1)));
    await client.complete(MODEL, messages());
    await client.flush();
    assert.equal(store.puts, 0);
    assert.match(warnings.join("\n"), /too large to cache/);
  });

  it("caches an answer whose token counts were invalid (null), and a hit costs 0 tokens", async () => {
    const { store, client } = setup(() => answer("No.", { promptTokens: null, completionTokens: null }));
    await client.complete(MODEL, messages());
    await client.flush();
    const entry = entryOf(store, cacheKey(MODEL, messages()));
    assert.deepEqual([entry.answer.promptTokens, entry.answer.completionTokens], [null, null]);
    const hit = await client.complete(MODEL, messages());
    assert.deepEqual([hit.promptTokens, hit.completionTokens], [0, 0]);
  });

  it("redacts a hit written before answers were redacted, and rewrites its entry without the key", async () => {
    const echo = `Yes. ${echoedKeyForms(KEY).join(" | ")}`;
    // An old entry: written by a client that did not redact answers.
    const { store, client: old } = setup(() => answer(echo));
    await old.complete(MODEL, messages());
    await old.flush();
    const key = cacheKey(MODEL, messages());
    assert.ok(leaked(entryOf(store, key).answer.text).length > 0, "the old entry holds the key");

    const warnings: string[] = [];
    const inner = new RedactingModels();
    const client = new CachingModelClient(inner, store, { onWarning: (m) => warnings.push(m) });
    const hit = await client.complete(MODEL, messages());
    await client.flush();
    assert.equal(inner.calls.length, 0, "still a hit: nothing paid");
    assert.ok(hit.kind === "answer" && hit.cached);
    assert.deepEqual(leaked(hit.text), []);
    assert.ok(hit.text.startsWith("Yes. "));
    const rewritten = entryOf(store, key);
    assert.deepEqual(leaked(JSON.stringify(rewritten)), []);
    assert.deepEqual([rewritten.answer.promptTokens, rewritten.answer.latencyMs], [100, 1234], "usage kept");
    assert.match(warnings.join("\n"), /held a trace of the model's key; rewritten/);
    // A clean entry is not rewritten again.
    const puts = store.puts;
    await client.complete(MODEL, messages());
    await client.flush();
    assert.equal(store.puts, puts);
  });

  it("in front of the OpenAI client, only ever sees (and stores) the answer without the key", async () => {
    const server = createServer((req, res) => {
      req.resume();
      const bearer = (req.headers.authorization ?? "").replace(/^Bearer /, "");
      const body = JSON.stringify({
        id: "c",
        object: "chat.completion",
        created: 0,
        model: "x",
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: `Yes. ${echoedKeyForms(bearer).join(" | ")}` },
            finish_reason: "stop",
            logprobs: null,
          },
        ],
        usage: { prompt_tokens: 10, completion_tokens: 5 },
      });
      req.on("end", () => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    try {
      const model = modelConfigSchema.parse({
        id: "m1",
        baseURL: `http://127.0.0.1:${port}/v1`,
        model: "x",
        apiKeyEnv: "TEST_KEY",
      });
      const store = new MemoryStore();
      const client = new CachingModelClient(
        new OpenAIModelClient(new EnvOrSecretsKeySource({ TEST_KEY: KEY })),
        store,
      );
      const outcome = await client.complete(model, messages());
      await client.flush();
      assert.ok(outcome.kind === "answer");
      assert.deepEqual(leaked(outcome.text), []);
      assert.equal(store.objects.size, 1);
      for (const body of store.objects.values()) assert.deepEqual(leaked(body), [], body);
    } finally {
      server.close();
    }
  });
});
