/**
 * `mmsafe dataset inspect`: what a folder in the official layout holds beyond the import summary — image
 * types by bytes and by extension, extensions that lie, identical records, and files that belong to no
 * record.
 */
import { open, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { detectImageType, type ImageType } from "../../core/image-type.ts";
import type { OfficialDataset } from "./layout.ts";

/** What {@link inspectDataset} found. */
export interface DatasetInspection {
  /** Runnable images per type detected from their bytes. */
  byDetectedType: Partial<Record<ImageType, number>>;
  /** Runnable images per file extension, lower-cased, as named. */
  byExtension: Record<string, number>;
  /** Runnable images whose extension names another type than their bytes hold. */
  extensionMismatches: { path: string; extension: string; detected: ImageType }[];
  /** Groups of ids (ascending, two or more) with the same sentence and the same image bytes. */
  identicalRecords: number[][];
  /** Files under `data/` that are neither `prompt.txt` nor a runnable record's image, with their size. */
  unusedFiles: { path: string; bytes: number; image: ImageType | null }[];
}

/** Extensions that name each type (`.jpg` and `.jpeg` are both JPEG). */
const EXTENSION_TYPES: Readonly<Record<string, ImageType>> = {
  jpg: "jpeg",
  jpeg: "jpeg",
  png: "png",
  webp: "webp",
  gif: "gif",
};

const increment = <K extends string>(counts: Partial<Record<K, number>>, key: K): void => {
  counts[key] = (counts[key] ?? 0) + 1;
};

/** Inspects a dataset the importer has read (its `dir` is listed again for files no record uses). */
export async function inspectDataset(dataset: OfficialDataset): Promise<DatasetInspection> {
  const byDetectedType: Partial<Record<ImageType, number>> = {};
  const byExtension: Record<string, number> = {};
  const extensionMismatches: DatasetInspection["extensionMismatches"] = [];
  const used = new Set<string>([path.join(dataset.dir, "data", "prompt.txt")]);
  const groups = new Map<string, number[]>();
  for (const item of [...dataset.items].sort((a, b) => a.id - b.id)) {
    used.add(item.imagePath);
    increment(byDetectedType, item.imageType);
    const extension = path.extname(item.imagePath).slice(1).toLowerCase();
    increment(byExtension, extension || "(none)");
    if (EXTENSION_TYPES[extension] !== item.imageType) {
      extensionMismatches.push({
        path: relativeTo(dataset.dir, item.imagePath),
        extension: extension || "(none)",
        detected: item.imageType,
      });
    }
    const key = JSON.stringify([item.sentence, item.imageSha256]);
    groups.set(key, [...(groups.get(key) ?? []), item.id]);
  }

  const unusedFiles: DatasetInspection["unusedFiles"] = [];
  const dataDir = path.join(dataset.dir, "data");
  for (const relative of (await readdir(dataDir, { recursive: true })).sort()) {
    const full = path.join(dataDir, relative);
    if (used.has(full)) continue;
    const info = await stat(full);
    if (!info.isFile()) continue;
    unusedFiles.push({
      path: relativeTo(dataset.dir, full),
      bytes: info.size,
      image: info.size === 0 ? null : detectImageType(await readHead(full)),
    });
  }

  return {
    byDetectedType,
    byExtension,
    extensionMismatches,
    identicalRecords: [...groups.values()].filter((ids) => ids.length > 1),
    unusedFiles,
  };
}

const relativeTo = (dir: string, file: string): string => path.relative(dir, file).split(path.sep).join("/");

async function readHead(file: string): Promise<Uint8Array> {
  const handle = await open(file, "r");
  try {
    const buffer = new Uint8Array(16);
    const { bytesRead } = await handle.read(buffer, 0, 16, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

const counts = (record: Record<string, number | undefined>): string =>
  Object.entries(record)
    .filter((entry): entry is [string, number] => entry[1] !== undefined)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([key, n]) => `${key} ${n.toLocaleString("en-US")}`)
    .join(", ");

/** Human-readable lines of an inspection, for `dataset inspect`. */
export function describeInspection(inspection: DatasetInspection): string[] {
  const lines = [
    `images by type (from their bytes): ${counts(inspection.byDetectedType)}`,
    `images by extension: ${counts(inspection.byExtension)}`,
  ];
  const mismatches = inspection.extensionMismatches;
  lines.push(
    mismatches.length === 0
      ? "extensions that disagree with the bytes: none"
      : `extensions that disagree with the bytes (${mismatches.length}; typed by the bytes): ` +
          mismatches.map((m) => `${m.path} holds ${m.detected.toUpperCase()}`).join(", "),
  );
  const identical = inspection.identicalRecords;
  lines.push(
    identical.length === 0
      ? "identical records (same sentence and image bytes): none"
      : `identical records (same sentence and image bytes; all kept, as the official scorer counts each): ` +
          `${identical.length} ${identical.length === 1 ? "group" : "groups"}: ${identical.map((ids) => ids.join("/")).join(", ")}`,
  );
  const unused = inspection.unusedFiles;
  lines.push(
    unused.length === 0
      ? "files no record uses: none"
      : `files no record uses (${unused.length}; not read): ` +
          unused
            .map(
              (f) =>
                `${f.path} (${f.bytes.toLocaleString("en-US")} ${f.bytes === 1 ? "byte" : "bytes"}, ${f.image === null ? "not an image" : `${f.image.toUpperCase()} image`})`,
            )
            .join(", "),
  );
  return lines;
}
