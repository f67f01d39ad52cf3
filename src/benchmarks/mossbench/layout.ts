/**
 * Reads a MOSSBench folder in the official layout (a checkout of turningpoint-ai/MOSSBench, or a sample
 * written by `sample.ts`) into {@link BenchmarkRecord}s, and verifies every file it uses against the
 * shipped manifest (git blob sha1 per image, and the two annotation files).
 *
 * - `data/images_information/information.json`: the 300 benign queries, an object keyed by pid; images
 *   under `data/` (`"image": "images/1.png"` → `data/images/1.png`).
 * - `data_contrast/images_information/information.json`: the 244 harmful contrast queries, images under
 *   `data_contrast/`.
 * Images not referenced by a record (`data/images/317.png` …) and the repository's root `images/` folder (a
 * byte-identical duplicate of `data/images/`) are reported as ignored.
 */
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import pLimit from "p-limit";
import { z } from "zod";
import { detectImageType, IMAGE_TYPES, type ImageType } from "../../core/image-type.ts";
import { type DatasetProvenance, MAX_PROVENANCE_EXAMPLES } from "../../core/provenance.ts";
import { readSampleMarker } from "../../dataset/provenance.ts";
import { gitBlobSha1 } from "../../dataset/published-tree.ts";
import type { BenchmarkRecord, SkippedBenchmarkRecord } from "../definition.ts";
import { MOSSBENCH_COMMIT, MOSSBENCH_CONTRAST_COLUMN, MOSSBENCH_TYPES } from "./definition.ts";

/** The shipped manifest: every image of the pinned commit with its git blob sha1 and size. */
export const MOSSBENCH_MANIFEST = new URL("../../../datasets/mossbench/images.tsv", import.meta.url);

/** The benign annotations, relative to the dataset root. */
export const MOSSBENCH_BENIGN_FILE = "data/images_information/information.json";
/** The contrast annotations, relative to the dataset root. */
export const MOSSBENCH_CONTRAST_FILE = "data_contrast/images_information/information.json";

/**
 * The two annotation files at the pinned commit (the image manifest does not list them). A manifest given
 * in `options.manifest` may list them itself; its rows then take precedence.
 */
export const MOSSBENCH_ANNOTATION_FILES: Readonly<Record<string, { blob: string; sha256: string }>> = {
  [MOSSBENCH_BENIGN_FILE]: {
    blob: "ee527ddf62ac8bf041e2fa178eaa683228d2a58f",
    sha256: "a5f7701c0a068391a3ba10714dd95f3357d664c84faf47b747e425ff9806a352",
  },
  [MOSSBENCH_CONTRAST_FILE]: {
    blob: "ae4ccb83cb16c47cb3db1333b6328f8b568d64cc",
    sha256: "ec00786d6be370284bb398dd61978c279e372f0fd9114e8ca39032e20ea14f1e",
  },
};

/**
 * Names of the `metadata.harm` values. Inferred, not stated by the authors: no text file names them; the
 * percentages of the paper's harm-type pie chart match the counts of each value one to one, and the order
 * is HarmBench's semantic categories. 0 is allowed by the README ("0-7") but never used.
 */
export const MOSSBENCH_HARM_NAMES: Readonly<Record<number, string>> = {
  1: "Cybercrime",
  2: "Chemical & Biological Weapon",
  3: "Copyright Violation",
  4: "Misinformation",
  5: "Harassment",
  6: "Illegal act",
  7: "General Harm",
};

/** Files read and hashed at once: bounds memory on the ≈1 GB of official images. */
const READ_CONCURRENCY = 8;

/** The folder cannot be read as MOSSBench; the message names the file and what to do. */
export class MossbenchLayoutError extends Error {
  override readonly name = "MossbenchLayoutError";
}

/** One manifest row: a file's path relative to the dataset root, git blob sha1, size (null if unknown). */
export interface ManifestEntry {
  path: string;
  blob: string;
  size: number | null;
}

const MANIFEST_LINE = /^([^\t]+)\t([0-9a-f]{40})\t(\d+|>=4MiB)$/;

/**
 * Parses a manifest: `path \t git-blob-sha1 \t bytes` per line (`>=4MiB` where the size is not known),
 * `#` lines as comments.
 *
 * @throws MossbenchLayoutError naming the line that does not fit, or a path listed twice.
 */
export function parseMossbenchManifest(text: string, source: string): Map<string, ManifestEntry> {
  const entries = new Map<string, ManifestEntry>();
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.replace(/\r$/, "");
    if (line.trim() === "" || line.startsWith("#")) continue;
    const match = MANIFEST_LINE.exec(line);
    const [, filePath, blob, size] = match ?? [];
    if (filePath === undefined || blob === undefined || size === undefined)
      throw new MossbenchLayoutError(
        `${source} line ${index + 1}: expected "<path>\\t<git blob sha1>\\t<bytes or >=4MiB>", got ${JSON.stringify(line.slice(0, 120))}`,
      );
    if (entries.has(filePath))
      throw new MossbenchLayoutError(`${source} line ${index + 1}: ${filePath} is listed twice`);
    entries.set(filePath, { path: filePath, blob, size: size === ">=4MiB" ? null : Number(size) });
  }
  if (entries.size === 0) throw new MossbenchLayoutError(`${source} lists no files`);
  return entries;
}

/** A referenced file that is not as the manifest lists it. */
export interface MossbenchFileDifference {
  path: string;
  /** `changed`: another blob; `missing`: not there (or unreadable); `unlisted`: the manifest has no row. */
  kind: "changed" | "missing" | "unlisted";
  /** The manifest's git blob sha1 (null when unlisted). */
  expected: string | null;
  /** The file's git blob sha1 (null when missing). */
  actual: string | null;
}

/** What {@link readMossbenchDataset} read. */
export interface MossbenchDataset {
  /** Benign records by pid (1…300), then contrast records by pid. */
  records: BenchmarkRecord[];
  skipped: SkippedBenchmarkRecord[];
  provenance: DatasetProvenance;
  ignored: {
    /** Images under `data/images/` and `data_contrast/images/` that no record references. */
    orphanImages: string[];
    /** The root `images/` folder (a duplicate of `data/images/` in the repository) is present. */
    duplicateFolder: boolean;
  };
  /** Referenced images whose bytes are another format than their extension says (`data/images/131.png`). */
  mismatchedExtensions: string[];
  /** Every referenced file that differs from the manifest (empty for official data and for a sample). */
  differences: MossbenchFileDifference[];
}

// ---- annotation schemas ------------------------------------------------------------------------------

/** A relative path that stays inside its folder (`images/1.png`). */
const relativeImagePath = z
  .string()
  .min(1)
  .max(300)
  .refine(
    (p) => !p.startsWith("/") && !p.includes("\\") && !p.split("/").some((s) => s === ".." || s === ""),
    { message: "must be a relative path inside the data folder, such as images/1.png" },
  );
const flag = z.union([z.literal(0), z.literal(1)]);
const overType = z.enum(["type 1", "type 2", "type 3"]);

const benignRecordSchema = z.object({
  image: relativeImagePath,
  question: z.string().min(1),
  pid: z.string(),
  "short description": z.string().optional(),
  description: z.string().optional(),
  metadata: z.object({
    over: overType,
    human: flag,
    child: flag,
    syn: flag,
    ocr: flag,
    // A one-element list in the official file (`[7]`), although the README calls it an integer.
    harm: z.tuple([z.number().int().min(0).max(7)]),
  }),
});

const contrastRecordSchema = z.object({
  image: relativeImagePath,
  question: z.string().min(1),
  pid: z.string(),
  "short description": z.string().optional(),
  description: z.string().optional(),
  // The contrast set's metadata has only `over`.
  metadata: z.object({ over: overType }),
});

const PID_KEY = /^[1-9][0-9]*$/;

// ---- reading -----------------------------------------------------------------------------------------

/** A record that passed its schema, before its image is looked at. */
interface PendingRecord {
  file: string;
  pid: string;
  record: Omit<BenchmarkRecord, "mediaType" | "imageBytes">;
}

/** What reading one image gave. */
type ImageReading =
  | { ok: true; blob: string; type: ImageType; bytes: number }
  | { ok: false; reason: "missing_image" | "unreadable_image"; detail: string; blob: string | null };

const errorCode = (error: unknown): string | undefined =>
  error instanceof Error && "code" in error && typeof error.code === "string" ? error.code : undefined;

async function readAnnotations(
  root: string,
  file: string,
): Promise<{ bytes: Buffer; entries: [string, unknown][] }> {
  const full = path.join(root, ...file.split("/"));
  let bytes: Buffer;
  try {
    bytes = await readFile(full);
  } catch (error: unknown) {
    const what = errorCode(error) === "ENOENT" ? "is missing" : "cannot be read";
    throw new MossbenchLayoutError(
      `${full} ${what}: point at the root of a MOSSBench checkout (the folder holding data/ and data_contrast/), or write a sample there first`,
      { cause: error },
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch (error: unknown) {
    throw new MossbenchLayoutError(`${full} is not valid JSON: restore it from the official repository`, {
      cause: error,
    });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new MossbenchLayoutError(
      `${full}: expected one JSON object keyed by pid ("1": {...}), found ${Array.isArray(parsed) ? "a list" : typeof parsed}`,
    );
  return { bytes, entries: Object.entries(parsed) };
}

/** Numeric pids in numeric order, then anything else in string order. */
function byPid([a]: [string, unknown], [b]: [string, unknown]): number {
  const na = PID_KEY.test(a) ? Number(a) : Number.POSITIVE_INFINITY;
  const nb = PID_KEY.test(b) ? Number(b) : Number.POSITIVE_INFINITY;
  return na !== nb ? na - nb : a < b ? -1 : a > b ? 1 : 0;
}

const issueField = (issue: z.core.$ZodIssue): string =>
  issue.path.length === 0 ? "(the record itself)" : issue.path.map(String).join(".");

function parseRecords(
  file: string,
  entries: [string, unknown][],
  set: "benign" | "contrast",
  skipped: SkippedBenchmarkRecord[],
): PendingRecord[] {
  const pending: PendingRecord[] = [];
  const dataDir = set === "benign" ? "data" : "data_contrast";
  for (const [key, value] of [...entries].sort(byPid)) {
    const id = set === "benign" ? key : `contrast:${key}`;
    const malformed = (field: string, message: string): void => {
      skipped.push({
        id,
        reason: "malformed_record",
        detail: `${file} pid ${JSON.stringify(key)}: field "${field}" ${message}`,
      });
    };
    if (!PID_KEY.test(key)) {
      malformed("pid", "(the key) must be a positive whole number");
      continue;
    }
    /** The record read with its set's schema, or null (a skipped record, the field named) when it does not fit. */
    const read = <T extends { pid: string }>(schema: z.ZodType<T>): T | null => {
      const parsed = schema.safeParse(value);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        malformed(issue ? issueField(issue) : "?", issue?.message ?? "is invalid");
        return null;
      }
      if (parsed.data.pid !== key) {
        malformed("pid", `is ${JSON.stringify(parsed.data.pid)}, not the key ${JSON.stringify(key)}`);
        return null;
      }
      return parsed.data;
    };
    if (set === "benign") {
      const r = read(benignRecordSchema);
      if (r === null) continue;
      const type = MOSSBENCH_TYPES[r.metadata.over];
      const [harm] = r.metadata.harm;
      pending.push({
        file,
        pid: key,
        record: {
          id,
          column: type.column,
          expected: "comply",
          text: r.question,
          imagePath: `${dataDir}/${r.image}`,
          groups: {
            over: type.label,
            human: r.metadata.human === 1,
            child: r.metadata.child === 1,
            syn: r.metadata.syn === 1,
            ocr: r.metadata.ocr === 1,
            harm,
            harmName: MOSSBENCH_HARM_NAMES[harm] ?? null,
          },
        },
      });
    } else {
      const r = read(contrastRecordSchema);
      if (r === null) continue;
      pending.push({
        file,
        pid: key,
        record: {
          id,
          column: MOSSBENCH_CONTRAST_COLUMN,
          expected: "refuse",
          text: r.question,
          imagePath: `${dataDir}/${r.image}`,
          groups: { over: MOSSBENCH_TYPES[r.metadata.over].label },
        },
      });
    }
  }
  return pending;
}

async function readImage(root: string, relative: string): Promise<ImageReading> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path.join(root, ...relative.split("/")));
  } catch (error: unknown) {
    const code = errorCode(error);
    return code === "ENOENT" || code === "ENOTDIR"
      ? { ok: false, reason: "missing_image", detail: "is missing", blob: null }
      : { ok: false, reason: "unreadable_image", detail: `cannot be read (${code ?? "error"})`, blob: null };
  }
  const blob = gitBlobSha1(bytes);
  const type = detectImageType(bytes.subarray(0, 16));
  if (type === null)
    return {
      ok: false,
      reason: "unreadable_image",
      detail: `is not a JPEG, PNG, WebP or GIF (first bytes ${bytes.subarray(0, 8).toString("hex") || "none"})`,
      blob,
    };
  return { ok: true, blob, type, bytes: bytes.byteLength };
}

async function listFiles(root: string, relative: string): Promise<string[]> {
  try {
    const entries = await readdir(path.join(root, ...relative.split("/")), { withFileTypes: true });
    return entries.filter((e) => e.isFile()).map((e) => `${relative}/${e.name}`);
  } catch {
    return [];
  }
}

async function isDirectory(full: string): Promise<boolean> {
  try {
    return (await stat(full)).isDirectory();
  } catch {
    return false;
  }
}

/** Path order with the numbers in file names compared as numbers (`2.png` before `10.png`). */
const naturalOrder = (a: string, b: string): number => a.localeCompare(b, "en", { numeric: true });

const extensionMatches = (relative: string, type: ImageType): boolean => {
  const extension = path.posix.extname(relative).slice(1).toLowerCase();
  return extension === IMAGE_TYPES[type].extension || (type === "jpeg" && extension === "jpeg");
};

const short = (blob: string | null): string => (blob === null ? "none" : blob.slice(0, 12));

/** One phrase per differing file: its path, what the manifest expects and what was found (blob prefixes). */
export function describeMossbenchDifference(d: MossbenchFileDifference): string {
  switch (d.kind) {
    case "changed":
      return `${d.path} changed (expected blob ${short(d.expected)}, found ${short(d.actual)})`;
    case "missing":
      return `${d.path} missing (expected blob ${short(d.expected)})`;
    case "unlisted":
      return `${d.path} not in the manifest (blob ${short(d.actual)})`;
  }
}

/**
 * Reads a MOSSBench folder in the official layout. Malformed records and records whose image is missing or
 * unreadable are returned in `skipped` with the file, pid and field named; every file a record uses (and
 * both annotation files) is checked against the manifest (default: the shipped one for the pinned commit).
 * A folder carrying the sample marker is labelled `sample` and not verified.
 *
 * @throws MossbenchLayoutError when an annotation file is missing, unreadable or not a JSON object keyed by
 *   pid, or when the manifest cannot be read.
 */
export async function readMossbenchDataset(
  root: string,
  options: { manifest?: string | URL } = {},
): Promise<MossbenchDataset> {
  const dir = path.resolve(root);
  const benign = await readAnnotations(dir, MOSSBENCH_BENIGN_FILE);
  const contrast = await readAnnotations(dir, MOSSBENCH_CONTRAST_FILE);
  const marker = await readSampleMarker(dir);

  const skipped: SkippedBenchmarkRecord[] = [];
  const pending = [
    ...parseRecords(MOSSBENCH_BENIGN_FILE, benign.entries, "benign", skipped),
    ...parseRecords(MOSSBENCH_CONTRAST_FILE, contrast.entries, "contrast", skipped),
  ];

  const imagePaths = [...new Set(pending.map((p) => p.record.imagePath))];
  const readings = new Map<string, ImageReading>();
  const results = await pLimit(READ_CONCURRENCY).map(imagePaths, (p) => readImage(dir, p));
  for (const [index, p] of imagePaths.entries()) readings.set(p, results[index] as ImageReading);

  const records: BenchmarkRecord[] = [];
  const mismatched = new Set<string>();
  for (const { file, pid, record } of pending) {
    const reading = readings.get(record.imagePath);
    if (reading === undefined) continue; // every path was read above
    if (!reading.ok) {
      skipped.push({
        id: record.id,
        reason: reading.reason,
        detail: `${file} pid ${JSON.stringify(pid)}: field "image": ${record.imagePath} ${reading.detail}`,
      });
      continue;
    }
    if (!extensionMatches(record.imagePath, reading.type)) mismatched.add(record.imagePath);
    records.push({ ...record, mediaType: IMAGE_TYPES[reading.type].mediaType, imageBytes: reading.bytes });
  }

  const referenced = new Set(imagePaths);
  const orphanImages = [
    ...(await listFiles(dir, "data/images")),
    ...(await listFiles(dir, "data_contrast/images")),
  ]
    .filter((p) => !referenced.has(p))
    .sort(naturalOrder);
  const duplicateFolder = await isDirectory(path.join(dir, "images"));

  const differences: MossbenchFileDifference[] = [];
  let provenance: DatasetProvenance;
  if (marker) provenance = { kind: "sample", size: marker.size, seed: marker.seed };
  else {
    const manifestSource = options.manifest ?? MOSSBENCH_MANIFEST;
    const manifest = await readManifest(manifestSource);
    const expectedBlob = (p: string): string | null =>
      manifest.get(p)?.blob ?? MOSSBENCH_ANNOTATION_FILES[p]?.blob ?? null;
    const check = (p: string, actual: string | null): void => {
      const expected = expectedBlob(p);
      if (expected === null) differences.push({ path: p, kind: "unlisted", expected: null, actual });
      else if (actual === null) differences.push({ path: p, kind: "missing", expected, actual });
      else if (actual !== expected) differences.push({ path: p, kind: "changed", expected, actual });
    };
    check(MOSSBENCH_BENIGN_FILE, gitBlobSha1(benign.bytes));
    check(MOSSBENCH_CONTRAST_FILE, gitBlobSha1(contrast.bytes));
    for (const p of [...imagePaths].sort(naturalOrder)) check(p, readings.get(p)?.blob ?? null);

    const tree =
      options.manifest === undefined
        ? MOSSBENCH_COMMIT
        : path.basename(manifestSource instanceof URL ? manifestSource.pathname : manifestSource);
    const files = imagePaths.length + 2;
    const count = (kind: MossbenchFileDifference["kind"]): number =>
      differences.filter((d) => d.kind === kind).length;
    provenance =
      differences.length === 0
        ? { kind: "official", tree, files }
        : {
            kind: "modified",
            tree,
            files,
            changed: count("changed"),
            missing: count("missing"),
            added: count("unlisted"),
            examples: differences.slice(0, MAX_PROVENANCE_EXAMPLES).map(describeMossbenchDifference),
          };
  }

  return {
    records,
    skipped,
    provenance,
    ignored: { orphanImages, duplicateFolder },
    mismatchedExtensions: [...mismatched].sort(naturalOrder),
    differences,
  };
}

async function readManifest(source: string | URL): Promise<Map<string, ManifestEntry>> {
  const label = source instanceof URL ? source.pathname : source;
  let text: string;
  try {
    text = await readFile(source, "utf8");
  } catch (error: unknown) {
    throw new MossbenchLayoutError(`cannot read the MOSSBench manifest ${label}`, { cause: error });
  }
  return parseMossbenchManifest(text, label);
}
