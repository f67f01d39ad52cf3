import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { create, Header, Pax } from "tar";
import {
  DATASET_SOURCES,
  DatasetFetchError,
  type DatasetSource,
  describeFetch,
  fetchDataset,
} from "../../src/dataset/fetch.ts";
import { readOfficialDataset } from "../../src/dataset/official-layout.ts";
import { type SampleSummary, writeSampleDataset } from "../../src/dataset/sample.ts";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98";
const TOP = `MMSafetyAwareness-${COMMIT}`;

const sha256 = (bytes: Buffer): string => createHash("sha256").update(bytes).digest("hex");

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

/** Every file under `root`, relative with `/` separators, with its bytes. */
async function readTree(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const relative of await readdir(root, { recursive: true })) {
    const full = path.join(root, relative);
    if (!(await stat(full)).isFile()) continue;
    out.set(relative.split(path.sep).join("/"), await readFile(full));
  }
  return out;
}

/** Entries of `<home>/datasets`, or none when it does not exist. */
async function datasetsEntries(home: string): Promise<string[]> {
  try {
    return (await readdir(path.join(home, "datasets"))).sort();
  } catch (error: unknown) {
    if (error instanceof Error && "code" in error && error.code === "ENOENT") return [];
    throw error;
  }
}

/** Asserts a rejection with a DatasetFetchError whose message matches every pattern. */
async function rejectsWith(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<DatasetFetchError> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof DatasetFetchError, `expected a DatasetFetchError, got ${String(caught)}`);
  for (const pattern of patterns) assert.match(caught.message, pattern);
  return caught;
}

describe("fetchDataset", () => {
  let tmp: string;
  let summary: SampleSummary;
  let expect: { records: number; runnable: number };
  let server: Server;
  let baseUrl: string;
  let closedPortUrl: string;
  const routes = new Map<string, Buffer>();
  const requests = new Map<string, number>();
  let good: Buffer;

  /** The archive as GitHub builds it: a pax global header naming the commit, then one top-level folder. */
  async function buildArchive(
    commit: string,
    options: { extra?: Buffer[]; skip?: (entryPath: string) => boolean } = {},
  ): Promise<Buffer> {
    const rawFile = await mkdtemp(path.join(tmp, "raw-")).then((dir) => path.join(dir, "a.tar"));
    const skip = options.skip ?? (() => false);
    await create({ cwd: path.join(tmp, "src"), file: rawFile, portable: true, filter: (p) => !skip(p) }, [
      TOP,
    ]);
    const global = new Pax({ comment: commit }, true).encode();
    return gzipSync(Buffer.concat([global, ...(options.extra ?? []), await readFile(rawFile)]));
  }

  const source = (route: string, overrides: Partial<DatasetSource> = {}): DatasetSource => ({
    name: "mmsafeaware",
    repository: "Jarviswang94/MMSafetyAwareness",
    commit: COMMIT,
    url: `${baseUrl}${route}`,
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

    // Everything else a repository archive holds, which must not be unpacked.
    await writeFile(path.join(top, "README.md"), "# MMSafeAware\n");
    await mkdir(path.join(top, "paper"));
    await writeFile(path.join(top, "paper", "x.pdf"), "%PDF-1.4 not really\n");
    await mkdir(path.join(top, "annotation"));
    await writeFile(path.join(top, "annotation", "labels.csv"), "id,label\n1,safe\n");
    await writeFile(path.join(top, "data", "notes.md"), "not part of the layout\n");
    await mkdir(path.join(top, "data", "images", "nested"));
    await writeFile(path.join(top, "data", "images", "nested", "5.png"), "nested\n");
    await symlink("../../README.md", path.join(top, "data", "images", "9999.png"));

    const hostile = [
      rawEntry(`${TOP}/data/images/../../../evil.txt`, "File", "escaped\n"),
      rawEntry(`/${path.basename(tmp)}-absolute-evil.txt`, "File", "absolute\n"),
      rawEntry(`${TOP}/data/images/8888.png`, "Link", "", `${TOP}/README.md`),
    ];
    good = await buildArchive(COMMIT, { extra: hostile });
    routes.set("/good.tar.gz", good);
    routes.set("/other-commit.tar.gz", await buildArchive(OTHER_COMMIT));
    routes.set("/no-prompt.tar.gz", await buildArchive(COMMIT, { skip: (p) => p.endsWith("prompt.txt") }));
    routes.set("/truncated.tar.gz", good.subarray(0, Math.floor(good.length / 2)));

    server = createServer((request, response) => {
      const url = request.url ?? "";
      requests.set(url, (requests.get(url) ?? 0) + 1);
      if (url === "/broken.tar.gz") {
        // Announces the whole archive, sends a part, then the connection drops.
        response.writeHead(200, { "content-length": good.length });
        response.write(good.subarray(0, 1024), () => response.destroy());
        return;
      }
      const body = routes.get(url);
      if (body === undefined) {
        response.writeHead(404, "Not Found").end("not found");
        return;
      }
      response
        .writeHead(200, { "content-type": "application/gzip", "content-length": body.length })
        .end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // A port that was just free: nothing listens there, so connecting is refused.
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    closedPortUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/good.tar.gz`;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(tmp, { recursive: true, force: true });
  });

  it("catalogues the official repository at its pinned commit", () => {
    const entry = DATASET_SOURCES.mmsafeaware;
    assert.equal(entry.commit, "610005099ffb37082eca1fb781f1ea1624752fd4");
    assert.equal(
      entry.url,
      `https://github.com/Jarviswang94/MMSafetyAwareness/archive/${entry.commit}.tar.gz`,
    );
    assert.equal(entry.archiveSha256, null);
    assert.deepEqual(entry.expect, { records: 1523, runnable: 1453 });
  });

  it("downloads, verifies the content and unpacks only the official layout", async () => {
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
    assert.equal(result.verifiedBy, "content");
    assert.equal(result.commit, COMMIT);
    assert.equal(result.archiveSha256, sha256(good));
    assert.equal(result.archiveBytes, good.length);
    assert.deepEqual(progress.at(-1), { receivedBytes: good.length, totalBytes: good.length });

    // Nothing else in datasets/ (no staging leftovers), nothing outside it.
    assert.deepEqual(await datasetsEntries(home), ["mmsafeaware"]);
    assert.deepEqual(await readdir(home), ["datasets"]);
    assert.deepEqual((await readdir(dest)).sort(), ["data", "source.json"]);

    // Exactly the sample's files (the stray images2/test included), byte for byte: no junk, links, nesting.
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
        url: `${baseUrl}/good.tar.gz`,
        archiveSha256: sha256(good),
        archiveBytes: good.length,
        verifiedBy: "content",
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
    assert.match(lines.join("\n"), new RegExp(`${sha256(good)}.*40 records / 36 runnable pairs as expected`));
    assert.match(lines.join("\n"), /40 records, 36 runnable pairs, 4 skipped/);
  });

  it("verifies by sha256 when one is known, from the caller or the catalogue", async () => {
    const byOption = await fetchDataset({
      source: source("/good.tar.gz"),
      home: await newHome(),
      sha256: sha256(good).toUpperCase(),
    });
    assert.equal(byOption.verifiedBy, "sha256");
    assert.match(describeFetch(byOption).join("\n"), /matches the expected checksum/);

    const byCatalogue = await fetchDataset({
      source: source("/good.tar.gz", { archiveSha256: sha256(good) }),
      home: await newHome(),
    });
    assert.equal(byCatalogue.verifiedBy, "sha256");
    const record = JSON.parse(await readFile(path.join(byCatalogue.dir, "source.json"), "utf8"));
    assert.equal(record.verifiedBy, "sha256");
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
    assert.equal(result.verifiedBy, "content");
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
    assert.equal(again.verifiedBy, "content");
    assert.equal(again.dataset.checksum, first.dataset.checksum);
    assert.match(describeFetch(again)[0] ?? "", /already holds .* nothing downloaded/);

    const forced = await fetchDataset({ source: source("/good.tar.gz"), home, force: true });
    assert.equal(count(), afterFirst + 1);
    assert.equal(forced.alreadyPresent, false);
    assert.deepEqual(await datasetsEntries(home), ["mmsafeaware"]);
  });

  it("fetches again when the present copy was damaged or is of another commit", async () => {
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

    const other = await fetchDataset({
      source: source("/other-commit.tar.gz", { commit: OTHER_COMMIT }),
      home,
    });
    assert.equal(other.alreadyPresent, false);
    assert.equal(other.commit, OTHER_COMMIT);
    const record = JSON.parse(
      await readFile(path.join(home, "datasets", "mmsafeaware", "source.json"), "utf8"),
    );
    assert.equal(record.commit, OTHER_COMMIT);
    assert.deepEqual(await datasetsEntries(home), ["mmsafeaware"]);
  });

  it("rejects content that differs from the catalogue's expectation, leaving nothing behind", async () => {
    const home = await newHome();
    await rejectsWith(
      fetchDataset({ source: source("/good.tar.gz", { expect: { records: 41, runnable: 36 } }), home }),
      new RegExp(
        `archive at commit ${COMMIT} .* has 40 records / 36 runnable pairs, expected 41 records / 36 runnable pairs`,
      ),
    );
    assert.deepEqual(await datasetsEntries(home), []);
  });

  it("rejects an archive of another commit, one without data/prompt.txt and a truncated one", async () => {
    const home = await newHome();
    await rejectsWith(
      fetchDataset({ source: source("/other-commit.tar.gz"), home }),
      new RegExp(`archive of commit ${OTHER_COMMIT}, but mmsafeaware is pinned to commit ${COMMIT}`),
    );
    await rejectsWith(
      fetchDataset({ source: source("/no-prompt.tar.gz"), home }),
      /has no data\/prompt\.txt/,
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
