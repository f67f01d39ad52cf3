import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { Header } from "tar";
import { readOfficialDataset } from "../../src/benchmarks/mmsafeaware/layout.ts";
import { type SampleSummary, writeSampleDataset } from "../../src/benchmarks/mmsafeaware/sample.ts";
import { DATASET_SOURCES, type DatasetSource, describeFetch, fetchDataset } from "../../src/dataset/fetch.ts";
import { gitBlobSha1, readPublishedTree } from "../../src/dataset/published-tree.ts";
import {
  type ArchiveServer,
  datasetsEntries,
  packGithubArchive,
  readTree,
  rejectsWith,
  serveArchives,
  sha256,
} from "../fixtures/fetch-archive.ts";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
/** A second commit with the same data/ (as 07c0de2a and 500b595 are for the real repository). */
const SECOND_COMMIT = "1111111111111111111111111111111111111111";
const OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98";
const TOP = `MMSafetyAwareness-${COMMIT}`;

/** One raw tar entry (header + padded body), for entries `create` would never write. */
function rawEntry(entryPath: string, type: "File" | "Link", body = "", linkpath = ""): Buffer {
  const data = Buffer.from(body);
  const header = Buffer.alloc(512);
  new Header({
    path: entryPath,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: new Date(0),
    type,
    linkpath,
    uname: "",
    gname: "",
  }).encode(header);
  const padded = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  data.copy(padded);
  return Buffer.concat([header, padded]);
}

describe("fetchDataset", () => {
  let tmp: string;
  let summary: SampleSummary;
  let expect: { records: number; runnable: number };
  let server: ArchiveServer;
  let baseUrl: string;
  let closedPortUrl: string;
  const routes = new Map<string, Buffer>();
  let requests: Map<string, number>;
  let good: Buffer;

  let treeFile: string;

  /**
   * The archive as GitHub builds it: a pax global header naming the commit (unless `commit` is null), then
   * one top-level folder. `top` is the folder under tmp/ to pack (the sample by default).
   */
  async function buildArchive(
    commit: string | null,
    options: { extra?: Buffer[]; skip?: (entryPath: string) => boolean; top?: string; cwd?: string } = {},
  ): Promise<Buffer> {
    return packGithubArchive(options.cwd ?? path.join(tmp, "src"), options.top ?? TOP, commit, {
      ...options,
      scratch: tmp,
    });
  }

  /** The sample's archive folder copied and changed by `edit`, then packed like the others. */
  async function variant(name: string, edit: (top: string) => Promise<void>): Promise<Buffer> {
    const cwd = path.join(tmp, `variant-${name}`);
    await cp(path.join(tmp, "src", TOP), path.join(cwd, TOP), { recursive: true, verbatimSymlinks: true });
    await edit(path.join(cwd, TOP));
    return buildArchive(COMMIT, { cwd });
  }

  const source = (route: string, overrides: Partial<DatasetSource> = {}): DatasetSource => ({
    name: "mmsafeaware",
    repository: "Jarviswang94/MMSafetyAwareness",
    commit: COMMIT,
    acceptedCommits: [COMMIT, SECOND_COMMIT],
    url: `${baseUrl}${route}`,
    tree: treeFile,
    archiveSha256: null,
    expect,
    ...overrides,
  });

  const newHome = (): Promise<string> => mkdtemp(path.join(tmp, "home-"));

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "mmsafe-fetch-"));
    const top = path.join(tmp, "src", TOP);
    summary = await writeSampleDataset(top, { size: "small", seed: 1 });
    const sample = await readOfficialDataset(top);
    expect = { records: sample.records, runnable: sample.items.length };
    assert.deepEqual(expect, { records: 40, runnable: 36 });

    // The published tree of this data/, as `git ls-tree -r` lists it (sizes included).
    const listing = ["# data/ tree 472df95aad775ef362d045e2debb2526dadb09c3 (test listing)"];
    for (const file of [...summary.files].sort()) {
      const bytes = await readFile(path.join(top, file));
      listing.push(`100644\tblob\t${gitBlobSha1(bytes)}\t${bytes.length}\t${file}`);
    }
    treeFile = path.join(tmp, "tree.tsv");
    await writeFile(treeFile, `${listing.join("\n")}\n`);

    // Everything else a repository archive holds, which must not be unpacked.
    await writeFile(path.join(top, "README.md"), "# MMSafeAware\n");
    await mkdir(path.join(top, "paper"));
    await writeFile(path.join(top, "paper", "x.pdf"), "%PDF-1.4 not really\n");
    await mkdir(path.join(top, "annotation"));
    await writeFile(path.join(top, "annotation", "labels.csv"), "id,label\n1,safe\n");
    // A link is never unpacked (it is not in the published tree either).
    await symlink("../../README.md", path.join(top, "data", "images", "9999.png"));

    const hostile = [
      rawEntry(`${TOP}/data/images/../../../evil.txt`, "File", "escaped\n"),
      rawEntry(`/${path.basename(tmp)}-absolute-evil.txt`, "File", "absolute\n"),
      rawEntry(`${TOP}/data/images/8888.png`, "Link", "", `${TOP}/README.md`),
    ];
    good = await buildArchive(COMMIT, { extra: hostile });
    routes.set("/good.tar.gz", good);
    routes.set("/other-commit.tar.gz", await buildArchive(OTHER_COMMIT));
    routes.set("/second-commit.tar.gz", await buildArchive(SECOND_COMMIT));
    routes.set("/no-pax.tar.gz", await buildArchive(null));
    routes.set(
      "/early-commit.tar.gz",
      await buildArchive(OTHER_COMMIT, { skip: (p) => /\/data\/images2?\/./.test(p) }),
    );
    routes.set("/no-prompt.tar.gz", await buildArchive(COMMIT, { skip: (p) => p.endsWith("prompt.txt") }));
    routes.set(
      "/changed-image.tar.gz",
      await variant("changed", (dir) =>
        writeFile(path.join(dir, "data", "images", "1.jpg"), "not the image\n"),
      ),
    );
    routes.set(
      "/extra-and-missing.tar.gz",
      await variant("extra", async (dir) => {
        await writeFile(path.join(dir, "data", "notes.md"), "not published\n");
        await mkdir(path.join(dir, "data", "images", "nested"));
        await writeFile(path.join(dir, "data", "images", "nested", "5.png"), "nested\n");
        await rm(path.join(dir, "data", "images2", "2300.jpeg"));
      }),
    );
    routes.set("/truncated.tar.gz", good.subarray(0, Math.floor(good.length / 2)));

    server = await serveArchives((url, response) => {
      if (url === "/broken.tar.gz") {
        // Announces the whole archive, sends a part, then the connection drops.
        response.writeHead(200, { "content-length": good.length });
        response.write(good.subarray(0, 1024), () => response.destroy());
        return true;
      }
      return false;
    });
    for (const [route, body] of routes) server.routes.set(route, body);
    ({ baseUrl, requests } = server);

    // A port that was just free: nothing listens there, so connecting is refused.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    closedPortUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/good.tar.gz`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
  });

  after(async () => {
    await server.close();
    await rm(tmp, { recursive: true, force: true });
  });

  it("catalogues the official repository at a commit with the complete data, and its published tree", async () => {
    const entry = DATASET_SOURCES.mmsafeaware;
    assert.equal(entry.commit, "500b595c82dfe73d5695bc994d9882a306d2aa1c");
    assert.deepEqual(entry.acceptedCommits, [
      "500b595c82dfe73d5695bc994d9882a306d2aa1c",
      "07c0de2a957238d5dbc3c163f4b2463dd249f4ed",
    ]);
    assert.equal(
      entry.url,
      `https://github.com/Jarviswang94/MMSafetyAwareness/archive/${entry.commit}.tar.gz`,
    );
    assert.equal(entry.archiveSha256, null);
    assert.deepEqual(entry.expect, { records: 1523, runnable: 1453 });
    const tree = await readPublishedTree(entry.tree);
    assert.equal(tree.treeId, "472df95aad775ef362d045e2debb2526dadb09c3");
    assert.equal(tree.files.size, 1458);
    const paths = [...tree.files.keys()];
    assert.equal(paths.filter((p) => p.startsWith("data/images/")).length, 1100);
    assert.equal(paths.filter((p) => p.startsWith("data/images2/")).length, 354);
    assert.deepEqual(tree.files.get("data/prompt.txt"), {
      path: "data/prompt.txt",
      blob: "227a400670a7f0fdbd97eab7a52696962b994651",
      size: 254018,
    });
    // The one blob whose size the listing does not give (shared by 7 ids).
    assert.equal([...tree.files.values()].filter((f) => f.size === null).length, 7);
  });

  it("downloads, verifies every file against the published tree and unpacks only data/", async () => {
    const home = await newHome();
    const progress: { receivedBytes: number; totalBytes: number | null }[] = [];
    const result = await fetchDataset({
      source: source("/good.tar.gz"),
      home,
      onProgress: (p) => progress.push(p),
    });
    const dest = path.join(home, "datasets", "mmsafeaware");

    assert.equal(result.dir, dest);
    assert.equal(result.alreadyPresent, false);
    assert.equal(result.verifiedBy, "tree");
    assert.equal(result.files, summary.files.length);
    assert.equal(result.commit, COMMIT);
    assert.equal(result.archiveSha256, sha256(good));
    assert.equal(result.archiveBytes, good.length);
    assert.deepEqual(progress.at(-1), { receivedBytes: good.length, totalBytes: good.length });

    // Nothing else in datasets/ (no staging leftovers), nothing outside it.
    assert.deepEqual(await datasetsEntries(home), ["mmsafeaware"]);
    assert.deepEqual(await readdir(home), ["datasets"]);
    assert.deepEqual((await readdir(dest)).sort(), ["data", "source.json"]);

    // Exactly the sample's data/ files (the strays included), byte for byte: no junk, links, hostile paths.
    const tree = await readTree(path.join(dest, "data"));
    assert.deepEqual([...tree.keys()].sort(), summary.files.map((f) => f.slice("data/".length)).sort());
    assert.ok(tree.has("images2/test"));
    for (const file of summary.files) {
      assert.deepEqual(
        tree.get(file.slice("data/".length)),
        await readFile(path.join(summary.dir, file)),
        file,
      );
    }

    const record: unknown = JSON.parse(await readFile(path.join(dest, "source.json"), "utf8"));
    assert.deepEqual(
      { ...(record as Record<string, unknown>), fetchedAt: "" },
      {
        name: "mmsafeaware",
        repository: "Jarviswang94/MMSafetyAwareness",
        commit: COMMIT,
        commitFrom: "pax header",
        url: `${baseUrl}/good.tar.gz`,
        archiveSha256: sha256(good),
        archiveBytes: good.length,
        verifiedBy: "tree",
        tree: "472df95aad775ef362d045e2debb2526dadb09c3",
        files: summary.files.length,
        fetchedAt: "",
        datasetChecksum: result.dataset.checksum,
        records: 40,
        runnable: 36,
      },
    );

    assert.equal(result.dataset.dir, dest);
    assert.equal(result.dataset.records, 40);
    assert.equal(result.dataset.items.length, 36);
    assert.equal(result.dataset.checksum, (await readOfficialDataset(dest)).checksum);
    for (const item of result.dataset.items) {
      assert.ok(item.imagePath.startsWith(dest + path.sep), item.imagePath);
      await stat(item.imagePath);
    }

    const lines = describeFetch(result);
    assert.match(lines.join("\n"), new RegExp(`fetched .* at commit ${COMMIT} into `));
    assert.match(
      lines.join("\n"),
      new RegExp(
        `all ${summary.files.length} files under data/ match the published tree .*40 records / 36 runnable pairs as expected`,
      ),
    );
    assert.match(lines.join("\n"), new RegExp(`archive sha256 ${sha256(good)} .*recorded in source.json`));
    assert.match(lines.join("\n"), new RegExp(`dataset checksum ${result.dataset.checksum.slice(0, 12)}…`));
    assert.doesNotMatch(lines.join("\n"), /not one of the pinned commits/);
  });

  it("verifies by sha256 when one is known, from the caller or the catalogue", async () => {
    const byOption = await fetchDataset({
      source: source("/good.tar.gz"),
      home: await newHome(),
      sha256: sha256(good).toUpperCase(),
    });
    assert.equal(byOption.verifiedBy, "tree+sha256");
    assert.match(describeFetch(byOption).join("\n"), /matches the expected checksum/);

    const byCatalogue = await fetchDataset({
      source: source("/good.tar.gz", { archiveSha256: sha256(good) }),
      home: await newHome(),
    });
    assert.equal(byCatalogue.verifiedBy, "tree+sha256");
    const record = JSON.parse(await readFile(path.join(byCatalogue.dir, "source.json"), "utf8"));
    assert.equal(record.verifiedBy, "tree+sha256");
  });

  it("rejects an archive whose sha256 differs, leaving nothing behind", async () => {
    const home = await newHome();
    const wrong = "0".repeat(64);
    await rejectsWith(
      fetchDataset({ source: source("/good.tar.gz"), home, sha256: wrong }),
      new RegExp(`sha256 ${sha256(good)}, expected ${wrong}`),
    );
    assert.deepEqual(await datasetsEntries(home), []);

    await rejectsWith(
      fetchDataset({ source: source("/good.tar.gz", { archiveSha256: wrong }), home }),
      /expected 0{64}/,
    );
    await rejectsWith(
      fetchDataset({ source: source("/good.tar.gz"), home, sha256: "abc" }),
      /not 64 hexadecimal digits/,
    );
    assert.deepEqual(await datasetsEntries(home), []);
  });

  it("reports an HTTP error status with the URL", async () => {
    const home = await newHome();
    await rejectsWith(
      fetchDataset({ source: source("/missing.tar.gz"), home }),
      new RegExp(`could not download ${baseUrl}/missing\\.tar\\.gz: the server answered HTTP 404`),
      /--archive FILE/,
    );
    assert.deepEqual(await datasetsEntries(home), []);
  });

  it("reports a download that breaks off, leaving nothing behind", async () => {
    const home = await newHome();
    const progress: number[] = [];
    await rejectsWith(
      fetchDataset({
        source: source("/broken.tar.gz"),
        home,
        onProgress: (p) => progress.push(p.receivedBytes),
      }),
      new RegExp(`the download of ${baseUrl}/broken\\.tar\\.gz broke off after \\d+ bytes`),
      /Try again/,
    );
    assert.ok((progress.at(-1) ?? 0) < good.length);
    assert.deepEqual(await datasetsEntries(home), []);
  });

  it("explains a refused connection as being offline and points to --archive", async () => {
    const home = await newHome();
    const error = await rejectsWith(
      fetchDataset({ source: source("", { url: closedPortUrl }), home }),
      /ECONNREFUSED/,
      /offline/,
      /mmsafe dataset fetch mmsafeaware --archive FILE/,
    );
    assert.ok(error.message.includes(closedPortUrl));
    assert.ok(error.cause !== undefined);
    assert.deepEqual(await datasetsEntries(home), []);
  });

  it("uses a local archive without any network", async () => {
    const home = await newHome();
    const archiveFile = path.join(tmp, "offline-copy.tar.gz");
    await writeFile(archiveFile, good);
    let calls = 0;
    const result = await fetchDataset({
      source: source("", { url: closedPortUrl }),
      home,
      archiveFile,
      fetchImpl: async () => {
        calls++;
        throw new Error("no network in this test");
      },
    });
    assert.equal(calls, 0);
    assert.equal(result.verifiedBy, "tree");
    const record = JSON.parse(await readFile(path.join(result.dir, "source.json"), "utf8"));
    assert.equal(record.url, `file://${archiveFile}`);
    assert.equal(result.archiveSha256, sha256(good));
    assert.equal(result.dataset.items.length, 36);
    assert.deepEqual(await datasetsEntries(home), ["mmsafeaware"]);
    // The caller's archive is theirs: it is read, not moved or deleted.
    assert.deepEqual(await readFile(archiveFile), good);

    await rejectsWith(
      fetchDataset({
        source: source("/good.tar.gz"),
        home: await newHome(),
        archiveFile: `${archiveFile}.nope`,
      }),
      /cannot read the archive/,
    );
  });

  it("does not download again when the commit is already present, unless forced", async () => {
    const home = await newHome();
    const count = (): number => requests.get("/good.tar.gz") ?? 0;
    const first = await fetchDataset({ source: source("/good.tar.gz"), home });
    const afterFirst = count();

    const again = await fetchDataset({ source: source("/good.tar.gz"), home });
    assert.equal(count(), afterFirst);
    assert.equal(again.alreadyPresent, true);
    assert.equal(again.archiveSha256, first.archiveSha256);
    assert.equal(again.verifiedBy, "tree");
    assert.equal(again.dataset.checksum, first.dataset.checksum);
    assert.match(describeFetch(again)[0] ?? "", /already holds .* nothing downloaded/);

    const forced = await fetchDataset({ source: source("/good.tar.gz"), home, force: true });
    assert.equal(count(), afterFirst + 1);
    assert.equal(forced.alreadyPresent, false);
    assert.deepEqual(await datasetsEntries(home), ["mmsafeaware"]);
  });

  it("fetches again when the present copy was damaged", async () => {
    const home = await newHome();
    const count = (): number => requests.get("/good.tar.gz") ?? 0;
    const first = await fetchDataset({ source: source("/good.tar.gz"), home });
    const image = first.dataset.items[0]?.imagePath ?? assert.fail("no item");
    const original = await readFile(image);
    await writeFile(image, "damaged");

    const before = count();
    const repaired = await fetchDataset({ source: source("/good.tar.gz"), home });
    assert.equal(count(), before + 1);
    assert.equal(repaired.alreadyPresent, false);
    assert.deepEqual(await readFile(image), original);

    // An extra file in data/ is damage too.
    await writeFile(path.join(first.dir, "data", "extra.txt"), "x");
    const cleaned = await fetchDataset({ source: source("/good.tar.gz"), home });
    assert.equal(cleaned.alreadyPresent, false);
    assert.deepEqual(await datasetsEntries(home), ["mmsafeaware"]);
  });

  it("records the commit the archive really is: pax header, folder name, or none", async () => {
    const readRecord = async (dir: string) =>
      JSON.parse(await readFile(path.join(dir, "source.json"), "utf8"));

    const second = await fetchDataset({ source: source("/second-commit.tar.gz"), home: await newHome() });
    assert.equal(second.commit, SECOND_COMMIT);
    assert.equal((await readRecord(second.dir)).commit, SECOND_COMMIT);
    assert.doesNotMatch(describeFetch(second).join("\n"), /not one of the pinned commits/);

    // No pax header: the commit is read from GitHub's folder name MMSafetyAwareness-<sha>.
    const noPax = await fetchDataset({ source: source("/no-pax.tar.gz"), home: await newHome() });
    assert.equal(noPax.commit, COMMIT);
    assert.equal((await readRecord(noPax.dir)).commitFrom, "folder name");

    // Neither: nothing is assumed.
    const anonymousDir = path.join(tmp, "anonymous");
    await cp(path.join(tmp, "src", TOP), path.join(anonymousDir, "MMSafetyAwareness-main"), {
      recursive: true,
      verbatimSymlinks: true,
    });
    const anonymousFile = path.join(tmp, "anonymous.tar.gz");
    await writeFile(
      anonymousFile,
      await buildArchive(null, { cwd: anonymousDir, top: "MMSafetyAwareness-main" }),
    );
    const anonymous = await fetchDataset({
      source: source(""),
      home: await newHome(),
      archiveFile: anonymousFile,
    });
    assert.equal(anonymous.commit, null);
    const record = await readRecord(anonymous.dir);
    assert.equal(record.commit, null);
    assert.equal(record.commitFrom, null);
    assert.match(describeFetch(anonymous)[0] ?? "", /an unnamed commit/);

    // Another commit whose data/ is identical is accepted, and said to be unpinned.
    const other = await fetchDataset({ source: source("/other-commit.tar.gz"), home: await newHome() });
    assert.equal(other.commit, OTHER_COMMIT);
    assert.match(
      describeFetch(other).join("\n"),
      new RegExp(`commit ${OTHER_COMMIT} is not one of the pinned commits`),
    );
  });

  it("names every file that differs from the published tree, and moves nothing into place", async () => {
    const home = await newHome();
    const changed = await rejectsWith(
      fetchDataset({ source: source("/changed-image.tar.gz"), home }),
      /is not the published data: 1 file under data\/ differs from the published tree \(tree\.tsv, \d+ files\)/,
      /nothing was moved into place/,
    );
    const original = await readFile(path.join(summary.dir, "data", "images", "1.jpg"));
    const expectedBlob = gitBlobSha1(original).slice(0, 12);
    const actualBlob = gitBlobSha1(Buffer.from("not the image\n")).slice(0, 12);
    assert.match(
      changed.message,
      new RegExp(
        `data/images/1\\.jpg: differs \\(expected blob ${expectedBlob}, ${original.length} bytes; found blob ${actualBlob}, 14 bytes\\)`,
      ),
    );
    assert.deepEqual(await datasetsEntries(home), []);

    const several = await rejectsWith(
      fetchDataset({ source: source("/extra-and-missing.tar.gz"), home }),
      /3 files under data\/ differ/,
      /data\/images2\/2300\.jpeg: missing \(expected blob [0-9a-f]{12}, \d+ bytes\)/,
      /data\/notes\.md: not in the published tree \(blob [0-9a-f]{12}, 14 bytes\)/,
      /data\/images\/nested\/5\.png: not in the published tree/,
    );
    assert.ok(several.message.length < 2000);
    assert.deepEqual(await datasetsEntries(home), []);

    // Like the old pin (an upload commit without images): the error says which commit it is and what to get.
    await rejectsWith(
      fetchDataset({ source: source("/early-commit.tar.gz"), home }),
      /under data\/ differ from the published tree/,
      new RegExp(
        `It is an archive of commit ${OTHER_COMMIT}, not of a commit the data is pinned to \\(01234567, 11111111\\): download ${baseUrl}/early-commit\\.tar\\.gz`,
      ),
      /… and \d+ more/,
    );
    assert.deepEqual(await datasetsEntries(home), []);

    // A broken listing is named.
    await writeFile(path.join(tmp, "broken-tree.tsv"), "100644\tblob\tnot-a-sha\t1\tdata/x\n");
    await rejectsWith(
      fetchDataset({ source: source("/good.tar.gz", { tree: path.join(tmp, "broken-tree.tsv") }), home }),
      /broken-tree\.tsv line 1: expected/,
    );
  });

  it("rejects content that differs from the catalogue's expectation, leaving nothing behind", async () => {
    const home = await newHome();
    await rejectsWith(
      fetchDataset({ source: source("/good.tar.gz", { expect: { records: 41, runnable: 36 } }), home }),
      /good\.tar\.gz has 40 records \/ 36 runnable pairs, expected 41 records \/ 36 runnable pairs/,
    );
    assert.deepEqual(await datasetsEntries(home), []);
  });

  it("rejects an archive without data/prompt.txt and a truncated one", async () => {
    const home = await newHome();
    await rejectsWith(
      fetchDataset({ source: source("/no-prompt.tar.gz"), home }),
      /data\/prompt\.txt: missing/,
    );
    await rejectsWith(fetchDataset({ source: source("/truncated.tar.gz"), home }), /cannot unpack .*damaged/);
    assert.deepEqual(await datasetsEntries(home), []);
  });

  it("keeps an existing destination intact when a forced re-fetch fails", async () => {
    const home = await newHome();
    const first = await fetchDataset({ source: source("/good.tar.gz"), home });
    const snapshot = await readTree(first.dir);

    const failures: (() => Promise<unknown>)[] = [
      () => fetchDataset({ source: source("/good.tar.gz"), home, force: true, sha256: "1".repeat(64) }),
      () => fetchDataset({ source: source("/missing.tar.gz"), home, force: true }),
      () => fetchDataset({ source: source("/truncated.tar.gz"), home, force: true }),
      () =>
        fetchDataset({
          source: source("/good.tar.gz", { expect: { records: 1, runnable: 1 } }),
          home,
          force: true,
        }),
    ];
    // One after another, as a user would retry.
    for (const failure of failures) await rejectsWith(failure());

    assert.deepEqual(await readTree(first.dir), snapshot);
    assert.deepEqual(await datasetsEntries(home), ["mmsafeaware"]);
  });

  it("replaces a destination it did not write only when forced", async () => {
    const home = await newHome();
    const dest = path.join(home, "datasets", "mmsafeaware");
    await mkdir(path.join(dest, "data"), { recursive: true });
    await writeFile(path.join(dest, "data", "prompt.txt"), "hand-made\n");

    await rejectsWith(fetchDataset({ source: source("/good.tar.gz"), home }), /not written by/, /--force/);
    assert.equal(await readFile(path.join(dest, "data", "prompt.txt"), "utf8"), "hand-made\n");

    const forced = await fetchDataset({ source: source("/good.tar.gz"), home, force: true });
    assert.equal(forced.dataset.records, 40);
    assert.deepEqual((await readdir(dest)).sort(), ["data", "source.json"]);
    assert.deepEqual(await datasetsEntries(home), ["mmsafeaware"]);
  });

  it("removes staging directories of killed fetches but not of running ones", async () => {
    const home = await newHome();
    const datasets = path.join(home, "datasets");
    const dead = path.join(datasets, ".mmsafeaware.partial-dead");
    const ownerless = path.join(datasets, ".mmsafeaware.partial-ownerless");
    const live = path.join(datasets, ".mmsafeaware.partial-live");
    for (const dir of [dead, ownerless, live]) await mkdir(dir, { recursive: true });
    // Above any pid limit (Linux 2^22, macOS 99998): no such process.
    await writeFile(path.join(dead, ".owner-pid"), "99999999\n");
    // The test runner that started this process: certainly running.
    await writeFile(path.join(live, ".owner-pid"), `${process.ppid}\n`);

    await fetchDataset({ source: source("/good.tar.gz"), home });
    assert.deepEqual(await datasetsEntries(home), [".mmsafeaware.partial-live", "mmsafeaware"]);
  });
});
