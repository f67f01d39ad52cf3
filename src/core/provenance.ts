import { z } from "zod";

/** Longest file phrase kept in a provenance record (paths come from the user's folder). */
const MAX_EXAMPLE = 200;
/** Differing files named in a provenance record; the counts say how many there are in all. */
export const MAX_PROVENANCE_EXAMPLES = 5;

/**
 * What a dataset folder is, as established when it was read:
 * - `official`: every file under `data/` is identical to the published tree (git blob by git blob);
 * - `modified`: some files differ from the published tree (counts, and the first few named);
 * - `own`: your own dataset (a JSONL file and its images), named by its file and hash;
 * - `sample`: written by `mmsafe dataset sample` (a marker file says so) and not the published data.
 */
export const datasetProvenanceSchema = z.discriminatedUnion("kind", [
  z
    .object({
      kind: z.literal("official"),
      /** git tree id of the published `data/` (or the listing's name when it gives none). */
      tree: z.string().max(100),
      files: z.number().int().min(0),
      /**
       * Files the publishers give no hashes for (VLGuard's gated images), checked only to be present and
       * readable; absent when every file was verified byte by byte.
       */
      unhashed: z.number().int().min(0).optional(),
    })
    .strict(),
  z
    .object({
      kind: z.literal("modified"),
      tree: z.string().max(100),
      /** Files the published tree lists. */
      files: z.number().int().min(0),
      changed: z.number().int().min(0),
      missing: z.number().int().min(0),
      /** Files (or links) under `data/` that the published tree does not list. */
      added: z.number().int().min(0),
      examples: z.array(z.string().max(MAX_EXAMPLE)).max(MAX_PROVENANCE_EXAMPLES),
    })
    .strict(),
  z
    .object({
      /** Your own dataset (JSONL and images): nothing to verify it against, so its file and hash say what it is. */
      kind: z.literal("own"),
      /** The JSONL file's base name. */
      file: z.string().max(MAX_EXAMPLE),
      /** sha256 of the JSONL file's bytes. */
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      /** Distinct images the runnable records use. */
      images: z.number().int().min(0),
    })
    .strict(),
  z
    .object({
      kind: z.literal("sample"),
      /** `small` or `full`, as the marker records it. */
      size: z.string().max(20),
      seed: z.number().int(),
    })
    .strict(),
]);
export type DatasetProvenance = z.infer<typeof datasetProvenanceSchema>;

/** The kinds, for places that only need to tell them apart. */
export type ProvenanceKind = DatasetProvenance["kind"];

const shortTree = (tree: string): string => (/^[0-9a-f]{40}$/.test(tree) ? tree.slice(0, 7) : tree);

/** Files that differ from the published tree, of every kind (0 unless `modified`). */
export const provenanceDifferences = (p: DatasetProvenance): number =>
  p.kind === "modified" ? p.changed + p.missing + p.added : 0;

/**
 * One phrase for banners and reports, e.g. "official MMSafeAware data (verified against the published
 * tree 472df95, 1,458 files)", "modified copy (3 files differ from the published tree: …)", "generated
 * sample, not the real benchmark". `benchmarkTitle` names the benchmark in the official phrase ("official
 * VLGuard data …"); the other two phrases do not name it.
 */
export function describeProvenance(p: DatasetProvenance, benchmarkTitle = "MMSafeAware"): string {
  switch (p.kind) {
    case "official": {
      const unhashed =
        p.unhashed === undefined
          ? ""
          : `; ${p.unhashed.toLocaleString("en-US")} images present and readable, which the publishers give no hashes for`;
      return `official ${benchmarkTitle} data (verified against the published tree ${shortTree(p.tree)}, ${p.files.toLocaleString("en-US")} ${p.files === 1 ? "file" : "files"}${unhashed})`;
    }
    case "modified": {
      const n = provenanceDifferences(p);
      const parts = [
        p.changed > 0 ? `${p.changed} changed` : "",
        p.missing > 0 ? `${p.missing} missing` : "",
        p.added > 0 ? `${p.added} added` : "",
      ].filter((s) => s !== "");
      const named =
        p.examples.length > 0 ? `: ${p.examples.join(", ")}${n > p.examples.length ? ", …" : ""}` : "";
      return `modified copy, not the official data (${n} ${n === 1 ? "file differs" : "files differ"} from the published tree ${shortTree(p.tree)}, ${parts.join(", ")}${named})`;
    }
    case "own":
      return `your own dataset (${p.file}, sha256 ${p.sha256.slice(0, 12)}, ${p.images.toLocaleString("en-US")} ${p.images === 1 ? "image" : "images"})`;
    case "sample":
      return "generated sample, not the real benchmark";
  }
}

/** Whether a run on this data can be compared with the paper's published numbers. */
export const isOfficial = (p: DatasetProvenance): boolean => p.kind === "official";
