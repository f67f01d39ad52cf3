/**
 * `limit` through Plan and Aggregate, on in-memory stores: Plan samples by category (not the first N ids) and
 * Aggregate's report says what was selected, with no skipped record counted under a limit.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ObjectStore } from "../../src/adapters/object-store.ts";
import type { RunRecord, RunStore } from "../../src/adapters/run-store.ts";
import type { VerdictStore } from "../../src/adapters/verdict-store.ts";
import type { Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import { type DatasetItem, modelConfigSchema, type Verdict } from "../../src/core/schemas.ts";
import { buildVerdict } from "../../src/core/verdicts.ts";
import {
  datasetManifestKey,
  datasetShardKey,
  reportJsonKey,
  reportMarkdownKey,
  runShardKey,
} from "../../src/deployment/storage-layout.ts";
import { aggregate } from "../../src/pipeline/aggregate.ts";
import { parseMmsafeawareShard, toJsonl } from "../../src/pipeline/dataset-io.ts";
import { plan } from "../../src/pipeline/plan.ts";
import { datasetItem } from "../fixtures/dataset-item.ts";

const NOW = new Date("2025-01-02T03:04:05.000Z");
const MODEL = modelConfigSchema.parse({ id: "always-no", baseURL: "http://127.0.0.1:9/v1", model: "x" });

/** 60 runnable items: over-safety 1–20, attack 128–157, typical 983–992; ids 2301–2305 have no image. */
const ITEMS: DatasetItem[] = [
  ...Array.from({ length: 20 }, (_, i) => datasetItem(1 + i)),
  ...Array.from({ length: 30 }, (_, i) => datasetItem(128 + i)),
  ...Array.from({ length: 10 }, (_, i) => datasetItem(983 + i)),
];
const SKIPPED = Array.from({ length: 5 }, (_, i) => ({
  id: 2301 + i,
  reason: "have no image",
  detail: "no file",
}));

function memoryStore(objects: Map<string, string>): ObjectStore {
  const text = (key: string): string => {
    const value = objects.get(key);
    if (value === undefined) throw Object.assign(new Error(`no ${key}`), { name: "ObjectNotFoundError" });
    return value;
  };
  return {
    bucket: "test-bucket",
    getBytes: async (key) => new TextEncoder().encode(text(key)),
    getText: async (key) => text(key),
    getTextIfExists: async (key) => objects.get(key) ?? null,
    put: async (key, body) => {
      objects.set(key, typeof body === "string" ? body : new TextDecoder().decode(body));
    },
    exists: async (key) => objects.has(key),
  };
}

function memoryRuns(): RunStore & { records: Map<string, RunRecord> } {
  const records = new Map<string, RunRecord>();
  return {
    records,
    get: async (runId) => records.get(runId) ?? null,
    addUsage: async () => undefined,
    previousOfSchedule: async () => null,
    startOrResume: async (record) => {
      records.set(record.runId, record);
      return record;
    },
    markSucceeded: async () => undefined,
  };
}

/** A dataset "t" in shards of 25, the way upload writes it (id order, the last shard shorter). */
function datasetObjects(): Map<string, string> {
  const objects = new Map<string, string>();
  const shards = [0, 1, 2].map((index) => ({
    key: datasetShardKey("t", index),
    items: ITEMS.slice(index * 25, index * 25 + 25),
  }));
  for (const shard of shards) objects.set(shard.key, toJsonl(shard.items));
  objects.set(
    datasetManifestKey("t"),
    JSON.stringify({
      schemaVersion: 2,
      name: "t",
      provenance: { kind: "sample", size: "small", seed: 1 },
      checksum: "e".repeat(64),
      createdAt: NOW.toISOString(),
      records: ITEMS.length + SKIPPED.length,
      runnable: ITEMS.length,
      skipped: SKIPPED,
      shards: shards.map((s) => ({ key: s.key, items: s.items.length })),
    }),
  );
  return objects;
}

/** Plans a run and answers every planned item "No.", then aggregates it; returns the planned ids and reports. */
async function planAndAggregate(
  runId: string,
  input: Record<string, unknown>,
  beforeAggregate: (objects: Map<string, string>, runs: ReturnType<typeof memoryRuns>) => void = () =>
    undefined,
) {
  const objects = datasetObjects();
  const store = memoryStore(objects);
  const runs = memoryRuns();
  const planned = await plan(
    {
      input: { runId, dataset: "t", models: [MODEL], shardSize: 4, ...input },
      executionName: runId,
      executionId: `exec-${runId}`,
    },
    { store, runs, now: () => NOW },
  );
  const items = Array.from({ length: planned.shards }, (_, i) =>
    parseMmsafeawareShard(objects.get(runShardKey(runId, i)) ?? "", runShardKey(runId, i)),
  ).flat();
  const verdicts: Verdict[] = items.map((item) =>
    buildVerdict(
      runId,
      MODEL.id,
      "baseline",
      item,
      {
        kind: "answer",
        text: "No.",
        finishReason: "stop",
        latencyMs: 1,
        promptTokens: 1,
        completionTokens: 1,
        attempts: 1,
      },
      NOW,
    ),
  );
  const verdictStore: VerdictStore = {
    existing: async () => new Map(),
    put: async () => true,
    listRun: async () => verdicts,
  };
  beforeAggregate(objects, runs);
  await aggregate(
    { runId, bucket: "test-bucket" },
    { store, runs, verdicts: verdictStore, now: () => NOW, version: "t" },
  );
  return {
    planned,
    ids: items.map((i) => i.id),
    report: JSON.parse(objects.get(reportJsonKey(runId)) ?? "null") as Report,
    markdown: objects.get(reportMarkdownKey(runId)) ?? "",
  };
}

describe("limit through Plan and Aggregate", () => {
  it("describes the sample from what Plan recorded, reading the dataset again only for older runs", async () => {
    const dropDatasetShards = (objects: Map<string, string>) => {
      for (const key of [...objects.keys()]) if (key.startsWith("datasets/t/shards/")) objects.delete(key);
    };
    const recorded = await planAndAggregate("lim-rec", { limit: 6 }, dropDatasetShards);
    assert.equal(recorded.report.run.selection.limit?.eligible, 60, "no dataset read was needed");

    const older = await planAndAggregate("lim-old", { limit: 6 }, (_objects, runs) => {
      const record = runs.records.get("lim-old");
      assert.deepEqual(record?.eligible, { typical: 10, attack: 30, oversafety: 20 });
      if (record) delete record.eligible;
    });
    assert.equal(older.report.run.selection.limit?.eligible, 60, "counted from the dataset");
  });

  it("plans a sample stratified by category, not the first ids, in id order", async () => {
    // Shares of 6 from 20 / 30 / 10: over-safety 2, attack 3, typical 1 (the first 6 ids are all over-safety).
    const { planned, ids, report } = await planAndAggregate("lim-6", { limit: 6 });
    assert.equal(planned.planned, 6);
    assert.deepEqual(ids, [1, 2, 128, 129, 130, 983]);
    const row = report.rows[0];
    assert.ok(row);
    assert.deepEqual(
      [row.paper.typical.n, row.paper.attack.n, row.paper.oversafety.n],
      [1, 3, 2],
      "every column of the table has answers",
    );
    assert.notEqual(row.paper.total, null);
  });

  it("under a limit counts no skipped record and says what the sample was drawn from", async () => {
    const { report, markdown } = await planAndAggregate("lim-6b", { limit: 6 });
    assert.equal(report.rows[0]?.counts.skipped, 0);
    assert.equal(report.run.plannedItems, 6);
    assert.deepEqual(report.run.selection, {
      categories: null,
      limit: {
        n: 6,
        method: "stratified-by-category",
        eligible: 60,
        byCategory: [
          { category: "typical", planned: 1, eligible: 10 },
          { category: "attack", planned: 3, eligible: 30 },
          { category: "oversafety", planned: 2, eligible: 20 },
        ],
      },
    });
    assert.ok(markdown.includes("Selection: limit 6 of 60 runnable items, stratified by category"), markdown);
    assert.ok(
      markdown.includes(
        "- always-no / baseline: 6 selected items = answered 6 + errored 0 + skipped 0 + missing 0;",
      ),
    );
    assert.ok(
      markdown.includes("- Skipped by the dataset, not selected: 5 records have no image: ids 2301–2305"),
    );
  });

  it("samples after the categories filter", async () => {
    // 4 of typical 10 and attack 30: shares 1 and 3.
    const { ids, report } = await planAndAggregate("lim-cat", {
      limit: 4,
      categories: ["attack", "typical"],
    });
    assert.deepEqual(ids, [128, 129, 130, 983]);
    assert.deepEqual(report.run.selection.categories, ["typical", "attack"]);
    assert.equal(report.run.selection.limit?.eligible, 40);
  });

  it("without a limit plans everything and counts the skipped records of the selected categories", async () => {
    const { ids, report, markdown } = await planAndAggregate("all", {});
    assert.equal(ids.length, 60);
    assert.equal(report.rows[0]?.counts.skipped, 5);
    assert.deepEqual(report.run.selection, { categories: null, limit: null });
    assert.ok(
      markdown.includes(
        "- always-no / baseline: 65 records = answered 60 + errored 0 + skipped 5 + missing 0;",
      ),
    );
  });
});
