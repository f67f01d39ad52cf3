/**
 * Uploads a plug-in benchmark's dataset (MOSSBench, VLGuard) the way `uploadDataset` (upload.ts) uploads
 * MMSafeAware's: images as their own objects typed by their bytes, JSONL shards of benchmark items, the
 * manifest last, and nothing written again for a dataset S3 already holds.
 */
import { createHash } from "node:crypto";
import pLimit from "p-limit";
import type { ObjectStore } from "../adapters/object-store.ts";
import { IMAGE_TYPES } from "../core/image-type.ts";
import {
  type BenchmarkItem,
  benchmarkItemSchema,
  type DatasetManifest,
  datasetManifestSchema,
} from "../core/schemas.ts";
import { datasetImageKey, datasetManifestKey } from "../deployment/storage-layout.ts";
import type { ImportedBenchmark, ImportedRecord } from "./benchmark-import.ts";
import { reuseUpload, type UploadResult, writeDatasetShards } from "./upload.ts";

/** Distinct images read and written at once (one image in memory per slot). */
const UPLOAD_CONCURRENCY = 8;

/** An item cannot be stored (it would not parse back), or an image changed after it was imported. */
export class BenchmarkUploadError extends Error {
  override readonly name = "BenchmarkUploadError";
}

const extensionOf = (mediaType: ImportedRecord["mediaType"]): string => {
  const found = Object.values(IMAGE_TYPES).find((t) => t.mediaType === mediaType);
  if (found === undefined) throw new BenchmarkUploadError(`no image type has the media type ${mediaType}`);
  return found.extension;
};

const thumbnailSchema = benchmarkItemSchema.shape.thumbnail;

/**
 * Uploads an imported benchmark under `datasets/<name>/`: item ids 1…n in record order, each image under
 * `images/<id>.<extension of its detected type>` (records sharing an image, such as VLGuard's two items of a
 * safe image, are read once and stored under each id), shards of {@link DATASET_SHARD_SIZE} items, a
 * thumbnail per item when `options.thumbnail` makes one (≤ 8 KB; one that fails only costs the report its
 * picture), and the manifest last, naming the benchmark, with `records` counting the skipped ones too.
 *
 * Every item is checked against the shard schema before anything is written. Re-uploading the same dataset
 * (same checksum) writes nothing, or only the manifest when its provenance changed.
 *
 * @throws BenchmarkUploadError naming the record whose item is invalid, or whose image no longer has the
 *   bytes it was imported with
 */
export async function uploadBenchmarkDataset(
  store: ObjectStore,
  imported: ImportedBenchmark,
  name: string,
  now: Date,
  options: { thumbnail?: (bytes: Uint8Array) => Promise<string> } = {},
): Promise<UploadResult> {
  const manifestKey = datasetManifestKey(name);
  const reused = await reuseUpload(store, name, imported);
  if (reused) return reused;

  const items: BenchmarkItem[] = imported.records.map((record, index) => {
    const id = index + 1;
    const candidate: BenchmarkItem = {
      benchmark: imported.benchmark,
      id,
      recordId: record.id,
      category: record.column,
      expected: record.expected,
      text: record.text,
      groups: { ...record.groups },
      image: {
        key: datasetImageKey(name, id, extensionOf(record.mediaType)),
        mediaType: record.mediaType,
        bytes: record.imageBytes,
        sha256: record.imageSha256,
      },
    };
    const parsed = benchmarkItemSchema.safeParse(candidate);
    if (!parsed.success)
      throw new BenchmarkUploadError(
        `${imported.title} record ${JSON.stringify(record.id)} (item ${id}) cannot be stored: ${parsed.error.issues
          .map((i) => `${i.path.join(".") || "item"}: ${i.message}`)
          .join("; ")}`,
      );
    return parsed.data;
  });

  // Items by image, so that an image shared by several records is read (and previewed) once.
  const byImage = new Map<string, { record: ImportedRecord; items: BenchmarkItem[] }>();
  imported.records.forEach((record, index) => {
    const item = items[index] as BenchmarkItem;
    const group = byImage.get(record.imagePath);
    if (group) group.items.push(item);
    else byImage.set(record.imagePath, { record, items: [item] });
  });

  const limit = pLimit(UPLOAD_CONCURRENCY);
  await limit.map([...byImage.values()], async ({ record, items: sharing }) => {
    const bytes = await imported.readImage(record);
    const actual = createHash("sha256").update(bytes).digest("hex");
    if (actual !== record.imageSha256)
      throw new BenchmarkUploadError(
        `${imported.title} record ${JSON.stringify(record.id)}: image ${record.imagePath} changed since it was imported (sha256 ${actual.slice(0, 12)}, imported ${record.imageSha256.slice(0, 12)}); import the folder again`,
      );
    for (const item of sharing) await store.put(item.image.key, bytes, item.image.mediaType);
    if (options.thumbnail) {
      const url = await options.thumbnail(bytes).catch(() => null);
      if (url !== null && thumbnailSchema.safeParse(url).success)
        for (const item of sharing) item.thumbnail = url;
    }
  });

  const shards = await writeDatasetShards(store, name, items);
  const manifest = datasetManifestSchema.parse({
    schemaVersion: 2,
    name,
    benchmark: imported.benchmark,
    provenance: imported.provenance,
    checksum: imported.checksum,
    createdAt: now.toISOString(),
    records: imported.records.length + imported.skipped.length,
    runnable: items.length,
    skipped: imported.skipped,
    shards,
    ...(imported.custom ? { custom: imported.custom } : {}),
  } satisfies DatasetManifest);
  await store.put(manifestKey, `${JSON.stringify(manifest, null, 2)}\n`, "application/json");
  return { manifest, uploaded: true };
}
