import { createHash } from "node:crypto";
import { open, readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import pLimit from "p-limit";
import sharp from "sharp";
import { detectImageType, IMAGE_TYPES, type ImageType } from "../../core/image-type.ts";
import type { SkippedRecord } from "../../core/schemas.ts";
import { gitBlobSha1 } from "../../dataset/published-tree.ts";
import { goldLabel, officialImageFolder } from "./facts.ts";
import { parsePromptFile, type RecordProblem } from "./prompt-file.ts";
import { parseScenarioTable, type ScenarioLabel } from "./scenarios.ts";

/** Images larger than this are refused (OpenAI-compatible endpoints reject them anyway). */
export const MAX_IMAGE_BYTES = 20 * 1024 * 1024;

/** Images checked at once (read, hashed, decoded); sharp decodes on libuv's pool of 4 threads. */
const IMAGE_CONCURRENCY = 4;

/** Images up to this many pixels are decoded at full size; larger ones are shrunk while decoding. */
const SMALL_DECODE_PIXELS = 512 * 512;

/** Longest decoder message kept in a skip detail (and in the hash cache). */
const MAX_DECODE_MESSAGE = 120;

/** The scenario labels shipped with mmsafe (recovered from the benchmark repository's earlier layout). */
export const SHIPPED_SCENARIOS = new URL("../../../datasets/mmsafeaware/scenarios.csv", import.meta.url);

/** The dataset directory cannot be used as given; the message names the file and what to fix. */
export class DatasetInputError extends Error {
  override readonly name = "DatasetInputError";
}

/** A runnable record with its image on disk, before upload. */
export interface LocalItem {
  id: number;
  instruction: string;
  sentence: string;
  label: ReturnType<typeof goldLabel>;
  scenario: ScenarioLabel;
  imagePath: string;
  imageType: ImageType;
  imageBytes: number;
  imageSha256: string;
}

export interface OfficialDataset {
  dir: string;
  records: number;
  items: LocalItem[];
  skipped: SkippedRecord[];
  problems: RecordProblem[];
  /** Files in the image folders that belong to no record (e.g. the stray `test` file). */
  ignoredFiles: string[];
  /** sha256 over prompt.txt and every runnable image: identifies exactly what was evaluated. */
  checksum: string;
}

async function readHead(file: string, bytes: number): Promise<Uint8Array> {
  const handle = await open(file, "r");
  try {
    const buffer = new Uint8Array(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** What is known about one file while its size and mtime are unchanged. */
export interface FileHashEntry {
  size: number;
  mtimeMs: number;
  /** sha256 of the bytes (images: identifies what was evaluated). */
  sha256?: string;
  /** git blob sha1 of the bytes, for verification against a published tree. */
  gitBlob?: string;
  /**
   * Whether the image decodes: `true`, or the decoder's message (first line, shortened). Absent in entries
   * written before decoding was checked; such entries are re-verified (and completed) on the next read.
   */
  decodes?: true | string;
}

/**
 * File hashes and image decode verdicts by absolute path, valid while size and mtime are unchanged (as
 * git's index does). Stored as JSON by the local runner; incomplete entries are completed when next read.
 */
export type FileHashCache = Map<string, FileHashEntry>;

/** A cached entry that is still valid and complete for a file of this size and mtime. */
function cachedEntry(
  cache: FileHashCache | undefined,
  file: string,
  size: number,
  mtimeMs: number,
): (FileHashEntry & { sha256: string; decodes: true | string }) | undefined {
  const entry = cache?.get(file);
  if (!entry || entry.size !== size || entry.mtimeMs !== mtimeMs || typeof entry.sha256 !== "string")
    return undefined;
  const { decodes, sha256 } = entry;
  // Entries from before the decode check (or hand-edited ones) are verified again.
  if (decodes !== true && typeof decodes !== "string") return undefined;
  return { ...entry, sha256, decodes };
}

/** First line of a decoder message, at most {@link MAX_DECODE_MESSAGE} characters. */
function shortMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const line = (message.split("\n")[0] ?? "").trim() || "unknown decoder error";
  return line.length > MAX_DECODE_MESSAGE ? `${line.slice(0, MAX_DECODE_MESSAGE - 1)}…` : line;
}

/**
 * Decodes the image (the first frame of an animation) so that the decoder reads all the pixel data: a
 * truncated JPEG, PNG or GIF, or a broken PNG stream, fails; `true` if it decodes.
 *
 * `failOn: "truncated"` rejects truncated data and decoder errors that stop pixel data, and keeps images
 * that only raise warnings: extraneous bytes before a JPEG marker (common in camera files) or a bad CRC on
 * an intact PNG chunk, which sharp's default (`"warning"`) would refuse. Large images are shrunk to 32
 * pixels while loading (about 10 ms for a 1024×1024 JPEG, where `stats()` takes about 60 ms, and memory
 * stays small); small ones are decoded as they are, which saves the resize's fixed cost (about 1 ms).
 */
async function decodeVerdict(bytes: Buffer): Promise<true | string> {
  try {
    const image = sharp(bytes, { failOn: "truncated", sequentialRead: true });
    const { width = 0, height = 0 } = await image.metadata();
    const small = width * height <= SMALL_DECODE_PIXELS;
    await (small ? image : image.resize(32, 32, { fit: "inside" })).raw().toBuffer();
    return true;
  } catch (error: unknown) {
    return shortMessage(error);
  }
}

/**
 * The image's sha256 and decode verdict, from the cache when the file is unchanged, else read once.
 *
 * A fresh failure comes with `confirm`, to run once no other decode is in flight: libvips keeps one error
 * buffer per process and a concurrent decode can clear it, so sharp may report a real failure as "Unknown
 * error" (about one failure in six at 4 concurrent decodes; valid images are not affected). Decoding alone
 * again gives the decoder's own message, which is what gets cached.
 */
async function inspectImage(
  file: string,
  size: number,
  mtimeMs: number,
  cache: FileHashCache | undefined,
): Promise<{ sha256: string; decodes: true | string; confirm?: () => Promise<true | string> }> {
  const cached = cachedEntry(cache, file, size, mtimeMs);
  if (cached) return { sha256: cached.sha256, decodes: cached.decodes };
  const bytes = await readFile(file);
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  // Hashed while the bytes are in memory: verifying the folder against its published tree then reads nothing.
  const gitBlob = gitBlobSha1(bytes);
  const decodes = await decodeVerdict(bytes);
  cache?.set(file, { size, mtimeMs, sha256, gitBlob, decodes });
  if (decodes === true) return { sha256, decodes };
  const confirm = async () => {
    const alone = await decodeVerdict(bytes);
    cache?.set(file, { size, mtimeMs, sha256, gitBlob, decodes: alone });
    return alone;
  };
  return { sha256, decodes, confirm };
}

/** Lists `<id>.<ext>` files of an image folder by id; other names are returned as ignored. */
async function imageFilesById(
  dir: string,
  relative: string,
  ignored: string[],
): Promise<Map<number, string[]>> {
  const byId = new Map<number, string[]>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error: unknown) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return byId;
    throw error;
  }
  for (const name of names.sort()) {
    const match = /^(\d+)\.[A-Za-z0-9]+$/.exec(name);
    if (!match) {
      ignored.push(`${relative}/${name}`);
      continue;
    }
    const id = Number(match[1]);
    byId.set(id, [...(byId.get(id) ?? []), path.join(dir, name)]);
  }
  return byId;
}

/**
 * Reads a dataset in the official MMSafeAware layout (`data/prompt.txt`, `data/images/`, `data/images2/`).
 * Each record's image is found by id with any extension and its type is detected from its bytes. Records
 * that cannot run — no image, an empty, oversized, unrecognised or corrupt (undecodable) image, a malformed
 * record — are returned as skipped with the reason; nothing is dropped silently. Images are read, hashed
 * and decoded a few at a time; with `hashCache`, unchanged files are neither read nor decoded again.
 */
export async function readOfficialDataset(
  dir: string,
  options: { scenarioCsv?: string; hashCache?: FileHashCache } = {},
): Promise<OfficialDataset> {
  const promptPath = path.join(dir, "data", "prompt.txt");
  let promptText: string;
  try {
    promptText = await readFile(promptPath, "utf8");
  } catch (error: unknown) {
    throw new DatasetInputError(
      `${promptPath} cannot be read: a dataset in the official layout has data/prompt.txt`,
      {
        cause: error,
      },
    );
  }
  const { records, problems } = parsePromptFile(promptText, "data/prompt.txt");
  const scenarios = parseScenarioTable(options.scenarioCsv ?? (await readFile(SHIPPED_SCENARIOS, "utf8")));

  const ignoredFiles: string[] = [];
  const folders = {
    images: await imageFilesById(path.join(dir, "data", "images"), "data/images", ignoredFiles),
    images2: await imageFilesById(path.join(dir, "data", "images2"), "data/images2", ignoredFiles),
  };

  const skipped: SkippedRecord[] = problems.map((p) => ({
    id: p.id,
    reason: "are malformed in prompt.txt",
    detail: p.message,
  }));
  const recordIds = new Set(records.map((r) => r.id));
  type Outcome = LocalItem | SkippedRecord;
  // Records are checked concurrently (bounded) and collected in record order, so the result is deterministic.
  const limit = pLimit(IMAGE_CONCURRENCY);
  const outcomes = await Promise.all(
    records.map((record) =>
      limit(async (): Promise<Outcome | (() => Promise<Outcome>)> => {
        const skip = (reason: string, detail: string): SkippedRecord => ({ id: record.id, reason, detail });
        const expected = officialImageFolder(record.id);
        const other = expected === "images" ? "images2" : "images";
        const candidates = folders[expected].get(record.id) ?? folders[other].get(record.id) ?? [];
        if (candidates.length === 0)
          return skip("have no image", `no data/${expected}/${record.id}.<ext> file`);
        if (candidates.length > 1) {
          return skip(
            "have several images",
            `ambiguous: ${candidates.map((c) => path.relative(dir, c)).join(", ")}; keep one`,
          );
        }
        const imagePath = candidates[0] as string;
        const relative = path.relative(dir, imagePath);
        const { size, mtimeMs } = await stat(imagePath);
        if (size === 0) return skip("have an empty image file", `${relative} is 0 bytes`);
        if (size > MAX_IMAGE_BYTES) {
          return skip(
            "have an oversized image",
            `${relative} is ${(size / 1024 / 1024).toFixed(1)} MB (limit 20 MB)`,
          );
        }
        const imageType = detectImageType(await readHead(imagePath, 16));
        if (!imageType) {
          return skip("have an image that is not JPEG, PNG, WebP or GIF", `${relative}: unrecognised bytes`);
        }
        const { sha256, decodes, confirm } = await inspectImage(imagePath, size, mtimeMs, options.hashCache);
        const outcome = (verdict: true | string): Outcome =>
          verdict === true
            ? {
                id: record.id,
                instruction: record.instruction,
                sentence: record.sentence,
                label: goldLabel(record.id),
                scenario: scenarios.get(record.id) ?? { domain: null, scenario: null },
                imagePath,
                imageType,
                imageBytes: size,
                imageSha256: sha256,
              }
            : skip("have a corrupt image", `${relative} does not decode: ${verdict}`);
        return confirm ? async () => outcome(await confirm()) : outcome(decodes);
      }),
    ),
  );
  const items: LocalItem[] = [];
  for (const pending of outcomes) {
    // Failed decodes are confirmed one at a time, after the concurrent ones (see inspectImage).
    const outcome = typeof pending === "function" ? await pending() : pending;
    if ("imagePath" in outcome) items.push(outcome);
    else skipped.push(outcome);
  }
  // Images of malformed records are covered by those records' skip entries; others belong to no record.
  const malformedIds = new Set(problems.flatMap((p) => (p.id === null ? [] : [p.id])));
  for (const [folder, byId] of Object.entries(folders)) {
    for (const [id, files] of byId) {
      if (recordIds.has(id) || malformedIds.has(id)) continue;
      ignoredFiles.push(...files.map((f) => `data/${folder}/${path.basename(f)} (no record with id ${id})`));
    }
  }

  const checksum = createHash("sha256").update(promptText);
  for (const item of [...items].sort((a, b) => a.id - b.id))
    checksum.update(`\n${item.id}:${item.imageSha256}`);
  return {
    dir,
    records: records.length + problems.length,
    items,
    skipped,
    problems,
    ignoredFiles,
    checksum: checksum.digest("hex"),
  };
}

/** The media type and the extension an image is stored under, from its detected type. */
export const storedImageType = (type: ImageType) => IMAGE_TYPES[type];
