/**
 * What every dataset source shares in a fetch: the catalogue entry ({@link DatasetSource}), the per-benchmark
 * part ({@link DatasetLayout}: folders to unpack, how the copy is verified and described), the result, and
 * the error every failure becomes. Each benchmark's layout lives in its own folder
 * (`src/benchmarks/<name>/fetch.ts`); `fetch.ts` downloads, unpacks, stages and moves into place for all.
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import type { OfficialDataset } from "../benchmarks/mmsafeaware/layout.ts";
import {
  compareWithPublishedTree,
  describeDifferences,
  differingFiles,
  type PublishedTree,
  readPublishedTree,
  treeMatches,
} from "./published-tree.ts";

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
  /** A part the repository does not hold and the user downloads (VLGuard's gated images), if any. */
  readonly supplied?: SuppliedPart;
}

/**
 * A part of a dataset its publishers keep out of the repository (VLGuard's images are in a gated archive):
 * the user downloads it and gives it to the fetch, which verifies it against the fetched files and copies
 * it into the destination. A copy fetched again keeps the part it already holds.
 */
export interface SuppliedPart {
  /** The option that gives it, as the help and the messages name it (`--images`). */
  readonly option: string;
  /** Entry names it may have in the destination (`test`, `test.zip`), in the order the importer prefers. */
  readonly names: readonly string[];
  /** The entry name a supplied path gets in the destination (a folder → `test`, a `.zip` → `test.zip`). */
  nameFor(isDirectory: boolean): string;
}

/** A layout's checks, bound to the listing they verify against. */
export interface DatasetChecks<D> {
  /**
   * Verifies the unpacked copy in `content` file by file and reads it with the runner's importer.
   *
   * `supplied` is where the layout's {@link SuppliedPart} is read from, when there is one (given by the
   * user, or kept from the present copy); it is verified against the unpacked files.
   *
   * @throws DatasetFetchError naming every file that differs (path, expected and actual hash), or the
   *   counts that differ from `source.expect`; nothing is then moved into place.
   */
  verify(
    content: string,
    label: string,
    identity: ArchiveIdentity,
    supplied?: string,
  ): Promise<VerifiedData<D>>;
  /**
   * The present copy in `dest` when it still verifies and its checksum is `checksum`, else undefined. A
   * supplied part it holds is verified too.
   */
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
/** A dataset could not be fetched or did not verify; the message says what happened and what to do. */
export class DatasetFetchError extends Error {
  override readonly name = "DatasetFetchError";
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
  /** Where a supplied part was copied in from ({@link SuppliedPart}), when one was given. */
  suppliedFrom?: string;
}

export type VerifiedBy = "tree" | "tree+sha256";

/** The commit an archive says it is of, and where it says so. */
export interface ArchiveIdentity {
  commit: string | null;
  from: "pax header" | "folder name" | null;
}

/** The source's published tree listing; a broken listing is a fetch error naming the file. */
export async function readTreeListing(source: DatasetSource<unknown>): Promise<PublishedTree> {
  try {
    return await readPublishedTree(source.tree);
  } catch (error: unknown) {
    throw new DatasetFetchError(describeCause(error), { cause: error });
  }
}

/**
 * Compares every unpacked file with the published tree; any missing, extra or changed file is an error that
 * names it (path, expected and actual blob hash and size). Returns the number of files verified.
 */
export async function verifyTree(
  content: string,
  tree: PublishedTree,
  label: string,
  source: DatasetSource<unknown>,
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
export function unpinnedCommitHint(source: DatasetSource<unknown>, identity: ArchiveIdentity): string {
  return identity.commit !== null && !source.acceptedCommits.includes(identity.commit)
    ? ` It is an archive of commit ${identity.commit}, not of a commit the data is pinned to ` +
        `(${source.acceptedCommits.map((c) => c.slice(0, 8)).join(", ")}): download ${source.url}`
    : "";
}

/** The first errno-style code in an error's cause chain (undici wraps it as `TypeError: fetch failed`). */
export function findErrorCode(error: unknown, depth = 0): string | undefined {
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
export function describeCause(error: unknown): string {
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

export function errorCode(error: unknown): string | undefined {
  if (error instanceof Error && "code" in error && typeof error.code === "string") return error.code;
  return undefined;
}

/** Differing files named in one error; the count says how many there are in all. */
export const MAX_LISTED_DIFFERENCES = 10;

/** The first of `names` that exists in `dir`, as an absolute path (where a supplied part is). */
export async function findFirstEntry(dir: string, names: readonly string[]): Promise<string | undefined> {
  for (const name of names) {
    const entry = path.join(dir, name);
    if (
      await stat(entry).then(
        () => true,
        () => false,
      )
    )
      return entry;
  }
  return undefined;
}
