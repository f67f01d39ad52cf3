/**
 * Verification of a dataset folder against the git tree its publishers committed: every file under `data/`
 * is hashed as git hashes a blob and compared with the published list (`git ls-tree -r` of `data/`), so a
 * missing, extra or changed file is named, whatever its role in the layout.
 */
import { createHash } from "node:crypto";
import type { Dirent } from "node:fs";
import { lstat, readdir, readFile } from "node:fs/promises";
import path from "node:path";
import type { FileHashCache } from "../benchmarks/mmsafeaware/layout.ts";

/** One file of a published tree: its git blob sha1 and size (null where the list does not give it). */
export interface PublishedFile {
  path: string;
  blob: string;
  size: number | null;
}

/** A published `data/` tree, as read from a shipped `git ls-tree -r` listing. */
export interface PublishedTree {
  /** Where the listing was read from (named in errors). */
  source: string;
  /** The git tree id of `data/` when the listing's header gives it (e.g. `472df95…`). */
  treeId: string | null;
  /** Files by path relative to the dataset root (`data/images/1.jpeg`). */
  files: ReadonlyMap<string, PublishedFile>;
}

/** A listing cannot be read; the message names the file and line. */
export class PublishedTreeError extends Error {
  override readonly name = "PublishedTreeError";
}

/** The git blob sha1 of some bytes: sha1 over `"blob <size>\0"` followed by the bytes, as `git hash-object`. */
export function gitBlobSha1(bytes: Uint8Array): string {
  return createHash("sha1").update(`blob ${bytes.byteLength}\0`).update(bytes).digest("hex");
}

const BLOB_LINE = /^(\d{6})\tblob\t([0-9a-f]{40})\t(\d+|-)\t(data\/.+)$/;

/**
 * Parses a `git ls-tree -r` listing with sizes: `mode \t blob \t sha1 \t size \t path` per line, `#` lines as
 * comments (the header may name the `data/` tree as `data/ tree <sha1>`); a size of `-` means unknown.
 *
 * @throws PublishedTreeError naming the line that does not fit, or a path listed twice.
 */
export function parsePublishedTree(text: string, source: string): PublishedTree {
  const files = new Map<string, PublishedFile>();
  let treeId: string | null = null;
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "") continue;
    if (line.startsWith("#")) {
      treeId ??= /data\/ tree ([0-9a-f]{40})/.exec(line)?.[1] ?? null;
      continue;
    }
    const match = BLOB_LINE.exec(line);
    if (!match) {
      throw new PublishedTreeError(
        `${source} line ${index + 1}: expected "<mode>\\tblob\\t<sha1>\\t<size or ->\\tdata/<path>", got ${JSON.stringify(line.slice(0, 120))}`,
      );
    }
    const [, , blob, size, filePath] = match as unknown as [string, string, string, string, string];
    if (files.has(filePath))
      throw new PublishedTreeError(`${source} line ${index + 1}: ${filePath} is listed twice`);
    files.set(filePath, { path: filePath, blob, size: size === "-" ? null : Number(size) });
  }
  if (files.size === 0) throw new PublishedTreeError(`${source} lists no files`);
  return { source, treeId, files };
}

/** Reads and parses a listing file (see {@link parsePublishedTree}). */
export async function readPublishedTree(file: string | URL): Promise<PublishedTree> {
  const label = file instanceof URL ? file.pathname : file;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error: unknown) {
    throw new PublishedTreeError(`cannot read the published tree listing ${label}`, { cause: error });
  }
  return parsePublishedTree(text, label);
}

/** A file as found in the folder: its path relative to the dataset root, blob sha1 and size. */
export interface FoundFile {
  path: string;
  blob: string;
  size: number;
}

/** How a folder's `data/` compares with a published tree. */
export interface TreeComparison {
  /** Files the published tree lists. */
  expected: number;
  /** Files found under `data/`. */
  found: number;
  /** Listed files that are identical (same blob). */
  matching: number;
  missing: PublishedFile[];
  extra: FoundFile[];
  changed: { path: string; expected: PublishedFile; actual: FoundFile }[];
  /** Entries under `data/` that are neither files nor folders (links, sockets…): never identical to a blob. */
  notFiles: string[];
}

/** True when the folder's `data/` is exactly the published tree. */
export const treeMatches = (c: TreeComparison): boolean =>
  c.missing.length === 0 && c.extra.length === 0 && c.changed.length === 0 && c.notFiles.length === 0;

/** Files that differ from the published tree, of every kind. */
export const differingFiles = (c: TreeComparison): number =>
  c.missing.length + c.extra.length + c.changed.length + c.notFiles.length;

/** Files hashed at once. */
const HASH_CONCURRENCY = 8;

/**
 * Hashes every file under `<dir>/data` (git blob sha1) and compares the set with `tree`. With `cache`, a
 * file whose size and mtime are unchanged is not read again (its `gitBlob` is kept in the entry).
 */
export async function compareWithPublishedTree(
  dir: string,
  tree: PublishedTree,
  options: { cache?: FileHashCache } = {},
): Promise<TreeComparison> {
  const root = path.resolve(dir);
  const notFiles: string[] = [];
  const filePaths: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(path.join(root, relative), { withFileTypes: true });
    } catch (error: unknown) {
      if (relative === "data" && (error as NodeJS.ErrnoException).code === "ENOENT") return;
      throw error;
    }
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const child = `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(child);
      else if (entry.isFile()) filePaths.push(child);
      else notFiles.push(child);
    }
  };
  await walk("data");

  const found = new Map<string, FoundFile>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < filePaths.length) {
      const relative = filePaths[next++] as string;
      found.set(relative, await hashFile(root, relative, options.cache));
    }
  };
  await Promise.all(Array.from({ length: Math.min(HASH_CONCURRENCY, filePaths.length) }, worker));

  const comparison: TreeComparison = {
    expected: tree.files.size,
    found: found.size,
    matching: 0,
    missing: [],
    extra: [],
    changed: [],
    notFiles,
  };
  for (const [filePath, expected] of tree.files) {
    const actual = found.get(filePath);
    if (actual === undefined) {
      if (!notFiles.includes(filePath)) comparison.missing.push(expected);
    } else if (actual.blob === expected.blob) comparison.matching++;
    else comparison.changed.push({ path: filePath, expected, actual });
  }
  for (const [filePath, actual] of found) if (!tree.files.has(filePath)) comparison.extra.push(actual);
  return comparison;
}

async function hashFile(
  root: string,
  relative: string,
  cache: FileHashCache | undefined,
): Promise<FoundFile> {
  const full = path.join(root, ...relative.split("/"));
  const { size, mtimeMs } = await lstat(full);
  const entry = cache?.get(full);
  if (entry && entry.size === size && entry.mtimeMs === mtimeMs && typeof entry.gitBlob === "string") {
    return { path: relative, blob: entry.gitBlob, size };
  }
  const bytes = await readFile(full);
  const blob = gitBlobSha1(bytes);
  const unchanged = entry && entry.size === size && entry.mtimeMs === mtimeMs;
  cache?.set(full, unchanged ? { ...entry, gitBlob: blob } : { size, mtimeMs, gitBlob: blob });
  return { path: relative, blob, size: bytes.byteLength };
}

const sizeText = (size: number | null): string => (size === null ? "size not listed" : `${size} bytes`);
const short = (blob: string): string => blob.slice(0, 12);

/**
 * One line per differing file (at most `max`, then how many more): path, what was expected and what was
 * found, with blob hashes and sizes.
 */
export function describeDifferences(c: TreeComparison, max = 10): string[] {
  const lines = [
    ...c.changed.map(
      (d) =>
        `${d.path}: differs (expected blob ${short(d.expected.blob)}, ${sizeText(d.expected.size)}; found blob ${short(d.actual.blob)}, ${d.actual.size} bytes)`,
    ),
    ...c.missing.map((m) => `${m.path}: missing (expected blob ${short(m.blob)}, ${sizeText(m.size)})`),
    ...c.extra.map((x) => `${x.path}: not in the published tree (blob ${short(x.blob)}, ${x.size} bytes)`),
    ...c.notFiles.map((p) => `${p}: not a regular file (a link or special file)`),
  ];
  return lines.length > max ? [...lines.slice(0, max), `… and ${lines.length - max} more`] : lines;
}

/** A short phrase per differing file, for labels: `data/images/12.jpeg changed`. */
export function differenceExamples(c: TreeComparison, max: number): string[] {
  return [
    ...c.changed.map((d) => `${d.path} changed`),
    ...c.missing.map((m) => `${m.path} missing`),
    ...c.extra.map((x) => `${x.path} added`),
    ...c.notFiles.map((p) => `${p} not a regular file`),
  ].slice(0, max);
}
