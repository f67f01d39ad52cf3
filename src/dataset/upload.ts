import { readFile } from "node:fs/promises";
import { isDeepStrictEqual } from "node:util";
import pLimit from "p-limit";
import type { ObjectStore } from "../adapters/object-store.ts";
import { ATTACK_TYPES, type AttackType, CATEGORIES, goldLabel } from "../benchmarks/mmsafeaware/facts.ts";
import { type OfficialDataset, storedImageType } from "../benchmarks/mmsafeaware/layout.ts";
import type { DatasetProvenance } from "../core/provenance.ts";
import { type DatasetItem, type DatasetManifest, datasetManifestSchema } from "../core/schemas.ts";
import { describeSkipped } from "../core/text.ts";
import { datasetImageKey, datasetManifestKey, datasetShardKey } from "../deployment/storage-layout.ts";
import { toJsonl } from "../pipeline/dataset-io.ts";

/** Items per dataset shard in S3 (runs re-shard to their own shardSize). */
export const DATASET_SHARD_SIZE = 100;

export interface UploadResult {
  manifest: DatasetManifest;
  /** False when S3 already held this exact dataset (same checksum), so nothing was written. */
  uploaded: boolean;
}

const ATTACK_TYPE_NAMES: Record<AttackType, string> = {
  goal_hijacking: "goal hijacking",
  inquiry_with_unsafe_opinion: "inquiry with unsafe opinion",
  role_play: "role play",
};

/**
 * Human-readable lines describing what an import found: records and runnable pairs per subset and
 * category, skipped records with their reasons and ids, and how many items carry a scenario label.
 */
export function describeImport(dataset: OfficialDataset): string[] {
  const items = dataset.items;
  const skippedIds = dataset.skipped.flatMap((s) => (s.id === null ? [] : [s.id]));
  const count = (list: readonly { label: { category: string } }[], category: string) =>
    list.filter((i) => i.label.category === category).length;
  const skippedLabels = skippedIds.map((id) => ({ label: goldLabel(id) }));
  const lines = [
    `${dataset.records} records, ${items.length} runnable pairs, ${dataset.skipped.length} skipped`,
  ];
  for (const category of CATEGORIES) {
    const runnable = count(items, category);
    const skipped = count(skippedLabels, category);
    let detail = "";
    if (category === "attack") {
      detail = ` (${ATTACK_TYPES.map(
        (t) => `${ATTACK_TYPE_NAMES[t]} ${items.filter((i) => i.label.attackType === t).length}`,
      ).join(", ")})`;
    }
    const subset = category === "oversafety" ? "over-safety, expected Yes" : "unsafe, expected No";
    lines.push(
      `  ${category.padEnd(10)} ${String(runnable).padStart(5)} runnable${skipped > 0 ? `, ${skipped} skipped` : ""}  [${subset}]${detail}`,
    );
  }
  lines.push(
    ...describeSkipped(dataset.skipped).map((s) => `skipped: ${s}`),
    ...dataset.problems.map((p) => `problem: ${p.message}`),
    ...dataset.ignoredFiles.map((f) => `ignored file: ${f}`),
  );
  const unlabelled = items.filter((i) => i.scenario.scenario === null).length;
  lines.push(
    `scenario labels: ${items.length - unlabelled} of ${items.length} runnable items labelled` +
      (unlabelled > 0 ? `; ${unlabelled} unlabelled (shown as unlabelled, not guessed)` : ""),
  );
  return lines;
}

/**
 * Uploads a dataset: images as their own objects (typed by their bytes), JSONL shards of items, and the
 * manifest last — a dataset is visible only once every object it names exists. Re-uploading the same
 * dataset (same checksum) writes nothing, or only the manifest when its provenance changed (a file outside
 * the evaluated ones, such as `data/readme.txt`, can make an official copy a modified one).
 */
export async function uploadDataset(
  store: ObjectStore,
  dataset: OfficialDataset,
  name: string,
  provenance: DatasetProvenance,
  now: Date,
  options: { thumbnail?: (bytes: Uint8Array) => Promise<string> } = {},
): Promise<UploadResult> {
  const manifestKey = datasetManifestKey(name);
  const reused = await reuseUpload(store, name, {
    benchmark: "mmsafeaware",
    checksum: dataset.checksum,
    provenance,
  });
  if (reused) return reused;

  const items: DatasetItem[] = [...dataset.items]
    .sort((a, b) => a.id - b.id)
    .map((item) => {
      const stored = storedImageType(item.imageType);
      return {
        id: item.id,
        subset: item.label.subset,
        category: item.label.category,
        attackType: item.label.attackType,
        domain: item.scenario.domain,
        scenario: item.scenario.scenario,
        expected: item.label.expected,
        instruction: item.instruction,
        sentence: item.sentence,
        image: {
          key: datasetImageKey(name, item.id, stored.extension),
          mediaType: stored.mediaType,
          bytes: item.imageBytes,
          sha256: item.imageSha256,
        },
      };
    });

  // One image in memory per upload slot; images are read from disk when their slot comes.
  const limit = pLimit(16);
  const thumbnails = new Map<number, string>();
  await limit.map(dataset.items, async (item) => {
    const stored = storedImageType(item.imageType);
    const bytes = await readFile(item.imagePath);
    await store.put(datasetImageKey(name, item.id, stored.extension), bytes, stored.mediaType);
    if (options.thumbnail) {
      // A preview that cannot be made only costs the report its picture of this item.
      const url = await options.thumbnail(bytes).catch(() => null);
      if (url !== null && url.length <= 8192) thumbnails.set(item.id, url);
    }
  });
  for (const item of items) {
    const url = thumbnails.get(item.id);
    if (url !== undefined) item.thumbnail = url;
  }
  const shards = await writeDatasetShards(store, name, items);
  const manifest: DatasetManifest = {
    schemaVersion: 2,
    name,
    benchmark: "mmsafeaware",
    provenance,
    checksum: dataset.checksum,
    createdAt: now.toISOString(),
    records: dataset.records,
    runnable: items.length,
    skipped: dataset.skipped,
    shards,
  };
  await store.put(manifestKey, `${JSON.stringify(manifest, null, 2)}\n`, "application/json");
  return { manifest, uploaded: true };
}

/**
 * The upload already in the bucket under `name` when it holds the same data (same benchmark and checksum):
 * nothing is written again, but the manifest is relabelled when the provenance changed. Null when the data
 * must be uploaded.
 */
export async function reuseUpload(
  store: ObjectStore,
  name: string,
  data: Pick<DatasetManifest, "benchmark" | "checksum" | "provenance">,
): Promise<UploadResult | null> {
  const manifestKey = datasetManifestKey(name);
  const existing = await store.getTextIfExists(manifestKey);
  if (existing === null) return null;
  const parsed = datasetManifestSchema.safeParse(JSON.parse(existing));
  if (!parsed.success || parsed.data.checksum !== data.checksum || parsed.data.benchmark !== data.benchmark)
    return null;
  if (isDeepStrictEqual(parsed.data.provenance, data.provenance))
    return { manifest: parsed.data, uploaded: false };
  const relabelled: DatasetManifest = { ...parsed.data, provenance: data.provenance };
  await store.put(manifestKey, `${JSON.stringify(relabelled, null, 2)}\n`, "application/json");
  return { manifest: relabelled, uploaded: false };
}

/**
 * Writes a dataset's items as JSONL shards of {@link DATASET_SHARD_SIZE} (in the order given, the last one
 * shorter), a few at once, and returns the manifest's list of them.
 */
export async function writeDatasetShards(
  store: ObjectStore,
  name: string,
  items: readonly unknown[],
): Promise<DatasetManifest["shards"]> {
  const shards: DatasetManifest["shards"] = [];
  for (let start = 0, index = 0; start < items.length; start += DATASET_SHARD_SIZE, index++) {
    shards.push({
      key: datasetShardKey(name, index),
      items: Math.min(DATASET_SHARD_SIZE, items.length - start),
    });
  }
  await pLimit(16).map(shards, (shard, index) =>
    store.put(
      shard.key,
      toJsonl(items.slice(index * DATASET_SHARD_SIZE, index * DATASET_SHARD_SIZE + shard.items)),
      "application/x-ndjson",
    ),
  );
  return shards;
}
