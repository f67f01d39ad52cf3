/**
 * Reads a plug-in benchmark's folder (MOSSBench, VLGuard) with that benchmark's importer and gives the
 * dataset commands one shape for both: the records with the sha256 of each image, the skipped records in the
 * manifest's shape, the provenance, a checksum of everything an item is made of, the images' bytes on demand,
 * and human lines about what the importer ignored.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import pLimit from "p-limit";
import type { CustomConfig, CustomJudgePrompt } from "../benchmarks/custom/config.ts";
import { customDefinition } from "../benchmarks/custom/definition.ts";
import { readCustomDataset } from "../benchmarks/custom/layout.ts";
import type {
  BenchmarkDefinition,
  BenchmarkRecord,
  SkippedBenchmarkRecord,
} from "../benchmarks/definition.ts";
import { MOSSBENCH } from "../benchmarks/mossbench/definition.ts";
import { readMossbenchDataset } from "../benchmarks/mossbench/layout.ts";
import type { PluginBenchmark } from "../benchmarks/names.ts";
import { VLGUARD } from "../benchmarks/vlguard/definition.ts";
import { locateVlguardFolder, readVlguardDataset } from "../benchmarks/vlguard/layout.ts";
import { type DatasetProvenance, describeProvenance } from "../core/provenance.ts";
import type { SkippedRecord } from "../core/schemas.ts";

/** Images read and hashed at once while importing (bounds memory on a full benchmark's images). */
const HASH_CONCURRENCY = 8;
/** Paths named in one note; the count says how many there are in all. */
const NOTE_EXAMPLES = 5;
/** Record ids named per skip reason in {@link describeBenchmarkImport}. */
const SKIPPED_EXAMPLES = 10;

/**
 * Where a benchmark's data is: a folder in its layout, VLGuard's `test.json` and images (folder or zip), or
 * your own dataset's JSONL file (its images beside it), with the field its columns are made of and the judge
 * prompt read from your file.
 */
export type BenchmarkFolderSource =
  | { dir: string }
  | { testJson: string; images: string }
  | { jsonl: string; columnField?: string; judgePrompt?: CustomJudgePrompt | null };

/** A record with the sha256 of its image's bytes, as read at import. */
export interface ImportedRecord extends BenchmarkRecord {
  imageSha256: string;
}

/** What {@link readBenchmarkFolder} read, the same for every plug-in benchmark. */
export interface ImportedBenchmark {
  benchmark: PluginBenchmark;
  /** The benchmark's title as its authors spell it (`MOSSBench`). */
  title: string;
  /** Evaluable records in the benchmark's record order. */
  records: ImportedRecord[];
  /** Records that cannot be evaluated, in the manifest's shape (`id` null, the benchmark's id in `recordId`). */
  skipped: SkippedRecord[];
  provenance: DatasetProvenance;
  /**
   * sha256 over the benchmark and every record's id, column, expected behaviour, text, groups, media type and
   * image sha256, in record order: any change to the annotations or an image changes it.
   */
  checksum: string;
  /** The bytes of a record's image (from the folder, or VLGuard's zip). */
  readImage(record: Pick<BenchmarkRecord, "imagePath">): Promise<Uint8Array>;
  /** Releases what reading keeps open (VLGuard's zip); call it when the upload is done. */
  close(): Promise<void>;
  /** What the importer ignored or noticed (unused images, a duplicate folder, mismatched extensions). */
  notes: string[];
  /** Your own dataset's kind, columns and judge prompt (stored in the manifest); null for the others. */
  custom: CustomConfig | null;
}

/** The folder cannot be imported as the named benchmark (the wrong kind of source). */
export class BenchmarkImportError extends Error {
  override readonly name = "BenchmarkImportError";
}

/** The definition of what was imported (your own dataset's, from what its import found). */
function definitionOf(imported: Pick<ImportedBenchmark, "benchmark" | "custom">): BenchmarkDefinition {
  if (imported.benchmark === "mossbench") return MOSSBENCH;
  if (imported.benchmark === "vlguard") return VLGUARD;
  if (!imported.custom)
    throw new BenchmarkImportError("your own dataset was imported without its configuration");
  return customDefinition(imported.custom);
}

const plural = (n: number, word: string): string =>
  `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;

const some = (list: readonly string[], max = NOTE_EXAMPLES): string =>
  list.length > max ? `${list.slice(0, max).join(", ")}, … (${list.length} in all)` : list.join(", ");

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

const toSkipped = (s: SkippedBenchmarkRecord): SkippedRecord => ({
  id: null,
  recordId: s.id,
  reason: s.reason,
  detail: s.detail,
});

/** Object keys sorted, so the checksum does not depend on the order a reader built them in. */
const sortedGroups = (groups: BenchmarkRecord["groups"]): [string, unknown][] =>
  Object.entries(groups).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

function checksumOf(
  benchmark: PluginBenchmark,
  records: readonly ImportedRecord[],
  custom: CustomConfig | null,
): string {
  const hash = createHash("sha256").update(`mmsafe benchmark dataset\n${benchmark}\n`);
  // Your own dataset: the columns and the judge prompt are part of what the data is.
  if (custom) hash.update(`${JSON.stringify(custom)}\n`);
  for (const r of records) {
    hash.update(
      `${JSON.stringify([r.id, r.column, r.expected, r.text, sortedGroups(r.groups), r.mediaType, r.imageSha256])}\n`,
    );
  }
  return hash.digest("hex");
}

/** What the benchmark's own importer gave, before the images are hashed. */
interface RawImport {
  records: BenchmarkRecord[];
  skipped: SkippedBenchmarkRecord[];
  provenance: DatasetProvenance;
  notes: string[];
  read(record: Pick<BenchmarkRecord, "imagePath">): Promise<Uint8Array>;
  close(): Promise<void>;
  custom?: CustomConfig;
}

async function importCustom(source: BenchmarkFolderSource): Promise<RawImport> {
  if (!("jsonl" in source))
    throw new BenchmarkImportError(
      "your own dataset is read from its JSONL file (images beside it, each record naming its image's path), not from a folder",
    );
  const dataset = await readCustomDataset(source.jsonl, {
    ...(source.columnField === undefined ? {} : { columnField: source.columnField }),
    judgePrompt: source.judgePrompt ?? null,
  });
  const used = new Set(dataset.records.map((r) => r.imagePath));
  return {
    records: dataset.records,
    skipped: dataset.skipped,
    provenance: dataset.provenance,
    notes: dataset.notes,
    read: async (record) => {
      if (!used.has(record.imagePath))
        throw new BenchmarkImportError(`${record.imagePath} is not the image of a record of ${source.jsonl}`);
      return readFile(path.join(dataset.root, ...record.imagePath.split("/")));
    },
    close: async () => {},
    custom: dataset.config,
  };
}

async function importMossbench(source: BenchmarkFolderSource): Promise<RawImport> {
  if (!("dir" in source))
    throw new BenchmarkImportError(
      "MOSSBench is read from one folder (a checkout of its repository, holding data/ and data_contrast/), not from a test.json and an images folder",
    );
  const root = path.resolve(source.dir);
  const dataset = await readMossbenchDataset(root);
  const used = new Set(dataset.records.map((r) => r.imagePath));
  const notes: string[] = [];
  const { orphanImages, duplicateFolder } = dataset.ignored;
  if (orphanImages.length > 0)
    notes.push(`ignored ${plural(orphanImages.length, "image")} no record uses: ${some(orphanImages)}`);
  if (duplicateFolder)
    notes.push(
      "ignored the root images/ folder (a duplicate of data/images/ in the official repository; records use data/images/)",
    );
  if (dataset.mismatchedExtensions.length > 0)
    notes.push(
      `${plural(dataset.mismatchedExtensions.length, "image")} whose bytes are another format than the extension says, typed by their bytes: ${some(dataset.mismatchedExtensions)}`,
    );
  return {
    records: dataset.records,
    skipped: dataset.skipped,
    provenance: dataset.provenance,
    notes,
    read: async (record) => {
      if (!used.has(record.imagePath))
        throw new BenchmarkImportError(
          `${record.imagePath} is not the image of a MOSSBench record in ${root}`,
        );
      return readFile(path.join(root, ...record.imagePath.split("/")));
    },
    close: async () => {},
  };
}

async function importVlguard(source: BenchmarkFolderSource): Promise<RawImport> {
  let testJson: string;
  let images: string;
  if ("dir" in source) {
    // A sample (or test.zip unzipped beside test.json): dir/test.json and dir/test/; a fetched copy:
    // dir/data/test.json and dir/test.zip (or dir/test/).
    ({ testJson, images } = await locateVlguardFolder(source.dir));
  } else if ("testJson" in source) {
    testJson = source.testJson;
    images = source.images;
  } else
    throw new BenchmarkImportError(
      "VLGuard is read from its test.json and images (a folder or test.zip), not from a JSONL file",
    );
  const dataset = await readVlguardDataset(testJson, images);
  const notes: string[] = [];
  const where = dataset.images.kind === "zip" ? "archive" : "images folder";
  if (dataset.images.kind === "zip")
    notes.push(`images read from the archive ${dataset.images.path} (nothing extracted to disk)`);
  if (dataset.extraImages.length > 0)
    notes.push(
      `ignored ${plural(dataset.extraImages.length, "file")} in the ${where} that no record uses: ${some(dataset.extraImages)}`,
    );
  if (dataset.mismatchedExtensions.length > 0)
    notes.push(
      `${plural(dataset.mismatchedExtensions.length, "image")} whose bytes are another format than the extension says, typed by their bytes: ${some(dataset.mismatchedExtensions)}`,
    );
  return {
    records: dataset.records,
    skipped: dataset.skipped,
    provenance: dataset.provenance,
    notes,
    read: (record) => dataset.openImage(record),
    close: () => dataset.close(),
  };
}

/**
 * Your own dataset's columns counted again after the images were hashed (an image that went away in between
 * skips its record); a column left with no record is dropped.
 */
function withRunnableCounts(config: CustomConfig, records: readonly ImportedRecord[]): CustomConfig {
  const columns = config.columns
    .map((c) => ({ ...c, items: records.filter((r) => r.column === c.key).length }))
    .filter((c) => c.items > 0);
  if (columns.length === 0) throw new BenchmarkImportError("no record of your own dataset can be run");
  return { ...config, columns };
}

/**
 * Reads a benchmark's data with its importer, then reads every image once (a few at a time) to take its
 * sha256. An image that cannot be read then (it went away after the importer checked it) skips its records
 * as `unreadable_image`, like the importer would have.
 *
 * @throws the importer's layout error (MossbenchLayoutError, VlguardLayoutError) when the folder cannot be
 *   read at all, or BenchmarkImportError when the source is not the kind the benchmark is read from
 */
export async function readBenchmarkFolder(
  benchmark: PluginBenchmark,
  source: BenchmarkFolderSource,
): Promise<ImportedBenchmark> {
  const raw =
    benchmark === "mossbench"
      ? await importMossbench(source)
      : benchmark === "vlguard"
        ? await importVlguard(source)
        : await importCustom(source);
  try {
    const paths = [...new Set(raw.records.map((r) => r.imagePath))];
    const hashes = new Map<string, { ok: true; sha256: string } | { ok: false; detail: string }>();
    const limit = pLimit(HASH_CONCURRENCY);
    await limit.map(paths, async (imagePath) => {
      try {
        hashes.set(imagePath, { ok: true, sha256: sha256(await raw.read({ imagePath })) });
      } catch (error: unknown) {
        const why = error instanceof Error ? error.message : String(error);
        hashes.set(imagePath, { ok: false, detail: `image ${imagePath} cannot be read (${why})` });
      }
    });

    const records: ImportedRecord[] = [];
    const skipped = raw.skipped.map(toSkipped);
    for (const record of raw.records) {
      const hash = hashes.get(record.imagePath);
      if (hash?.ok) records.push({ ...record, imageSha256: hash.sha256 });
      else
        skipped.push({
          id: null,
          recordId: record.id,
          reason: "unreadable_image",
          detail: hash?.detail ?? `image ${record.imagePath} was not read`,
        });
    }
    const custom = raw.custom ? withRunnableCounts(raw.custom, records) : null;
    return {
      benchmark,
      title: definitionOf({ benchmark, custom }).title,
      records,
      skipped,
      provenance: raw.provenance,
      checksum: checksumOf(benchmark, records, custom),
      readImage: raw.read,
      close: raw.close,
      notes: raw.notes,
      custom,
    };
  } catch (error: unknown) {
    await raw.close();
    throw error;
  }
}

/**
 * Lines for the CLI: records, runnable and skipped; runnable records per column (in the definition's order,
 * with what is expected of them); skipped records by reason with their ids; the provenance with the
 * benchmark's title; and the importer's notes.
 */
export function describeBenchmarkImport(imported: ImportedBenchmark): string[] {
  const definition = definitionOf(imported);
  const { records, skipped } = imported;
  const lines = [
    `${imported.title}: ${plural(records.length + skipped.length, "record")}, ${records.length.toLocaleString("en-US")} runnable, ${skipped.length.toLocaleString("en-US")} skipped`,
  ];
  const known = new Set(definition.columns.map((c) => c.key));
  const columns = [
    ...definition.columns.map((c) => ({ key: c.key, label: c.label })),
    ...[...new Set(records.map((r) => r.column))]
      .filter((key) => !known.has(key))
      .map((key) => ({ key, label: "not a column of the benchmark" })),
  ];
  const width = Math.max(...columns.map((c) => c.key.length));
  for (const column of columns) {
    const inColumn = records.filter((r) => r.column === column.key);
    const expected = [...new Set(inColumn.map((r) => r.expected))];
    lines.push(
      `  ${column.key.padEnd(width)} ${String(inColumn.length).padStart(5)} runnable  [${column.label}${expected.length > 0 ? `, expected ${expected.join("/")}` : ""}]`,
    );
  }
  const byReason = new Map<string, SkippedRecord[]>();
  for (const s of skipped) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s]);
  for (const [reason, list] of byReason) {
    const ids = list.flatMap((s) => (s.recordId == null ? [] : [s.recordId]));
    const unnamed = list.length - ids.length;
    lines.push(
      `skipped: ${plural(list.length, "record")} ${reason}${ids.length > 0 ? `: ${some(ids, SKIPPED_EXAMPLES)}` : ""}${unnamed > 0 ? ` (${unnamed} without a readable id)` : ""}`,
    );
    const first = list[0];
    if (first !== undefined) lines.push(`  e.g. ${first.detail}`);
  }
  lines.push(`provenance: ${describeProvenance(imported.provenance, imported.title)}`);
  lines.push(...imported.notes.map((n) => `note: ${n}`));
  return lines;
}
