import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import {
  readVlguardDataset,
  type VlguardDataset,
  VlguardLayoutError,
} from "../../src/benchmarks/vlguard/layout.ts";
import { VLGUARD_CATEGORY_COUNTS, writeVlguardSample } from "../../src/benchmarks/vlguard/sample.ts";
import { SAMPLE_MARKER_FILE } from "../../src/dataset/provenance.ts";
import { type ZipEntry, zipEntriesOf, zipOf } from "../fixtures/zip.ts";

interface RawRecord {
  id: string;
  image: string;
  safe: boolean;
  harmful_category?: string;
  "instr-resp": Record<string, string>[];
}

let tmp: string;
let sampleDir: string;
let sample: VlguardDataset;
let raw: RawRecord[];

/** A copy of the sample, optionally without its marker (so provenance is checked, not short-cut). */
async function copyOfSample(name: string, { marker = true } = {}): Promise<string> {
  const dir = path.join(tmp, name);
  await cp(sampleDir, dir, { recursive: true });
  if (!marker) await unlink(path.join(dir, SAMPLE_MARKER_FILE));
  return dir;
}

const read = (dir: string): Promise<VlguardDataset> =>
  readVlguardDataset(path.join(dir, "test.json"), path.join(dir, "test"));

/** The sample's `test/` folder as zip entries under the root folder `test/` (every other one deflated). */
const sampleZipEntries = (): Promise<ZipEntry[]> => zipEntriesOf(path.join(sampleDir, "test"), "test");

/** `test.json` and the sample marker of the sample, beside `test.zip` holding `entries`. */
async function zippedSample(name: string, entries: readonly ZipEntry[]): Promise<string> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  await cp(path.join(sampleDir, "test.json"), path.join(dir, "test.json"));
  await cp(path.join(sampleDir, SAMPLE_MARKER_FILE), path.join(dir, SAMPLE_MARKER_FILE));
  await writeFile(path.join(dir, "test.zip"), zipOf(entries));
  return dir;
}

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "vlguard-layout-"));
  sampleDir = path.join(tmp, "sample");
  await writeVlguardSample(sampleDir, { seed: 7 });
  sample = await read(sampleDir);
  raw = JSON.parse(await readFile(path.join(sampleDir, "test.json"), "utf8")) as RawRecord[];
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("VLGuard sample", () => {
  it("has the real subset sizes, categories and folders", () => {
    assert.equal(raw.length, 1000);
    const byColumn = new Map<string, number>();
    for (const r of sample.records) byColumn.set(r.column, (byColumn.get(r.column) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries(byColumn), { unsafes: 442, safe_unsafes: 558, safe_safes: 558 });
    assert.deepEqual(sample.skipped, []);
    assert.deepEqual(sample.extraImages, []);
    assert.deepEqual(sample.mismatchedExtensions, []);
    assert.deepEqual(sample.provenance, { kind: "sample", size: "full", seed: 7 });

    const pairs = new Map<string, number>();
    for (const r of sample.records.filter((r) => r.column === "unsafes")) {
      const key = `${r.groups.harmful_category}/${r.groups.harmful_subcategory}`;
      pairs.set(key, (pairs.get(key) ?? 0) + 1);
    }
    for (const [category, subcategory, n] of VLGUARD_CATEGORY_COUNTS)
      assert.equal(pairs.get(`${category}/${subcategory}`), n);

    const sources = new Map<string, number>();
    for (const r of raw) {
      const folder = r.image.split("/")[0] ?? "";
      sources.set(folder, (sources.get(folder) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(sources), {
      privacyAlert: 398,
      HOD: 200,
      hatefulMemes: 200,
      bad_ads: 102,
      "harm-p": 100,
    });
  });

  it("keeps ids as strings (leading zeros included) and makes item ids unique", () => {
    const ids = sample.records.map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length);
    const zeroLed = raw.filter((r) => /^0\d+$/.test(r.id));
    assert.ok(zeroLed.length >= 3, "hatefulMemes ids with leading zeros");
    for (const r of zeroLed) {
      const expected = r.safe ? [`${r.id}:unsafe`, `${r.id}:safe`] : [r.id];
      for (const id of expected) assert.ok(ids.includes(id), id);
    }
  });

  it("finds the instructions by key whatever the dicts' order, and detects the media type", () => {
    const byId = new Map(sample.records.map((r) => [r.id, r]));
    const orders = new Set<string>();
    for (const r of raw) {
      if (!r.safe) {
        assert.equal(byId.get(r.id)?.text, r["instr-resp"][0]?.instruction);
        assert.equal(byId.get(r.id)?.expected, "refuse");
        continue;
      }
      const safe = r["instr-resp"].find((d) => "safe_instruction" in d);
      const unsafe = r["instr-resp"].find((d) => "unsafe_instruction" in d);
      orders.add(Object.keys(r["instr-resp"][0] ?? {}).join(","));
      assert.equal(byId.get(`${r.id}:safe`)?.text, safe?.safe_instruction);
      assert.equal(byId.get(`${r.id}:safe`)?.expected, "comply");
      assert.equal(byId.get(`${r.id}:unsafe`)?.text, unsafe?.unsafe_instruction);
      assert.equal(byId.get(`${r.id}:unsafe`)?.groups.harmful_category, null);
    }
    assert.ok(orders.size > 1, "the sample varies the dicts' order");
    for (const r of sample.records) {
      assert.equal(r.mediaType, r.imagePath.endsWith(".jpg") ? "image/jpeg" : "image/png");
      assert.equal(r.groups.source, r.imagePath.split("/")[0]);
    }
  });

  it("is deterministic per seed", async () => {
    const again = path.join(tmp, "again");
    await writeVlguardSample(again, { seed: 7 });
    assert.deepEqual(
      await readFile(path.join(again, "test.json")),
      await readFile(path.join(sampleDir, "test.json")),
    );
    const image = raw[0]?.image ?? "";
    assert.deepEqual(
      await readFile(path.join(again, "test", image)),
      await readFile(path.join(sampleDir, "test", image)),
    );
    const other = path.join(tmp, "other");
    await writeVlguardSample(other, { seed: 8 });
    assert.notDeepEqual(
      await readFile(path.join(other, "test.json")),
      await readFile(path.join(sampleDir, "test.json")),
    );
  });
});

describe("readVlguardDataset", () => {
  it("skips both items of a safe image that is missing, naming the path", async () => {
    const dir = await copyOfSample("missing", { marker: false });
    const record = raw.find((r) => r.safe);
    assert.ok(record);
    await unlink(path.join(dir, "test", record.image));
    const data = await read(dir);
    const skipped = data.skipped.filter((s) => s.reason === "missing_image");
    assert.deepEqual(
      skipped.map((s) => s.id),
      [`${record.id}:unsafe`, `${record.id}:safe`],
    );
    for (const s of skipped) assert.match(s.detail, new RegExp(record.image.replace(/[.]/g, "\\.")));
    assert.equal(data.records.length, 1558 - 2);
    assert.equal(data.provenance.kind, "modified");
    if (data.provenance.kind === "modified") {
      assert.equal(data.provenance.missing, 1);
      assert.ok(data.provenance.examples.some((e) => e.includes(record.image)));
    }
  });

  it("labels a test.json that differs from the pinned one as modified, and still imports it", async () => {
    const dir = await copyOfSample("modified", { marker: false });
    const data = await read(dir);
    assert.equal(data.records.length, 1558);
    assert.equal(data.provenance.kind, "modified");
    if (data.provenance.kind === "modified") {
      assert.equal(data.provenance.changed, 1);
      assert.equal(data.provenance.missing, 0);
      assert.match(data.provenance.examples[0] ?? "", /^test\.json differs from ys-zong\/VLGuard@a2f85c9/);
    }
  });

  it("reports unused images as extra and extensions that lie about the bytes", async () => {
    const dir = await copyOfSample("extra");
    await writeFile(path.join(dir, "test", "HOD", "not_in_test_json.jpg"), "x");
    const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: "red" } })
      .png()
      .toBuffer();
    const jpgPath = raw.find((r) => r.image.endsWith(".jpg"))?.image ?? "";
    await writeFile(path.join(dir, "test", jpgPath), png);
    const data = await read(dir);
    assert.deepEqual(data.extraImages, ["HOD/not_in_test_json.jpg"]);
    assert.deepEqual(data.mismatchedExtensions, [`${jpgPath} (PNG bytes)`]);
    assert.equal(data.records.find((r) => r.imagePath === jpgPath)?.mediaType, "image/png");
    assert.equal(data.provenance.kind, "sample");
  });

  it("skips items whose image is not an image, and malformed records with the reason", async () => {
    const dir = await copyOfSample("broken");
    const unsafe = raw.find((r) => !r.safe);
    assert.ok(unsafe);
    await writeFile(path.join(dir, "test", unsafe.image), "not an image");
    const records = structuredClone(raw) as unknown as Record<string, unknown>[];
    const numericIndex = raw.findIndex((r) => /^\d+$/.test(r.id));
    const safeIndex = raw.findIndex((r, i) => r.safe && i !== numericIndex);
    (records[numericIndex] as Record<string, unknown>).id = Number(raw[numericIndex]?.id);
    (records[safeIndex] as { "instr-resp": Record<string, string>[] })["instr-resp"] = [
      { safe_instruction: "a", response: "b" },
      { safe_instruction: "c", response: "d" },
    ];
    await writeFile(path.join(dir, "test.json"), JSON.stringify(records));
    const data = await read(dir);
    const byReason = (reason: string) => data.skipped.filter((s) => s.reason === reason);
    assert.deepEqual(
      byReason("unreadable_image").map((s) => s.id),
      [unsafe.id],
    );
    const malformed = byReason("malformed_record");
    assert.equal(malformed.length, 2);
    assert.ok(malformed.some((s) => /leading zeros/.test(s.detail)));
    assert.ok(malformed.some((s) => s.id === raw[safeIndex]?.id && /unsafe_instruction/.test(s.detail)));
  });

  it("throws a VlguardLayoutError naming the path and what to download", async () => {
    await assert.rejects(
      readVlguardDataset(path.join(tmp, "nowhere", "test.json"), path.join(sampleDir, "test")),
      (e: unknown) =>
        e instanceof VlguardLayoutError && /nowhere.*test\.json.*data\/test\.json/.test(e.message),
    );
    await assert.rejects(
      readVlguardDataset(path.join(sampleDir, "test.json"), path.join(tmp, "no-images")),
      (e: unknown) => e instanceof VlguardLayoutError && /no-images.*test\.zip/.test(e.message),
    );
    const zip = path.join(tmp, "test.zip");
    await writeFile(zip, "PK");
    await assert.rejects(
      readVlguardDataset(path.join(sampleDir, "test.json"), zip),
      (e: unknown) => e instanceof VlguardLayoutError && /unzip/.test(e.message),
    );
    const notList = path.join(tmp, "object.json");
    await writeFile(notList, "{}");
    await assert.rejects(
      readVlguardDataset(notList, path.join(sampleDir, "test")),
      (e: unknown) => e instanceof VlguardLayoutError && /JSON list/.test(e.message),
    );
  });
});

describe("readVlguardDataset from test.zip", () => {
  it("reads a zip with the test/ root folder like the unzipped folder, and serves the images' bytes", async () => {
    const dir = await zippedSample("zip-ok", await sampleZipEntries());
    const zipped = await readVlguardDataset(path.join(dir, "test.json"), path.join(dir, "test.zip"), {
      concurrency: 4,
    });
    try {
      assert.deepEqual(zipped.records, sample.records);
      assert.deepEqual(zipped.skipped, []);
      assert.deepEqual(zipped.extraImages, []);
      assert.deepEqual(zipped.mismatchedExtensions, []);
      assert.deepEqual(zipped.provenance, { kind: "sample", size: "full", seed: 7 });
      assert.deepEqual(zipped.images, { kind: "zip", path: path.join(dir, "test.zip") });
      for (const record of [zipped.records[0], zipped.records[1], zipped.records.at(-1)]) {
        assert.ok(record);
        const bytes = await zipped.openImage(record);
        assert.deepEqual(bytes, await readFile(path.join(sampleDir, "test", record.imagePath)));
        assert.equal(bytes.length, record.imageBytes);
      }
      await assert.rejects(zipped.openImage({ imagePath: "not/used.png" }), VlguardLayoutError);
    } finally {
      await zipped.close();
    }
    // The folder read serves bytes the same way.
    const first = sample.records[0];
    assert.ok(first);
    assert.deepEqual(
      await sample.openImage(first),
      await readFile(path.join(sampleDir, "test", first.imagePath)),
    );
    assert.deepEqual(sample.images, { kind: "folder", path: path.join(sampleDir, "test") });
  });

  it("refuses a zip with an entry that leaves the archive, naming the entry", async () => {
    const png = await readFile(path.join(sampleDir, "test", sample.records[0]?.imagePath ?? ""));
    const entries = [...(await sampleZipEntries()), { name: "../evil.png", data: png }];
    const dir = await zippedSample("zip-evil", entries);
    await assert.rejects(
      readVlguardDataset(path.join(dir, "test.json"), path.join(dir, "test.zip")),
      (e: unknown) => e instanceof VlguardLayoutError && e.message.includes('entry "../evil.png"'),
    );
    const absolute = await zippedSample("zip-absolute", [{ name: "/etc/evil.png", data: png }]);
    await assert.rejects(
      readVlguardDataset(path.join(absolute, "test.json"), path.join(absolute, "test.zip")),
      (e: unknown) =>
        e instanceof VlguardLayoutError && /entry "\/etc\/evil\.png" is an absolute path/.test(e.message),
    );
  });

  it("skips the records whose image is not in the zip, naming the image", async () => {
    const unsafe = raw.find((r) => !r.safe);
    const safe = raw.find((r) => r.safe);
    assert.ok(unsafe && safe);
    const gone = new Set([`test/${unsafe.image}`, `test/${safe.image}`]);
    const dir = await zippedSample(
      "zip-missing",
      (await sampleZipEntries()).filter((e) => !gone.has(e.name)),
    );
    const zipped = await readVlguardDataset(path.join(dir, "test.json"), path.join(dir, "test.zip"));
    await zipped.close();
    const missing = zipped.skipped.filter((s) => s.reason === "missing_image");
    assert.deepEqual(
      missing.map((s) => s.id).sort(),
      [unsafe.id, `${safe.id}:unsafe`, `${safe.id}:safe`].sort(),
    );
    assert.ok(missing.every((s) => /is not in test\.zip/.test(s.detail)));
    assert.ok(missing.some((s) => s.detail.includes(unsafe.image)));
    assert.equal(zipped.records.length, sample.records.length - 3);
  });
});
