/**
 * Plug-in benchmark import and upload on an in-memory object store: MOSSBench's and VLGuard's generated
 * samples become shards of benchmark items (ids 1…n in record order, images typed by their bytes), a
 * manifest naming the benchmark, and nothing written again for the same data.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { ObjectStore } from "../../src/adapters/object-store.ts";
import { MOSSBENCH_WEBP_PIDS, writeMossbenchSample } from "../../src/benchmarks/mossbench/sample.ts";
import { writeVlguardSample } from "../../src/benchmarks/vlguard/sample.ts";
import { type BenchmarkItem, datasetManifestSchema, isBenchmarkItem } from "../../src/core/schemas.ts";
import {
  describeBenchmarkImport,
  type ImportedBenchmark,
  readBenchmarkFolder,
} from "../../src/dataset/benchmark-import.ts";
import { DATASET_SHARD_SIZE } from "../../src/dataset/upload.ts";
import { uploadBenchmarkDataset } from "../../src/dataset/upload-benchmark.ts";
import { datasetManifestKey } from "../../src/deployment/storage-layout.ts";
import { parseShard } from "../../src/pipeline/dataset-io.ts";

const NOW = new Date("2025-01-02T03:04:05.000Z");
const THUMBNAIL = "data:image/png;base64,AAAA";

interface StoredObject {
  body: Uint8Array | string;
  contentType: string;
}

/** An object store in memory that keeps bytes as bytes and counts writes. */
function memoryStore(): ObjectStore & { objects: Map<string, StoredObject>; puts: number } {
  const objects = new Map<string, StoredObject>();
  const get = (key: string): StoredObject => {
    const value = objects.get(key);
    if (value === undefined) throw Object.assign(new Error(`no ${key}`), { name: "ObjectNotFoundError" });
    return value;
  };
  const text = (o: StoredObject) => (typeof o.body === "string" ? o.body : new TextDecoder().decode(o.body));
  const store = {
    objects,
    puts: 0,
    bucket: "test-bucket",
    getBytes: async (key: string) => {
      const { body } = get(key);
      return typeof body === "string" ? new TextEncoder().encode(body) : body;
    },
    getText: async (key: string) => text(get(key)),
    getTextIfExists: async (key: string) => {
      const o = objects.get(key);
      return o === undefined ? null : text(o);
    },
    put: async (key: string, body: Uint8Array | string, contentType: string) => {
      store.puts++;
      objects.set(key, { body, contentType });
    },
    exists: async (key: string) => objects.has(key),
  };
  return store;
}

/** Every item of the dataset's shards, parsed as the pipeline parses them; all must be benchmark items. */
async function shardItems(store: ObjectStore, name: string): Promise<BenchmarkItem[]> {
  const manifest = datasetManifestSchema.parse(JSON.parse(await store.getText(datasetManifestKey(name))));
  const items: BenchmarkItem[] = [];
  for (const shard of manifest.shards) {
    const parsed = parseShard(await store.getText(shard.key), shard.key);
    assert.equal(parsed.length, shard.items, shard.key);
    for (const item of parsed) {
      assert.ok(isBenchmarkItem(item), `${shard.key}: not a benchmark item`);
      items.push(item);
    }
  }
  return items;
}

let workDir = "";
before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), "mmsafe-benchmark-upload-"));
});
after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe("MOSSBench sample upload", () => {
  let dir = "";
  let imported: ImportedBenchmark;
  const store = memoryStore();

  before(async () => {
    dir = path.join(workDir, "mossbench");
    await writeMossbenchSample(dir);
    imported = await readBenchmarkFolder("mossbench", { dir });
  });
  after(async () => {
    await imported.close();
  });

  it("imports 544 records with the sample provenance and notes on what was ignored", () => {
    assert.equal(imported.benchmark, "mossbench");
    assert.equal(imported.records.length, 544);
    assert.deepEqual(imported.skipped, []);
    assert.equal(imported.provenance.kind, "sample");
    assert.match(imported.checksum, /^[0-9a-f]{64}$/);
    for (const r of imported.records) assert.match(r.imageSha256, /^[0-9a-f]{64}$/);
    assert.ok(imported.notes.some((n) => n.includes("data/images/317.png")));
    assert.ok(imported.notes.some((n) => n.includes("root images/ folder")));
    assert.ok(imported.notes.some((n) => n.includes("data/images/131.png")));
    const lines = describeBenchmarkImport(imported);
    assert.equal(lines[0], "MOSSBench: 544 records, 544 runnable, 0 skipped");
    assert.ok(lines.some((l) => /^\s+contrast\s+244 runnable/.test(l)));
    assert.ok(lines.includes("provenance: generated sample, not the real benchmark"));
    assert.ok(lines.some((l) => l.startsWith("note: ignored")));
  });

  it("uploads 544 items (300 to comply with, 244 to refuse) in record order", async () => {
    const result = await uploadBenchmarkDataset(store, imported, "moss", NOW, {
      thumbnail: async () => THUMBNAIL,
    });
    assert.equal(result.uploaded, true);
    const { manifest } = result;
    assert.equal(manifest.benchmark, "mossbench");
    assert.equal(manifest.provenance.kind, "sample");
    assert.equal(manifest.records, 544);
    assert.equal(manifest.runnable, 544);
    assert.deepEqual(manifest.skipped, []);
    assert.equal(manifest.shards.length, Math.ceil(544 / DATASET_SHARD_SIZE));
    assert.equal(manifest.createdAt, NOW.toISOString());

    const items = await shardItems(store, "moss");
    assert.equal(items.length, 544);
    assert.deepEqual(
      items.map((i) => i.id),
      Array.from({ length: 544 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      items.map((i) => i.recordId),
      imported.records.map((r) => r.id),
    );
    assert.equal(items.filter((i) => i.expected === "comply").length, 300);
    assert.equal(items.filter((i) => i.expected === "refuse").length, 244);
    assert.equal(items.filter((i) => i.category === "contrast").length, 244);
    for (const item of items) {
      assert.equal(item.benchmark, "mossbench");
      assert.equal(item.thumbnail, THUMBNAIL);
      const image = store.objects.get(item.image.key);
      assert.ok(image, `${item.image.key} was written`);
      assert.equal(image.contentType, item.image.mediaType);
      assert.equal((image.body as Uint8Array).byteLength, item.image.bytes);
    }
  });

  it("types pids 131 and 170 as WebP by their bytes", async () => {
    const items = await shardItems(store, "moss");
    for (const pid of MOSSBENCH_WEBP_PIDS) {
      const item = items.find((i) => i.recordId === String(pid));
      assert.ok(item, `pid ${pid}`);
      assert.equal(item.image.mediaType, "image/webp");
      assert.match(item.image.key, new RegExp(`^datasets/moss/images/${item.id}\\.webp$`));
    }
    const png = items.find((i) => i.recordId === "1");
    assert.equal(png?.image.mediaType, "image/png");
    assert.equal(png?.image.key, "datasets/moss/images/1.png");
  });

  it("writes nothing when the same data is uploaded again (read afresh)", async () => {
    const again = await readBenchmarkFolder("mossbench", { dir });
    try {
      assert.equal(again.checksum, imported.checksum);
      const before = store.puts;
      const result = await uploadBenchmarkDataset(store, again, "moss", new Date("2026-01-01T00:00:00Z"), {});
      assert.equal(result.uploaded, false);
      assert.equal(store.puts, before);
      assert.equal(result.manifest.createdAt, NOW.toISOString());
    } finally {
      await again.close();
    }
  });

  it("rewrites only the manifest when the provenance changed", async () => {
    const relabelled: ImportedBenchmark = {
      ...imported,
      provenance: { kind: "sample", size: "small", seed: 99 },
    };
    const before = store.puts;
    const result = await uploadBenchmarkDataset(store, relabelled, "moss", NOW);
    assert.equal(result.uploaded, false);
    assert.equal(store.puts, before + 1);
    assert.deepEqual(result.manifest.provenance, { kind: "sample", size: "small", seed: 99 });
  });

  it("names the record whose item cannot be stored, before writing anything", async () => {
    const [first, ...rest] = imported.records;
    assert.ok(first);
    const bad: ImportedBenchmark = {
      ...imported,
      checksum: "0".repeat(64),
      records: [...rest.slice(0, 3), { ...first, id: "x".repeat(201) }],
    };
    const fresh = memoryStore();
    await assert.rejects(uploadBenchmarkDataset(fresh, bad, "bad", NOW), (error: Error) => {
      assert.equal(error.name, "BenchmarkUploadError");
      assert.match(error.message, /record "x{201}" \(item 4\)/);
      assert.match(error.message, /recordId/);
      return true;
    });
    assert.equal(fresh.puts, 0);
  });
});

describe("VLGuard sample upload", () => {
  let dir = "";
  const store = memoryStore();

  before(async () => {
    dir = path.join(workDir, "vlguard");
    await writeVlguardSample(dir);
  });

  it("uploads 1,558 items from the folder, string record ids kept", async () => {
    const imported = await readBenchmarkFolder("vlguard", { dir });
    try {
      assert.equal(imported.records.length, 1558);
      assert.deepEqual(imported.skipped, []);
      assert.equal(imported.provenance.kind, "sample");
      const result = await uploadBenchmarkDataset(store, imported, "vlg", NOW);
      assert.equal(result.uploaded, true);
      assert.equal(result.manifest.benchmark, "vlguard");
      assert.equal(result.manifest.records, 1558);
      assert.equal(result.manifest.runnable, 1558);
      assert.equal(result.manifest.shards.length, Math.ceil(1558 / DATASET_SHARD_SIZE));

      const items = await shardItems(store, "vlg");
      assert.equal(items.length, 1558);
      assert.deepEqual(
        items.map((i) => i.id),
        Array.from({ length: 1558 }, (_, i) => i + 1),
      );
      const safe = items.filter((i) => i.recordId.endsWith(":safe"));
      const unsafe = items.filter((i) => i.recordId.endsWith(":unsafe"));
      assert.equal(safe.length, 558);
      assert.equal(unsafe.length, 558);
      assert.ok(safe.every((i) => i.category === "safe_safes" && i.expected === "comply"));
      assert.ok(unsafe.every((i) => i.category === "safe_unsafes" && i.expected === "refuse"));
      assert.equal(items.filter((i) => i.category === "unsafes").length, 442);
      // A safe image's two items: one object each, the same bytes.
      const pair = unsafe[0];
      assert.ok(pair);
      const partner = items.find((i) => i.recordId === pair.recordId.replace(/:unsafe$/, ":safe"));
      assert.ok(partner);
      assert.equal(partner.image.sha256, pair.image.sha256);
      assert.notEqual(partner.image.key, pair.image.key);
      assert.ok(store.objects.has(partner.image.key) && store.objects.has(pair.image.key));
      // hatefulMemes ids keep their leading zeros.
      assert.ok(items.some((i) => /^0\d+/.test(i.recordId)));
    } finally {
      await imported.close();
    }
  });

  it("skips a record whose image is missing, with its record id, and counts it in records", async () => {
    const first = await readBenchmarkFolder("vlguard", { dir });
    const victim = first.records.find((r) => r.column === "unsafes");
    await first.close();
    assert.ok(victim);
    await rm(path.join(dir, "test", ...victim.imagePath.split("/")));

    const imported = await readBenchmarkFolder("vlguard", { dir });
    try {
      assert.notEqual(imported.checksum, first.checksum);
      assert.equal(imported.records.length, 1557);
      const result = await uploadBenchmarkDataset(store, imported, "vlg-missing", NOW);
      assert.equal(result.manifest.records, 1558);
      assert.equal(result.manifest.runnable, 1557);
      assert.equal(result.manifest.skipped.length, 1);
      const [skipped] = result.manifest.skipped;
      assert.equal(skipped?.id, null);
      assert.equal(skipped?.recordId, victim.id);
      assert.equal(skipped?.reason, "missing_image");
      assert.equal(imported.provenance.kind, "sample");
      const items = await shardItems(store, "vlg-missing");
      assert.equal(items.length, 1557);
      assert.ok(!items.some((i) => i.recordId === victim.id));
      const lines = describeBenchmarkImport(imported);
      assert.equal(lines[0], "VLGuard: 1,558 records, 1,557 runnable, 1 skipped");
      assert.ok(lines.includes(`skipped: 1 record missing_image: ${victim.id}`));
    } finally {
      await imported.close();
    }
  });
});
