import pLimit from "p-limit";
import { z } from "zod";
import type { ObjectStore } from "../adapters/object-store.ts";
import {
  benchmarkItemSchema,
  type DatasetItem,
  type DatasetManifest,
  datasetItemSchema,
  datasetManifestSchema,
  isBenchmarkItem,
  type ShardItem,
  type ShardRef,
  shardRefSchema,
} from "../core/schemas.ts";
import { datasetManifestKey, runShardKey } from "../deployment/storage-layout.ts";
import { DatasetNotFoundError, InvalidShardError } from "./errors.ts";

/** Reads and validates `datasets/<name>/dataset.json`. */
export async function readDatasetManifest(store: ObjectStore, dataset: string): Promise<DatasetManifest> {
  const key = datasetManifestKey(dataset);
  const text = await store.getTextIfExists(key);
  if (text === null) {
    throw new DatasetNotFoundError(
      `dataset "${dataset}" not found: s3://${store.bucket}/${key} does not exist; upload it with \`mmsafe dataset upload\``,
    );
  }
  const parsed = datasetManifestSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new DatasetNotFoundError(
      `s3://${store.bucket}/${key} is not a valid dataset manifest (an upload by an older mmsafe? upload it again ` +
        `with \`mmsafe dataset upload\`): ${parsed.error.message}`,
    );
  return parsed.data;
}

/**
 * Parses a shard (JSONL of items: MMSafeAware's, or a plug-in benchmark's, which name their benchmark); a bad
 * line names the shard and line.
 */
export function parseShard(text: string, key: string): ShardItem[] {
  const items: ShardItem[] = [];
  text.split("\n").forEach((line, index) => {
    if (line.trim() === "") return;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (error: unknown) {
      throw new InvalidShardError(`${key} line ${index + 1}: not valid JSON`, { cause: error });
    }
    const schema =
      typeof json === "object" && json !== null && "benchmark" in json
        ? benchmarkItemSchema
        : datasetItemSchema;
    const parsed = schema.safeParse(json);
    if (!parsed.success)
      throw new InvalidShardError(
        `${key} line ${index + 1}: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      );
    items.push(parsed.data);
  });
  return items;
}

/** Parses a shard that must hold MMSafeAware items only (its scoring and report read their fields). */
export function parseMmsafeawareShard(text: string, key: string): DatasetItem[] {
  return parseShard(text, key).map((item, index) => {
    if (isBenchmarkItem(item))
      throw new InvalidShardError(
        `${key} item ${index + 1}: a ${item.benchmark} item where MMSafeAware items belong`,
      );
    return item;
  });
}

export const toJsonl = (rows: readonly unknown[]): string =>
  rows.map((r) => JSON.stringify(r)).join("\n") + (rows.length ? "\n" : "");

/** Parses a run's shard manifest (what Plan wrote for the Distributed Map's ItemReader). */
export function parseShardManifest(text: string, key: string): ShardRef[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error: unknown) {
    throw new InvalidShardError(`${key}: not valid JSON`, { cause: error });
  }
  const parsed = z.array(shardRefSchema).safeParse(json);
  if (!parsed.success) throw new InvalidShardError(`${key}: not a shard manifest: ${parsed.error.message}`);
  return parsed.data;
}

/**
 * A run's planned items, from its shards, parsed by `parse` (MMSafeAware's or any benchmark's), in id order.
 * A shard object that is gone (a failure the run tolerated) leaves its items out rather than failing.
 */
export async function readRunShards<T extends { id: number }>(
  store: ObjectStore,
  runId: string,
  shards: number,
  parse: (text: string, key: string) => T[],
): Promise<T[]> {
  const keys = Array.from({ length: shards }, (_, i) => runShardKey(runId, i));
  const texts = await pLimit(16).map(keys, (key) => store.getTextIfExists(key));
  return keys.flatMap((key, i) => parse(texts[i] ?? "", key)).sort((a, b) => a.id - b.id);
}
