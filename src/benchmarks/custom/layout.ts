/**
 * Reads your own dataset (a JSONL file and its images, the format described in `config.ts`) into
 * {@link BenchmarkRecord}s and the {@link CustomConfig} its import stores.
 *
 * Problems with the file as a whole (it is missing, empty, mixes the two kinds, has no runnable record…)
 * throw a {@link CustomDatasetError} naming the file and what to fix. Problems with one record skip it, with
 * a reason and a detail naming the file, the line and the field: nothing is dropped silently.
 *
 * Images are typed from their first bytes (never from their extension) and measured with `stat`; their
 * bytes are not kept, so a large dataset is read in little memory.
 */
import { createHash } from "node:crypto";
import { type FileHandle, open, readFile, stat } from "node:fs/promises";
import path from "node:path";
import pLimit from "p-limit";
import { detectImageType, IMAGE_TYPES, type ImageType } from "../../core/image-type.ts";
import { type DatasetProvenance, MAX_PROVENANCE_EXAMPLES } from "../../core/provenance.ts";
import { readSampleMarker } from "../../dataset/provenance.ts";
import {
  type BenchmarkRecord,
  EXPECTED_BEHAVIOURS,
  type ExpectedBehaviour,
  type SkippedBenchmarkRecord,
} from "../definition.ts";
import {
  CUSTOM_RECORD_FIELDS,
  type CustomColumn,
  type CustomConfig,
  type CustomJudgePrompt,
  type CustomKind,
  columnKeySchema,
  DEFAULT_COLUMN_FIELD,
  kindOfExpected,
} from "./config.ts";

/** Longest id accepted (characters). */
export const MAX_CUSTOM_ID_CHARS = 200;
/** Longest text accepted (characters). */
export const MAX_CUSTOM_TEXT_CHARS = 20_000;
/** Longest group field name accepted (characters); also the longest column field. */
export const MAX_CUSTOM_FIELD_CHARS = 64;
/** Most columns a dataset may have (the results table stays readable). */
export const MAX_CUSTOM_COLUMNS = 100;
/** Largest image accepted: 20 MiB (model APIs refuse larger ones). */
export const MAX_CUSTOM_IMAGE_BYTES = 20 * 1024 * 1024;

/** Longest column label kept (characters). */
const MAX_LABEL_CHARS = 100;
/** Longest column key made from a value (characters). */
const MAX_KEY_CHARS = 64;
/** Longest JSONL base name kept in the provenance. */
const MAX_FILE_NAME = 200;
/** Images inspected at once (each is a stat and a 16-byte read). */
const READ_CONCURRENCY = 8;
/** Bytes {@link detectImageType} needs. */
const HEAD_BYTES = 16;

/** The file cannot be read as a dataset; the message names the file and what to fix. */
export class CustomDatasetError extends Error {
  override readonly name = "CustomDatasetError";
}

/** What {@link readCustomDataset} read. */
export interface CustomDataset {
  /**
   * Runnable records, in file order. `column` is the column key; `groups` holds every field other than
   * id/image/text/expected (the column field included).
   */
  records: BenchmarkRecord[];
  /** Records that cannot be run, in file order, each with its reason. */
  skipped: SkippedBenchmarkRecord[];
  /** `own` (the file's base name, its sha256, the distinct images of the runnable records), or `sample`. */
  provenance: DatasetProvenance;
  config: CustomConfig;
  /** Absolute folder of the JSONL file: `record.imagePath` is relative to it, with `/` separators. */
  root: string;
  /** Things worth telling the user that skip nothing (images whose extension says another format). */
  notes: string[];
}

/** Options of {@link readCustomDataset}. */
export interface CustomDatasetOptions {
  /** The field whose values are the columns (`--columns-by`); default `column` when records have it. */
  columnField?: string;
  /** The user's judge prompt, stored in the config as given. */
  judgePrompt?: CustomJudgePrompt | null;
}

// ---- column keys -------------------------------------------------------------------------------------

/**
 * The column key of a column value: the value itself when it is a valid key (`harmful`, `type.1`), else a
 * slug (`weapons & drugs` → `weapons-drugs`); null when the value has no letter or digit to make one of.
 */
export function columnKeyOf(value: string | number | boolean): string | null {
  const text = String(value);
  if (columnKeySchema.safeParse(text).success) return text;
  const slug = text
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "") // accents dropped: `Ärger` → `arger`
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, MAX_KEY_CHARS)
    .replace(/-+$/, "");
  return slug === "" ? null : slug;
}

// ---- records -----------------------------------------------------------------------------------------

type GroupValue = string | number | boolean | null;

/** A record whose fields are valid, before its image is looked at. */
interface ParsedRecord {
  line: number;
  id: string;
  image: string;
  /** `image` made relative to the root, with `/` separators (`./a/../b.png` → `b.png`). */
  imagePath: string;
  text: string;
  expected: ExpectedBehaviour;
  groups: Record<string, GroupValue>;
}

/** A skipped record with its line, so that the list can be put in file order. */
interface LineSkip {
  line: number;
  skip: SkippedBenchmarkRecord;
}

const describeId = (id: string | null): string => (id === null ? "" : ` (id ${JSON.stringify(id)})`);

/** A short rendering of a JSON value for a message (long values cut). */
function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

const typeName = (value: unknown): string =>
  value === null
    ? "null"
    : Array.isArray(value)
      ? "a list"
      : typeof value === "object"
        ? "an object"
        : typeof value;

/** The record's id as a string, or a message saying why it is not one. */
function readId(value: unknown): { id: string } | { problem: string } {
  if (typeof value === "number") {
    return Number.isSafeInteger(value)
      ? { id: String(value) }
      : { problem: `is ${shown(value)}: use a whole number or a string` };
  }
  if (typeof value === "string") {
    if (value === "") return { problem: "is empty: give every record a unique id" };
    if (value.length > MAX_CUSTOM_ID_CHARS)
      return { problem: `is ${value.length} characters long: use at most ${MAX_CUSTOM_ID_CHARS}` };
    return { id: value };
  }
  return value === undefined
    ? { problem: "is missing: give every record a unique id (a string or a whole number)" }
    : { problem: `is ${typeName(value)}: use a string or a whole number` };
}

const isAbsoluteAnywhere = (p: string): boolean =>
  path.posix.isAbsolute(p) || path.win32.isAbsolute(p) || /^[A-Za-z]:/.test(p);

/**
 * The image path made relative to the root with `/` separators, or null when it leaves the root (absolute,
 * or `..` past it). Backslashes are read as separators (a file written on Windows).
 */
function relativeImagePath(image: string): string | null {
  if (isAbsoluteAnywhere(image)) return null;
  const normalized = path.posix.normalize(image.replace(/\\/g, "/"));
  if (normalized === ".." || normalized.startsWith("../")) return null;
  return normalized;
}

interface LineContext {
  /** The JSONL file's base name, used in every detail. */
  fileName: string;
  line: number;
}

/** The message of a line that is not JSON. */
const notJson = (why: string): string =>
  `is not JSON (${why}): write one JSON object per line, such as {"id": 1, "image": "images/1.png", "text": "…", "expected": "refuse"}`;

/**
 * One line's JSON value read as a record: the record, or the skip it causes. The id comes first so that a
 * skip can name it; the other checks run in the order of the format's fields.
 */
function parseRecord(
  value: unknown,
  context: LineContext,
  seenIds: Map<string, number>,
): { record: ParsedRecord } | { skip: SkippedBenchmarkRecord } {
  const { fileName, line } = context;
  const at = (id: string | null): string => `${fileName} line ${line}${describeId(id)}`;
  const malformed = (id: string | null, message: string) => ({
    skip: { id, reason: "malformed_record", detail: `${at(id)}: ${message}` },
  });
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return malformed(null, `is ${typeName(value)}, not a JSON object: write one object per line`);
  const fields = value as Record<string, unknown>;

  const idReading = readId(fields.id);
  if ("problem" in idReading) return malformed(null, `field "id" ${idReading.problem}`);
  const { id } = idReading;
  const first = seenIds.get(id);
  if (first !== undefined)
    return {
      skip: {
        id,
        reason: "duplicate_id",
        detail: `${at(id)}: field "id" is already used by line ${first}: give every record a unique id (12 and "12" are the same id)`,
      },
    };
  seenIds.set(id, line);

  const { image, text, expected } = fields;
  if (typeof image !== "string" || image === "")
    return malformed(
      id,
      image === undefined
        ? `field "image" is missing: give the image's path relative to ${fileName}'s folder`
        : `field "image" is ${typeof image === "string" ? "empty" : typeName(image)}: give the image's path relative to ${fileName}'s folder as a string`,
    );
  if (typeof text !== "string" || text === "")
    return malformed(
      id,
      text === undefined
        ? `field "text" is missing: give the text sent with the image`
        : `field "text" is ${typeof text === "string" ? "empty" : typeName(text)}: give the text sent with the image as a string`,
    );
  if (text.length > MAX_CUSTOM_TEXT_CHARS)
    return malformed(
      id,
      `field "text" is ${text.length.toLocaleString("en-US")} characters long: use at most ${MAX_CUSTOM_TEXT_CHARS.toLocaleString("en-US")}`,
    );
  if (!EXPECTED_BEHAVIOURS.includes(expected as ExpectedBehaviour))
    return malformed(
      id,
      `field "expected" is ${expected === undefined ? "missing" : shown(expected)}: use one of ${EXPECTED_BEHAVIOURS.join(", ")}`,
    );

  const groups: [string, GroupValue][] = [];
  for (const [name, group] of Object.entries(fields)) {
    if ((CUSTOM_RECORD_FIELDS as readonly string[]).includes(name)) continue;
    if (name.length > MAX_CUSTOM_FIELD_CHARS)
      return malformed(
        id,
        `field ${shown(name)} has a name of ${name.length} characters: use at most ${MAX_CUSTOM_FIELD_CHARS}`,
      );
    if (typeof group === "object" && group !== null)
      return malformed(
        id,
        `field ${JSON.stringify(name)} is ${typeName(group)}: other fields must be a string, a number, true/false or null`,
      );
    groups.push([name, group as GroupValue]);
  }

  const imagePath = relativeImagePath(image);
  if (imagePath === null)
    return {
      skip: {
        id,
        reason: "image_outside",
        detail: `${at(id)}: field "image" ${shown(image)} is outside ${fileName}'s folder: put the image in that folder (or below it) and give its relative path`,
      },
    };
  return {
    record: {
      line,
      id,
      image,
      imagePath,
      text,
      expected: expected as ExpectedBehaviour,
      // fromEntries defines own properties, so a field named `__proto__` stays a plain group.
      groups: Object.fromEntries(groups),
    },
  };
}

// ---- images ------------------------------------------------------------------------------------------

type ImageReading =
  | { ok: true; type: ImageType; bytes: number }
  | { ok: false; reason: "missing_image" | "unreadable_image" | "image_too_large"; problem: string };

const errorCode = (error: unknown): string | undefined =>
  error instanceof Error && "code" in error && typeof error.code === "string" ? error.code : undefined;

/** The image's type from its first bytes and its size from `stat`; its bytes are not kept. */
async function inspectImage(full: string): Promise<ImageReading> {
  let handle: FileHandle | undefined;
  try {
    const info = await stat(full);
    if (!info.isFile())
      return {
        ok: false,
        reason: "unreadable_image",
        problem: info.isDirectory() ? "is a folder, not an image file" : "is not a regular file",
      };
    if (info.size > MAX_CUSTOM_IMAGE_BYTES)
      return {
        ok: false,
        reason: "image_too_large",
        problem: `is ${(info.size / 1024 / 1024).toFixed(1)} MiB: use images of at most ${MAX_CUSTOM_IMAGE_BYTES / 1024 / 1024} MiB`,
      };
    handle = await open(full, "r");
    const head = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(head, 0, HEAD_BYTES, 0);
    const type = detectImageType(head.subarray(0, bytesRead));
    if (type === null)
      return {
        ok: false,
        reason: "unreadable_image",
        problem: `is not a JPEG, PNG, WebP or GIF (first bytes ${head.subarray(0, Math.min(bytesRead, 8)).toString("hex") || "none"}): convert it to one of those`,
      };
    return { ok: true, type, bytes: info.size };
  } catch (error: unknown) {
    const code = errorCode(error);
    return code === "ENOENT" || code === "ENOTDIR"
      ? {
          ok: false,
          reason: "missing_image",
          problem: "does not exist: check the path and the file name's case",
        }
      : {
          ok: false,
          reason: "unreadable_image",
          problem: `cannot be read (${code ?? "error"}): check its permissions`,
        };
  } finally {
    await handle?.close();
  }
}

/** The extension says another format than the bytes (`a.png` holding JPEG); no extension says nothing. */
function extensionDiffers(imagePath: string, type: ImageType): boolean {
  const extension = path.posix.extname(imagePath).slice(1).toLowerCase();
  if (extension === "") return false;
  return !(extension === IMAGE_TYPES[type].extension || (type === "jpeg" && extension === "jpeg"));
}

const TYPE_NAMES: Readonly<Record<ImageType, string>> = {
  jpeg: "JPEG",
  png: "PNG",
  webp: "WebP",
  gif: "GIF",
};

// ---- the file ----------------------------------------------------------------------------------------

async function readJsonlBytes(full: string): Promise<Buffer> {
  try {
    const info = await stat(full);
    if (info.isDirectory())
      throw new CustomDatasetError(
        `${full} is a folder: give the JSONL file itself (one record per line), such as ${path.join(full, "dataset.jsonl")}`,
      );
    return await readFile(full);
  } catch (error: unknown) {
    if (error instanceof CustomDatasetError) throw error;
    const code = errorCode(error);
    if (code === "ENOENT" || code === "ENOTDIR")
      throw new CustomDatasetError(`${full} does not exist: give the path of your dataset's JSONL file`, {
        cause: error,
      });
    throw new CustomDatasetError(`${full} cannot be read (${code ?? "error"}): check its permissions`, {
      cause: error,
    });
  }
}

function decodeUtf8(full: string, bytes: Buffer): string {
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return text.startsWith("\uFEFF") ? text.slice(1) : text;
  } catch (error: unknown) {
    throw new CustomDatasetError(`${full} is not UTF-8 text: save it as UTF-8`, { cause: error });
  }
}

/** A record "has" a field when it gives it a value other than null. */
const hasField = (value: unknown, field: string): boolean =>
  typeof value === "object" &&
  value !== null &&
  !Array.isArray(value) &&
  Object.hasOwn(value, field) &&
  (value as Record<string, unknown>)[field] !== null;

function checkColumnField(full: string, field: string): void {
  if ((CUSTOM_RECORD_FIELDS as readonly string[]).includes(field))
    throw new CustomDatasetError(
      `${full}: the columns cannot be the field "${field}" (${CUSTOM_RECORD_FIELDS.join(", ")} are the record itself): choose another field, or none to group by expected`,
    );
  if (field === "" || field.length > MAX_CUSTOM_FIELD_CHARS)
    throw new CustomDatasetError(
      `${full}: the column field must have 1 to ${MAX_CUSTOM_FIELD_CHARS} characters, not ${field.length}`,
    );
}

/** The one kind of the records, or an error naming the first record of the other kind. */
function kindOf(full: string, parsed: readonly ParsedRecord[]): CustomKind {
  const [first] = parsed;
  if (first === undefined) return "behaviours";
  const kind = kindOfExpected(first.expected);
  const other = parsed.find((r) => kindOfExpected(r.expected) !== kind);
  if (other !== undefined) {
    const phrase = (k: CustomKind) =>
      k === "answers" ? "a question answered yes/no" : "a request to refuse or comply with";
    throw new CustomDatasetError(
      `${full}: line ${other.line} (id ${JSON.stringify(other.id)}) expects "${other.expected}", ${phrase(kindOfExpected(other.expected))}, but line ${first.line} (id ${JSON.stringify(first.id)}) expects "${first.expected}", ${phrase(kind)}: a dataset holds one kind (yes/no or refuse/comply); put the other kind in a file of its own`,
    );
  }
  return kind;
}

function mismatchNote(paths: readonly { imagePath: string; type: ImageType }[]): string {
  const named = paths.slice(0, MAX_PROVENANCE_EXAMPLES).map((p) => `${p.imagePath} (${TYPE_NAMES[p.type]})`);
  const more = paths.length - named.length;
  return `${paths.length} ${paths.length === 1 ? "image whose bytes are" : "images whose bytes are"} another format than the extension says, typed by their bytes: ${named.join(", ")}${more > 0 ? `, and ${more} more` : ""}`;
}

/**
 * Reads your own dataset: a JSONL file (UTF-8, a BOM and `\r\n` line ends accepted, blank lines ignored)
 * whose images are given relative to its folder. Records that cannot be run are returned in `skipped`,
 * each with its reason: `malformed_record`, `duplicate_id`, `missing_column`, `image_outside`,
 * `missing_image`, `unreadable_image` or `image_too_large`. A folder holding the sample marker is labelled
 * `sample`.
 *
 * @throws CustomDatasetError when the file is missing, a folder, empty or not UTF-8; when no record can be
 *   run; when `options.columnField` is a record field or no record has it; when records of both kinds are
 *   mixed; when two column values make the same key; when there are more than 100 columns.
 */
export async function readCustomDataset(
  file: string,
  options: CustomDatasetOptions = {},
): Promise<CustomDataset> {
  const full = path.resolve(file);
  const root = path.dirname(full);
  const fileName = path.basename(full);
  if (options.columnField !== undefined) checkColumnField(full, options.columnField);

  const bytes = await readJsonlBytes(full);
  const lines = decodeUtf8(full, bytes)
    .split("\n")
    .map((text, index) => ({ line: index + 1, text: text.endsWith("\r") ? text.slice(0, -1) : text }))
    .filter((l) => l.text.trim() !== "");
  if (lines.length === 0)
    throw new CustomDatasetError(
      `${full} is empty: write one JSON record per line, such as {"id": 1, "image": "images/1.png", "text": "…", "expected": "refuse"}`,
    );

  const skips: LineSkip[] = [];
  const parsed: ParsedRecord[] = [];
  const seenIds = new Map<string, number>();
  const objects: unknown[] = [];
  for (const { line, text } of lines) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error: unknown) {
      const why = error instanceof Error ? error.message : String(error);
      skips.push({
        line,
        skip: { id: null, reason: "malformed_record", detail: `${fileName} line ${line}: ${notJson(why)}` },
      });
      continue;
    }
    objects.push(value);
    const result = parseRecord(value, { fileName, line }, seenIds);
    if ("skip" in result) skips.push({ line, skip: result.skip });
    else parsed.push(result.record);
  }

  let columnField: string | null;
  if (options.columnField !== undefined) {
    const field = options.columnField;
    if (!objects.some((o) => hasField(o, field)))
      throw new CustomDatasetError(
        `${full}: no record has the field ${JSON.stringify(field)} to make the columns of: check its spelling, or leave the columns out to use "${DEFAULT_COLUMN_FIELD}" (or expected)`,
      );
    columnField = field;
  } else columnField = objects.some((o) => hasField(o, DEFAULT_COLUMN_FIELD)) ? DEFAULT_COLUMN_FIELD : null;

  const kind = kindOf(full, parsed);

  // The column value of each record, when the columns are a field: absent or null skips the record.
  const withColumn: { record: ParsedRecord; value: string | number | boolean; key: string }[] = [];
  for (const record of parsed) {
    const at = `${fileName} line ${record.line}${describeId(record.id)}`;
    if (columnField === null) {
      withColumn.push({ record, value: record.expected, key: record.expected });
      continue;
    }
    const value = record.groups[columnField];
    if (value === undefined || value === null || (typeof value === "string" && value.trim() === "")) {
      skips.push({
        line: record.line,
        skip: {
          id: record.id,
          reason: "missing_column",
          detail: `${at}: field "${columnField}" ${value === undefined ? "is missing" : value === null ? "is null" : "is empty"}: the columns are made of that field, so give every record a value for it`,
        },
      });
      continue;
    }
    const key = columnKeyOf(value);
    if (key === null) {
      skips.push({
        line: record.line,
        skip: {
          id: record.id,
          reason: "malformed_record",
          detail: `${at}: field "${columnField}" is ${shown(value)}, which has no letter or digit to name a column with: use a value with at least one`,
        },
      });
      continue;
    }
    withColumn.push({ record, value, key });
  }

  const imagePaths = [...new Set(withColumn.map((w) => w.record.imagePath))];
  const limit = pLimit(READ_CONCURRENCY);
  const results = await limit.map(imagePaths, (p) => inspectImage(path.join(root, ...p.split("/"))));
  const readings = new Map(imagePaths.map((p, index) => [p, results[index] as ImageReading]));

  const records: BenchmarkRecord[] = [];
  const runnable: { record: ParsedRecord; value: string | number | boolean; key: string }[] = [];
  const mismatched = new Map<string, ImageType>();
  for (const entry of withColumn) {
    const { record, key } = entry;
    const reading = readings.get(record.imagePath);
    if (reading === undefined) continue; // every path was inspected above
    if (!reading.ok) {
      skips.push({
        line: record.line,
        skip: {
          id: record.id,
          reason: reading.reason,
          detail: `${fileName} line ${record.line}${describeId(record.id)}: field "image" ${shown(record.image)} ${reading.problem}`,
        },
      });
      continue;
    }
    if (extensionDiffers(record.imagePath, reading.type)) mismatched.set(record.imagePath, reading.type);
    runnable.push(entry);
    records.push({
      id: record.id,
      column: key,
      expected: record.expected,
      text: record.text,
      imagePath: record.imagePath,
      mediaType: IMAGE_TYPES[reading.type].mediaType,
      imageBytes: reading.bytes,
      groups: record.groups,
    });
  }

  skips.sort((a, b) => a.line - b.line);
  const skipped = skips.map((s) => s.skip);
  const [firstSkip] = skipped;
  if (records.length === 0)
    throw new CustomDatasetError(
      `${full}: no record can be run (${skipped.length} skipped${firstSkip ? `; the first, ${firstSkip.reason}: ${firstSkip.detail}` : ""}): fix the records and import again`,
    );

  const columns = columnsOf(full, runnable);

  const marker = await readSampleMarker(root);
  const provenance: DatasetProvenance = marker
    ? { kind: "sample", size: marker.size, seed: marker.seed }
    : {
        kind: "own",
        file: fileName.length > MAX_FILE_NAME ? `${fileName.slice(0, MAX_FILE_NAME - 1)}…` : fileName,
        sha256: createHash("sha256").update(bytes).digest("hex"),
        images: new Set(records.map((r) => r.imagePath)).size,
      };

  const notes: string[] = [];
  if (mismatched.size > 0)
    notes.push(mismatchNote([...mismatched].map(([imagePath, type]) => ({ imagePath, type }))));

  return {
    records,
    skipped,
    provenance,
    config: { kind, columnField, columns, judgePrompt: options.judgePrompt ?? null },
    root,
    notes,
  };
}

/** The columns in order of first appearance, with their counts and expected values. */
function columnsOf(
  full: string,
  runnable: readonly { record: ParsedRecord; value: string | number | boolean; key: string }[],
): CustomColumn[] {
  const columns = new Map<string, { column: CustomColumn; value: string; line: number }>();
  for (const { record, value, key } of runnable) {
    const label = String(value);
    const existing = columns.get(key);
    if (existing === undefined) {
      columns.set(key, {
        column: { key, label: label.slice(0, MAX_LABEL_CHARS), items: 1, expected: [record.expected] },
        value: label,
        line: record.line,
      });
      continue;
    }
    if (existing.value !== label)
      throw new CustomDatasetError(
        `${full}: the column values ${shown(existing.value)} (line ${existing.line}) and ${shown(label)} (line ${record.line}) both make the column key "${key}": spell them the same, or make them differ in letters or digits`,
      );
    existing.column.items += 1;
    if (!existing.column.expected.includes(record.expected)) existing.column.expected.push(record.expected);
  }
  if (columns.size > MAX_CUSTOM_COLUMNS)
    throw new CustomDatasetError(
      `${full}: the records make ${columns.size} columns, more than ${MAX_CUSTOM_COLUMNS}: choose a field with fewer values for the columns`,
    );
  return [...columns.values()].map(({ column }) => ({ ...column, expected: [...column.expected].sort() }));
}
