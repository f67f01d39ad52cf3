/**
 * What a dataset folder is: the official data (verified file by file against the published tree), a
 * modified copy of it, or a sample that `mmsafe dataset sample` wrote (it leaves a marker file).
 */
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import type { FileHashCache } from "../benchmarks/mmsafeaware/layout.ts";
import { type DatasetProvenance, MAX_PROVENANCE_EXAMPLES } from "../core/provenance.ts";
import {
  compareWithPublishedTree,
  differenceExamples,
  type PublishedTree,
  readPublishedTree,
  type TreeComparison,
  treeMatches,
} from "./published-tree.ts";

/**
 * `git ls-tree -r` of `data/` in the official MMSafeAware repository (tree 472df95…, the same at commits
 * 500b595… and 07c0de2a…), with every file's blob sha1 and size.
 */
export const MMSAFEAWARE_PUBLISHED_TREE = new URL(
  "../../datasets/mmsafeaware/data-tree-500b595.tsv",
  import.meta.url,
);

/** The file `mmsafe dataset sample` writes at a sample's root (beside `data/`, so it is not part of it). */
export const SAMPLE_MARKER_FILE = "mmsafe-sample.json";

const sampleMarkerSchema = z
  .object({
    generator: z.literal("mmsafe dataset sample"),
    size: z.string().max(20),
    seed: z.number().int(),
    note: z.string().optional(),
  })
  .strict();

/** The content of a sample marker. */
export type SampleMarker = z.infer<typeof sampleMarkerSchema>;

/** The note of a marker written for `benchmark` ("… not the MMSafeAware benchmark."). */
export const sampleMarkerNote = (benchmark: string): string =>
  `Synthetic sentences and images in the official layout; not the ${benchmark} benchmark.`;

/** Options of {@link writeSampleMarker}. */
export interface SampleMarkerOptions {
  /** The benchmark the sample imitates, named in the default note (default `MMSafeAware`). */
  benchmark?: string;
  /** The marker's note in full; takes precedence over `benchmark`. */
  note?: string;
}

/**
 * Writes the marker that identifies a generated sample. Without options the note names MMSafeAware, as
 * it always has; `benchmark` names another benchmark, `note` replaces the note.
 */
export async function writeSampleMarker(
  dir: string,
  size: string,
  seed: number,
  options: SampleMarkerOptions = {},
): Promise<void> {
  const marker: SampleMarker = {
    generator: "mmsafe dataset sample",
    size,
    seed,
    note: options.note ?? sampleMarkerNote(options.benchmark ?? "MMSafeAware"),
  };
  await writeFile(path.join(dir, SAMPLE_MARKER_FILE), `${JSON.stringify(marker, null, 2)}\n`, "utf8");
}

/**
 * The sample marker in a folder ({@link SAMPLE_MARKER_FILE} directly inside `dir`), or undefined when it
 * has none, or one that is not JSON or not a marker as {@link writeSampleMarker} writes it.
 */
export async function readSampleMarker(dir: string): Promise<SampleMarker | undefined> {
  try {
    const parsed = sampleMarkerSchema.safeParse(
      JSON.parse(await readFile(path.join(dir, SAMPLE_MARKER_FILE), "utf8")),
    );
    return parsed.success ? parsed.data : undefined;
  } catch {
    // No marker (or not JSON): not a generated sample.
    return undefined;
  }
}

let shippedTree: Promise<PublishedTree> | undefined;
/** The shipped MMSafeAware tree listing, read once per process. */
export function mmsafeawarePublishedTree(): Promise<PublishedTree> {
  shippedTree ??= readPublishedTree(MMSAFEAWARE_PUBLISHED_TREE);
  return shippedTree;
}

/** What {@link establishProvenance} found. */
export interface ProvenanceFinding {
  provenance: DatasetProvenance;
  /** The file-by-file comparison; undefined for a generated sample (nothing to compare). */
  comparison?: TreeComparison;
}

/** The label of a comparison: official when identical, else a modified copy with the first few files named. */
export function provenanceOfComparison(tree: PublishedTree, comparison: TreeComparison): DatasetProvenance {
  const treeName = tree.treeId ?? path.basename(tree.source);
  if (treeMatches(comparison)) return { kind: "official", tree: treeName, files: comparison.expected };
  return {
    kind: "modified",
    tree: treeName,
    files: comparison.expected,
    changed: comparison.changed.length,
    missing: comparison.missing.length,
    added: comparison.extra.length + comparison.notFiles.length,
    examples: differenceExamples(comparison, MAX_PROVENANCE_EXAMPLES).map((e) =>
      e.length > 200 ? `${e.slice(0, 199)}…` : e,
    ),
  };
}

/**
 * Labels a dataset folder. A folder with the sample marker is a generated sample; any other is compared
 * file by file with the published tree (hashes cached by size and mtime in `cache`).
 */
export async function establishProvenance(
  dir: string,
  options: { tree?: PublishedTree; cache?: FileHashCache } = {},
): Promise<ProvenanceFinding> {
  const marker = await readSampleMarker(dir);
  if (marker) return { provenance: { kind: "sample", size: marker.size, seed: marker.seed } };
  const tree = options.tree ?? (await mmsafeawarePublishedTree());
  const comparison = await compareWithPublishedTree(dir, tree, { cache: options.cache });
  return { provenance: provenanceOfComparison(tree, comparison), comparison };
}
