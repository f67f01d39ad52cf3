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
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { extract, list, ReadEntry } from "tar";
import { z } from "zod";
import { MMSAFEAWARE_LAYOUT, MMSAFEAWARE_SOURCE } from "../benchmarks/mmsafeaware/fetch.ts";
import type { OfficialDataset } from "../benchmarks/mmsafeaware/layout.ts";
import { type FetchedMossbench, MOSSBENCH_SOURCE } from "../benchmarks/mossbench/fetch.ts";
import { type FetchedVlguard, VLGUARD_SOURCE } from "../benchmarks/vlguard/fetch.ts";
import {
  type ArchiveIdentity,
  DatasetFetchError,
  type DatasetLayout,
  type DatasetSource,
  describeCause,
  errorCode,
  type FetchDatasetResult,
  findErrorCode,
  findFirstEntry,
  type SuppliedPart,
} from "./fetch-layout.ts";

export type {
  ArchiveIdentity,
  DatasetChecks,
  DatasetLayout,
  DatasetSource,
  FetchDatasetResult,
  SuppliedPart,
  VerifiedData,
} from "./fetch-layout.ts";
export { DatasetFetchError } from "./fetch-layout.ts";
export type { FetchedMossbench, FetchedVlguard };

/** Datasets that `mmsafe dataset fetch <name>` knows. */
export const DATASET_SOURCES: Readonly<{
  mmsafeaware: DatasetSource<OfficialDataset>;
  mossbench: DatasetSource<FetchedMossbench>;
  vlguard: DatasetSource<FetchedVlguard>;
}> = {
  mmsafeaware: MMSAFEAWARE_SOURCE,
  mossbench: MOSSBENCH_SOURCE,
  vlguard: VLGUARD_SOURCE,
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
  /**
   * The part the repository does not hold, downloaded by the user (VLGuard: `test.zip` or its `test/`
   * folder): verified against the fetched files, then copied in. Only for a layout with a {@link SuppliedPart}.
   */
  supplied?: string;
}

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
  const supplied = await checkSupplied(source, layout.supplied, options.supplied);
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
    let present = await checks.readIfIntact(dest, existing.datasetChecksum);
    if (present && supplied) {
      // The fetched files are there: only the supplied part is verified against them and copied in.
      const identity = { commit: existing.commit, from: existing.commitFrom };
      await checks.verify(dest, dest, identity, supplied.path);
      present = await placeSupplied(dest, supplied, () =>
        checks.readIfIntact(dest, existing.datasetChecksum),
      );
    }
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
        ...(supplied ? { suppliedFrom: supplied.path } : {}),
      };
    }
    // A fetched copy that no longer matches the published tree was damaged: fetch it again.
  }
  // A supplied part the present copy holds is verified against the new files and kept, unless replaced.
  const kept =
    supplied === undefined && layout.supplied ? await findFirstEntry(dest, layout.supplied.names) : undefined;

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
    const staged = await checks.verify(content, label, identity, supplied?.path ?? kept);

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
    const carried = kept === undefined ? [] : [path.basename(kept)];
    await moveIntoPlace(content, dest, path.join(staging, "previous"), carried);
    let dataset = checks.relocate(staged.dataset, content, dest);
    if (layout.supplied) {
      // The supplied part is found in the destination again, where the runner reads it.
      const reread = () => checks.readIfIntact(dest, staged.checksum);
      const placed = supplied ? await placeSupplied(dest, supplied, reread) : await reread();
      if (placed === undefined) throw new DatasetFetchError(`${dest} did not verify once in place`);
      dataset = placed;
    }

    return {
      dir: dest,
      source,
      archiveSha256: record.archiveSha256,
      archiveBytes: record.archiveBytes,
      commit: record.commit,
      verifiedBy: record.verifiedBy,
      files: staged.files,
      alreadyPresent: false,
      dataset,
      ...(supplied ? { suppliedFrom: supplied.path } : {}),
    };
  } finally {
    // Holds the downloaded archive and, after a replacement, the previous copy; never useful afterwards.
    // A failed cleanup must not hide the fetch's own outcome; the next fetch removes what is left.
    await rm(staging, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
    activeStaging.delete(staging);
  }
}

/** A supplied part as given: its absolute path, whether it is a folder, and the layout's part. */
interface Supplied {
  path: string;
  isDirectory: boolean;
  part: SuppliedPart;
}

/** The supplied path, checked to exist and to be something the source takes. */
async function checkSupplied(
  source: DatasetSource<unknown>,
  part: SuppliedPart | undefined,
  given: string | undefined,
): Promise<Supplied | undefined> {
  if (given === undefined) return undefined;
  if (part === undefined)
    throw new DatasetFetchError(
      `${source.name} takes nothing from --images: everything it needs is in ${source.repository}'s archive`,
    );
  const resolved = path.resolve(given);
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(resolved)).isDirectory();
  } catch (error: unknown) {
    throw new DatasetFetchError(`${part.option} ${resolved} not found (${describeCause(error)})`, {
      cause: error,
    });
  }
  return { path: resolved, isDirectory, part };
}

/**
 * Copies a verified supplied part into `dest` under its name (through a temporary name, so a broken copy
 * is never read), replacing whatever part was there, then reads the copy again with `reread`.
 */
async function placeSupplied<D>(
  dest: string,
  supplied: Supplied,
  reread: () => Promise<D | undefined>,
): Promise<D | undefined> {
  const name = supplied.part.nameFor(supplied.isDirectory);
  const partial = path.join(dest, `.${name}${STAGING_INFIX}${process.pid}`);
  await rm(partial, { recursive: true, force: true });
  try {
    await cp(supplied.path, partial, { recursive: true, errorOnExist: true });
    for (const other of supplied.part.names)
      await rm(path.join(dest, other), { recursive: true, force: true });
    await rename(partial, path.join(dest, name));
  } catch (error: unknown) {
    await rm(partial, { recursive: true, force: true }).catch(() => undefined);
    throw new DatasetFetchError(
      `cannot copy ${supplied.path} into ${dest} (${describeCause(error)}); the fetched files are in place, run the command again`,
      { cause: error },
    );
  }
  return reread();
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
      ? `${result.dir} already holds verified ${source.repository} data (${commit}); nothing downloaded${result.suppliedFrom === undefined ? " (--force fetches again)" : ""}`
      : `fetched ${source.repository} at ${commit} into ${result.dir}`,
  ];
  if (result.commit !== null && !source.acceptedCommits.includes(result.commit)) {
    lines.push(
      `note: commit ${result.commit} is not one of the pinned commits (${source.acceptedCommits.map((c) => c.slice(0, 8)).join(", ")}), but ${layout.sameData}`,
    );
  }
  if (result.suppliedFrom !== undefined && layout.supplied)
    lines.push(`copied ${layout.supplied.option} ${result.suppliedFrom} into ${result.dir}`);
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

const lowerFirst = (text: string): string => text.charAt(0).toLowerCase() + text.slice(1);

const FULL_SHA = /^[0-9a-f]{40}$/;

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
 * Renames the verified copy into place. An existing destination is first moved aside (into the staging
 * directory, which is deleted afterwards) and moved back if the second rename fails. Entries named in
 * `carried` (a supplied part the copy held) move from the old destination into the new one.
 */
async function moveIntoPlace(
  content: string,
  dest: string,
  aside: string,
  carried: readonly string[] = [],
): Promise<void> {
  let movedAside = false;
  try {
    await rename(dest, aside);
    movedAside = true;
  } catch (error: unknown) {
    if (errorCode(error) !== "ENOENT") throw error;
  }
  const moved: string[] = [];
  try {
    if (movedAside)
      for (const name of carried) {
        await rename(path.join(aside, name), path.join(content, name));
        moved.push(name);
      }
    await rename(content, dest);
  } catch (error: unknown) {
    for (const name of moved) await rename(path.join(content, name), path.join(aside, name));
    if (movedAside) await rename(aside, dest);
    throw error;
  }
}
