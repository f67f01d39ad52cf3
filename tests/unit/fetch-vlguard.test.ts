import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { VLGUARD_COMMIT } from "../../src/benchmarks/vlguard/definition.ts";
import { VLGUARD_PUBLISHED_TREE } from "../../src/benchmarks/vlguard/fetch.ts";
import { VLGUARD_TEST_JSON_BLOB, VlguardLayoutError } from "../../src/benchmarks/vlguard/layout.ts";
import { writeVlguardSample } from "../../src/benchmarks/vlguard/sample.ts";
import { readBenchmarkFolder } from "../../src/dataset/benchmark-import.ts";
import {
  DATASET_SOURCES,
  type DatasetSource,
  describeFetch,
  describeFetchReport,
  type FetchedVlguard,
  fetchDataset,
  findDatasetSource,
} from "../../src/dataset/fetch.ts";
import { readPublishedTree } from "../../src/dataset/published-tree.ts";
import {
  type ArchiveServer,
  datasetsEntries,
  packGithubArchive,
  readTree,
  rejectsWith,
  serveArchives,
  treeListing,
} from "../fixtures/fetch-archive.ts";
import { zipEntriesOf, zipOf } from "../fixtures/zip.ts";

const COMMIT = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
const TOP = `VLGuard-${COMMIT}`;

describe("fetchDataset: VLGuard", () => {
  let tmp: string;
  /** The generated sample: test.json, test/ and its marker. */
  let sampleDir: string;
  let treeFile: string;
  let zipFile: string;
  let server: ArchiveServer;

  const source = (
    route: string,
    overrides: Partial<DatasetSource<FetchedVlguard>> = {},
  ): DatasetSource<FetchedVlguard> => ({
    ...DATASET_SOURCES.vlguard,
    commit: COMMIT,
    acceptedCommits: [COMMIT],
    url: `${server.baseUrl}${route}`,
    tree: treeFile,
    ...overrides,
  });

  const newHome = (): Promise<string> => mkdtemp(path.join(tmp, "home-"));
  const fetches = (): number => server.requests.get("/good.tar.gz") ?? 0;

  /** The repository's folder (data/ with the sample's test.json, code beside it), changed by `edit`. */
  async function repository(name: string, edit?: (top: string) => Promise<void>): Promise<Buffer> {
    const cwd = path.join(tmp, `repo-${name}`);
    const top = path.join(cwd, TOP);
    await mkdir(path.join(top, "data"), { recursive: true });
    await mkdir(path.join(top, "utils"), { recursive: true });
    await cp(path.join(sampleDir, "test.json"), path.join(top, "data", "test.json"));
    await writeFile(path.join(top, "data", "train.json"), "[]\n");
    await writeFile(path.join(top, "data", "gpt4_safe_safes.json"), "[]\n");
    await writeFile(path.join(top, "README.md"), "# VLGuard\n");
    await writeFile(path.join(top, "utils", "utils.py"), "def check_success_attack(pred): ...\n");
    await edit?.(top);
    return packGithubArchive(cwd, TOP, COMMIT, { scratch: tmp });
  }

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "mmsafe-fetch-vlguard-"));
    sampleDir = path.join(tmp, "sample");
    await writeVlguardSample(sampleDir, { seed: 5 });
    server = await serveArchives();
    server.routes.set("/good.tar.gz", await repository("good"));
    server.routes.set(
      "/changed.tar.gz",
      await repository("changed", async (top) => {
        const file = path.join(top, "data", "test.json");
        const records = JSON.parse(await readFile(file, "utf8")) as { id: string }[];
        await writeFile(file, JSON.stringify(records.slice(1)));
      }),
    );
    // The test's own listing of the good archive's data/ (the sample is not the real test.json).
    const listed = new Map(
      [...(await readTree(path.join(tmp, "repo-good", TOP)))].filter(([p]) => p.startsWith("data/")),
    );
    treeFile = path.join(tmp, "data-tree.tsv");
    await writeFile(treeFile, `# test listing @ ${COMMIT}\n${treeListing(listed).join("\n")}\n`);
    zipFile = path.join(tmp, "downloads", "test.zip");
    await mkdir(path.dirname(zipFile));
    await writeFile(zipFile, zipOf(await zipEntriesOf(path.join(sampleDir, "test"), "test")));
  });

  after(async () => {
    await server.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it("catalogues the official repository at its pinned commit, with the shipped listing of data/", async () => {
    const entry = DATASET_SOURCES.vlguard;
    assert.equal(findDatasetSource("vlguard"), entry);
    assert.equal(entry.repository, "ys-zong/VLGuard");
    assert.equal(entry.commit, VLGUARD_COMMIT);
    assert.equal(entry.url, `https://github.com/ys-zong/VLGuard/archive/${VLGUARD_COMMIT}.tar.gz`);
    assert.deepEqual(entry.layout?.folders, ["data"]);
    assert.deepEqual(entry.expect, { records: 1000, runnable: 1558 });
    const tree = await readPublishedTree(VLGUARD_PUBLISHED_TREE);
    assert.deepEqual([...tree.files.keys()].sort(), [
      "data/gpt4_safe_safes.json",
      "data/test.json",
      "data/train.json",
    ]);
    assert.deepEqual(tree.files.get("data/test.json"), {
      path: "data/test.json",
      blob: VLGUARD_TEST_JSON_BLOB,
      size: 752661,
    });
  });

  it("fetches the annotations alone, says how to add the gated images, and a run then stops saying so", async () => {
    const home = await newHome();
    const result = await fetchDataset({ source: source("/good.tar.gz"), home });
    const dest = path.join(home, "datasets", "vlguard");
    assert.equal(result.dir, dest);
    assert.equal(result.commit, COMMIT);
    assert.equal(result.files, 3);
    assert.equal(result.dataset.images, null);
    assert.equal(result.dataset.annotations.records, 1000);
    assert.deepEqual(result.dataset.annotations.items, { unsafes: 442, safe_unsafes: 558, safe_safes: 558 });
    assert.deepEqual(await datasetsEntries(home), ["vlguard"]);
    // Only data/ is unpacked: no README, no code.
    assert.deepEqual([...(await readTree(dest)).keys()].sort(), [
      "data/gpt4_safe_safes.json",
      "data/test.json",
      "data/train.json",
      "source.json",
    ]);
    const record = JSON.parse(await readFile(path.join(dest, "source.json"), "utf8"));
    assert.equal(record.records, 1000);
    assert.equal(record.runnable, 0);

    const text = describeFetchReport(result).join("\n");
    assert.match(text, /all 3 files under data\/ match the published tree/);
    assert.match(text, /1,000 records give 1,558 items \(unsafes 442, safe_unsafes 558, safe_safes 558\)/);
    assert.match(text, /images: not here yet/);
    assert.match(text, /mmsafe dataset fetch vlguard --images <path to test\.zip>/);

    await assert.rejects(
      readBenchmarkFolder("vlguard", { dir: dest }),
      (error: unknown) =>
        error instanceof VlguardLayoutError &&
        error.message.includes(`no VLGuard images in ${dest}`) &&
        error.message.includes("--images"),
    );

    // The images added later: verified against the present test.json and copied in, nothing downloaded.
    const before = fetches();
    const added = await fetchDataset({ source: source("/good.tar.gz"), home, supplied: zipFile });
    assert.equal(fetches(), before);
    assert.equal(added.alreadyPresent, true);
    assert.equal(added.suppliedFrom, zipFile);
    assert.deepEqual(added.dataset.images, { kind: "zip", path: path.join(dest, "test.zip"), count: 1000 });
    assert.deepEqual(await readFile(path.join(dest, "test.zip")), await readFile(zipFile));
    const lines = describeFetchReport(added).join("\n");
    assert.match(lines, new RegExp(`copied --images ${zipFile.replaceAll(".", "\\.")} into`));
    assert.match(lines, /all 1,000 images it names are in .*test\.zip and readable/);
    assert.match(lines, /images: .*test\.zip \(1,000 images, read from the archive, nothing extracted\)/);
    assert.doesNotMatch(lines, /not here yet/);

    const imported = await readBenchmarkFolder("vlguard", { dir: dest });
    try {
      assert.equal(imported.records.length, 1558);
      assert.equal(imported.skipped.length, 0);
    } finally {
      await imported.close();
    }

    // Fetched again: the images the copy holds are checked against the new files and kept.
    const again = await fetchDataset({ source: source("/good.tar.gz"), home, force: true });
    assert.equal(fetches(), before + 1);
    assert.equal(again.alreadyPresent, false);
    assert.equal(again.dataset.images?.count, 1000);
    assert.deepEqual(await readFile(path.join(dest, "test.zip")), await readFile(zipFile));
    assert.deepEqual(await datasetsEntries(home), ["vlguard"]);
  });

  it("takes the unzipped test/ folder on a first fetch, and a later zip replaces it", async () => {
    const home = await newHome();
    const folder = path.join(sampleDir, "test");
    const result = await fetchDataset({ source: source("/good.tar.gz"), home, supplied: folder });
    const dest = path.join(home, "datasets", "vlguard");
    assert.deepEqual(result.dataset.images, { kind: "folder", path: path.join(dest, "test"), count: 1000 });
    assert.match(describeFetch(result).join("\n"), /copied --images/);

    await fetchDataset({ source: source("/good.tar.gz"), home, supplied: zipFile });
    await assert.rejects(stat(path.join(dest, "test")), { code: "ENOENT" });
    const imported = await readBenchmarkFolder("vlguard", { dir: dest });
    try {
      assert.equal(imported.records.length, 1558);
    } finally {
      await imported.close();
    }
  });

  it("refuses images that lack one test.json names, naming it, and moves nothing into place", async () => {
    const home = await newHome();
    const partial = path.join(tmp, "partial");
    await cp(path.join(sampleDir, "test"), partial, { recursive: true });
    const records = JSON.parse(await readFile(path.join(sampleDir, "test.json"), "utf8")) as {
      image: string;
    }[];
    const missing = records[3]?.image ?? "";
    await rm(path.join(partial, ...missing.split("/")));

    await rejectsWith(
      fetchDataset({ source: source("/good.tar.gz"), home, supplied: partial }),
      /does not hold every image test\.json names/,
      /nothing was moved into place/,
      new RegExp(missing.replaceAll(".", "\\.")),
    );
    assert.deepEqual(await datasetsEntries(home), []);

    // Added to a present copy, the same refusal leaves that copy as it was.
    await fetchDataset({ source: source("/good.tar.gz"), home });
    const dest = path.join(home, "datasets", "vlguard");
    const held = await readTree(dest);
    await rejectsWith(
      fetchDataset({ source: source("/good.tar.gz"), home, supplied: partial }),
      /does not hold every image/,
    );
    assert.deepEqual(await readTree(dest), held);
  });

  it("refuses an archive whose test.json differs from the listing, naming the file", async () => {
    const home = await newHome();
    await rejectsWith(
      fetchDataset({ source: source("/changed.tar.gz"), home }),
      /1 file under data\/ differs from the published tree/,
      /data\/test\.json/,
    );
    assert.deepEqual(await datasetsEntries(home), []);
  });

  it("says where --images is not taken, or not found", async () => {
    const home = await newHome();
    const before = fetches();
    await rejectsWith(
      fetchDataset({ source: DATASET_SOURCES.mossbench, home, supplied: zipFile }),
      /mossbench takes nothing from --images/,
    );
    await rejectsWith(
      fetchDataset({ source: source("/good.tar.gz"), home, supplied: path.join(tmp, "nowhere.zip") }),
      /--images .*nowhere\.zip not found/,
    );
    // Refused before anything is downloaded.
    assert.equal(fetches(), before);
    assert.deepEqual(await datasetsEntries(home), []);
  });
});
