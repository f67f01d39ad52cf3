import assert from "node:assert/strict";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { MOSSBENCH_COMMIT } from "../../src/benchmarks/mossbench/definition.ts";
import {
  MOSSBENCH_MANIFEST,
  parseMossbenchManifest,
  readMossbenchDataset,
} from "../../src/benchmarks/mossbench/layout.ts";
import { type MossbenchSampleSummary, writeMossbenchSample } from "../../src/benchmarks/mossbench/sample.ts";
import {
  DATASET_SOURCES,
  type DatasetSource,
  describeFetch,
  describeFetchReport,
  type FetchedMossbench,
  fetchDataset,
  findDatasetSource,
} from "../../src/dataset/fetch.ts";
import { gitBlobSha1 } from "../../src/dataset/published-tree.ts";
import {
  type ArchiveServer,
  datasetsEntries,
  packGithubArchive,
  readTree,
  rejectsWith,
  serveArchives,
  sha256,
} from "../fixtures/fetch-archive.ts";

const COMMIT = "abcdefabcdefabcdefabcdefabcdefabcdefabcd";
const TOP = `MOSSBench-${COMMIT}`;

describe("fetchDataset: MOSSBench", () => {
  let tmp: string;
  let sampleDir: string;
  let summary: MossbenchSampleSummary;
  let manifestFile: string;
  /** Files the manifest lists: everything under data/ and data_contrast/ of the sample. */
  let listed: Map<string, Buffer>;
  let server: ArchiveServer;
  let baseUrl: string;
  let routes: Map<string, Buffer>;
  let requests: Map<string, number>;
  let good: Buffer;

  /** The archive as GitHub builds it: a pax global header naming the commit, then one top-level folder. */
  const buildArchive = (cwd: string): Promise<Buffer> =>
    packGithubArchive(cwd, TOP, COMMIT, { scratch: tmp });

  /** The sample's archive folder copied and changed by `edit`, then packed like the good one. */
  async function variant(name: string, edit: (top: string) => Promise<void>): Promise<Buffer> {
    const cwd = path.join(tmp, `variant-${name}`);
    await cp(sampleDir, path.join(cwd, TOP), { recursive: true });
    await edit(path.join(cwd, TOP));
    return buildArchive(cwd);
  }

  const source = (
    route: string,
    overrides: Partial<DatasetSource<FetchedMossbench>> = {},
  ): DatasetSource<FetchedMossbench> => ({
    ...DATASET_SOURCES.mossbench,
    commit: COMMIT,
    acceptedCommits: [COMMIT],
    url: `${baseUrl}${route}`,
    tree: manifestFile,
    ...overrides,
  });

  const newHome = (): Promise<string> => mkdtemp(path.join(tmp, "home-"));

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "mmsafe-fetch-mossbench-"));
    server = await serveArchives();
    ({ baseUrl, routes, requests } = server);
    sampleDir = path.join(tmp, "src", TOP);
    summary = await writeMossbenchSample(sampleDir, { seed: 3 });

    // The sample's own manifest (it is not the real data): path, git blob sha1, size of every file under
    // data/ and data_contrast/, the annotation files included (their rows take precedence).
    const all = await readTree(sampleDir);
    listed = new Map([...all].filter(([p]) => p.startsWith("data/") || p.startsWith("data_contrast/")));
    const lines = [`# test manifest of a generated MOSSBench sample @ ${COMMIT}`];
    for (const [file, bytes] of [...listed].sort(([a], [b]) => (a < b ? -1 : 1)))
      lines.push(`${file}\t${gitBlobSha1(bytes)}\t${bytes.length}`);
    manifestFile = path.join(tmp, "images.tsv");
    await writeFile(manifestFile, `${lines.join("\n")}\n`);

    // Everything else the repository holds, which must not be unpacked.
    await writeFile(path.join(sampleDir, "README.md"), "# MOSSBench\n");

    good = await buildArchive(path.join(tmp, "src"));
    routes.set("/good.tar.gz", good);
    routes.set(
      "/changed-image.tar.gz",
      await variant("changed", (dir) =>
        writeFile(path.join(dir, "data", "images", "7.png"), "not an image\n"),
      ),
    );
    routes.set(
      "/missing-image.tar.gz",
      await variant("missing", (dir) => rm(path.join(dir, "data_contrast", "images", "5.png"))),
    );
    routes.set(
      "/missing-annotations.tar.gz",
      await variant("no-annotations", (dir) =>
        rm(path.join(dir, "data_contrast", "images_information", "information.json")),
      ),
    );
  });

  after(async () => {
    await server.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it("catalogues the official repository at its pinned commit, with the shipped manifest", async () => {
    const entry = DATASET_SOURCES.mossbench;
    assert.equal(findDatasetSource("mossbench"), entry);
    assert.equal(findDatasetSource("toString"), undefined);
    assert.equal(entry.repository, "turningpoint-ai/MOSSBench");
    assert.equal(entry.commit, MOSSBENCH_COMMIT);
    assert.equal(
      entry.url,
      `https://github.com/turningpoint-ai/MOSSBench/archive/${MOSSBENCH_COMMIT}.tar.gz`,
    );
    assert.equal(entry.tree, MOSSBENCH_MANIFEST);
    assert.deepEqual(entry.layout?.folders, ["data", "data_contrast"]);
    const manifest = parseMossbenchManifest(await readFile(MOSSBENCH_MANIFEST, "utf8"), "images.tsv");
    assert.equal([...manifest.keys()].filter((p) => p.startsWith("data_contrast/images/")).length, 244);
  });

  it("downloads, verifies the files the records use against the manifest and unpacks only their folders", async () => {
    const home = await newHome();
    const result = await fetchDataset({ source: source("/good.tar.gz"), home });
    const dest = path.join(home, "datasets", "mossbench");

    assert.equal(result.dir, dest);
    assert.equal(result.alreadyPresent, false);
    assert.equal(result.commit, COMMIT);
    assert.equal(result.verifiedBy, "tree");
    // Both annotation files and one image per record (contrast images are their own files).
    assert.equal(result.files, 2 + summary.benign + summary.contrast);
    assert.equal(result.dataset.dir, dest);
    assert.equal(result.dataset.provenance.kind, "official");

    // No staging leftovers; neither the root images/ duplicate, the README nor the sample marker.
    assert.deepEqual(await datasetsEntries(home), ["mossbench"]);
    assert.deepEqual((await readdir(dest)).sort(), ["data", "data_contrast", "source.json"]);
    const unpacked = await readTree(dest);
    unpacked.delete("source.json");
    assert.deepEqual([...unpacked.keys()].sort(), [...listed.keys()].sort());
    for (const [file, bytes] of listed) assert.deepEqual(unpacked.get(file), bytes, file);

    const record = JSON.parse(await readFile(path.join(dest, "source.json"), "utf8")) as Record<
      string,
      unknown
    >;
    assert.deepEqual(
      { ...record, fetchedAt: "" },
      {
        name: "mossbench",
        repository: "turningpoint-ai/MOSSBench",
        commit: COMMIT,
        commitFrom: "pax header",
        url: `${baseUrl}/good.tar.gz`,
        archiveSha256: sha256(good),
        archiveBytes: good.length,
        verifiedBy: "tree",
        tree: null,
        files: 546,
        fetchedAt: "",
        datasetChecksum: result.dataset.checksum,
        records: 544,
        runnable: 544,
      },
    );

    // The runner's reader sees the fetched copy as the official data (against this manifest).
    const read = await readMossbenchDataset(dest, { manifest: manifestFile });
    assert.equal(read.provenance.kind, "official");
    assert.equal(read.records.length, 544);
    assert.equal(read.records.filter((r) => r.column === "contrast").length, 244);

    const text = describeFetchReport(result).join("\n");
    assert.match(text, new RegExp(`fetched turningpoint-ai/MOSSBench at commit ${COMMIT} into ${dest}`));
    assert.match(
      text,
      /all 546 files the records use .* match the manifest .*300 benign \/ 244 contrast records/,
    );
    assert.match(text, new RegExp(`archive sha256 ${sha256(good)} .*recorded in source.json`));
    assert.match(text, new RegExp(`dataset checksum ${result.dataset.checksum.slice(0, 12)}…`));
    assert.match(text, /MOSSBench: 544 records, 300 benign .* 244 harmful contrast/);
    assert.match(text, /4 images no record uses .*data\/images\/317\.png/);
    assert.doesNotMatch(text, /not one of the pinned commits/);
    assert.deepEqual(describeFetchReport(result).slice(0, 4), describeFetch(result));
  });

  it("names a changed image with its expected and actual blob, and leaves an existing copy untouched", async () => {
    const home = await newHome();
    const first = await fetchDataset({ source: source("/good.tar.gz"), home });
    const snapshot = await readTree(first.dir);

    const expected = gitBlobSha1(listed.get("data/images/7.png") ?? assert.fail("no image 7"));
    const actual = gitBlobSha1(Buffer.from("not an image\n"));
    const error = await rejectsWith(
      fetchDataset({ source: source("/changed-image.tar.gz"), home, force: true }),
      /changed-image\.tar\.gz is not the published data: 1 file the records use differs from the manifest \(images\.tsv, \d+ files\)/,
      /nothing was moved into place/,
      new RegExp(
        `data/images/7\\.png changed \\(expected blob ${expected.slice(0, 12)}, found ${actual.slice(0, 12)}\\)`,
      ),
    );
    assert.doesNotMatch(error.message, /data\/images\/8\.png/);

    assert.deepEqual(await readTree(first.dir), snapshot);
    assert.deepEqual(await datasetsEntries(home), ["mossbench"]);
  });

  it("fails when a file is missing, naming it, and moves nothing into place", async () => {
    const home = await newHome();
    await rejectsWith(
      fetchDataset({ source: source("/missing-image.tar.gz"), home }),
      /1 file the records use differs from the manifest/,
      /data_contrast\/images\/5\.png missing \(expected blob [0-9a-f]{12}\)/,
    );
    assert.deepEqual(await datasetsEntries(home), []);

    await rejectsWith(
      fetchDataset({ source: source("/missing-annotations.tar.gz"), home }),
      /missing-annotations\.tar\.gz has no data_contrast\/images_information\/information\.json under its top-level folder: it is not an archive of turningpoint-ai\/MOSSBench/,
    );
    assert.deepEqual(await datasetsEntries(home), []);
  });

  it("rejects content with other record counts than expected", async () => {
    const home = await newHome();
    await rejectsWith(
      fetchDataset({ source: source("/good.tar.gz", { expect: { records: 545, runnable: 545 } }), home }),
      /has 300 benign \/ 244 contrast records runnable and 0 skipped, expected 300 benign \/ 244 contrast/,
    );
    assert.deepEqual(await datasetsEntries(home), []);
  });

  it("does not download again when the copy is already present and intact", async () => {
    const home = await newHome();
    const count = (): number => requests.get("/good.tar.gz") ?? 0;
    const first = await fetchDataset({ source: source("/good.tar.gz"), home });
    const afterFirst = count();

    const again = await fetchDataset({ source: source("/good.tar.gz"), home });
    assert.equal(count(), afterFirst);
    assert.equal(again.alreadyPresent, true);
    assert.equal(again.dataset.checksum, first.dataset.checksum);
    assert.equal(again.dataset.dir, first.dir);
    assert.match(
      describeFetch(again)[0] ?? "",
      /already holds verified turningpoint-ai\/MOSSBench data .* nothing downloaded/,
    );

    // A damaged image makes it fetch again, and repairs it.
    const image = path.join(first.dir, "data", "images", "12.png");
    const original = await readFile(image);
    await writeFile(image, "damaged");
    const repaired = await fetchDataset({ source: source("/good.tar.gz"), home });
    assert.equal(repaired.alreadyPresent, false);
    assert.equal(count(), afterFirst + 1);
    assert.deepEqual(await readFile(image), original);
  });

  it("uses a local archive without any network", async () => {
    const home = await newHome();
    const archiveFile = path.join(tmp, "offline-copy.tar.gz");
    await writeFile(archiveFile, good);
    let calls = 0;
    const result = await fetchDataset({
      source: source("/never-asked.tar.gz"),
      home,
      archiveFile,
      fetchImpl: async () => {
        calls++;
        throw new Error("no network in this test");
      },
    });
    assert.equal(calls, 0);
    assert.equal(requests.get("/never-asked.tar.gz"), undefined);
    assert.equal(result.commit, COMMIT);
    assert.equal(result.dataset.records.length, 544);
    const record = JSON.parse(await readFile(path.join(result.dir, "source.json"), "utf8"));
    assert.equal(record.url, `file://${archiveFile}`);
    assert.equal(record.commit, COMMIT);
    assert.deepEqual(await readFile(archiveFile), good);
  });
});
