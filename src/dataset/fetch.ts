/**
 * Fetches a benchmark dataset from its official repository at a pinned commit (GitHub's public archive),
 * verifies it file by file and unpacks its `data/` folder into `<home>/datasets/<name>/`, where the local
 * runner looks for the real data.
 *
 * Nothing half-written is ever visible there: the archive is downloaded and unpacked into a staging
 * directory next to the destination, every file is compared with the published git tree (blob hashes) and
 * read with the same importer the runner uses, and only then is it renamed into place.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract, list, ReadEntry } from "tar";
import { z } from "zod";
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

/** Where a dataset comes from and what a correct copy of it contains. */
export interface DatasetSource {
  /** Folder name under `<home>/datasets/` and the name on the command line. */
  name: string;
  /** GitHub `owner/name` of the official repository. */
  repository: string;
  /** The pinned commit, whose archive is downloaded. */
  commit: string;
  /** Commits whose `data/` is the published tree (the pinned one among them); archives of these are expected. */
  acceptedCommits: readonly string[];
  /** A `.tar.gz` of the repository at {@link DatasetSource.commit}. */
  url: string;
  /** The published `git ls-tree -r` listing of `data/` that every unpacked file is verified against. */
  tree: string | URL;
  /**
   * sha256 of the archive at {@link DatasetSource.url}, or null when it is not known (GitHub's archives are
   * not byte-stable over time, so none can be pinned in advance). The content is verified file by file
   * either way; the archive's sha256 is recorded in `source.json`.
   */
  archiveSha256: string | null;
  /** Record and runnable-pair counts the importer must find in the unpacked data, or null to not check. */
  expect: { records: number; runnable: number } | null;
}

/** The repository's main branch as of 2025-06-04 (since 07c0de2a only README and paper files changed). */
import { MMSAFEAWARE_COMMIT } from "../benchmarks/mmsafeaware/definition.ts";

/** The first commit with the complete data (2025-05-30); its `data/` is the same git tree. */
const MMSAFEAWARE_FIRST_COMPLETE_COMMIT = "07c0de2a957238d5dbc3c163f4b2463dd249f4ed";

/** Datasets that `mmsafe dataset fetch <name>` knows. */
export const DATASET_SOURCES: Readonly<Record<"mmsafeaware", DatasetSource>> = {
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
};

/** A dataset could not be fetched or did not verify; the message says what happened and what to do. */
export class DatasetFetchError extends Error {
  override readonly name = "DatasetFetchError";
}

/** Options of {@link fetchDataset}. */
export interface FetchDatasetOptions {
  source: DatasetSource;
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
export interface FetchDatasetResult {
  /** Absolute destination: `<home>/datasets/<name>`; the files are under `<dir>/data/`. */
  dir: string;
  source: DatasetSource;
  archiveSha256: string;
  archiveBytes: number;
  /** The commit the archive is of (from its pax header or top-level folder), or null when it names none. */
  commit: string | null;
  /** `tree`: every file matched the published tree; `tree+sha256`: and the archive matched a known sha256. */
  verifiedBy: VerifiedBy;
  /** Files verified against the published tree. */
  files: number;
  /** True when the destination already held verified data, so nothing was downloaded. */
  alreadyPresent: boolean;
  /** The data as the importer reads it from {@link FetchDatasetResult.dir}. */
  dataset: OfficialDataset;
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
  /** git tree id of the published `data/` the files matched. */
  tree: z.string().nullable(),
  files: z.number(),
  fetchedAt: z.string(),
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
 *   expected one, it holds no `data/prompt.txt`, it is of another commit, or its content differs from
 *   `source.expect`.
 */
export async function fetchDataset(options: FetchDatasetOptions): Promise<FetchDatasetResult> {
  const { source } = options;
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
  const tree = await readTreeListing(source);
  if (typeof existing === "object" && !options.force) {
    const present = await readIfIntact(dest, existing, tree);
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
    const identity = await unpackDataFolder(archive.file, content, label, source);
    const files = await verifyTree(content, tree, label, source, identity);
    const staged = await verifyContent(content, label, source);

    const record: SourceRecord = {
      name: source.name,
      repository: source.repository,
      commit: identity.commit,
      commitFrom: identity.from,
      url: options.archiveFile === undefined ? source.url : `file://${path.resolve(options.archiveFile)}`,
      archiveSha256: archive.sha256,
      archiveBytes: archive.bytes,
      verifiedBy: expectedSha256 === null ? "tree" : "tree+sha256",
      tree: tree.treeId,
      files,
      fetchedAt: new Date().toISOString(),
      datasetChecksum: staged.checksum,
      records: staged.records,
      runnable: staged.items.length,
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
      files,
      alreadyPresent: false,
      dataset: relocate(staged, content, dest),
    };
  } finally {
    // Holds the downloaded archive and, after a replacement, the previous copy; never useful afterwards.
    // A failed cleanup must not hide the fetch's own outcome; the next fetch removes what is left.
    await rm(staging, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
    activeStaging.delete(staging);
  }
}

/** Human-readable lines describing what {@link fetchDataset} did. */
export function describeFetch(result: FetchDatasetResult): string[] {
  const { source, dataset } = result;
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
      `note: commit ${result.commit} is not one of the pinned commits (${source.acceptedCommits.map((c) => c.slice(0, 8)).join(", ")}), but its data/ is identical to the published tree`,
    );
  }
  lines.push(
    `verified: all ${result.files.toLocaleString("en-US")} files under data/ match the published tree (git blob hashes)` +
      (source.expect === null
        ? ""
        : `; ${source.expect.records.toLocaleString("en-US")} records / ${source.expect.runnable.toLocaleString("en-US")} runnable pairs as expected`),
    `archive sha256 ${result.archiveSha256} (${size})${result.verifiedBy === "tree+sha256" ? ": matches the expected checksum" : ", recorded in source.json"}`,
    `dataset checksum ${dataset.checksum.slice(0, 12)}… (prompt.txt and the runnable images: identifies what a run evaluates)`,
  );
  return lines;
}

/** The source's published tree listing; a broken listing is a fetch error naming the file. */
async function readTreeListing(source: DatasetSource): Promise<PublishedTree> {
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
  record: SourceRecord,
  tree: PublishedTree,
): Promise<OfficialDataset | undefined> {
  try {
    if (!treeMatches(await compareWithPublishedTree(dest, tree))) return undefined;
    const dataset = await readOfficialDataset(dest);
    return dataset.checksum === record.datasetChecksum ? dataset : undefined;
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
function offlineHint(source: DatasetSource): string {
  return `Download the archive elsewhere and run \`mmsafe dataset fetch ${source.name} --archive FILE\``;
}

/** Streams the archive to `file` while hashing it; the archive is never held in memory. */
async function download(
  source: DatasetSource,
  file: string,
  options: Pick<FetchDatasetOptions, "fetchImpl" | "onProgress">,
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
  source: DatasetSource,
  archiveFile: string,
  onProgress: FetchDatasetOptions["onProgress"],
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
  onProgress: FetchDatasetOptions["onProgress"],
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
function describeNetworkFailure(url: string, error: unknown, source: DatasetSource): string {
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

/** The kept part of an archive, relative to its top-level folder: everything under `data/`. */
const KEPT_FILE = /^data\/[^/].*[^/]$/;
const KEPT_DIRECTORY = /^data(?:\/.*)?$/;
const FULL_SHA = /^[0-9a-f]{40}$/;

/** The commit an archive says it is of, and where it says so. */
interface ArchiveIdentity {
  commit: string | null;
  from: "pax header" | "folder name" | null;
}

/**
 * The top-level folder of an entry that belongs to `data/`, or undefined for anything else: other files
 * (paper, README), links, devices and paths with `..` or an absolute root.
 */
function keptTopLevel(entryPath: string, entry: ReadEntry): string | undefined {
  const parts = entryPath.replaceAll("\\", "/").split("/");
  const top = parts[0];
  if (top === undefined || top === "" || parts.some((p) => p === ".." || p === ".")) return undefined;
  const relative = parts.slice(1).join("/");
  const wanted =
    entry.type === "File" || entry.type === "OldFile" || entry.type === "ContiguousFile"
      ? KEPT_FILE.test(relative)
      : entry.type === "Directory" && KEPT_DIRECTORY.test(relative);
  return wanted ? top : undefined;
}

/**
 * Unpacks every regular file under `data/` from the archive's single top-level folder into `content`; only
 * regular files are ever written, and only inside `content`. Returns the commit the archive names: git
 * writes it into a pax global header, and GitHub names the top-level folder `<repo>-<full sha>`.
 *
 * The archive is read twice: first without writing anything, so a damaged archive is refused before
 * extraction starts (tar may still be writing when an extraction fails).
 */
async function unpackDataFolder(
  archiveFile: string,
  content: string,
  label: string,
  source: DatasetSource,
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
        const top = keptTopLevel(entryPath, entry);
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
        entry instanceof ReadEntry && keptTopLevel(entryPath, entry) !== undefined,
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
  source: DatasetSource,
  identity: ArchiveIdentity,
): Promise<number> {
  const comparison = await compareWithPublishedTree(content, tree);
  if (treeMatches(comparison)) return comparison.matching;
  const n = differingFiles(comparison);
  const commitHint =
    identity.commit !== null && !source.acceptedCommits.includes(identity.commit)
      ? ` It is an archive of commit ${identity.commit}, not of a commit the data is pinned to ` +
        `(${source.acceptedCommits.map((c) => c.slice(0, 8)).join(", ")}): download ${source.url}`
      : "";
  throw new DatasetFetchError(
    `${label} is not the published data: ${n} ${n === 1 ? "file" : "files"} under data/ ` +
      `${n === 1 ? "differs" : "differ"} from the published tree (${path.basename(tree.source)}, ` +
      `${tree.files.size} files), so nothing was moved into place.${commitHint}\n` +
      describeDifferences(comparison)
        .map((line) => `  ${line}`)
        .join("\n"),
  );
}

/** Reads the staged data with the runner's importer and checks it against the catalogue's expectations. */
async function verifyContent(
  content: string,
  label: string,
  source: DatasetSource,
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
