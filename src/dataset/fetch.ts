/**
 * Fetches a benchmark dataset from its official repository at a pinned commit (GitHub's public archive),
 * verifies it and unpacks the official layout (`data/prompt.txt`, `data/images/`, `data/images2/`) into
 * `<home>/datasets/<name>/`, where the local runner looks for the real data.
 *
 * Nothing half-written is ever visible there: the archive is downloaded and unpacked into a staging
 * directory next to the destination, checked with the same importer the runner uses, and only then renamed
 * into place.
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

/** Where a dataset comes from and what a correct copy of it contains. */
export interface DatasetSource {
  /** Folder name under `<home>/datasets/` and the name on the command line. */
  name: string;
  /** GitHub `owner/name` of the official repository. */
  repository: string;
  /** The pinned commit: the benchmark always evaluates exactly this data. */
  commit: string;
  /** A `.tar.gz` of the repository at {@link DatasetSource.commit}. */
  url: string;
  /**
   * sha256 of the archive at {@link DatasetSource.url}, or null when it is not known. When null, the fetch
   * verifies the unpacked content against {@link DatasetSource.expect} instead and records the archive's
   * sha256 in `source.json`.
   */
  archiveSha256: string | null;
  /** Record and runnable-pair counts the importer must find in the unpacked data, or null to not check. */
  expect: { records: number; runnable: number } | null;
}

const MMSAFEAWARE_COMMIT = "610005099ffb37082eca1fb781f1ea1624752fd4";

/** Datasets that `mmsafe dataset fetch <name>` knows. */
export const DATASET_SOURCES: Readonly<Record<"mmsafeaware", DatasetSource>> = {
  /**
   * The official MMSafeAware repository. `archiveSha256` is null because it could not be computed on the
   * offline machine this entry was written on (and GitHub does not promise byte-stable archives); the fetch
   * therefore verifies the unpacked content against `expect` (1,523 records, 1,453 runnable pairs) and
   * records the archive's sha256 it saw in `source.json`, so later fetches can be compared.
   */
  mmsafeaware: {
    name: "mmsafeaware",
    repository: "Jarviswang94/MMSafetyAwareness",
    commit: MMSAFEAWARE_COMMIT,
    url: `https://github.com/Jarviswang94/MMSafetyAwareness/archive/${MMSAFEAWARE_COMMIT}.tar.gz`,
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
  commit: string;
  /** `sha256`: the archive matched a known checksum; `content`: the unpacked data matched `source.expect`. */
  verifiedBy: "sha256" | "content";
  /** True when the destination already held this commit, so nothing was downloaded. */
  alreadyPresent: boolean;
  /** The data as the importer reads it from {@link FetchDatasetResult.dir}. */
  dataset: OfficialDataset;
}

/** `source.json`, written into the destination: where the data came from and how it was verified. */
const sourceRecordSchema = z.object({
  name: z.string(),
  repository: z.string(),
  commit: z.string(),
  url: z.string(),
  archiveSha256: z.string(),
  archiveBytes: z.number(),
  verifiedBy: z.enum(["sha256", "content"]),
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
  if (typeof existing === "object" && existing.commit === source.commit && !options.force) {
    const present = await readIfIntact(dest, existing);
    if (present) {
      return {
        dir: dest,
        source,
        archiveSha256: existing.archiveSha256,
        archiveBytes: existing.archiveBytes,
        commit: existing.commit,
        verifiedBy: existing.verifiedBy,
        alreadyPresent: true,
        dataset: present,
      };
    }
    // A fetched copy that no longer matches its own record was damaged: fetch it again.
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
    await unpackOfficialLayout(archive.file, content, label, source);
    const staged = await verifyContent(content, label, source);

    const record: SourceRecord = {
      name: source.name,
      repository: source.repository,
      commit: source.commit,
      url: source.url,
      archiveSha256: archive.sha256,
      archiveBytes: archive.bytes,
      verifiedBy: expectedSha256 === null ? "content" : "sha256",
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
  const verified =
    result.verifiedBy === "sha256"
      ? "matches the expected checksum"
      : source.expect === null
        ? "no published checksum; recorded in source.json"
        : `no published checksum, so the content was verified instead: ${source.expect.records} records / ` +
          `${source.expect.runnable} runnable pairs as expected; recorded in source.json`;
  return [
    result.alreadyPresent
      ? `${result.dir} already holds ${source.repository} at commit ${result.commit}; nothing downloaded (--force fetches again)`
      : `fetched ${source.repository} at commit ${result.commit} into ${result.dir}`,
    `archive sha256 ${result.archiveSha256} (${size}): ${verified}`,
    `${dataset.records} records, ${dataset.items.length} runnable pairs, ${dataset.skipped.length} skipped (dataset checksum ${dataset.checksum.slice(0, 12)}…)`,
  ];
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

/** The present copy, read by the importer, when it still matches what its fetch recorded. */
async function readIfIntact(dest: string, record: SourceRecord): Promise<OfficialDataset | undefined> {
  try {
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

/** The kept part of an archive, relative to its top-level folder. */
const KEPT_FILE = /^data\/(?:prompt\.txt|images\/[^/]+|images2\/[^/]+)$/;
const KEPT_DIRECTORY = /^data(?:\/images2?)?\/?$/;

/**
 * The top-level folder of an entry that belongs to the official layout, or undefined for anything else:
 * other files (paper, annotations, code), links, devices and paths with `..` or an absolute root.
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
 * Unpacks `data/prompt.txt`, `data/images/*` and `data/images2/*` from under the archive's single top-level
 * folder into `content`; only regular files are ever written, and only inside `content`.
 *
 * The archive is read twice: first without writing anything, so a damaged archive, or one of another
 * commit, is refused before extraction starts (tar may still be writing when an extraction fails).
 */
async function unpackOfficialLayout(
  archiveFile: string,
  content: string,
  label: string,
  source: DatasetSource,
): Promise<void> {
  const topLevels = new Set<string>();
  let archiveCommit: string | undefined;
  let pass: "list" | "extract" = "list";
  try {
    await list({
      file: archiveFile,
      // Any damage (bad header checksum, truncation, bad gzip) is an error rather than a warning.
      strict: true,
      filter: (entryPath, entry) => {
        if (!(entry instanceof ReadEntry)) return false;
        // git archive writes the commit into a pax global header; it identifies a local archive's commit.
        const comment = entry.globalExtended?.comment?.trim();
        if (comment !== undefined && /^[0-9a-f]{40}$/.test(comment)) archiveCommit ??= comment;
        const top = keptTopLevel(entryPath, entry);
        if (top !== undefined) topLevels.add(top);
        return false;
      },
    });
    if (archiveCommit !== undefined && archiveCommit !== source.commit) {
      throw new DatasetFetchError(
        `${label} is an archive of commit ${archiveCommit}, but ${source.name} is pinned to commit ${source.commit}`,
      );
    }
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
      `the archive at commit ${source.commit} (${label}) has ${dataset.records} records / ${dataset.items.length} ` +
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
