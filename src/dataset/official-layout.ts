import { createHash } from "node:crypto";
import { open, readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { goldLabel, officialImageFolder } from "../core/benchmark.ts";
import { detectImageType, IMAGE_TYPES, type ImageType } from "../core/image-type.ts";
import { parsePromptFile, type RecordProblem } from "../core/prompt-file.ts";
import { parseScenarioTable, type ScenarioLabel } from "../core/scenarios.ts";
import type { SkippedRecord } from "../core/schemas.ts";

/** Images larger than this are refused (OpenAI-compatible endpoints reject them anyway). */
export const MAX_IMAGE_BYTES = 20 * 1024 * 1024;

/** The scenario labels shipped with mmsafe (recovered from the benchmark repository's earlier layout). */
export const SHIPPED_SCENARIOS = new URL("../../datasets/mmsafeaware/scenarios.csv", import.meta.url);

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

/** Image hashes by absolute path, valid while size and mtime are unchanged (as git's index does). */
export type ImageHashCache = Map<string, { size: number; mtimeMs: number; sha256: string }>;

async function sha256File(
  file: string,
  size: number,
  mtimeMs: number,
  cache: ImageHashCache | undefined,
): Promise<string> {
  const cached = cache?.get(file);
  if (cached && cached.size === size && cached.mtimeMs === mtimeMs) return cached.sha256;
  const sha256 = createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
  cache?.set(file, { size, mtimeMs, sha256 });
  return sha256;
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
 * that cannot run — no image, an unreadable or oversized image, a malformed record — are returned as
 * skipped with the reason; nothing is dropped silently.
 */
export async function readOfficialDataset(
  dir: string,
  options: { scenarioCsv?: string; hashCache?: ImageHashCache } = {},
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
  const items: LocalItem[] = [];
  const recordIds = new Set(records.map((r) => r.id));
  for (const record of records) {
    const expected = officialImageFolder(record.id);
    const other = expected === "images" ? "images2" : "images";
    const candidates = folders[expected].get(record.id) ?? folders[other].get(record.id) ?? [];
    const skip = (reason: string, detail: string) => skipped.push({ id: record.id, reason, detail });
    if (candidates.length === 0) {
      skip("have no image", `no data/${expected}/${record.id}.<ext> file`);
      continue;
    }
    if (candidates.length > 1) {
      skip(
        "have several images",
        `ambiguous: ${candidates.map((c) => path.relative(dir, c)).join(", ")}; keep one`,
      );
      continue;
    }
    const imagePath = candidates[0] as string;
    const relative = path.relative(dir, imagePath);
    const { size, mtimeMs } = await stat(imagePath);
    if (size === 0) {
      skip("have an empty image file", `${relative} is 0 bytes`);
      continue;
    }
    if (size > MAX_IMAGE_BYTES) {
      skip("have an oversized image", `${relative} is ${(size / 1024 / 1024).toFixed(1)} MB (limit 20 MB)`);
      continue;
    }
    const imageType = detectImageType(await readHead(imagePath, 16));
    if (!imageType) {
      skip("have an image that is not JPEG, PNG, WebP or GIF", `${relative}: unrecognised bytes`);
      continue;
    }
    items.push({
      id: record.id,
      instruction: record.instruction,
      sentence: record.sentence,
      label: goldLabel(record.id),
      scenario: scenarios.get(record.id) ?? { domain: null, scenario: null },
      imagePath,
      imageType,
      imageBytes: size,
      imageSha256: await sha256File(imagePath, size, mtimeMs, options.hashCache),
    });
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
