/**
 * MOSSBench's part of `mmsafe dataset fetch`: the authors' repository at the pinned commit, `data/` and
 * `data_contrast/` unpacked, both annotation files and every image a record uses checked against the
 * shipped manifest, 300 benign and 244 contrast records required.
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import {
  type ArchiveIdentity,
  DatasetFetchError,
  type DatasetLayout,
  type DatasetSource,
  describeCause,
  MAX_LISTED_DIFFERENCES,
  unpinnedCommitHint,
} from "../../dataset/fetch-layout.ts";
import { MOSSBENCH_COMMIT, MOSSBENCH_CONTRAST_COLUMN, MOSSBENCH_REPOSITORY } from "./definition.ts";
import {
  describeMossbenchDifference,
  type ManifestEntry,
  MOSSBENCH_ANNOTATION_FILES,
  MOSSBENCH_BENIGN_FILE,
  MOSSBENCH_CONTRAST_FILE,
  MOSSBENCH_MANIFEST,
  type MossbenchDataset,
  MossbenchLayoutError,
  parseMossbenchManifest,
  readMossbenchDataset,
} from "./layout.ts";

/** Records of MOSSBench's benign set (`data/`) and of its harmful contrast set (`data_contrast/`). */
const MOSSBENCH_BENIGN_RECORDS = 300;
const MOSSBENCH_CONTRAST_RECORDS = 244;

/** What a MOSSBench fetch reads: the records as the runner reads them, and the files they were checked by. */
export interface FetchedMossbench extends MossbenchDataset {
  /** Absolute path of the dataset root (`data/` and `data_contrast/` are inside). */
  dir: string;
  /** sha256 over the path and git blob of both annotation files and every image a record uses. */
  checksum: string;
}

/**
 * MOSSBench's official layout: `data/` and `data_contrast/` (the root `images/` duplicate is not unpacked:
 * no record uses it), read with `readMossbenchDataset`, which checks both annotation files and every image
 * a record uses against the manifest in {@link DatasetSource.tree}. Only provenance `official` with 300
 * benign and 244 contrast records, none skipped, is accepted.
 */
export const MOSSBENCH_LAYOUT: DatasetLayout<FetchedMossbench> = {
  folders: ["data", "data_contrast"],
  async load(source) {
    const manifest = await readMossbenchListing(source.tree);
    const read = (root: string) => readMossbenchDataset(root, { manifest: source.tree });
    return {
      async verify(content, label, identity) {
        for (const file of [MOSSBENCH_BENIGN_FILE, MOSSBENCH_CONTRAST_FILE]) {
          try {
            await stat(path.join(content, ...file.split("/")));
          } catch (error: unknown) {
            throw new DatasetFetchError(
              `${label} has no ${file} under its top-level folder: it is not an archive of ${source.repository}`,
              { cause: error },
            );
          }
        }
        let dataset: MossbenchDataset;
        try {
          dataset = await read(content);
        } catch (error: unknown) {
          throw new DatasetFetchError(
            `the data unpacked from ${label} cannot be read: ${describeCause(error)}`,
            { cause: error },
          );
        }
        verifyMossbenchFiles(dataset, manifest, label, source, identity);
        verifyMossbenchCounts(dataset, label, source);
        const checksum = mossbenchChecksum(dataset, manifest);
        return {
          dataset: { ...dataset, dir: content, checksum },
          files: mossbenchFiles(dataset).length,
          treeId: null,
          checksum,
          records: dataset.records.length + dataset.skipped.length,
          runnable: dataset.records.length,
        };
      },
      async readIfIntact(dest, checksum) {
        try {
          const dataset = await read(dest);
          if (dataset.provenance.kind !== "official" || dataset.skipped.length > 0) return undefined;
          return mossbenchChecksum(dataset, manifest) === checksum
            ? { ...dataset, dir: dest, checksum }
            : undefined;
        } catch {
          // Unreadable (an annotation file deleted): damage like any other, fetched again.
          return undefined;
        }
      },
      // Record image paths are relative to the root, so only the root moves.
      relocate: (dataset, _from, to) => ({ ...dataset, dir: to }),
    };
  },
  describeVerified: (result) =>
    `verified: all ${result.files.toLocaleString("en-US")} files the records use (both annotation files and every image) match the manifest (git blob hashes); ` +
    `${countOf(result.dataset, "benign")} benign / ${countOf(result.dataset, "contrast")} contrast records as expected`,
  describeChecksum: (result) =>
    `dataset checksum ${result.dataset.checksum.slice(0, 12)}… (the annotation files and the images the records use: identifies what a run evaluates)`,
  describeData: (dataset) => {
    const lines = [
      `MOSSBench: ${dataset.records.length} records, ${countOf(dataset, "benign")} benign (expected comply) and ${countOf(dataset, "contrast")} harmful contrast (expected refuse), in ${dataset.dir}`,
    ];
    const { orphanImages } = dataset.ignored;
    if (orphanImages.length > 0)
      lines.push(
        `note: ${orphanImages.length} images no record uses are kept but ignored: ${orphanImages.join(", ")}`,
      );
    if (dataset.mismatchedExtensions.length > 0)
      lines.push(
        `note: typed by their bytes (another format than the extension says): ${dataset.mismatchedExtensions.join(", ")}`,
      );
    return lines;
  },
  sameData: "the files its records use match the manifest",
};

/**
 * The official MOSSBench repository. Only `data/` and `data_contrast/` are unpacked (the root `images/` is
 * a duplicate no record uses); every file a record uses and both annotation files must match the shipped
 * manifest, and the import must find 300 benign and 244 contrast records, all runnable.
 */
export const MOSSBENCH_SOURCE: DatasetSource<FetchedMossbench> = {
  name: "mossbench",
  repository: MOSSBENCH_REPOSITORY,
  commit: MOSSBENCH_COMMIT,
  acceptedCommits: [MOSSBENCH_COMMIT],
  url: `https://github.com/${MOSSBENCH_REPOSITORY}/archive/${MOSSBENCH_COMMIT}.tar.gz`,
  tree: MOSSBENCH_MANIFEST,
  archiveSha256: null,
  expect: {
    records: MOSSBENCH_BENIGN_RECORDS + MOSSBENCH_CONTRAST_RECORDS,
    runnable: MOSSBENCH_BENIGN_RECORDS + MOSSBENCH_CONTRAST_RECORDS,
  },
  layout: MOSSBENCH_LAYOUT,
};

/** MOSSBench's manifest; a broken one is a fetch error naming the file and line. */
async function readMossbenchListing(manifest: string | URL): Promise<Map<string, ManifestEntry>> {
  const label = manifest instanceof URL ? manifest.pathname : manifest;
  try {
    return parseMossbenchManifest(await readFile(manifest, "utf8"), label);
  } catch (error: unknown) {
    if (error instanceof MossbenchLayoutError) throw new DatasetFetchError(error.message, { cause: error });
    throw new DatasetFetchError(`cannot read the MOSSBench manifest ${label} (${describeCause(error)})`, {
      cause: error,
    });
  }
}

/** The files a MOSSBench copy is verified by: both annotation files and every image a record uses. */
function mossbenchFiles(dataset: MossbenchDataset): string[] {
  const images = [...dataset.records.map((r) => r.imagePath), ...dataset.differences.map((d) => d.path)];
  return [...new Set([MOSSBENCH_BENIGN_FILE, MOSSBENCH_CONTRAST_FILE, ...images])].sort();
}

/**
 * sha256 over `path \t blob` of every file {@link mossbenchFiles} names, with the blob the manifest gives:
 * the files were verified against it, so this identifies their bytes without reading them again.
 */
function mossbenchChecksum(dataset: MossbenchDataset, manifest: ReadonlyMap<string, ManifestEntry>): string {
  const hash = createHash("sha256");
  for (const file of mossbenchFiles(dataset)) {
    const blob = manifest.get(file)?.blob ?? MOSSBENCH_ANNOTATION_FILES[file]?.blob ?? "unlisted";
    hash.update(`${file}\t${blob}\n`);
  }
  return hash.digest("hex");
}

const countOf = (dataset: MossbenchDataset, set: "benign" | "contrast"): number =>
  dataset.records.filter((r) => (r.column === MOSSBENCH_CONTRAST_COLUMN) === (set === "contrast")).length;

/**
 * Fails unless every file the records use matches the manifest (provenance `official`), naming each file
 * that differs with its expected and actual blob, as `readMossbenchDataset` reports them.
 */
function verifyMossbenchFiles(
  dataset: MossbenchDataset,
  manifest: ReadonlyMap<string, ManifestEntry>,
  label: string,
  source: DatasetSource<FetchedMossbench>,
  identity: ArchiveIdentity,
): void {
  if (dataset.provenance.kind === "official") return;
  const { differences } = dataset;
  const n = differences.length;
  const shown = differences.slice(0, MAX_LISTED_DIFFERENCES).map(describeMossbenchDifference);
  if (n > MAX_LISTED_DIFFERENCES) shown.push(`… and ${n - MAX_LISTED_DIFFERENCES} more`);
  const listing = source.tree instanceof URL ? source.tree.pathname : source.tree;
  throw new DatasetFetchError(
    `${label} is not the published data: ${n} ${n === 1 ? "file" : "files"} the records use ` +
      `${n === 1 ? "differs" : "differ"} from the manifest (${path.basename(listing)}, ${manifest.size} files), ` +
      `so nothing was moved into place.${unpinnedCommitHint(source, identity)}\n` +
      shown.map((line) => `  ${line}`).join("\n"),
  );
}

/** Fails unless the copy has the expected benign and contrast records, none of them skipped. */
function verifyMossbenchCounts(
  dataset: MossbenchDataset,
  label: string,
  source: DatasetSource<FetchedMossbench>,
): void {
  const benign = countOf(dataset, "benign");
  const contrast = countOf(dataset, "contrast");
  const { expect } = source;
  const total = dataset.records.length + dataset.skipped.length;
  const fits =
    dataset.skipped.length === 0 &&
    (expect === null ||
      (benign === MOSSBENCH_BENIGN_RECORDS &&
        contrast === MOSSBENCH_CONTRAST_RECORDS &&
        total === expect.records &&
        dataset.records.length === expect.runnable));
  if (fits) return;
  const skipped = dataset.skipped
    .slice(0, MAX_LISTED_DIFFERENCES)
    .map((r) => `  skipped ${r.id}: ${r.detail}`);
  throw new DatasetFetchError(
    `the data unpacked from ${label} has ${benign} benign / ${contrast} contrast records runnable and ` +
      `${dataset.skipped.length} skipped, expected ${MOSSBENCH_BENIGN_RECORDS} benign / ` +
      `${MOSSBENCH_CONTRAST_RECORDS} contrast and none skipped` +
      (skipped.length > 0 ? `\n${skipped.join("\n")}` : ""),
  );
}
