import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import {
  MOSSBENCH_BENIGN_FILE,
  MOSSBENCH_CONTRAST_FILE,
  MossbenchLayoutError,
  readMossbenchDataset,
} from "../../src/benchmarks/mossbench/layout.ts";
import { writeMossbenchSample } from "../../src/benchmarks/mossbench/sample.ts";
import { gitBlobSha1 } from "../../src/dataset/published-tree.ts";

const scratch: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "mossbench-"));
  scratch.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

const png = (r: number): Promise<Buffer> =>
  sharp({ create: { width: 4, height: 4, channels: 3, background: { r, g: 0, b: 0 } } })
    .png()
    .toBuffer();

const benignRecord = (pid: number, over: string, harm: unknown = [7]) => ({
  image: `images/${pid}.png`,
  "short description": "",
  question: `Question ${pid}?`,
  metadata: { over, human: 1, child: 0, syn: 0, ocr: 0, harm },
  pid: String(pid),
  description: "",
});

/** A small layout: benign pids 1, 2, 101, 201 (written out of order), contrast pid 1; and its manifest. */
async function handBuilt(
  edit: (benign: Record<string, unknown>) => void = () => {},
): Promise<{ dir: string; manifest: string }> {
  const dir = await tempDir();
  const benign: Record<string, unknown> = {
    "201": benignRecord(201, "type 3", [5]),
    "2": benignRecord(2, "type 1", [4]),
    "101": benignRecord(101, "type 2", [6]),
    "1": benignRecord(1, "type 1", [7]),
  };
  edit(benign);
  const contrast = {
    "1": { image: "images/1.png", question: "A harmful question?", metadata: { over: "type 1" }, pid: "1" },
  };
  await mkdir(path.join(dir, "data/images_information"), { recursive: true });
  await mkdir(path.join(dir, "data/images"), { recursive: true });
  await mkdir(path.join(dir, "data_contrast/images_information"), { recursive: true });
  await mkdir(path.join(dir, "data_contrast/images"), { recursive: true });
  const files = new Map<string, Buffer>([
    [MOSSBENCH_BENIGN_FILE, Buffer.from(JSON.stringify(benign))],
    [MOSSBENCH_CONTRAST_FILE, Buffer.from(JSON.stringify(contrast))],
    ["data/images/1.png", await png(10)],
    ["data/images/2.png", await png(20)],
    ["data/images/101.png", await png(30)],
    ["data/images/201.png", await png(40)],
    ["data_contrast/images/1.png", await png(50)],
  ]);
  const lines = ["# a test manifest: path, git blob sha1, bytes"];
  for (const [relative, bytes] of files) {
    await writeFile(path.join(dir, relative), bytes);
    lines.push(`${relative}\t${gitBlobSha1(bytes)}\t${bytes.byteLength}`);
  }
  const manifest = path.join(dir, "manifest.tsv");
  await writeFile(manifest, `${lines.join("\n")}\n`);
  return { dir, manifest };
}

describe("a hand-built layout verified against its own manifest", () => {
  test("every file matches: official, records in pid order with the official fields", async () => {
    const { dir, manifest } = await handBuilt();
    const read = await readMossbenchDataset(dir, { manifest });
    assert.deepEqual(read.provenance, { kind: "official", tree: "manifest.tsv", files: 7 });
    assert.deepEqual(read.skipped, []);
    assert.deepEqual(
      read.records.map((r) => [r.id, r.column, r.expected, r.imagePath]),
      [
        ["1", "type1", "comply", "data/images/1.png"],
        ["2", "type1", "comply", "data/images/2.png"],
        ["101", "type2", "comply", "data/images/101.png"],
        ["201", "type3", "comply", "data/images/201.png"],
        ["contrast:1", "contrast", "refuse", "data_contrast/images/1.png"],
      ],
    );
    const first = read.records[0];
    assert.equal(first?.text, "Question 1?");
    assert.equal(first?.mediaType, "image/png");
    assert.deepEqual(first?.groups, {
      over: "Exaggerated Risk",
      human: true,
      child: false,
      syn: false,
      ocr: false,
      harm: 7,
      harmName: "General Harm",
    });
    assert.deepEqual(read.records[4]?.groups, { over: "Exaggerated Risk" });
    assert.deepEqual(read.ignored, { orphanImages: [], duplicateFolder: false });
  });

  test("a changed image: modified, naming the file with expected and actual hashes", async () => {
    const { dir, manifest } = await handBuilt();
    const changed = await png(99);
    const listed = (await readFile(manifest, "utf8"))
      .split("\n")
      .find((l) => l.startsWith("data/images/2.png"));
    const expected = listed?.split("\t")[1] ?? "";
    await writeFile(path.join(dir, "data/images/2.png"), changed);
    const read = await readMossbenchDataset(dir, { manifest });
    assert.deepEqual(read.differences, [
      { path: "data/images/2.png", kind: "changed", expected, actual: gitBlobSha1(changed) },
    ]);
    assert.equal(read.provenance.kind, "modified");
    if (read.provenance.kind !== "modified") return;
    assert.equal(read.provenance.changed, 1);
    assert.equal(read.provenance.missing, 0);
    assert.deepEqual(read.provenance.examples, [
      `data/images/2.png changed (expected blob ${expected.slice(0, 12)}, found ${gitBlobSha1(changed).slice(0, 12)})`,
    ]);
    // The record itself is still evaluable.
    assert.equal(read.records.length, 5);
  });

  test("a missing image: the record is skipped with the reason, file, pid and field", async () => {
    const { dir, manifest } = await handBuilt();
    await unlink(path.join(dir, "data/images/101.png"));
    const read = await readMossbenchDataset(dir, { manifest });
    assert.deepEqual(read.skipped, [
      {
        id: "101",
        reason: "missing_image",
        detail: `${MOSSBENCH_BENIGN_FILE} pid "101": field "image": data/images/101.png is missing`,
      },
    ]);
    assert.equal(read.records.length, 4);
    assert.equal(read.provenance.kind, "modified");
    if (read.provenance.kind === "modified") assert.equal(read.provenance.missing, 1);
  });

  test("an image that is not an image is skipped as unreadable", async () => {
    const { dir, manifest } = await handBuilt();
    await writeFile(path.join(dir, "data/images/2.png"), "not an image");
    const read = await readMossbenchDataset(dir, { manifest });
    assert.equal(read.skipped[0]?.id, "2");
    assert.equal(read.skipped[0]?.reason, "unreadable_image");
    assert.match(read.skipped[0]?.detail ?? "", /data\/images\/2\.png is not a JPEG, PNG, WebP or GIF/);
  });

  test("malformed records are skipped with the field named, never dropped", async () => {
    const { dir, manifest } = await handBuilt((benign) => {
      benign["2"] = benignRecord(2, "type 1", 7); // harm as a bare int, not [7]
      benign["101"] = { ...benignRecord(101, "type 2"), pid: "102" };
      benign["201"] = { ...benignRecord(201, "type 4") };
      benign.x = benignRecord(3, "type 1");
    });
    const read = await readMossbenchDataset(dir, { manifest });
    assert.deepEqual(
      read.skipped.map((s) => [s.id, s.reason]),
      [
        ["2", "malformed_record"],
        ["101", "malformed_record"],
        ["201", "malformed_record"],
        ["x", "malformed_record"],
      ],
    );
    assert.match(read.skipped[0]?.detail ?? "", /information\.json pid "2": field "metadata\.harm"/);
    assert.match(read.skipped[1]?.detail ?? "", /field "pid" is "102", not the key "101"/);
    assert.match(read.skipped[2]?.detail ?? "", /field "metadata\.over"/);
    assert.match(read.skipped[3]?.detail ?? "", /field "pid" \(the key\)/);
    assert.deepEqual(
      read.records.map((r) => r.id),
      ["1", "contrast:1"],
    );
    // 101's and 201's images are referenced by no valid record now: reported as ignored.
    assert.deepEqual(read.ignored.orphanImages, [
      "data/images/2.png",
      "data/images/101.png",
      "data/images/201.png",
    ]);
  });

  test("without a manifest of its own it is checked against the pinned one: modified", async () => {
    const { dir } = await handBuilt();
    const read = await readMossbenchDataset(dir);
    assert.equal(read.provenance.kind, "modified");
    if (read.provenance.kind !== "modified") return;
    assert.equal(read.provenance.tree, "2a06e5c6632402fb2b8189b52c756ba793da6cbe");
    assert.equal(read.provenance.changed, 7); // both annotation files and every image differ
  });

  test("a missing information.json is an error naming the path and what to do", async () => {
    const { dir, manifest } = await handBuilt();
    await unlink(path.join(dir, MOSSBENCH_CONTRAST_FILE));
    await assert.rejects(readMossbenchDataset(dir, { manifest }), (error: unknown) => {
      assert.ok(error instanceof MossbenchLayoutError);
      assert.ok(error.message.includes(path.join(dir, "data_contrast/images_information/information.json")));
      assert.match(error.message, /is missing: point at the root of a MOSSBench checkout/);
      return true;
    });
    await writeFile(path.join(dir, MOSSBENCH_CONTRAST_FILE), "[]");
    await assert.rejects(readMossbenchDataset(dir, { manifest }), /expected one JSON object keyed by pid/);
  });
});

describe("the generated sample", () => {
  let dir = "";
  before(async () => {
    dir = await tempDir();
    await writeMossbenchSample(dir, { seed: 7 });
  });

  test("reads as 300 benign (100 per type) and 244 contrast records, provenance sample", async () => {
    const read = await readMossbenchDataset(dir);
    const count = (column: string) => read.records.filter((r) => r.column === column).length;
    assert.deepEqual(
      [count("type1"), count("type2"), count("type3"), count("contrast")],
      [100, 100, 100, 244],
    );
    assert.deepEqual(read.skipped, []);
    assert.deepEqual(read.provenance, { kind: "sample", size: "full", seed: 7 });
    assert.deepEqual(
      read.records.slice(0, 3).map((r) => r.id),
      ["1", "2", "3"],
    );
    assert.equal(read.records[300]?.id, "contrast:1");
    assert.equal(
      read.records.filter((r) => r.id.startsWith("contrast:") && r.groups.over === "Negated Harm").length,
      44,
    );
  });

  test("WebP bytes in 131.png and 170.png are detected; orphans and the duplicate folder are ignored", async () => {
    const read = await readMossbenchDataset(dir);
    const byId = new Map(read.records.map((r) => [r.id, r]));
    assert.equal(byId.get("131")?.mediaType, "image/webp");
    assert.equal(byId.get("170")?.mediaType, "image/webp");
    assert.equal(byId.get("contrast:170")?.mediaType, "image/png");
    assert.equal(read.records.filter((r) => r.mediaType === "image/webp").length, 2);
    assert.deepEqual(read.mismatchedExtensions, ["data/images/131.png", "data/images/170.png"]);
    assert.deepEqual(read.ignored, {
      orphanImages: [
        "data/images/317.png",
        "data/images/360.png",
        "data/images/362.png",
        "data/images/370.png",
      ],
      duplicateFolder: true,
    });
  });

  test("has the official file's shapes and quirks", async () => {
    const benign = JSON.parse(await readFile(path.join(dir, MOSSBENCH_BENIGN_FILE), "utf8"));
    const contrast = JSON.parse(await readFile(path.join(dir, MOSSBENCH_CONTRAST_FILE), "utf8"));
    assert.deepEqual(Object.keys(benign["1"]), [
      "image",
      "short description",
      "question",
      "metadata",
      "pid",
      "description",
    ]);
    assert.deepEqual(Object.keys(benign["1"].metadata), ["over", "human", "child", "syn", "ocr", "harm"]);
    assert.deepEqual(Object.keys(contrast["1"].metadata), ["over"]);
    const values = Object.values(benign) as { question: string; description: string }[];
    assert.ok(values.some((v) => v.description === ""));
    assert.ok(new Set(values.map((v) => v.question)).size < values.length, "some questions repeat");
    const duplicate = await readdir(path.join(dir, "images"));
    assert.equal(duplicate.length, 304);
  });

  test("is deterministic for a seed, and small", async () => {
    const again = await tempDir();
    await writeMossbenchSample(again, { seed: 7 });
    for (const relative of [
      MOSSBENCH_BENIGN_FILE,
      MOSSBENCH_CONTRAST_FILE,
      "data/images/5.png",
      "data/images/131.png",
    ])
      assert.deepEqual(
        await readFile(path.join(again, relative)),
        await readFile(path.join(dir, relative)),
        relative,
      );
    let total = 0;
    for (const folder of ["data/images", "data_contrast/images", "images"])
      for (const name of await readdir(path.join(dir, folder)))
        total += (await stat(path.join(dir, folder, name))).size;
    assert.ok(total < 5 * 1024 * 1024, `${total} bytes of images`);
  });
});
