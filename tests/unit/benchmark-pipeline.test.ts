/**
 * Plug-in benchmarks (MOSSBench) through Plan, EvaluateShard and Aggregate on in-memory stores and a scripted
 * model client: what a run of another benchmark plans, how its judge is asked after the answers are stored
 * (and on resume, and in a rejudge), and which readings the report's rates come from.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import type { ObjectStore } from "../../src/adapters/object-store.ts";
import { RunConflictError, type RunRecord, type RunStore } from "../../src/adapters/run-store.ts";
import type { ExistingVerdict, VerdictStore } from "../../src/adapters/verdict-store.ts";
import { MOSSBENCH_JUDGE_PROMPT_SHA256, mossbenchJudgePrompt } from "../../src/benchmarks/mossbench/judge.ts";
import type { ChatMessage } from "../../src/core/prompts.ts";
import {
  type BenchmarkItem,
  type BenchmarkVerdict,
  benchmarkItemSchema,
  benchmarkVerdictSchema,
  type DatasetItem,
  type JudgeVerdict,
  judgeVerdictSchema,
  type ModelConfig,
  modelConfigSchema,
  modelEndpoint,
  type PlanOutput,
  type StoredVerdict,
  type Verdict,
} from "../../src/core/schemas.ts";
import { DEFAULT_VCD_OPTIONS } from "../../src/core/strategies.ts";
import type { ModelOutcome } from "../../src/core/verdicts.ts";
import {
  datasetManifestKey,
  datasetShardKey,
  judgeVerdictKey,
  MODELS_CONFIG_KEY,
  reportHtmlKey,
  reportJsonKey,
  reportMarkdownKey,
  runShardKey,
  verdictKey,
} from "../../src/deployment/storage-layout.ts";
import { aggregate } from "../../src/pipeline/aggregate.ts";
import { parseShard, toJsonl } from "../../src/pipeline/dataset-io.ts";
import { InvalidExecutionInputError } from "../../src/pipeline/errors.ts";
import { evaluateShard, JUDGE_SEED, processWideGates } from "../../src/pipeline/evaluate-shard.ts";
import { plan } from "../../src/pipeline/plan.ts";
import type { CompletionOptions, ModelClient } from "../../src/providers/model-client.ts";
import type { BenchmarkReport } from "../../src/report/benchmark-report.ts";
import { datasetItem } from "../fixtures/dataset-item.ts";

const NOW = new Date("2026-02-03T04:05:06.000Z");
const IMAGE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, 7, 7, 7]);
const SHA = createHash("sha256").update(IMAGE).digest("hex");
const IMAGE_URL = `data:image/png;base64,${Buffer.from(IMAGE).toString("base64")}`;
const MOSS_COLUMNS = ["type1", "type2", "type3", "contrast"] as const;

const model = (id: string, extra: Record<string, unknown> = {}): ModelConfig =>
  modelConfigSchema.parse({ id, baseURL: `http://127.0.0.1:9/${id}/v1`, model: `${id}-model`, ...extra });

/** The models file: two evaluated models and two judges (configured warm: Plan must set temperature 0). */
const CONFIGURED = [
  model("m1"),
  model("m2"),
  model("j1", { temperature: 0.7 }),
  model("j2", { temperature: 1 }),
];

/** MOSSBench items: `perColumn` in each column, ids in column order (type1 first, contrast last). */
function mossItems(perColumn: number): BenchmarkItem[] {
  return MOSS_COLUMNS.flatMap((column, c) =>
    Array.from({ length: perColumn }, (_, i) => {
      const id = c * perColumn + i + 1;
      return benchmarkItemSchema.parse({
        benchmark: "mossbench",
        id,
        recordId: column === "contrast" ? `contrast:${i + 1}` : String(id),
        category: column,
        expected: column === "contrast" ? "refuse" : "comply",
        text: `How do I use the thing in picture ${id}?`,
        groups: {},
        image: {
          key: `datasets/moss/images/${id}.png`,
          mediaType: "image/png",
          bytes: IMAGE.length,
          sha256: SHA,
        },
      });
    }),
  );
}

type Objects = Map<string, string | Uint8Array>;

function memoryStore(objects: Objects, puts: string[] = []): ObjectStore {
  const text = (key: string): string => {
    const value = objects.get(key);
    if (value === undefined) throw Object.assign(new Error(`no ${key}`), { name: "ObjectNotFoundError" });
    return typeof value === "string" ? value : new TextDecoder().decode(value);
  };
  return {
    bucket: "test-bucket",
    getBytes: async (key) => {
      const value = objects.get(key);
      if (value instanceof Uint8Array) return value;
      return new TextEncoder().encode(text(key));
    },
    getText: async (key) => text(key),
    getTextIfExists: async (key) => (objects.has(key) ? text(key) : null),
    put: async (key, body) => {
      puts.push(key);
      objects.set(key, typeof body === "string" ? body : new Uint8Array(body));
    },
    exists: async (key) => objects.has(key),
  };
}

/** A runs table that refuses a resume with another configuration, as the DynamoDB store does. */
function memoryRuns(): RunStore & { records: Map<string, RunRecord> } {
  const records = new Map<string, RunRecord>();
  return {
    records,
    get: async (runId) => records.get(runId) ?? null,
    addUsage: async () => undefined,
    previousOfSchedule: async () => null,
    startOrResume: async (record) => {
      const existing = records.get(record.runId);
      if (existing && existing.configHash !== record.configHash)
        throw new RunConflictError(`run ${record.runId} already exists with a different configuration`);
      const next = existing
        ? { ...record, startedAt: existing.startedAt, attempts: existing.attempts + 1 }
        : record;
      records.set(record.runId, next);
      return next;
    },
    markSucceeded: async (runId, finishedAt, headline, report) => {
      const record = records.get(runId);
      if (!record) throw new Error(`no run ${runId}`);
      records.set(runId, {
        ...record,
        status: "SUCCEEDED",
        finishedAt,
        updatedAt: finishedAt,
        headline: headline.map((h) => ({ ...h })),
        report,
      });
    },
  };
}

/** A verdicts table with DynamoDB's conditional writes; readings are validated when listed, as the store does. */
class MemoryVerdicts implements VerdictStore {
  readonly rows = new Map<string, StoredVerdict>();
  /** Keys in the order they were written (replacements included). */
  readonly written: string[] = [];

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

  async put(verdict: StoredVerdict, replacing: ExistingVerdict | null): Promise<boolean> {
    const current = this.rows.get(verdict.verdictKey);
    const ok =
      replacing === null
        ? current === undefined
        : current !== undefined &&
          current.status === "error" &&
          current.runAttempts === replacing.runAttempts;
    if (ok) {
      this.rows.set(verdict.verdictKey, verdict);
      this.written.push(verdict.verdictKey);
    }
    return ok;
  }

  async listRun(runId: string): Promise<Verdict[]> {
    return [...this.rows.values()].filter(
      (v): v is Verdict => v.runId === runId && !("judge" in v) && !("benchmark" in v),
    );
  }

  async listBenchmarkRun(
    runId: string,
  ): Promise<{ verdicts: BenchmarkVerdict[]; judgements: JudgeVerdict[] }> {
    const verdicts: BenchmarkVerdict[] = [];
    const judgements: JudgeVerdict[] = [];
    for (const v of this.rows.values()) {
      if (v.runId !== runId) continue;
      if ("judge" in v) judgements.push(judgeVerdictSchema.parse(v));
      else if ("benchmark" in v) verdicts.push(benchmarkVerdictSchema.parse(v));
    }
    return { verdicts, judgements };
  }

  async answers(_runId: string, keys: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (const key of keys) {
      const v = this.rows.get(key);
      if (v && !("judge" in v) && v.status === "answered" && typeof v.response === "string")
        out.set(key, v.response);
    }
    return out;
  }

  judgements(): JudgeVerdict[] {
    return [...this.rows.values()].filter((v): v is JudgeVerdict => "judge" in v);
  }

  answersOf(): BenchmarkVerdict[] {
    return [...this.rows.values()].filter((v): v is BenchmarkVerdict => !("judge" in v) && "benchmark" in v);
  }
}

interface Request {
  modelId: string;
  messages: ChatMessage[];
  options: CompletionOptions | undefined;
}

/** A model client whose outcome per call is scripted by model id and the request; records every request. */
function scripted(
  outcome: (modelId: string, messages: ChatMessage[]) => ModelOutcome,
): ModelClient & { requests: Request[]; prepared: string[]; callsTo: (id: string) => Request[] } {
  const requests: Request[] = [];
  const prepared: string[] = [];
  return {
    requests,
    prepared,
    callsTo: (id) => requests.filter((r) => r.modelId === id),
    prepare: async (m) => {
      prepared.push(m.id);
    },
    complete: async (m, messages, options) => {
      requests.push({ modelId: m.id, messages, options });
      await new Promise((r) => setTimeout(r, 1));
      return outcome(m.id, messages);
    },
  };
}

const answer = (text: string): ModelOutcome => ({
  kind: "answer",
  text,
  finishReason: "stop",
  latencyMs: 5,
  promptTokens: 10,
  completionTokens: 3,
  attempts: 1,
});
const failure = (errorKind = "server_error", message = "HTTP 500"): ModelOutcome => ({
  kind: "error",
  errorKind,
  message,
  latencyMs: 5,
  attempts: 2,
});
const judgeReply = (score: string) => answer(`Description: x\nScore: ${score}\nReason: y`);

/** The text and image of a request's user message. */
function userParts(messages: ChatMessage[]): { text: string; images: string[] } {
  const user = messages.find((m) => m.role === "user");
  if (user?.role !== "user") return { text: "", images: [] };
  return {
    text: user.content.flatMap((p) => (p.type === "text" ? [p.text] : [])).join(""),
    images: user.content.flatMap((p) => (p.type === "image_url" ? [p.image_url.url] : [])),
  };
}

/** The item a MOSSBench request (the model's or the judge's) is about, by its question text. */
const itemIdOf = (messages: ChatMessage[]): number => {
  const match = /picture (\d+)\?/.exec(userParts(messages).text);
  return match ? Number(match[1]) : -1;
};

/** Objects of a bucket: the models file, a MOSSBench dataset "moss" and an MMSafeAware dataset (default name). */
function bucket(perColumn = 2, shardSize = 5): Objects {
  const objects: Objects = new Map();
  objects.set(MODELS_CONFIG_KEY, JSON.stringify({ models: CONFIGURED }));
  const items = mossItems(perColumn);
  const shards: { key: string; items: number }[] = [];
  for (let start = 0, index = 0; start < items.length; start += shardSize, index++) {
    const slice = items.slice(start, start + shardSize);
    const key = datasetShardKey("moss", index);
    objects.set(key, toJsonl(slice));
    shards.push({ key, items: slice.length });
  }
  for (const item of items) objects.set(item.image.key, IMAGE);
  objects.set(
    datasetManifestKey("moss"),
    JSON.stringify({
      schemaVersion: 2,
      name: "moss",
      benchmark: "mossbench",
      provenance: { kind: "sample", size: "small", seed: 1 },
      checksum: "c".repeat(64),
      createdAt: NOW.toISOString(),
      records: items.length,
      runnable: items.length,
      skipped: [],
      shards,
    }),
  );
  // MMSafeAware's dataset, uploaded before benchmarks were named (the manifest names none).
  const mmsafe: DatasetItem[] = [datasetItem(1), datasetItem(128), datasetItem(983)];
  objects.set(datasetShardKey("mmsafeaware", 0), toJsonl(mmsafe));
  objects.set(
    datasetManifestKey("mmsafeaware"),
    JSON.stringify({
      schemaVersion: 2,
      name: "mmsafeaware",
      provenance: { kind: "sample", size: "small", seed: 1 },
      checksum: "d".repeat(64),
      createdAt: NOW.toISOString(),
      records: 3,
      runnable: 3,
      skipped: [],
      shards: [{ key: datasetShardKey("mmsafeaware", 0), items: 3 }],
    }),
  );
  return objects;
}

interface World {
  objects: Objects;
  puts: string[];
  store: ObjectStore;
  runs: ReturnType<typeof memoryRuns>;
  verdicts: MemoryVerdicts;
}

function world(perColumn = 2, shardSize = 5): World {
  const objects = bucket(perColumn, shardSize);
  const puts: string[] = [];
  return {
    objects,
    puts,
    store: memoryStore(objects, puts),
    runs: memoryRuns(),
    verdicts: new MemoryVerdicts(),
  };
}

const planIn = (w: World, input: Record<string, unknown>, executionName = "exec-name") =>
  plan(
    { input, executionName, executionId: `id-${executionName}` },
    { store: w.store, runs: w.runs, now: () => NOW },
  );

/** The items Plan wrote to a run's shards. */
function plannedItems(w: World, planned: PlanOutput): BenchmarkItem[] {
  return Array.from({ length: planned.shards }, (_, i) => {
    const key = runShardKey(planned.runId, i);
    const value = w.objects.get(key);
    return parseShard(typeof value === "string" ? value : "", key);
  })
    .flat()
    .filter((item): item is BenchmarkItem => "benchmark" in item);
}

/** An InvalidExecutionInputError whose message matches every pattern. */
const refused =
  (...patterns: RegExp[]) =>
  (error: unknown) => {
    assert.ok(error instanceof InvalidExecutionInputError, String(error));
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  };

describe("Plan of a plug-in benchmark", () => {
  it("plans {} as MMSafeAware on the default dataset and records the benchmark", async () => {
    const w = world();
    const planned = await planIn(w, {}, "default-run");
    assert.equal(planned.runId, "default-run");
    assert.equal(planned.judge, null);
    assert.equal(planned.planned, 3);
    assert.equal(w.runs.records.get("default-run")?.benchmark, "mmsafeaware");
    assert.deepEqual(
      planned.models.map((m) => m.id),
      CONFIGURED.map((m) => m.id),
      "every configured model",
    );
  });

  it("refuses a benchmark the dataset was not imported as, naming both", async () => {
    const w = world();
    await assert.rejects(planIn(w, { benchmark: "mossbench" }), refused(/mmsafeaware/, /mossbench/));
    assert.equal(w.runs.records.size, 0, "no run recorded");
  });

  it("plans the chosen columns of a MOSSBench dataset and refuses a column or strategy it does not have", async () => {
    const w = world(3);
    const planned = await planIn(w, {
      runId: "moss-type1",
      benchmark: "mossbench",
      dataset: "moss",
      models: ["m1"],
      categories: ["type1"],
    });
    const items = plannedItems(w, planned);
    assert.deepEqual(
      items.map((i) => [i.id, i.category]),
      [
        [1, "type1"],
        [2, "type1"],
        [3, "type1"],
      ],
    );
    assert.equal(w.runs.records.get("moss-type1")?.benchmark, "mossbench");

    await assert.rejects(
      planIn(w, { runId: "bad-col", benchmark: "mossbench", dataset: "moss", categories: ["typical"] }),
      refused(/"typical" is not a column of mossbench/, /type1, type2, type3, contrast/),
    );
    await assert.rejects(
      planIn(w, { runId: "bad-strategy", benchmark: "mossbench", dataset: "moss", strategies: ["vcd"] }),
      refused(/strategies: vcd does not apply to mossbench/, /baseline or safety-system-prompt/),
    );
  });

  it("samples a limit over MOSSBench's four columns, not its first ids", async () => {
    // 5 items per column (ids 1–5 type1 … 16–20 contrast): a limit of 8 takes the two lowest ids of each.
    const w = world(5);
    const planned = await planIn(w, {
      runId: "moss-limit",
      benchmark: "mossbench",
      dataset: "moss",
      models: ["m1"],
      limit: 8,
    });
    assert.equal(planned.planned, 8);
    assert.deepEqual(
      plannedItems(w, planned).map((i) => i.id),
      [1, 2, 6, 7, 11, 12, 16, 17],
    );
    assert.deepEqual(w.runs.records.get("moss-limit")?.eligible, {
      type1: 5,
      type2: 5,
      type3: 5,
      contrast: 5,
    });
  });

  it("refuses a judge for MMSafeAware, whose scoring needs none", async () => {
    const w = world();
    await assert.rejects(planIn(w, { judge: "j1" }), refused(/judge: mmsafeaware has no judge protocol/));
    assert.equal(w.runs.records.size, 0);
  });

  it("resolves the judge from the models file at temperature 0, apart from the evaluated models", async () => {
    const w = world();
    const planned = await planIn(w, {
      runId: "judged",
      benchmark: "mossbench",
      dataset: "moss",
      models: ["m1", "m2"],
      judge: "j1",
    });
    assert.equal(planned.judge?.id, "j1");
    assert.equal(planned.judge?.temperature, 0, "configured at 0.7, asked at 0");
    assert.ok(planned.judge);
    assert.equal(modelEndpoint(planned.judge), "http://127.0.0.1:9/j1/v1", "the configured judge");
    assert.deepEqual(
      planned.models.map((m) => m.id),
      ["m1", "m2"],
    );
    const record = w.runs.records.get("judged");
    assert.equal(record?.judge?.id, "j1");
    assert.equal(record?.judge?.temperature, 0);
    assert.deepEqual(
      record?.models.map((m) => m.id),
      ["m1", "m2"],
    );
    assert.equal(record?.plannedVerdicts, 16, "8 items × 2 models: judge readings are not model verdicts");

    await assert.rejects(
      planIn(w, { runId: "judged-x", benchmark: "mossbench", dataset: "moss", judge: "nobody" }),
      refused(/^judge: "nobody" is not in/),
    );
  });

  it("keeps the run's configuration when only the judge changes: a resume with another judge is allowed", async () => {
    const w = world();
    const input = { runId: "rj", benchmark: "mossbench", dataset: "moss", models: ["m1"] };
    await planIn(w, { ...input, judge: "j1" });
    const first = w.runs.records.get("rj");
    await planIn(w, { ...input, judge: "j2" });
    const second = w.runs.records.get("rj");
    assert.equal(second?.configHash, first?.configHash);
    assert.equal(second?.judge?.id, "j2");
    assert.equal(second?.attempts, 2, "a resume of the same run");
    await planIn(w, input);
    assert.equal(w.runs.records.get("rj")?.configHash, first?.configHash, "nor when the judge is dropped");
    // The double does refuse a change that matters.
    await assert.rejects(planIn(w, { ...input, models: ["m2"] }), RunConflictError);
  });

  it("refuses judgeOnly without the run to rejudge", async () => {
    const w = world();
    await assert.rejects(
      planIn(w, { judgeOnly: true, judge: "j1", benchmark: "mossbench", dataset: "moss" }),
      refused(/judgeOnly: name the run to rejudge \("runId"\)/),
    );
    await assert.rejects(
      planIn(w, { judgeOnly: true, runId: "never-planned", judge: "j1" }),
      refused(/there is no run never-planned/),
    );
  });

  it("rejudges with the run's models, strategies and shards, writing no new shard", async () => {
    const w = world(2, 3);
    const first = await planIn(w, {
      runId: "re",
      benchmark: "mossbench",
      dataset: "moss",
      models: ["m1"],
      strategies: ["baseline", "safety-system-prompt"],
      shardSize: 3,
    });
    const shardsBefore = new Map([...w.objects].filter(([key]) => key.startsWith("runs/re/")));
    w.puts.length = 0;
    const rejudge = await planIn(
      w,
      // Models and strategies named here are not the run's: a rejudge keeps the run's.
      { runId: "re", judgeOnly: true, judge: "j2", models: ["m2"], strategies: ["baseline"], shardSize: 1 },
      "exec-rejudge",
    );
    assert.equal(rejudge.judgeOnly, true);
    assert.equal(rejudge.judge?.id, "j2");
    assert.equal(rejudge.judge?.temperature, 0);
    assert.deepEqual(rejudge.models, first.models);
    assert.deepEqual(rejudge.strategies, ["baseline", "safety-system-prompt"]);
    assert.equal(rejudge.shards, first.shards);
    assert.equal(rejudge.shards, 3);
    assert.equal(rejudge.manifestKey, first.manifestKey);
    assert.equal(rejudge.planned, first.planned);
    assert.deepEqual(w.puts, [], "no shard and no manifest written again");
    assert.deepEqual(new Map([...w.objects].filter(([key]) => key.startsWith("runs/re/"))), shardsBefore);
    const record = w.runs.records.get("re");
    assert.equal(record?.judge?.id, "j2");
    assert.equal(record?.status, "RUNNING");
    assert.equal(record?.executionId, "id-exec-rejudge");
  });
});

/** A run shard of MOSSBench items in a bucket with their images. */
function shardWorld(items: BenchmarkItem[]): World {
  const w = world();
  w.objects.set("runs/r/shards/0.jsonl", toJsonl(items));
  for (const item of items) w.objects.set(item.image.key, IMAGE);
  return w;
}

const M1 = model("m1");
const JUDGE = { ...model("j1"), temperature: 0 };

const shardEvent = (items: number, extra: Record<string, unknown> = {}) => ({
  runId: "r",
  bucket: "test-bucket",
  shard: { index: 0, key: "runs/r/shards/0.jsonl", items },
  models: [M1],
  strategies: ["baseline"],
  vcd: DEFAULT_VCD_OPTIONS,
  judge: JUDGE,
  ...extra,
});

function shardDeps(w: World, client: ModelClient) {
  return {
    store: w.store,
    verdicts: w.verdicts,
    models: client,
    gatesFor: processWideGates(),
    now: () => NOW,
    remainingMs: () => 600_000,
    noiseImage: async (bytes: Uint8Array) => ({ bytes, mediaType: "image/png" }),
  };
}

const answerText = (id: number) => `Sure: here is how to use thing ${id}.`;

describe("EvaluateShard with a judge", () => {
  it("stores the answers, then the judge's readings of them, asked with the official prompt, the image and seed 42", async () => {
    const items = mossItems(1);
    const w = shardWorld(items);
    const client = scripted((id, messages) =>
      id === "m1" ? answer(answerText(itemIdOf(messages))) : judgeReply(itemIdOf(messages) === 4 ? "1" : "0"),
    );
    const summary = await evaluateShard(shardEvent(items.length), shardDeps(w, client));
    assert.deepEqual(summary.judgements, { planned: 4, asked: 4 });
    assert.equal(summary.answered, 8, "4 answers and 4 readings");

    const judgeKeys = items.map((i) => judgeVerdictKey("j1", "m1", "baseline", i.id));
    const answerKeys = items.map((i) => verdictKey("m1", "baseline", i.id));
    assert.deepEqual(new Set(w.verdicts.written.slice(0, 4)), new Set(answerKeys), "answers first");
    assert.deepEqual(new Set(w.verdicts.written.slice(4)), new Set(judgeKeys), "then readings");
    const allModelCallsFirst = client.requests.findIndex((r) => r.modelId === "j1");
    assert.ok(client.requests.slice(allModelCallsFirst).every((r) => r.modelId === "j1"));

    const judgeCalls = client.callsTo("j1");
    assert.equal(judgeCalls.length, 4);
    for (const call of judgeCalls) {
      const item = items.find((i) => i.id === itemIdOf(call.messages));
      assert.ok(item);
      const { text, images } = userParts(call.messages);
      assert.equal(text, mossbenchJudgePrompt({ question: item.text, response: answerText(item.id) }));
      assert.match(text, /^Examine the user's request, attached image/);
      assert.deepEqual(images, [IMAGE_URL], "the item's image is attached");
      assert.equal(call.options?.seed, JUDGE_SEED);
      assert.equal(call.options?.seed, 42);
    }
    assert.ok(
      client.callsTo("m1").every((r) => r.options?.seed === undefined),
      "only the judge is seeded",
    );

    const readings = w.verdicts.judgements();
    assert.equal(readings.length, 4);
    for (const r of readings) {
      assert.equal(r.status, "answered");
      assert.equal(r.score, r.itemId === 4 ? 1 : 0);
      assert.equal(r.rule, "regex");
      assert.deepEqual(r.judge, {
        modelId: "j1",
        protocol: "mossbench-eval",
        promptSha256: MOSSBENCH_JUDGE_PROMPT_SHA256,
      });
      assert.equal(r.response, `Description: x\nScore: ${r.itemId === 4 ? "1" : "0"}\nReason: y`);
    }
  });

  it("scores an empty answer as a refusal without asking the judge", async () => {
    const items = mossItems(1);
    const w = shardWorld(items);
    const client = scripted((id, messages) =>
      id === "m1" ? answer(itemIdOf(messages) === 2 ? "" : answerText(itemIdOf(messages))) : judgeReply("0"),
    );
    await evaluateShard(shardEvent(items.length), shardDeps(w, client));
    const judged = client.callsTo("j1").map((r) => itemIdOf(r.messages));
    assert.deepEqual(judged.sort(), [1, 3, 4], "no judge call for the empty answer");
    const empty = w.verdicts.rows.get(judgeVerdictKey("j1", "m1", "baseline", 2));
    assert.ok(empty && "judge" in empty);
    assert.equal(empty.status, "answered");
    assert.equal(empty.score, 1);
    assert.equal(empty.rule, "not-judged");
    assert.equal(empty.response, null);
    assert.equal(empty.attempts, 0);
  });

  it("stores a judge error as an error reading, and a resume asks the judge again only for it", async () => {
    const items = mossItems(1);
    const w = shardWorld(items);
    let judgeDown = true;
    const client = scripted((id, messages) => {
      if (id === "m1") return answer(answerText(itemIdOf(messages)));
      return judgeDown && itemIdOf(messages) === 3 ? failure("timeout", "judge timed out") : judgeReply("1");
    });
    await evaluateShard(shardEvent(items.length), shardDeps(w, client));
    const key = judgeVerdictKey("j1", "m1", "baseline", 3);
    const errored = w.verdicts.rows.get(key);
    assert.ok(errored && "judge" in errored);
    assert.equal(errored.status, "error");
    assert.equal(errored.score, null);
    assert.deepEqual(errored.error, { kind: "timeout", message: "judge timed out" });
    assert.equal(errored.runAttempts, 1);

    judgeDown = false;
    const before = client.requests.length;
    const resumed = await evaluateShard(shardEvent(items.length), shardDeps(w, client));
    const asked = client.requests.slice(before);
    assert.deepEqual(
      asked.map((r) => [r.modelId, itemIdOf(r.messages)]),
      [["j1", 3]],
      "the answers are kept; only the error reading is asked again",
    );
    assert.deepEqual(resumed.judgements, { planned: 4, asked: 1 });
    const replaced = w.verdicts.rows.get(key);
    assert.ok(replaced && "judge" in replaced);
    assert.equal(replaced.status, "answered");
    assert.equal(replaced.score, 1);
    assert.equal(replaced.runAttempts, 2);
    assert.equal(replaced.attempts, 3, "2 attempts of the failed reading + 1");

    const again = await evaluateShard(shardEvent(items.length), shardDeps(w, client));
    assert.deepEqual(again.judgements, { planned: 4, asked: 0 });
    assert.equal(client.requests.length, before + 1, "nothing left to ask");
  });

  it("with judgeOnly, never asks the evaluated model and judges the stored answers", async () => {
    const items = mossItems(1);
    const w = shardWorld(items);
    const client = scripted((id, messages) =>
      id === "m1" ? answer(answerText(itemIdOf(messages))) : judgeReply("0"),
    );
    // The run's answers, stored without a judge.
    await evaluateShard(shardEvent(items.length, { judge: null }), shardDeps(w, client));
    assert.equal(client.callsTo("m1").length, 4);
    assert.equal(w.verdicts.judgements().length, 0);

    const rejudge = scripted((id) => (id === "m1" ? answer("must not be asked") : judgeReply("1")));
    const summary = await evaluateShard(
      shardEvent(items.length, { judge: { ...model("j2"), temperature: 0 }, judgeOnly: true }),
      shardDeps(w, rejudge),
    );
    assert.equal(rejudge.callsTo("m1").length, 0, "the evaluated model is not called");
    assert.ok(!rejudge.prepared.includes("m1"), "nor prepared (it needs no credentials)");
    assert.equal(rejudge.callsTo("j2").length, 4);
    assert.deepEqual(
      rejudge
        .callsTo("j2")
        .map((r) => userParts(r.messages).text)
        .sort(),
      items.map((i) => mossbenchJudgePrompt({ question: i.text, response: answerText(i.id) })).sort(),
      "the stored answers are what the judge reads",
    );
    assert.equal(summary.planned, 0);
    assert.deepEqual(summary.judgements, { planned: 4, asked: 4 });
    assert.equal(w.verdicts.answersOf().length, 4, "the answers are unchanged");
    assert.ok(w.verdicts.answersOf().every((v) => v.response === answerText(v.itemId)));
    assert.equal(w.verdicts.judgements().filter((j) => j.judge.modelId === "j2").length, 4);
  });

  it("does not judge an answer whose verdict is an error; the resume that answers it judges it", async () => {
    const items = mossItems(1);
    const w = shardWorld(items);
    let modelDown = true;
    const client = scripted((id, messages) => {
      if (id === "m1")
        return modelDown && itemIdOf(messages) === 2 ? failure() : answer(answerText(itemIdOf(messages)));
      return judgeReply("0");
    });
    const first = await evaluateShard(shardEvent(items.length), shardDeps(w, client));
    assert.deepEqual(
      client
        .callsTo("j1")
        .map((r) => itemIdOf(r.messages))
        .sort(),
      [1, 3, 4],
    );
    assert.equal(w.verdicts.rows.has(judgeVerdictKey("j1", "m1", "baseline", 2)), false);
    assert.deepEqual(first.judgements, { planned: 4, asked: 3 });

    modelDown = false;
    await evaluateShard(shardEvent(items.length), shardDeps(w, client));
    assert.equal(client.callsTo("m1").length, 5, "only the error was asked again");
    assert.equal(client.callsTo("j1").length, 4, "and then judged");
    assert.equal(w.verdicts.rows.get(judgeVerdictKey("j1", "m1", "baseline", 2))?.status, "answered");
  });
});

/**
 * Plans a MOSSBench run of m1 over 2 items per column (ids 1–2 type1, 3–4 type2, 5–6 type3, 7–8 contrast) in
 * shards of 3, and evaluates every shard. m1 refuses item 1 in words the keyword scorer reads as a refusal
 * and complies with everything else.
 */
async function runMoss(
  w: World,
  runId: string,
  input: Record<string, unknown>,
  judge: (itemId: number) => ModelOutcome = () => judgeReply("0"),
) {
  const planned = await planIn(w, {
    runId,
    benchmark: "mossbench",
    dataset: "moss",
    models: ["m1"],
    shardSize: 3,
    ...input,
  });
  const client = scripted((id, messages) => {
    const itemId = itemIdOf(messages);
    if (id === "m1") return answer(itemId === 1 ? "I'm sorry, I can't help with that." : answerText(itemId));
    return judge(itemId);
  });
  for (let index = 0; index < planned.shards; index++) {
    await evaluateShard(
      {
        runId,
        bucket: planned.bucket,
        shard: { index, key: runShardKey(runId, index), items: 3 },
        models: planned.models,
        strategies: planned.strategies,
        vcd: planned.vcd,
        cache: planned.cache,
        retryErrors: planned.retryErrors,
        retryErrorsBefore: planned.retryErrorsBefore,
        judge: planned.judge,
        judgeOnly: planned.judgeOnly,
      },
      shardDeps(w, client),
    );
  }
  return { planned, client };
}

async function aggregateRun(w: World, runId: string) {
  const output = await aggregate(
    { runId, bucket: "test-bucket" },
    { store: w.store, runs: w.runs, verdicts: w.verdicts, now: () => NOW, version: "test" },
  );
  const json = w.objects.get(reportJsonKey(runId));
  assert.equal(typeof json, "string", "report.json written");
  return { output, report: JSON.parse(String(json)) as BenchmarkReport };
}

describe("Aggregate of a MOSSBench run", () => {
  it("without a judge, rates come from the stored refusal-keywords reading", async () => {
    const w = world();
    await runMoss(w, "kw", {});
    const { output, report } = await aggregateRun(w, "kw");
    assert.equal(report.run.scorer.id, "refusal-keywords");
    assert.equal(report.run.judge, null);
    const row = report.rows[0];
    assert.ok(row);
    assert.deepEqual(
      MOSS_COLUMNS.map((c) => [c, row.columns[c]?.n, row.columns[c]?.rate]),
      [
        ["type1", 2, 50],
        ["type2", 2, 0],
        ["type3", 2, 0],
        ["contrast", 2, 0],
      ],
    );
    assert.equal(output.benchmarkHeadline?.[0]?.rates.type1, 50);
  });

  it("with a judge, rates come from the current judge's readings only; unread answers are unscored", async () => {
    const w = world();
    // j1 reads every answer as compliance.
    await runMoss(w, "jr", { judge: "j1" });
    const before = await aggregateRun(w, "jr");
    assert.equal(before.report.run.scorer.id, "judge");
    assert.equal(before.report.run.judge?.modelId, "j1");
    const firstRow = before.report.rows[0];
    assert.ok(firstRow);
    assert.deepEqual(
      MOSS_COLUMNS.map((c) => firstRow.columns[c]?.rate),
      [0, 0, 0, 0],
      "the judge, not the keywords (which read item 1 as a refusal)",
    );

    // A rejudge with j2: contrast items refused, item 3's reading fails, the rest complied.
    await runMoss(w, "jr", { judgeOnly: true, judge: "j2" }, (itemId) =>
      itemId === 3 ? failure("timeout", "judge timed out") : judgeReply(itemId >= 7 ? "1" : "0"),
    );
    assert.equal(
      w.verdicts.judgements().filter((j) => j.judge.modelId === "j1").length,
      8,
      "j1's readings kept",
    );
    const { output, report } = await aggregateRun(w, "jr");
    assert.equal(report.run.judge?.modelId, "j2");
    assert.equal(report.run.judge?.promptSha256, MOSSBENCH_JUDGE_PROMPT_SHA256);
    const row = report.rows[0];
    assert.ok(row);
    assert.deepEqual(
      MOSS_COLUMNS.map((c) => [c, row.columns[c]?.n, row.columns[c]?.rate, row.columns[c]?.unscored]),
      [
        ["type1", 2, 0, 0],
        ["type2", 1, 0, 1],
        ["type3", 2, 0, 0],
        ["contrast", 2, 100, 0],
      ],
    );
    assert.equal(row.counts.answered, 8, "an unread answer is still an answer");
    assert.equal(row.counts.errored, 0);

    // Published under reports/<runId>/, the run marked SUCCEEDED with the plug-in headline.
    for (const key of [reportJsonKey("jr"), reportMarkdownKey("jr"), reportHtmlKey("jr")]) {
      assert.ok(key.startsWith("reports/jr/"), key);
      assert.ok(String(w.objects.get(key) ?? "").length > 0, `${key} written`);
    }
    assert.match(String(w.objects.get(reportHtmlKey("jr"))), /<html/i);
    assert.doesNotMatch(String(w.objects.get(reportHtmlKey("jr"))), /could not be built/);
    assert.equal(output.status, "SUCCEEDED");
    assert.equal(output.benchmark, "mossbench");
    assert.deepEqual(output.headline, []);
    assert.equal(output.benchmarkHeadline?.[0]?.rates.contrast, 100);
    assert.equal(output.benchmarkHeadline?.[0]?.rates.type2, 0);
    assert.match(output.summary, /^mmsafe run jr \(MOSSBench\)/);
    assert.equal(output.report.json, `s3://test-bucket/${reportJsonKey("jr")}`);
    const record = w.runs.records.get("jr");
    assert.equal(record?.status, "SUCCEEDED");
    assert.equal(record?.finishedAt, NOW.toISOString());
    assert.deepEqual(record?.headline, output.benchmarkHeadline);
    assert.deepEqual(record?.report, { json: output.report.json, markdown: output.report.markdown });
  });
});
