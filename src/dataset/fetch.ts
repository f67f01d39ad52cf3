/**
 * Fetches a benchmark dataset from its official repository at a pinned commit (GitHub's public archive),
 * verifies it file by file and unpacks the folders its layout reads (MMSafeAware: `data/`; MOSSBench:
 * `data/` and `data_contrast/`) into `<home>/datasets/<name>/`, where the local runner looks for the real
 * data.
 *
 * Nothing half-written is ever visible there: the archive is downloaded and unpacked into a staging
 * directory next to the destination, every file is compared with the shipped listing (git blob hashes) and
 * read with the same importer the runner uses, and only then is it renamed into place. What differs per
 * benchmark (folders, listing, importer, description) is its {@link DatasetLayout}; the rest is shared.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract, list, ReadEntry } from "tar";
import { z } from "zod";
import {
  MOSSBENCH_COMMIT,
  MOSSBENCH_CONTRAST_COLUMN,
  MOSSBENCH_REPOSITORY,
} from "../benchmarks/mossbench/definition.ts";
import {
  describeMossbenchDifference,
  type ManifestEntry,
  MOSSBENCH_ANNOTATION_FILES,
  MOSSBENCH_BENIGN_FILE,
  MOSSBENCH_CONTRAST_FILE,
  MOSSBENCH_MANIFEST,
  type MossbenchDataset,
  MossbenchLayoutError,
  parseMossbenchManifest,
  readMossbenchDataset,
} from "../benchmarks/mossbench/layout.ts";
import { type OfficialDataset, readOfficialDataset } from "./official-layout.ts";
import { MMSAFEAWARE_PUBLISHED_TREE } from "./provenance.ts";
import {
  compareWithPublishedTree,
  describeDifferences,
  differingFiles,
  type PublishedTree,
  readPublishedTree,
  treeMatches,
} from "./published-tree.ts";
import { describeImport } from "./upload.ts";

/**
 * Where a dataset comes from and what a correct copy of it contains. `D` is what its layout reads from a
 * copy: MMSafeAware's {@link OfficialDataset} unless {@link DatasetSource.layout} says otherwise.
 */
export interface DatasetSource<D = OfficialDataset> {
  /** Folder name under `<home>/datasets/` and the name on the command line. */
  name: string;
  /** GitHub `owner/name` of the official repository. */
  repository: string;
  /** The pinned commit, whose archive is downloaded. */
  commit: string;
  /** Commits whose data is the published one (the pinned one among them); archives of these are expected. */
  acceptedCommits: readonly string[];
  /** A `.tar.gz` of the repository at {@link DatasetSource.commit}. */
  url: string;
  /**
   * The shipped listing every unpacked file is verified against: MMSafeAware's `git ls-tree -r` of `data/`,
   * MOSSBench's manifest (path, git blob sha1, size). Tests and `--tree` give another one.
   */
  tree: string | URL;
  /**
   * sha256 of the archive at {@link DatasetSource.url}, or null when it is not known (GitHub's archives are
   * not byte-stable over time, so none can be pinned in advance). The content is verified file by file
   * either way; the archive's sha256 is recorded in `source.json`.
   */
  archiveSha256: string | null;
  /** Record and runnable counts the importer must find in the unpacked data, or null to not check. */
  expect: { records: number; runnable: number } | null;
  /**
   * What is unpacked and how it is verified and read; MMSafeAware's official layout ({@link
   * MMSAFEAWARE_LAYOUT}) when absent.
   */
  layout?: DatasetLayout<D>;
}

/**
 * A benchmark's part of a fetch: which folders of the repository are kept, how the unpacked copy is
 * verified against {@link DatasetSource.tree} and read, and how the result is described. Download,
 * unpacking, staging, `source.json` and the move into place are shared by every layout.
 */
export interface DatasetLayout<D> {
  /** Top-level folders of the repository that are unpacked; nothing else in the archive is written. */
  readonly folders: readonly string[];
  /**
   * Reads the source's listing (before anything is downloaded, so a broken one fails at once) and returns
   * the checks bound to it.
   *
   * @throws DatasetFetchError naming the listing and the line that does not fit.
   */
  load(source: DatasetSource<D>): Promise<DatasetChecks<D>>;
  /** The `verified: …` line of {@link describeFetch}. */
  describeVerified(result: FetchDatasetResult<D>): string;
  /** The line naming the checksum that identifies what a run evaluates. */
  describeChecksum(result: FetchDatasetResult<D>): string;
  /** What the unpacked data holds, as the CLI prints it after {@link describeFetch}. */
  describeData(dataset: D): string[];
  /** How an unpinned commit's data is said to be the published one (`its data/ is identical to …`). */
  readonly sameData: string;
}

/** A layout's checks, bound to the listing they verify against. */
export interface DatasetChecks<D> {
  /**
   * Verifies the unpacked copy in `content` file by file and reads it with the runner's importer.
   *
   * @throws DatasetFetchError naming every file that differs (path, expected and actual hash), or the
   *   counts that differ from `source.expect`; nothing is then moved into place.
   */
  verify(content: string, label: string, identity: ArchiveIdentity): Promise<VerifiedData<D>>;
  /** The present copy in `dest` when it still verifies and its checksum is `checksum`, else undefined. */
  readIfIntact(dest: string, checksum: string): Promise<D | undefined>;
  /** The staged dataset as seen from its final place. */
  relocate(dataset: D, from: string, to: string): D;
}

/** What a layout found in a verified copy, recorded in `source.json`. */
export interface VerifiedData<D> {
  dataset: D;
  /** Files verified against the listing. */
  files: number;
  /** git tree id of the published folder the files matched, when the listing names it. */
  treeId: string | null;
  /** Identifies the content a run evaluates; a present copy is only reused while it still has it. */
  checksum: string;
  records: number;
  runnable: number;
}

/** The repository's main branch as of 2025-06-04 (since 07c0de2a only README and paper files changed). */
import { MMSAFEAWARE_COMMIT } from "../benchmarks/mmsafeaware/definition.ts";

/** The first commit with the complete data (2025-05-30); its `data/` is the same git tree. */
const MMSAFEAWARE_FIRST_COMPLETE_COMMIT = "07c0de2a957238d5dbc3c163f4b2463dd249f4ed";

/**
 * MMSafeAware's official layout: `data/` (prompt.txt and the image folders), every file compared with the
 * published `git ls-tree -r` listing of `data/`, then read with the runner's importer.
 */
export const MMSAFEAWARE_LAYOUT: DatasetLayout<OfficialDataset> = {
  folders: ["data"],
  async load(source) {
    const tree = await readTreeListing(source);
    return {
      async verify(content, label, identity) {
        const files = await verifyTree(content, tree, label, source, identity);
        const dataset = await verifyContent(content, label, source);
        return {
          dataset,
          files,
          treeId: tree.treeId,
          checksum: dataset.checksum,
          records: dataset.records,
          runnable: dataset.items.length,
        };
      },
      readIfIntact: (dest, checksum) => readIfIntact(dest, checksum, tree),
      relocate,
    };
  },
  describeVerified: (result) =>
    `verified: all ${result.files.toLocaleString("en-US")} files under data/ match the published tree (git blob hashes)` +
    (result.source.expect === null
      ? ""
      : `; ${result.source.expect.records.toLocaleString("en-US")} records / ${result.source.expect.runnable.toLocaleString("en-US")} runnable pairs as expected`),
  describeChecksum: (result) =>
    `dataset checksum ${result.dataset.checksum.slice(0, 12)}… (prompt.txt and the runnable images: identifies what a run evaluates)`,
  describeData: describeImport,
  sameData: "its data/ is identical to the published tree",
};

/** Records of MOSSBench's benign set (`data/`) and of its harmful contrast set (`data_contrast/`). */
const MOSSBENCH_BENIGN_RECORDS = 300;
const MOSSBENCH_CONTRAST_RECORDS = 244;

/** What a MOSSBench fetch reads: the records as the runner reads them, and the files they were checked by. */
export interface FetchedMossbench extends MossbenchDataset {
  /** Absolute path of the dataset root (`data/` and `data_contrast/` are inside). */
  dir: string;
  /** sha256 over the path and git blob of both annotation files and every image a record uses. */
  checksum: string;
}

/**
 * MOSSBench's official layout: `data/` and `data_contrast/` (the root `images/` duplicate is not unpacked:
 * no record uses it), read with `readMossbenchDataset`, which checks both annotation files and every image
 * a record uses against the manifest in {@link DatasetSource.tree}. Only provenance `official` with 300
 * benign and 244 contrast records, none skipped, is accepted.
 */
export const MOSSBENCH_LAYOUT: DatasetLayout<FetchedMossbench> = {
  folders: ["data", "data_contrast"],
  async load(source) {
    const manifest = await readMossbenchListing(source.tree);
    const read = (root: string) => readMossbenchDataset(root, { manifest: source.tree });
    return {
      async verify(content, label, identity) {
        for (const file of [MOSSBENCH_BENIGN_FILE, MOSSBENCH_CONTRAST_FILE]) {
          try {
            await stat(path.join(content, ...file.split("/")));
          } catch (error: unknown) {
            throw new DatasetFetchError(
              `${label} has no ${file} under its top-level folder: it is not an archive of ${source.repository}`,
              { cause: error },
            );
          }
        }
        let dataset: MossbenchDataset;
        try {
          dataset = await read(content);
        } catch (error: unknown) {
          throw new DatasetFetchError(
            `the data unpacked from ${label} cannot be read: ${describeCause(error)}`,
            { cause: error },
          );
        }
        verifyMossbenchFiles(dataset, manifest, label, source, identity);
        verifyMossbenchCounts(dataset, label, source);
        const checksum = mossbenchChecksum(dataset, manifest);
        return {
          dataset: { ...dataset, dir: content, checksum },
          files: mossbenchFiles(dataset).length,
          treeId: null,
          checksum,
          records: dataset.records.length + dataset.skipped.length,
          runnable: dataset.records.length,
        };
      },
      async readIfIntact(dest, checksum) {
        try {
          const dataset = await read(dest);
          if (dataset.provenance.kind !== "official" || dataset.skipped.length > 0) return undefined;
          return mossbenchChecksum(dataset, manifest) === checksum
            ? { ...dataset, dir: dest, checksum }
            : undefined;
        } catch {
          // Unreadable (an annotation file deleted): damage like any other, fetched again.
          return undefined;
        }
      },
      // Record image paths are relative to the root, so only the root moves.
      relocate: (dataset, _from, to) => ({ ...dataset, dir: to }),
    };
  },
  describeVerified: (result) =>
    `verified: all ${result.files.toLocaleString("en-US")} files the records use (both annotation files and every image) match the manifest (git blob hashes); ` +
    `${countOf(result.dataset, "benign")} benign / ${countOf(result.dataset, "contrast")} contrast records as expected`,
  describeChecksum: (result) =>
    `dataset checksum ${result.dataset.checksum.slice(0, 12)}… (the annotation files and the images the records use: identifies what a run evaluates)`,
  describeData: (dataset) => {
    const lines = [
      `MOSSBench: ${dataset.records.length} records, ${countOf(dataset, "benign")} benign (expected comply) and ${countOf(dataset, "contrast")} harmful contrast (expected refuse), in ${dataset.dir}`,
    ];
    const { orphanImages } = dataset.ignored;
    if (orphanImages.length > 0)
      lines.push(
        `note: ${orphanImages.length} images no record uses are kept but ignored: ${orphanImages.join(", ")}`,
      );
    if (dataset.mismatchedExtensions.length > 0)
      lines.push(
        `note: typed by their bytes (another format than the extension says): ${dataset.mismatchedExtensions.join(", ")}`,
      );
    return lines;
  },
  sameData: "the files its records use match the manifest",
};

/** Datasets that `mmsafe dataset fetch <name>` knows. */
export const DATASET_SOURCES: Readonly<{
  mmsafeaware: DatasetSource<OfficialDataset>;
  mossbench: DatasetSource<FetchedMossbench>;
}> = {
  /**
   * The official MMSafeAware repository. Its `data/` (tree 472df95…) is identical at both accepted commits;
   * every unpacked file is checked against the shipped listing of that tree, and the import must then find
   * 1,523 records and 1,453 runnable pairs.
   */
  mmsafeaware: {
    name: "mmsafeaware",
    repository: "Jarviswang94/MMSafetyAwareness",
    commit: MMSAFEAWARE_COMMIT,
    acceptedCommits: [MMSAFEAWARE_COMMIT, MMSAFEAWARE_FIRST_COMPLETE_COMMIT],
    url: `https://github.com/Jarviswang94/MMSafetyAwareness/archive/${MMSAFEAWARE_COMMIT}.tar.gz`,
    tree: MMSAFEAWARE_PUBLISHED_TREE,
    archiveSha256: null,
    expect: { records: 1523, runnable: 1453 },
  },
  /**
   * The official MOSSBench repository. Only `data/` and `data_contrast/` are unpacked (the root `images/` is
   * a duplicate no record uses); every file a record uses and both annotation files must match the shipped
   * manifest, and the import must find 300 benign and 244 contrast records, all runnable.
   */
  mossbench: {
    name: "mossbench",
    repository: MOSSBENCH_REPOSITORY,
    commit: MOSSBENCH_COMMIT,
    acceptedCommits: [MOSSBENCH_COMMIT],
    url: `https://github.com/${MOSSBENCH_REPOSITORY}/archive/${MOSSBENCH_COMMIT}.tar.gz`,
    tree: MOSSBENCH_MANIFEST,
    archiveSha256: null,
    expect: {
      records: MOSSBENCH_BENIGN_RECORDS + MOSSBENCH_CONTRAST_RECORDS,
      runnable: MOSSBENCH_BENIGN_RECORDS + MOSSBENCH_CONTRAST_RECORDS,
    },
    layout: MOSSBENCH_LAYOUT,
  },
};

/**
 * The catalogued source named `name` (as typed on the command line), or undefined when none is: typed for
 * callers that handle every benchmark alike (the CLI), whose result {@link describeFetchReport} describes.
 */
export function findDatasetSource(name: string): DatasetSource<unknown> | undefined {
  return Object.hasOwn(DATASET_SOURCES, name)
    ? DATASET_SOURCES[name as keyof typeof DATASET_SOURCES]
    : undefined;
}

/** A dataset could not be fetched or did not verify; the message says what happened and what to do. */
export class DatasetFetchError extends Error {
  override readonly name = "DatasetFetchError";
}

/** Options of {@link fetchDataset}. */
export interface FetchDatasetOptions<D = OfficialDataset> {
  source: DatasetSource<D>;
  /** mmsafe's home folder (e.g. `.mmsafe`); the data goes to `<home>/datasets/<source.name>/`. */
  home: string;
  /** Expected sha256 of the archive; overrides `source.archiveSha256`. A mismatch is an error. */
  sha256?: string;
  /** Use this local archive instead of downloading (for offline machines). */
  archiveFile?: string;
  /** Fetch again even when the destination already holds this commit; also replaces a foreign folder. */
  force?: boolean;
  /** Replaces the global `fetch` (tests, proxies). */
  fetchImpl?: typeof fetch;
  /** Called as archive bytes arrive (or are hashed, for `archiveFile`); `totalBytes` is null when unknown. */
  onProgress?: (progress: { receivedBytes: number; totalBytes: number | null }) => void;
}

/** What {@link fetchDataset} did. */
export interface FetchDatasetResult<D = OfficialDataset> {
  /** Absolute destination: `<home>/datasets/<name>`; the files are under `<dir>/data/` (and its siblings). */
  dir: string;
  source: DatasetSource<D>;
  archiveSha256: string;
  archiveBytes: number;
  /** The commit the archive is of (from its pax header or top-level folder), or null when it names none. */
  commit: string | null;
  /** `tree`: every file matched the published tree; `tree+sha256`: and the archive matched a known sha256. */
  verifiedBy: VerifiedBy;
  /** Files verified against the published tree (or manifest). */
  files: number;
  /** True when the destination already held verified data, so nothing was downloaded. */
  alreadyPresent: boolean;
  /** The data as the importer reads it from {@link FetchDatasetResult.dir}. */
  dataset: D;
}

type VerifiedBy = "tree" | "tree+sha256";

/** `source.json`, written into the destination: where the data came from and how it was verified. */
const sourceRecordSchema = z.object({
  name: z.string(),
  repository: z.string(),
  /** What the archive itself says it is: never an assumed commit. */
  commit: z.string().nullable(),
  /** Where `commit` was read: the archive's pax header, or its top-level folder's name. */
  commitFrom: z.enum(["pax header", "folder name"]).nullable(),
  /** The download URL, or `file://` and the path of a local archive. */
  url: z.string(),
  archiveSha256: z.string(),
  archiveBytes: z.number(),
  verifiedBy: z.enum(["tree", "tree+sha256"]),
  /** git tree id of the published `data/` the files matched (null when the listing names none). */
  tree: z.string().nullable(),
  files: z.number(),
  fetchedAt: z.string(),
  /** The layout's checksum of what a run evaluates (MMSafeAware: prompt.txt and the runnable images). */
  datasetChecksum: z.string(),
  records: z.number(),
  runnable: z.number(),
});
type SourceRecord = z.infer<typeof sourceRecordSchema>;

const SOURCE_FILE = "source.json";
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
/** Network failures that mean "cannot reach the host at all", as opposed to a server answering badly. */
const UNREACHABLE: Readonly<Record<string, string>> = {
  ENOTFOUND: "the host name does not resolve",
  EAI_AGAIN: "the host name does not resolve",
  ECONNREFUSED: "the connection was refused",
  ENETUNREACH: "the network is unreachable",
  EHOSTUNREACH: "the host is unreachable",
  ETIMEDOUT: "the connection timed out",
  UND_ERR_CONNECT_TIMEOUT: "the connection timed out",
};

/**
 * Downloads (or takes from `archiveFile`) the source's archive, verifies it and unpacks the official layout
 * into `<home>/datasets/<name>/`, with a `source.json` recording the commit, the archive's sha256 and how it
 * was verified.
 *
 * When the destination already holds this commit (its `source.json` says so and its content still matches
 * the recorded checksum), nothing is downloaded unless `force` is set. A destination without `source.json`
 * (put there by hand) is only replaced with `force`. Everything happens in a staging directory inside
 * `<home>/datasets/` that is renamed into place once verified; on any failure it is removed and an existing
 * destination is left untouched.
 *
 * @throws DatasetFetchError when the archive cannot be downloaded or read, its sha256 differs from the
 *   expected one, a file differs from the source's listing (each named with its expected and actual hash;
 *   e.g. MMSafeAware's `data/prompt.txt` missing, or an archive of another commit), or its content differs
 *   from `source.expect`.
 */
export async function fetchDataset<D = OfficialDataset>(
  options: FetchDatasetOptions<D>,
): Promise<FetchDatasetResult<D>> {
  const { source } = options;
  const layout = layoutOf(source);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(source.name)) {
    throw new DatasetFetchError(
      `dataset name ${JSON.stringify(source.name)} cannot be used as a folder name`,
    );
  }
  const expectedSha256 = normaliseSha256(options.sha256 ?? source.archiveSha256);
  const datasetsDir = path.resolve(options.home, "datasets");
  const dest = path.join(datasetsDir, source.name);

  const existing = await readSourceRecord(dest);
  if (existing === "foreign" && !options.force) {
    throw new DatasetFetchError(
      `${dest} already exists but was not written by \`mmsafe dataset fetch\` (it has no valid ${SOURCE_FILE}); ` +
        `move it away, or run \`mmsafe dataset fetch ${source.name} --force\` to replace it`,
    );
  }
  const checks = await layout.load(source);
  if (typeof existing === "object" && !options.force) {
    const present = await checks.readIfIntact(dest, existing.datasetChecksum);
    if (present) {
      return {
        dir: dest,
        source,
        archiveSha256: existing.archiveSha256,
        archiveBytes: existing.archiveBytes,
        commit: existing.commit,
        verifiedBy: existing.verifiedBy,
        files: existing.files,
        alreadyPresent: true,
        dataset: present,
      };
    }
    // A fetched copy that no longer matches the published tree was damaged: fetch it again.
  }

  await mkdir(datasetsDir, { recursive: true });
  await removeAbandonedStaging(datasetsDir, source.name);
  const staging = await mkdtemp(path.join(datasetsDir, `.${source.name}${STAGING_INFIX}`));
  activeStaging.add(staging);
  try {
    // Lets a later fetch recognise this directory as abandoned if the process is killed (no finally then).
    await writeFile(path.join(staging, OWNER_FILE), `${process.pid}\n`, "utf8");
    const archive =
      options.archiveFile === undefined
        ? await download(source, path.join(staging, "archive.tar.gz"), options)
        : await hashLocalArchive(source, options.archiveFile, options.onProgress);
    const label = options.archiveFile ?? source.url;
    if (expectedSha256 !== null && archive.sha256 !== expectedSha256) {
      throw new DatasetFetchError(
        `${label} has sha256 ${archive.sha256}, expected ${expectedSha256}: the archive is not the one ` +
          `published for ${source.repository} at commit ${source.commit}`,
      );
    }

    const content = path.join(staging, source.name);
    await mkdir(content);
    const identity = await unpackFolders(archive.file, content, label, source, layout.folders);
    const staged = await checks.verify(content, label, identity);

    const record: SourceRecord = {
      name: source.name,
      repository: source.repository,
      commit: identity.commit,
      commitFrom: identity.from,
      url: options.archiveFile === undefined ? source.url : `file://${path.resolve(options.archiveFile)}`,
      archiveSha256: archive.sha256,
      archiveBytes: archive.bytes,
      verifiedBy: expectedSha256 === null ? "tree" : "tree+sha256",
      tree: staged.treeId,
      files: staged.files,
      fetchedAt: new Date().toISOString(),
      datasetChecksum: staged.checksum,
      records: staged.records,
      runnable: staged.runnable,
    };
    await writeFile(path.join(content, SOURCE_FILE), `${JSON.stringify(record, null, 2)}\n`, "utf8");
    await moveIntoPlace(content, dest, path.join(staging, "previous"));

    return {
      dir: dest,
      source,
      archiveSha256: record.archiveSha256,
      archiveBytes: record.archiveBytes,
      commit: record.commit,
      verifiedBy: record.verifiedBy,
      files: staged.files,
      alreadyPresent: false,
      dataset: checks.relocate(staged.dataset, content, dest),
    };
  } finally {
    // Holds the downloaded archive and, after a replacement, the previous copy; never useful afterwards.
    // A failed cleanup must not hide the fetch's own outcome; the next fetch removes what is left.
    await rm(staging, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
    activeStaging.delete(staging);
  }
}

/**
 * Human-readable lines describing what {@link fetchDataset} did: where the data went, the commit, how it was
 * verified, the archive's sha256 and the dataset's checksum.
 */
export function describeFetch<D>(result: FetchDatasetResult<D>): string[] {
  const { source } = result;
  const layout = layoutOf(source);
  const size = `${(result.archiveBytes / 1024 / 1024).toFixed(1)} MB`;
  const commit =
    result.commit === null ? "an unnamed commit (the archive names none)" : `commit ${result.commit}`;
  const lines = [
    result.alreadyPresent
      ? `${result.dir} already holds verified ${source.repository} data (${commit}); nothing downloaded (--force fetches again)`
      : `fetched ${source.repository} at ${commit} into ${result.dir}`,
  ];
  if (result.commit !== null && !source.acceptedCommits.includes(result.commit)) {
    lines.push(
      `note: commit ${result.commit} is not one of the pinned commits (${source.acceptedCommits.map((c) => c.slice(0, 8)).join(", ")}), but ${layout.sameData}`,
    );
  }
  lines.push(
    layout.describeVerified(result),
    `archive sha256 ${result.archiveSha256} (${size})${result.verifiedBy === "tree+sha256" ? ": matches the expected checksum" : ", recorded in source.json"}`,
    layout.describeChecksum(result),
  );
  return lines;
}

/**
 * Every line the CLI prints after a fetch, for any benchmark: {@link describeFetch}, then what the data
 * holds as its importer read it (MMSafeAware: records and runnable pairs per subset; MOSSBench: records
 * per column and what was ignored).
 */
export function describeFetchReport<D>(result: FetchDatasetResult<D>): string[] {
  return [...describeFetch(result), ...layoutOf(result.source).describeData(result.dataset)];
}

/** The source's layout: its own, or MMSafeAware's for a source that names none. */
function layoutOf<D>(source: DatasetSource<D>): DatasetLayout<D> {
  // A source without a layout is MMSafeAware's, whose D is OfficialDataset (the type parameter's default).
  return source.layout ?? (MMSAFEAWARE_LAYOUT as unknown as DatasetLayout<D>);
}

/** The source's published tree listing; a broken listing is a fetch error naming the file. */
async function readTreeListing(source: DatasetSource<OfficialDataset>): Promise<PublishedTree> {
  try {
    return await readPublishedTree(source.tree);
  } catch (error: unknown) {
    throw new DatasetFetchError(describeCause(error), { cause: error });
  }
}

function normaliseSha256(value: string | null | undefined): string | null {
  if (value === null || value === undefined) return null;
  const normalised = value.trim().toLowerCase();
  if (!SHA256_PATTERN.test(normalised)) {
    throw new DatasetFetchError(`expected sha256 ${JSON.stringify(value)} is not 64 hexadecimal digits`);
  }
  return normalised;
}

/**
 * The destination's `source.json`: `undefined` when the destination does not exist, `"foreign"` when it
 * exists without a valid one (not written by a fetch).
 */
async function readSourceRecord(dest: string): Promise<SourceRecord | "foreign" | undefined> {
  try {
    await stat(dest);
  } catch (error: unknown) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
  let text: string;
  try {
    text = await readFile(path.join(dest, SOURCE_FILE), "utf8");
  } catch (error: unknown) {
    if (errorCode(error) === "ENOENT" || errorCode(error) === "ENOTDIR") return "foreign";
    throw error;
  }
  try {
    const parsed = sourceRecordSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : "foreign";
  } catch (error: unknown) {
    if (error instanceof SyntaxError) return "foreign";
    throw error;
  }
}

/** The present copy, read by the importer, when it still matches the published tree and its record. */
async function readIfIntact(
  dest: string,
  checksum: string,
  tree: PublishedTree,
): Promise<OfficialDataset | undefined> {
  try {
    if (!treeMatches(await compareWithPublishedTree(dest, tree))) return undefined;
    const dataset = await readOfficialDataset(dest);
    return dataset.checksum === checksum ? dataset : undefined;
  } catch {
    // Unreadable (e.g. prompt.txt deleted): treated like any other damage, by fetching again.
    return undefined;
  }
}

const STAGING_INFIX = ".partial-";
const OWNER_FILE = ".owner-pid";
/** Staging directories of fetches running in this process, which share its pid. */
const activeStaging = new Set<string>();

/**
 * Removes staging directories of earlier fetches that were killed (Ctrl-C runs no cleanup): those whose
 * owner process no longer runs. A concurrent fetch's staging directory is left alone.
 */
async function removeAbandonedStaging(datasetsDir: string, name: string): Promise<void> {
  const prefix = `.${name}${STAGING_INFIX}`;
  for (const entry of await readdir(datasetsDir)) {
    const dir = path.join(datasetsDir, entry);
    if (!entry.startsWith(prefix) || activeStaging.has(dir)) continue;
    const owner = await readOwner(dir);
    // This process's own pid on an inactive directory: one of its fetches could not clean up.
    if (owner !== undefined && owner !== process.pid && isRunning(owner)) continue;
    await rm(dir, { recursive: true, force: true });
  }
}

async function readOwner(dir: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt(await readFile(path.join(dir, OWNER_FILE), "utf8"), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    // Killed before the owner file was written: nobody owns it.
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error: unknown) {
    // EPERM: the process exists but belongs to someone else.
    return errorCode(error) === "EPERM";
  }
}

interface Archive {
  file: string;
  sha256: string;
  bytes: number;
}

/** How to proceed when the download is impossible from this machine. */
function offlineHint(source: DatasetSource<unknown>): string {
  return `Download the archive elsewhere and run \`mmsafe dataset fetch ${source.name} --archive FILE\``;
}

/** Streams the archive to `file` while hashing it; the archive is never held in memory. */
async function download(
  source: DatasetSource<unknown>,
  file: string,
  options: Pick<FetchDatasetOptions<unknown>, "fetchImpl" | "onProgress">,
): Promise<Archive> {
  const url = source.url;
  const fetchImpl = options.fetchImpl ?? fetch;
  let response: Response;
  try {
    response = await fetchImpl(url, { redirect: "follow" });
  } catch (error: unknown) {
    throw new DatasetFetchError(describeNetworkFailure(url, error, source), { cause: error });
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel().catch(() => undefined);
    const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
    throw new DatasetFetchError(
      `could not download ${url}: the server answered ${status}. Check that commit ${source.commit} ` +
        `exists in ${source.repository}, or ${lowerFirst(offlineHint(source))}`,
    );
  }
  const length = Number(response.headers.get("content-length"));
  const totalBytes = Number.isSafeInteger(length) && length > 0 ? length : null;
  const hash = createHash("sha256");
  const progress = { receivedBytes: 0 };
  try {
    const body = Readable.fromWeb(response.body);
    await pipeline(body, hashing(hash, progress, totalBytes, options.onProgress), createWriteStream(file));
  } catch (error: unknown) {
    throw new DatasetFetchError(
      `the download of ${url} broke off after ${progress.receivedBytes} bytes (${describeCause(error)}). ` +
        `Try again, or ${lowerFirst(offlineHint(source))}`,
      { cause: error },
    );
  }
  return { file, sha256: hash.digest("hex"), bytes: progress.receivedBytes };
}

/** Hashes a local archive by streaming it, reporting progress like a download. */
async function hashLocalArchive(
  source: DatasetSource<unknown>,
  archiveFile: string,
  onProgress: FetchDatasetOptions<unknown>["onProgress"],
): Promise<Archive> {
  const file = path.resolve(archiveFile);
  const hash = createHash("sha256");
  const progress = { receivedBytes: 0 };
  try {
    const { size } = await stat(file);
    // Only the digest is needed here: the archive is unpacked from the file itself.
    for await (const chunk of createReadStream(file)) {
      const bytes = chunk as Buffer;
      hash.update(bytes);
      progress.receivedBytes += bytes.byteLength;
      onProgress?.({ receivedBytes: progress.receivedBytes, totalBytes: size });
    }
  } catch (error: unknown) {
    throw new DatasetFetchError(
      `cannot read the archive ${file} (${describeCause(error)}): give the .tar.gz of ${source.repository} at commit ${source.commit}`,
      { cause: error },
    );
  }
  return { file, sha256: hash.digest("hex"), bytes: progress.receivedBytes };
}

/** A pipeline step that hashes and counts the bytes passing through it, reporting progress. */
function hashing(
  hash: Hash,
  progress: { receivedBytes: number },
  totalBytes: number | null,
  onProgress: FetchDatasetOptions<unknown>["onProgress"],
): (chunks: AsyncIterable<Uint8Array>) => AsyncGenerator<Uint8Array> {
  return async function* (chunks) {
    for await (const chunk of chunks) {
      hash.update(chunk);
      progress.receivedBytes += chunk.byteLength;
      onProgress?.({ receivedBytes: progress.receivedBytes, totalBytes });
      yield chunk;
    }
  };
}

/** What to tell the user when `fetch` itself failed: usually no network, which the archive option solves. */
function describeNetworkFailure(url: string, error: unknown, source: DatasetSource<unknown>): string {
  const code = findErrorCode(error);
  const reason = code === undefined ? undefined : UNREACHABLE[code];
  if (code !== undefined && reason !== undefined) {
    return (
      `could not download ${url} (${code}): ${reason}; this machine seems offline (or needs a proxy, ` +
      `which Node's fetch does not use). ${offlineHint(source)}`
    );
  }
  return `could not download ${url} (${describeCause(error)}). Check the network, or ${lowerFirst(offlineHint(source))}`;
}

/** The first errno-style code in an error's cause chain (undici wraps it as `TypeError: fetch failed`). */
function findErrorCode(error: unknown, depth = 0): string | undefined {
  if (!(error instanceof Error) || depth > 5) return undefined;
  const code = errorCode(error);
  if (code !== undefined) return code;
  if (error instanceof AggregateError) {
    for (const inner of error.errors) {
      const found = findErrorCode(inner, depth + 1);
      if (found !== undefined) return found;
    }
  }
  return findErrorCode(error.cause, depth + 1);
}

/** An error's message with its causes' (undici's own message is only "fetch failed"), and its code. */
function describeCause(error: unknown): string {
  const messages: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current !== undefined; depth++) {
    const message = current instanceof Error ? current.message : String(current);
    if (message !== "" && !messages.some((m) => m.includes(message))) messages.push(message);
    current = current instanceof Error ? current.cause : undefined;
  }
  const message = messages.join(": ");
  const code = findErrorCode(error);
  return code === undefined || message.includes(code) ? message : `${code}: ${message}`;
}

function errorCode(error: unknown): string | undefined {
  if (error instanceof Error && "code" in error && typeof error.code === "string") return error.code;
  return undefined;
}

const lowerFirst = (text: string): string => text.charAt(0).toLowerCase() + text.slice(1);

const FULL_SHA = /^[0-9a-f]{40}$/;

/** The commit an archive says it is of, and where it says so. */
export interface ArchiveIdentity {
  commit: string | null;
  from: "pax header" | "folder name" | null;
}

/**
 * The top-level folder of an entry that belongs to one of `folders` (relative to that top-level folder),
 * or undefined for anything else: other files (paper, README), links, devices and paths with `..` or an
 * absolute root.
 */
function keptTopLevel(entryPath: string, entry: ReadEntry, folders: readonly string[]): string | undefined {
  const parts = entryPath.replaceAll("\\", "/").split("/");
  const top = parts[0];
  if (top === undefined || top === "" || parts.some((p) => p === ".." || p === ".")) return undefined;
  const inside = parts.slice(1);
  const folder = inside[0];
  if (folder === undefined || !folders.includes(folder)) return undefined;
  const isFile = entry.type === "File" || entry.type === "OldFile" || entry.type === "ContiguousFile";
  // A file needs a name below the folder (`data/x`, not `data`, `data/` or `data//x`).
  const below = inside.slice(1);
  const wanted = isFile ? below.length > 0 && below.every((p) => p !== "") : entry.type === "Directory";
  return wanted ? top : undefined;
}

/**
 * Unpacks every regular file under `folders` (`data/`, …) from the archive's single top-level folder into
 * `content`; only regular files are ever written, and only inside `content`. Returns the commit the archive names: git
 * writes it into a pax global header, and GitHub names the top-level folder `<repo>-<full sha>`.
 *
 * The archive is read twice: first without writing anything, so a damaged archive is refused before
 * extraction starts (tar may still be writing when an extraction fails).
 */
async function unpackFolders(
  archiveFile: string,
  content: string,
  label: string,
  source: DatasetSource<unknown>,
  folders: readonly string[],
): Promise<ArchiveIdentity> {
  const topLevels = new Set<string>();
  let paxCommit: string | undefined;
  let pass: "list" | "extract" = "list";
  try {
    await list({
      file: archiveFile,
      // Any damage (bad header checksum, truncation, bad gzip) is an error rather than a warning.
      strict: true,
      filter: (entryPath, entry) => {
        if (!(entry instanceof ReadEntry)) return false;
        const comment = entry.globalExtended?.comment?.trim();
        if (comment !== undefined && FULL_SHA.test(comment)) paxCommit ??= comment;
        const top = keptTopLevel(entryPath, entry, folders);
        if (top !== undefined) topLevels.add(top);
        return false;
      },
    });
    if (topLevels.size > 1) {
      throw new DatasetFetchError(
        `${label} has data under several top-level folders (${[...topLevels].sort().join(", ")}); a GitHub archive has one`,
      );
    }
    pass = "extract";
    await extract({
      file: archiveFile,
      cwd: content,
      strip: 1,
      strict: true,
      preserveOwner: false,
      filter: (entryPath, entry) =>
        entry instanceof ReadEntry && keptTopLevel(entryPath, entry, folders) !== undefined,
    });
  } catch (error: unknown) {
    if (error instanceof DatasetFetchError) throw error;
    const problem =
      pass === "list"
        ? `it is damaged or not a .tar.gz archive of ${source.repository}`
        : `writing into ${content} failed`;
    throw new DatasetFetchError(`cannot unpack ${label} (${describeCause(error)}): ${problem}`, {
      cause: error,
    });
  }
  if (paxCommit !== undefined) return { commit: paxCommit, from: "pax header" };
  const folderSha = /-([0-9a-f]{40})$/.exec([...topLevels][0] ?? "")?.[1];
  return folderSha === undefined ? { commit: null, from: null } : { commit: folderSha, from: "folder name" };
}

/**
 * Compares every unpacked file with the published tree; any missing, extra or changed file is an error that
 * names it (path, expected and actual blob hash and size). Returns the number of files verified.
 */
async function verifyTree(
  content: string,
  tree: PublishedTree,
  label: string,
  source: DatasetSource<OfficialDataset>,
  identity: ArchiveIdentity,
): Promise<number> {
  const comparison = await compareWithPublishedTree(content, tree);
  if (treeMatches(comparison)) return comparison.matching;
  const n = differingFiles(comparison);
  const commitHint = unpinnedCommitHint(source, identity);
  throw new DatasetFetchError(
    `${label} is not the published data: ${n} ${n === 1 ? "file" : "files"} under data/ ` +
      `${n === 1 ? "differs" : "differ"} from the published tree (${path.basename(tree.source)}, ` +
      `${tree.files.size} files), so nothing was moved into place.${commitHint}\n` +
      describeDifferences(comparison)
        .map((line) => `  ${line}`)
        .join("\n"),
  );
}

/**
 * When the archive is of a commit the data is not pinned to, the sentence that says so and what to get
 * instead (appended to a verification error); else "".
 */
function unpinnedCommitHint(source: DatasetSource<unknown>, identity: ArchiveIdentity): string {
  return identity.commit !== null && !source.acceptedCommits.includes(identity.commit)
    ? ` It is an archive of commit ${identity.commit}, not of a commit the data is pinned to ` +
        `(${source.acceptedCommits.map((c) => c.slice(0, 8)).join(", ")}): download ${source.url}`
    : "";
}

/** Reads the staged data with the runner's importer and checks it against the catalogue's expectations. */
async function verifyContent(
  content: string,
  label: string,
  source: DatasetSource<OfficialDataset>,
): Promise<OfficialDataset> {
  try {
    await stat(path.join(content, "data", "prompt.txt"));
  } catch (error: unknown) {
    throw new DatasetFetchError(
      `${label} has no data/prompt.txt under its top-level folder: it is not an archive of ${source.repository}`,
      { cause: error },
    );
  }
  let dataset: OfficialDataset;
  try {
    dataset = await readOfficialDataset(content);
  } catch (error: unknown) {
    throw new DatasetFetchError(`the data unpacked from ${label} cannot be read: ${describeCause(error)}`, {
      cause: error,
    });
  }
  const { expect } = source;
  if (expect !== null && (dataset.records !== expect.records || dataset.items.length !== expect.runnable)) {
    throw new DatasetFetchError(
      `the data unpacked from ${label} has ${dataset.records} records / ${dataset.items.length} ` +
        `runnable pairs, expected ${expect.records} records / ${expect.runnable} runnable pairs`,
    );
  }
  return dataset;
}

/** MOSSBench's manifest; a broken one is a fetch error naming the file and line. */
async function readMossbenchListing(manifest: string | URL): Promise<Map<string, ManifestEntry>> {
  const label = manifest instanceof URL ? manifest.pathname : manifest;
  try {
    return parseMossbenchManifest(await readFile(manifest, "utf8"), label);
  } catch (error: unknown) {
    if (error instanceof MossbenchLayoutError) throw new DatasetFetchError(error.message, { cause: error });
    throw new DatasetFetchError(`cannot read the MOSSBench manifest ${label} (${describeCause(error)})`, {
      cause: error,
    });
  }
}

/** The files a MOSSBench copy is verified by: both annotation files and every image a record uses. */
function mossbenchFiles(dataset: MossbenchDataset): string[] {
  const images = [...dataset.records.map((r) => r.imagePath), ...dataset.differences.map((d) => d.path)];
  return [...new Set([MOSSBENCH_BENIGN_FILE, MOSSBENCH_CONTRAST_FILE, ...images])].sort();
}

/**
 * sha256 over `path \t blob` of every file {@link mossbenchFiles} names, with the blob the manifest gives:
 * the files were verified against it, so this identifies their bytes without reading them again.
 */
function mossbenchChecksum(dataset: MossbenchDataset, manifest: ReadonlyMap<string, ManifestEntry>): string {
  const hash = createHash("sha256");
  for (const file of mossbenchFiles(dataset)) {
    const blob = manifest.get(file)?.blob ?? MOSSBENCH_ANNOTATION_FILES[file]?.blob ?? "unlisted";
    hash.update(`${file}\t${blob}\n`);
  }
  return hash.digest("hex");
}

const countOf = (dataset: MossbenchDataset, set: "benign" | "contrast"): number =>
  dataset.records.filter((r) => (r.column === MOSSBENCH_CONTRAST_COLUMN) === (set === "contrast")).length;

/**
 * Fails unless every file the records use matches the manifest (provenance `official`), naming each file
 * that differs with its expected and actual blob, as `readMossbenchDataset` reports them.
 */
function verifyMossbenchFiles(
  dataset: MossbenchDataset,
  manifest: ReadonlyMap<string, ManifestEntry>,
  label: string,
  source: DatasetSource<FetchedMossbench>,
  identity: ArchiveIdentity,
): void {
  if (dataset.provenance.kind === "official") return;
  const { differences } = dataset;
  const n = differences.length;
  const shown = differences.slice(0, MAX_LISTED_DIFFERENCES).map(describeMossbenchDifference);
  if (n > MAX_LISTED_DIFFERENCES) shown.push(`… and ${n - MAX_LISTED_DIFFERENCES} more`);
  const listing = source.tree instanceof URL ? source.tree.pathname : source.tree;
  throw new DatasetFetchError(
    `${label} is not the published data: ${n} ${n === 1 ? "file" : "files"} the records use ` +
      `${n === 1 ? "differs" : "differ"} from the manifest (${path.basename(listing)}, ${manifest.size} files), ` +
      `so nothing was moved into place.${unpinnedCommitHint(source, identity)}\n` +
      shown.map((line) => `  ${line}`).join("\n"),
  );
}

/** Fails unless the copy has the expected benign and contrast records, none of them skipped. */
function verifyMossbenchCounts(
  dataset: MossbenchDataset,
  label: string,
  source: DatasetSource<FetchedMossbench>,
): void {
  const benign = countOf(dataset, "benign");
  const contrast = countOf(dataset, "contrast");
  const { expect } = source;
  const total = dataset.records.length + dataset.skipped.length;
  const fits =
    dataset.skipped.length === 0 &&
    (expect === null ||
      (benign === MOSSBENCH_BENIGN_RECORDS &&
        contrast === MOSSBENCH_CONTRAST_RECORDS &&
        total === expect.records &&
        dataset.records.length === expect.runnable));
  if (fits) return;
  const skipped = dataset.skipped
    .slice(0, MAX_LISTED_DIFFERENCES)
    .map((r) => `  skipped ${r.id}: ${r.detail}`);
  throw new DatasetFetchError(
    `the data unpacked from ${label} has ${benign} benign / ${contrast} contrast records runnable and ` +
      `${dataset.skipped.length} skipped, expected ${MOSSBENCH_BENIGN_RECORDS} benign / ` +
      `${MOSSBENCH_CONTRAST_RECORDS} contrast and none skipped` +
      (skipped.length > 0 ? `\n${skipped.join("\n")}` : ""),
  );
}

/** Differing files named in one error; the count says how many there are in all. */
const MAX_LISTED_DIFFERENCES = 10;

/**
 * Renames the verified copy into place. An existing destination is first moved aside (into the staging
 * directory, which is deleted afterwards) and moved back if the second rename fails.
 */
async function moveIntoPlace(content: string, dest: string, aside: string): Promise<void> {
  let movedAside = false;
  try {
    await rename(dest, aside);
    movedAside = true;
  } catch (error: unknown) {
    if (errorCode(error) !== "ENOENT") throw error;
  }
  try {
    await rename(content, dest);
  } catch (error: unknown) {
    if (movedAside) await rename(aside, dest);
    throw error;
  }
}

/** The staged dataset as seen from its final place (paths only; the checksum covers bytes, not paths). */
function relocate(dataset: OfficialDataset, from: string, to: string): OfficialDataset {
  return {
    ...dataset,
    dir: to,
    items: dataset.items.map((item) => ({
      ...item,
      imagePath: path.join(to, path.relative(from, item.imagePath)),
    })),
  };
}
