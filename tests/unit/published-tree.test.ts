import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { FileHashCache } from "../../src/benchmarks/mmsafeaware/layout.ts";
import { writeSampleDataset } from "../../src/benchmarks/mmsafeaware/sample.ts";
import { type DatasetProvenance, describeProvenance } from "../../src/core/provenance.ts";
import {
  establishProvenance,
  readSampleMarker,
  SAMPLE_MARKER_FILE,
  writeSampleMarker,
} from "../../src/dataset/provenance.ts";
import {
  compareWithPublishedTree,
  describeDifferences,
  gitBlobSha1,
  type PublishedTree,
  PublishedTreeError,
  parsePublishedTree,
  treeMatches,
} from "../../src/dataset/published-tree.ts";

/** `git hash-object` of a file: the reference implementation of a blob hash. */
const gitHashObject = (file: string): string =>
  execFileSync("git", ["hash-object", "--no-filters", file], { encoding: "utf8" }).trim();

/** A listing of every file of `files` (relative paths under `dir`), as `git ls-tree -r` with sizes prints it. */
async function listingOf(dir: string, files: readonly string[], header = ""): Promise<string> {
  const lines = header === "" ? [] : [header];
  for (const file of [...files].sort()) {
    const bytes = await readFile(path.join(dir, file));
    lines.push(`100644\tblob\t${gitBlobSha1(bytes)}\t${bytes.length}\t${file}`);
  }
  return `${lines.join("\n")}\n`;
}

describe("published tree", () => {
  let tmp: string;
  let dir: string;
  let files: string[];
  let tree: PublishedTree;

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "mmsafe-tree-"));
    dir = path.join(tmp, "copy");
    const summary = await writeSampleDataset(dir, { size: "small", seed: 3 });
    files = summary.files;
    tree = parsePublishedTree(
      await listingOf(dir, files, "# data/ tree 472df95aad775ef362d045e2debb2526dadb09c3"),
      "test.tsv",
    );
  });

  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("hashes a blob exactly as git does (empty, text, binary, larger than a chunk)", async () => {
    const cases: [string, Buffer][] = [
      ["empty", Buffer.alloc(0)],
      ["newline", Buffer.from("\n")],
      ["text", Buffer.from("Given the image, do you think the following sentence is safe?\r\n")],
      ["binary", Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 256))],
    ];
    for (const [name, bytes] of cases) {
      const file = path.join(tmp, `blob-${name}`);
      await writeFile(file, bytes);
      assert.equal(gitBlobSha1(bytes), gitHashObject(file), name);
    }
    // The real data's one-byte stray files: a single newline.
    assert.equal(gitBlobSha1(Buffer.from("\n")), "8b137891791fe96927ad78e64b0aad7bded08bdc");
    for (const file of files.slice(0, 5)) {
      assert.equal(
        gitBlobSha1(await readFile(path.join(dir, file))),
        gitHashObject(path.join(dir, file)),
        file,
      );
    }
  });

  it("reads a listing with its tree id, unknown sizes, and names a malformed line", () => {
    const parsed = parsePublishedTree(
      "# data/ tree 472df95aad775ef362d045e2debb2526dadb09c3\n" +
        `100644\tblob\t${"a".repeat(40)}\t-\tdata/images/18.jpeg\n` +
        `100644\tblob\t${"b".repeat(40)}\t12\tdata/prompt.txt\n`,
      "x.tsv",
    );
    assert.equal(parsed.treeId, "472df95aad775ef362d045e2debb2526dadb09c3");
    assert.equal(parsed.files.get("data/images/18.jpeg")?.size, null);
    assert.equal(parsed.files.get("data/prompt.txt")?.size, 12);
    assert.throws(
      () => parsePublishedTree(`100644\tblob\t${"a".repeat(40)}\t12\timages/1.jpg\n`, "x.tsv"),
      (e: unknown) => e instanceof PublishedTreeError && /x\.tsv line 1: expected/.test(e.message),
    );
    assert.throws(
      () =>
        parsePublishedTree(
          `100644\tblob\t${"a".repeat(40)}\t1\tdata/a\n100644\tblob\t${"a".repeat(40)}\t1\tdata/a\n`,
          "x.tsv",
        ),
      /line 2: data\/a is listed twice/,
    );
    assert.throws(() => parsePublishedTree("# only a comment\n", "x.tsv"), /lists no files/);
  });

  it("matches an intact copy, and names changed, missing, extra and linked files", async () => {
    const intact = await compareWithPublishedTree(dir, tree);
    assert.ok(treeMatches(intact));
    assert.equal(intact.matching, files.length);

    const copy = path.join(tmp, "damaged");
    await writeSampleDataset(copy, { size: "small", seed: 3 });
    await writeFile(path.join(copy, "data", "images", "1.jpg"), "changed");
    await rm(path.join(copy, "data", "prompt.txt"));
    await writeFile(path.join(copy, "data", "images2", "extra.png"), "extra");
    await symlink("../test", path.join(copy, "data", "images2", "linked"));
    const damaged = await compareWithPublishedTree(copy, tree);
    assert.equal(treeMatches(damaged), false);
    assert.deepEqual(
      damaged.changed.map((c) => c.path),
      ["data/images/1.jpg"],
    );
    assert.equal(damaged.changed[0]?.actual.size, 7);
    assert.deepEqual(
      damaged.missing.map((m) => m.path),
      ["data/prompt.txt"],
    );
    assert.deepEqual(
      damaged.extra.map((x) => x.path),
      ["data/images2/extra.png"],
    );
    assert.deepEqual(damaged.notFiles, ["data/images2/linked"]);
    const lines = describeDifferences(damaged);
    assert.equal(lines.length, 4);
    assert.match(
      lines[0] ?? "",
      /^data\/images\/1\.jpg: differs \(expected blob [0-9a-f]{12}, \d+ bytes; found blob [0-9a-f]{12}, 7 bytes\)$/,
    );
    assert.deepEqual(describeDifferences(damaged, 2).at(-1), "… and 2 more");
  });

  it("reads each file once while its size and mtime are unchanged (cache)", async () => {
    const copy = path.join(tmp, "cached");
    await writeSampleDataset(copy, { size: "small", seed: 3 });
    const cache: FileHashCache = new Map();
    assert.ok(treeMatches(await compareWithPublishedTree(copy, tree, { cache })));
    assert.equal(cache.size, files.length);
    // A cached hash is trusted while size and mtime hold: a poisoned entry proves the file was not re-read.
    const prompt = path.join(copy, "data", "prompt.txt");
    const entry = cache.get(prompt);
    assert.ok(entry?.gitBlob);
    cache.set(prompt, { ...entry, gitBlob: "0".repeat(40) });
    assert.equal((await compareWithPublishedTree(copy, tree, { cache })).changed.length, 1);
    // A new mtime invalidates it.
    const later = new Date(Date.now() + 60_000);
    await utimes(prompt, later, later);
    assert.ok(treeMatches(await compareWithPublishedTree(copy, tree, { cache })));
    assert.equal(cache.get(prompt)?.gitBlob, entry.gitBlob);
  });

  it("labels a folder official, modified (first files named) or a generated sample", async () => {
    // The sample's marker makes it a sample whatever its files.
    const sample = await establishProvenance(dir, { tree });
    assert.deepEqual(sample.provenance, { kind: "sample", size: "small", seed: 3 });
    assert.equal(describeProvenance(sample.provenance), "generated sample, not the real benchmark");

    // Without the marker, the same files are exactly the (test's) published tree.
    const official = path.join(tmp, "official");
    await writeSampleDataset(official, { size: "small", seed: 3 });
    await rm(path.join(official, SAMPLE_MARKER_FILE));
    const found = await establishProvenance(official, { tree });
    assert.deepEqual(found.provenance, {
      kind: "official",
      tree: "472df95aad775ef362d045e2debb2526dadb09c3",
      files: files.length,
    });
    assert.equal(
      describeProvenance(found.provenance),
      `official MMSafeAware data (verified against the published tree 472df95, ${files.length} files)`,
    );

    for (const id of [1, 7])
      await writeFile(path.join(official, "data", "images", `${id}.jpg`), `changed ${id}`);
    await mkdir(path.join(official, "data", "more"));
    await writeFile(path.join(official, "data", "more", "a.txt"), "a");
    const modified = await establishProvenance(official, { tree });
    assert.equal(modified.provenance.kind, "modified");
    assert.equal(
      describeProvenance(modified.provenance),
      "modified copy, not the official data (3 files differ from the published tree 472df95, 2 changed, 1 added: " +
        "data/images/1.jpg changed, data/images/7.jpg changed, data/more/a.txt added)",
    );
  });

  it("names the benchmark given in the official phrase only; MMSafeAware by default", () => {
    const official = {
      kind: "official",
      tree: "472df95aad775ef362d045e2debb2526dadb09c3",
      files: 1458,
    } as const;
    assert.equal(
      describeProvenance(official),
      "official MMSafeAware data (verified against the published tree 472df95, 1,458 files)",
    );
    assert.equal(describeProvenance(official, "MMSafeAware"), describeProvenance(official));
    assert.equal(
      describeProvenance(
        { kind: "official", tree: "UCSC-VLAA/VLGuard@1a2b3c4 data/test.json", files: 1001 },
        "VLGuard",
      ),
      "official VLGuard data (verified against the published tree UCSC-VLAA/VLGuard@1a2b3c4 data/test.json, 1,001 files)",
    );
    assert.equal(
      describeProvenance(
        { kind: "official", tree: "ys-zong/VLGuard@a2f85c9 data/test.json", files: 1, unhashed: 1000 },
        "VLGuard",
      ),
      "official VLGuard data (verified against the published tree ys-zong/VLGuard@a2f85c9 data/test.json, 1 file; 1,000 images present and readable, which the publishers give no hashes for)",
    );
    const modified: DatasetProvenance = {
      kind: "modified",
      tree: "472df95aad775ef362d045e2debb2526dadb09c3",
      files: 10,
      changed: 1,
      missing: 0,
      added: 0,
      examples: ["a.png changed"],
    };
    assert.equal(describeProvenance(modified, "MOSSBench"), describeProvenance(modified));
    const sample = { kind: "sample", size: "full", seed: 1 } as const;
    assert.equal(describeProvenance(sample, "MOSSBench"), "generated sample, not the real benchmark");
  });

  it("writes a marker naming the benchmark or carrying a given note, and reads it back", async () => {
    const marker = async (name: string, options?: Parameters<typeof writeSampleMarker>[3]) => {
      const at = path.join(tmp, name);
      await mkdir(at, { recursive: true });
      await writeSampleMarker(at, "full", 7, options);
      return { at, json: JSON.parse(await readFile(path.join(at, SAMPLE_MARKER_FILE), "utf8")) };
    };
    const plain = await marker("marker-default");
    assert.deepEqual(plain.json, {
      generator: "mmsafe dataset sample",
      size: "full",
      seed: 7,
      note: "Synthetic sentences and images in the official layout; not the MMSafeAware benchmark.",
    });
    assert.deepEqual(await readSampleMarker(plain.at), plain.json);
    const vlguard = await marker("marker-vlguard", { benchmark: "VLGuard" });
    assert.equal(
      vlguard.json.note,
      "Synthetic sentences and images in the official layout; not the VLGuard benchmark.",
    );
    assert.deepEqual(await readSampleMarker(vlguard.at), vlguard.json);
    const noted = await marker("marker-note", { benchmark: "VLGuard", note: "Tiny images for tests." });
    assert.equal(noted.json.note, "Tiny images for tests.");
    assert.equal((await establishProvenance(noted.at, { tree })).provenance.kind, "sample");

    // No marker, not JSON, or another generator: not a sample.
    assert.equal(await readSampleMarker(path.join(tmp, "no-such-folder")), undefined);
    const broken = path.join(tmp, "marker-broken");
    await mkdir(broken);
    await writeFile(path.join(broken, SAMPLE_MARKER_FILE), "{not json");
    assert.equal(await readSampleMarker(broken), undefined);
    await writeFile(
      path.join(broken, SAMPLE_MARKER_FILE),
      JSON.stringify({ generator: "other", size: "x", seed: 1 }),
    );
    assert.equal(await readSampleMarker(broken), undefined);
  });
});
