/**
 * evaluateShard and checkModels on in-memory stores and a scripted model client: error verdicts retried on
 * resume (once, conditionally), storage faults retried and then failing the shard cleanly, the circuit
 * breaker, and the start-of-run model check.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import type { ObjectStore } from "../../src/adapters/object-store.ts";
import type { ExistingVerdict, VerdictStore } from "../../src/adapters/verdict-store.ts";
import { type DatasetItem, modelConfigSchema, type Verdict } from "../../src/core/schemas.ts";
import { DEFAULT_VCD_OPTIONS } from "../../src/core/strategies.ts";
import type { ModelOutcome } from "../../src/core/verdicts.ts";
import { toJsonl } from "../../src/pipeline/dataset-io.ts";
import { ModelUnavailableError, VerdictWriteError } from "../../src/pipeline/errors.ts";
import { checkModels, evaluateShard, processWideGates } from "../../src/pipeline/evaluate-shard.ts";
import type { ModelClient } from "../../src/providers/model-client.ts";
import { datasetItem } from "../fixtures/dataset-item.ts";

const NOW = new Date("2026-01-02T03:04:05.000Z");
const IMAGE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 1, 2, 3]);
const SHA = createHash("sha256").update(IMAGE).digest("hex");
const model = (id: string, maxConcurrency = 2) =>
  modelConfigSchema.parse({ id, baseURL: `http://127.0.0.1:9/${id}/v1`, model: id, maxConcurrency });

function items(n: number): DatasetItem[] {
  return Array.from({ length: n }, (_, i) => {
    const item = datasetItem(983 + i);
    return { ...item, image: { ...item.image, sha256: SHA } };
  });
}

function store(shardItems: DatasetItem[][]): ObjectStore {
  const objects = new Map<string, string>();
  for (const [i, list] of shardItems.entries()) objects.set(`runs/r/shards/${i}.jsonl`, toJsonl(list));
  objects.set(
    "runs/r/manifest.json",
    JSON.stringify(
      shardItems.map((list, i) => ({ index: i, key: `runs/r/shards/${i}.jsonl`, items: list.length })),
    ),
  );
  return {
    bucket: "b",
    getBytes: async (key) => {
      if (key.startsWith("datasets/")) return IMAGE;
      return new TextEncoder().encode(objects.get(key) ?? "");
    },
    getText: async (key) => objects.get(key) ?? "",
    getTextIfExists: async (key) => objects.get(key) ?? null,
    put: async () => undefined,
    exists: async (key) => objects.has(key),
  };
}

/** A verdict table with conditional writes as DynamoDB does them, and scripted storage faults. */
class MemoryVerdicts implements VerdictStore {
  readonly rows = new Map<string, Verdict>();
  failNext = 0;
  failAlways = false;
  writes = 0;

  async existing(_runId: string, keys: readonly string[]): Promise<Map<string, ExistingVerdict>> {
    const out = new Map<string, ExistingVerdict>();
    for (const key of keys) {
      const v = this.rows.get(key);
      if (v)
        out.set(key, {
          status: v.status,
          runAttempts: v.runAttempts,
          attempts: v.attempts,
          createdAt: v.createdAt,
        });
    }
    return out;
  }

  async put(verdict: Verdict, replacing: ExistingVerdict | null): Promise<boolean> {
    this.writes++;
    if (this.failAlways || this.failNext > 0) {
      this.failNext = Math.max(0, this.failNext - 1);
      throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:4567"), { name: "TimeoutError" });
    }
    const current = this.rows.get(verdict.verdictKey);
    const ok =
      replacing === null
        ? current === undefined
        : current !== undefined &&
          current.status === "error" &&
          current.runAttempts === replacing.runAttempts;
    if (ok) this.rows.set(verdict.verdictKey, verdict);
    return ok;
  }

  async listRun(): Promise<Verdict[]> {
    return [...this.rows.values()];
  }
}

/** A model client whose outcome per call is scripted; counts the calls per model. */
function scripted(
  outcome: (modelId: string, call: number) => ModelOutcome,
): ModelClient & { calls: Map<string, number> } {
  const calls = new Map<string, number>();
  return {
    calls,
    prepare: async () => undefined,
    complete: async (m) => {
      const n = (calls.get(m.id) ?? 0) + 1;
      calls.set(m.id, n);
      await new Promise((r) => setTimeout(r, 1));
      return outcome(m.id, n);
    },
  };
}

const answer = (text = "No."): ModelOutcome => ({
  kind: "answer",
  text,
  finishReason: "stop",
  latencyMs: 5,
  promptTokens: 10,
  completionTokens: 1,
  attempts: 1,
});
const failure = (errorKind: string, message = "connect ECONNREFUSED 127.0.0.1:9"): ModelOutcome => ({
  kind: "error",
  errorKind,
  message,
  latencyMs: 5,
  attempts: 4,
});

function deps(objects: ObjectStore, verdicts: VerdictStore, models: ModelClient) {
  return {
    store: objects,
    verdicts,
    models,
    gatesFor: processWideGates(),
    now: () => NOW,
    remainingMs: () => 600_000,
    noiseImage: async (bytes: Uint8Array) => ({ bytes, mediaType: "image/png" }),
  };
}

const event = (models: ReturnType<typeof model>[], extra: Record<string, unknown> = {}) => ({
  runId: "r",
  bucket: "b",
  shard: { index: 0, key: "runs/r/shards/0.jsonl", items: 0 },
  models,
  strategies: ["baseline"],
  vcd: DEFAULT_VCD_OPTIONS,
  ...extra,
});

describe("evaluateShard", () => {
  it("retries error verdicts on a resume (attempts carry on), never an answer, and keeps them with retryErrors false", async () => {
    const objects = store([items(6)]);
    const verdicts = new MemoryVerdicts();
    const m = model("m1");
    let failing = true;
    const client = scripted((_id, n) =>
      failing && n % 2 === 0 ? failure("server_error", "HTTP 500") : answer(),
    );
    const first = await evaluateShard(event([m]), deps(objects, verdicts, client));
    assert.equal(first.errored, 3);
    assert.equal(first.answered, 3);

    failing = false;
    const kept = await evaluateShard(event([m], { retryErrors: false }), deps(objects, verdicts, client));
    assert.equal(kept.written, 0, "retryErrors: false asks nothing");
    assert.equal(client.calls.get("m1"), 6);

    const resumed = await evaluateShard(event([m]), deps(objects, verdicts, client));
    assert.equal(resumed.errorsRetried, 3);
    assert.equal(resumed.written, 3);
    assert.equal(client.calls.get("m1"), 9, "only the three errors were asked again");
    const rows = [...verdicts.rows.values()];
    assert.ok(rows.every((v) => v.status === "answered"));
    const retried = rows.filter((v) => v.runAttempts === 2);
    assert.equal(retried.length, 3);
    assert.ok(
      retried.every((v) => v.attempts === 5),
      "4 attempts of the failed run + 1",
    );

    const again = await evaluateShard(event([m]), deps(objects, verdicts, client));
    assert.equal(again.written, 0);
    assert.equal(client.calls.get("m1"), 9, "answers are never asked again");
  });

  it("within one execution, a retried shard does not ask again about errors that execution wrote", async () => {
    const verdicts = new MemoryVerdicts();
    const objects = store([items(4)]);
    const m = model("m1");
    await evaluateShard(
      event([m]),
      deps(
        objects,
        verdicts,
        scripted(() => failure("timeout", "timed out")),
      ),
    );
    const client = scripted(() => answer());
    // This execution's Plan started at NOW, when the errors were written: a retry of the shard keeps them.
    const sameExecution = await evaluateShard(
      event([m], { retryErrorsBefore: NOW.toISOString() }),
      deps(objects, verdicts, client),
    );
    assert.equal(sameExecution.written, 0);
    assert.equal(client.calls.get("m1"), undefined);
    // A later execution (a resume) retries them.
    const later = await evaluateShard(
      event([m], { retryErrorsBefore: new Date(NOW.getTime() + 1).toISOString() }),
      deps(objects, verdicts, client),
    );
    assert.equal(later.written, 4);
  });

  it("two attempts racing to replace the same error verdict leave exactly one", async () => {
    const verdicts = new MemoryVerdicts();
    const objects = store([items(4)]);
    const m = model("m1");
    await evaluateShard(
      event([m]),
      deps(
        objects,
        verdicts,
        scripted(() => failure("timeout", "timed out")),
      ),
    );
    const client = scripted(() => answer());
    const [a, b] = await Promise.all([
      evaluateShard(event([m]), deps(objects, verdicts, client)),
      evaluateShard(event([m]), deps(objects, verdicts, client)),
    ]);
    assert.equal(a.written + b.written, 4);
    assert.equal(a.duplicatesAvoided + b.duplicatesAvoided, 4);
    assert.ok([...verdicts.rows.values()].every((v) => v.runAttempts === 2));
  });

  it("retries storage faults, then succeeds without losing a verdict", async () => {
    const verdicts = new MemoryVerdicts();
    verdicts.failNext = 3;
    const summary = await evaluateShard(
      event([model("m1")]),
      deps(
        store([items(5)]),
        verdicts,
        scripted(() => answer()),
      ),
    );
    assert.equal(summary.written, 5);
    assert.equal(verdicts.rows.size, 5);
  });

  it("fails cleanly when storage stays down: no new call starts, the message says what is kept", async () => {
    const verdicts = new MemoryVerdicts();
    const objects = store([items(20)]);
    const client = scripted(() => answer());
    // Two verdicts stored, then storage fails for good.
    let stored = 0;
    const flaky: VerdictStore = {
      existing: (runId, keys) => verdicts.existing(runId, keys),
      listRun: () => verdicts.listRun(),
      put: async (v: Verdict, r: ExistingVerdict | null) => {
        if (stored >= 2) throw new Error("Database is closed");
        stored++;
        return verdicts.put(v, r);
      },
    };
    await assert.rejects(
      evaluateShard(event([model("m1", 1)]), deps(objects, flaky, client)),
      (error: unknown) => {
        assert.ok(error instanceof VerdictWriteError);
        assert.equal(error.name, "VerdictWriteFailed");
        assert.match(
          error.message,
          /shard 0: 2 verdict write\(s\) failed after 4 attempts \(Error: Database is closed\); 2 verdicts were written and are kept, 16 item\(s\) were not asked/,
        );
        return true;
      },
    );
    assert.equal(verdicts.rows.size, 2);
    // The two staging slots (2 × maxConcurrency) hold the items whose writes are being retried: once one has
    // failed for good, no further call starts.
    assert.equal(client.calls.get("m1"), 4, "no call started after the write that failed");
  });

  it("opens the breaker after consecutive endpoint failures: the rest are endpoint_unavailable, not called", async () => {
    const verdicts = new MemoryVerdicts();
    const client = scripted((id) => (id === "down" ? failure("connection") : answer()));
    const summary = await evaluateShard(
      event([model("down", 1), model("up", 1)]),
      deps(store([items(30)]), verdicts, client),
    );
    assert.equal(client.calls.get("down"), 10);
    assert.equal(client.calls.get("up"), 30, "the other model finishes");
    assert.equal(summary.notAsked, 20);
    const down = [...verdicts.rows.values()].filter((v) => v.modelId === "down");
    assert.equal(down.length, 30);
    assert.equal(down.filter((v) => v.error?.kind === "connection").length, 10);
    const unavailable = down.filter((v) => v.error?.kind === "endpoint_unavailable");
    assert.equal(unavailable.length, 20);
    assert.match(
      unavailable[0]?.error?.message ?? "",
      /not asked: down at http:\/\/127\.0\.0\.1:9\/down\/v1 is unavailable, 10 calls in a row failed \(last: connect ECONNREFUSED 127\.0\.0\.1:9\); a resume retries it/,
    );
  });
});

describe("checkModels", () => {
  const checkEvent = (models: ReturnType<typeof model>[]) => ({
    checkModels: true,
    runId: "r",
    manifestKey: "runs/r/manifest.json",
    models,
    strategies: ["baseline"],
    vcd: DEFAULT_VCD_OPTIONS,
  });

  it("asks each model its first question of the run and keeps the verdict: no extra call", async () => {
    const verdicts = new MemoryVerdicts();
    const objects = store([items(3), items(3)]);
    const client = scripted(() => answer());
    const result = await checkModels(checkEvent([model("a"), model("b")]), deps(objects, verdicts, client));
    assert.deepEqual(
      result.checked.map((c) => [c.modelId, c.itemId, c.outcome]),
      [
        ["a", 983, "answered"],
        ["b", 983, "answered"],
      ],
    );
    assert.equal(verdicts.rows.size, 2);
    // The shard then asks the rest only.
    await evaluateShard(event([model("a"), model("b")]), deps(objects, verdicts, client));
    assert.equal(client.calls.get("a"), 3);
    assert.equal(client.calls.get("b"), 3);
    // A resume with nothing left calls no model.
    const nothing = await checkModels(
      checkEvent([model("a"), model("b")]),
      deps(store([items(3)]), verdicts, client),
    );
    assert.deepEqual(nothing.nothingLeft, ["a", "b"]);
    assert.equal(client.calls.get("a"), 3);
  });

  it("stops the run naming each model that cannot be asked and what to fix; an endpoint that is merely slow or failing goes on", async () => {
    const client = scripted((id) => {
      if (id === "refused") return failure("connection");
      if (id === "nokey") return failure("auth", "401 Incorrect API key provided");
      if (id === "unknown") return failure("not_found", "404 The model `unknown` does not exist");
      return failure("server_error", "500 Internal Server Error");
    });
    await assert.rejects(
      checkModels(
        checkEvent([model("refused"), model("nokey"), model("unknown"), model("flaky")]),
        deps(store([items(2)]), new MemoryVerdicts(), client),
      ),
      (error: unknown) => {
        assert.ok(error instanceof ModelUnavailableError);
        assert.equal(error.name, "ModelUnavailable");
        const lines = error.message.split("\n");
        assert.match(lines[0] ?? "", /^3 models cannot be asked, so the run stopped before fanning out:$/);
        assert.match(
          error.message,
          /model "refused": cannot connect to http:\/\/127\.0\.0\.1:9\/refused\/v1: is the server running/,
        );
        assert.match(error.message, /model "nokey": .* refused the key \(401\/403\)/);
        assert.match(
          error.message,
          /model "unknown": .* has no model "unknown" \(404\), or baseURL is wrong/,
        );
        assert.doesNotMatch(error.message, /flaky/);
        return true;
      },
    );
  });
});
