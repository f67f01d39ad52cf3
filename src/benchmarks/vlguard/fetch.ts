/**
 * VLGuard's part of `mmsafe dataset fetch`. The repository holds the annotations only: its `data/` (three
 * JSON files, `test.json` among them) is unpacked and compared file by file with the shipped `git ls-tree
 * -r` listing. The images are in the gated `test.zip` of the Hugging Face dataset, which the user
 * downloads: given with `--images` (the zip, or the `test/` folder unzipping it gives), every image
 * `test.json` names must be in it and readable before it is copied in beside `data/`, as `test.zip` or
 * `test/`, where the runner reads it. Without it the fetch places the annotations and says what to do.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import {
  DatasetFetchError,
  type DatasetLayout,
  type DatasetSource,
  describeCause,
  findFirstEntry,
  MAX_LISTED_DIFFERENCES,
  readTreeListing,
  verifyTree,
} from "../../dataset/fetch-layout.ts";
import { compareWithPublishedTree, type PublishedTree, treeMatches } from "../../dataset/published-tree.ts";
import { VLGUARD_COLUMNS, VLGUARD_COMMIT, VLGUARD_REPOSITORY } from "./definition.ts";
import {
  readVlguardAnnotations,
  readVlguardDataset,
  VLGUARD_IMAGE_ENTRIES,
  type VlguardAnnotations,
  VlguardLayoutError,
} from "./layout.ts";

/** The shipped listing of `data/` at the pinned commit. */
export const VLGUARD_PUBLISHED_TREE = new URL(
  "../../../datasets/vlguard/data-tree-a2f85c9.tsv",
  import.meta.url,
);

/** Where the annotations are in a fetched copy (the repository's own layout). */
export const VLGUARD_FETCHED_TEST_JSON = "data/test.json";

/** Annotation records, and the items they give, of the published `test.json`. */
const VLGUARD_RECORDS = 1000;
const VLGUARD_ITEMS = 1558;

/** What a VLGuard fetch holds: the annotations, and the images when they have been supplied. */
export interface FetchedVlguard {
  /** Absolute path of the copy (`data/test.json` inside; the images beside `data/`). */
  dir: string;
  /** Absolute path of `test.json`. */
  testJson: string;
  /** sha256 of `test.json` (the published file's: a2f85c9 `data/test.json`). */
  checksum: string;
  annotations: VlguardAnnotations;
  /** The images, verified against `test.json`; null until they are supplied. */
  images: { kind: "zip" | "folder"; path: string; count: number } | null;
}

const GET_IMAGES = `request access to the Hugging Face dataset ${VLGUARD_REPOSITORY} and download test.zip`;

/**
 * VLGuard's official layout: `data/` compared with the published tree, `test.json` read with the runner's
 * importer (1,000 records, 1,558 items, none skipped); the images, when supplied, read with it too.
 */
export const VLGUARD_LAYOUT: DatasetLayout<FetchedVlguard> = {
  folders: ["data"],
  supplied: {
    option: "--images",
    names: VLGUARD_IMAGE_ENTRIES,
    nameFor: (isDirectory) => (isDirectory ? "test" : "test.zip"),
  },
  async load(source) {
    const tree = await readTreeListing(source);
    return {
      async verify(content, label, identity, supplied) {
        const files = await verifyTree(content, tree, label, source, identity);
        const dataset = await readAnnotations(content, label, source);
        const images = supplied === undefined ? null : await verifyImages(dataset, supplied);
        return {
          dataset: { ...dataset, images },
          files,
          treeId: tree.treeId,
          checksum: dataset.checksum,
          records: dataset.annotations.records,
          runnable: images === null ? 0 : itemCount(dataset.annotations),
        };
      },
      readIfIntact: (dest, checksum) => readIfIntact(dest, checksum, tree, source),
      // The images are found in the destination again once they are in place (see readIfIntact).
      relocate: (dataset, _from, to) => ({
        ...dataset,
        dir: to,
        testJson: path.join(to, ...VLGUARD_FETCHED_TEST_JSON.split("/")),
        images: null,
      }),
    };
  },
  describeVerified: (result) => {
    const { annotations, images } = result.dataset;
    return (
      `verified: all ${result.files} files under data/ match the published tree (git blob hashes); ` +
      `test.json has ${annotations.records.toLocaleString("en-US")} records / ${itemCount(annotations).toLocaleString("en-US")} items as expected` +
      (images === null
        ? ""
        : `; all ${images.count.toLocaleString("en-US")} images it names are in ${images.path} and readable`)
    );
  },
  describeChecksum: (result) =>
    `dataset checksum ${result.dataset.checksum.slice(0, 12)}… (test.json's sha256; the images are checked at every import)`,
  describeData: (dataset) => {
    const { annotations, images } = dataset;
    const columns = Object.values(VLGUARD_COLUMNS)
      .map((column) => `${column} ${annotations.items[column] ?? 0}`)
      .join(", ");
    const lines = [
      `VLGuard test set: ${annotations.records.toLocaleString("en-US")} records give ${itemCount(annotations).toLocaleString("en-US")} items (${columns}); annotations in ${dataset.testJson}`,
    ];
    if (images !== null) {
      lines.push(
        `images: ${images.path} (${images.count.toLocaleString("en-US")} images, ${images.kind === "zip" ? "read from the archive, nothing extracted" : "a folder"})`,
      );
    } else {
      lines.push(
        `images: not here yet. They are not in the repository: ${GET_IMAGES}, then run ` +
          `\`mmsafe dataset fetch vlguard --images <path to test.zip>\` (or put test.zip, or the test/ folder ` +
          `it unzips to, into ${dataset.dir}). Until then a run of --benchmark vlguard stops and says so.`,
      );
    }
    return lines;
  },
  sameData: "its data/ is identical to the published tree",
};

/**
 * The official VLGuard repository. Its `data/` holds `test.json`, `train.json` and the GPT-4V reference
 * answers; all three are checked against the shipped listing. The images come from the gated archive.
 */
export const VLGUARD_SOURCE: DatasetSource<FetchedVlguard> = {
  name: "vlguard",
  repository: VLGUARD_REPOSITORY,
  commit: VLGUARD_COMMIT,
  acceptedCommits: [VLGUARD_COMMIT],
  url: `https://github.com/${VLGUARD_REPOSITORY}/archive/${VLGUARD_COMMIT}.tar.gz`,
  tree: VLGUARD_PUBLISHED_TREE,
  archiveSha256: null,
  expect: { records: VLGUARD_RECORDS, runnable: VLGUARD_ITEMS },
  layout: VLGUARD_LAYOUT,
};

const itemCount = (annotations: VlguardAnnotations): number =>
  Object.values(annotations.items).reduce((sum, n) => sum + n, 0);

/** The copy's `test.json`, read without images and checked against the catalogue's counts. */
async function readAnnotations(
  dir: string,
  label: string,
  source: DatasetSource<FetchedVlguard>,
): Promise<Omit<FetchedVlguard, "images">> {
  const testJson = path.join(dir, ...VLGUARD_FETCHED_TEST_JSON.split("/"));
  let bytes: Buffer;
  let annotations: VlguardAnnotations;
  try {
    bytes = await readFile(testJson);
    annotations = await readVlguardAnnotations(testJson);
  } catch (error: unknown) {
    throw new DatasetFetchError(`the data unpacked from ${label} cannot be read: ${describeCause(error)}`, {
      cause: error,
    });
  }
  const items = itemCount(annotations);
  const { expect } = source;
  if (
    annotations.skipped.length > 0 ||
    (expect !== null && (annotations.records !== expect.records || items !== expect.runnable))
  ) {
    const skipped = annotations.skipped.slice(0, MAX_LISTED_DIFFERENCES).map((r) => `  ${r.detail}`);
    throw new DatasetFetchError(
      `the test.json unpacked from ${label} has ${annotations.records} records / ${items} items and ` +
        `${annotations.skipped.length} unreadable records` +
        (expect === null
          ? ""
          : `, expected ${expect.records} records / ${expect.runnable} items and none unreadable`) +
        (skipped.length > 0 ? `\n${skipped.join("\n")}` : ""),
    );
  }
  return { dir, testJson, checksum: createHash("sha256").update(bytes).digest("hex"), annotations };
}

/**
 * Reads the images (a zip or a folder) with the runner's importer: every image `test.json` names must be
 * there and readable, else the error names the first ones that are not and nothing is moved into place.
 */
async function verifyImages(
  dataset: Omit<FetchedVlguard, "images">,
  images: string,
): Promise<NonNullable<FetchedVlguard["images"]>> {
  let read: Awaited<ReturnType<typeof readVlguardDataset>>;
  try {
    read = await readVlguardDataset(dataset.testJson, images);
  } catch (error: unknown) {
    if (error instanceof VlguardLayoutError)
      throw new DatasetFetchError(`the images ${images} cannot be read: ${error.message}`, { cause: error });
    throw error;
  }
  await read.close();
  const { skipped } = read;
  if (skipped.length > 0) {
    const shown = skipped.slice(0, MAX_LISTED_DIFFERENCES).map((r) => `  ${r.id}: ${r.detail}`);
    if (skipped.length > MAX_LISTED_DIFFERENCES)
      shown.push(`  … and ${skipped.length - MAX_LISTED_DIFFERENCES} more`);
    throw new DatasetFetchError(
      `${images} does not hold every image test.json names: ${skipped.length} of ${itemCount(dataset.annotations)} ` +
        `items cannot be run, so nothing was moved into place. Give the test.zip of the Hugging Face dataset ` +
        `${VLGUARD_REPOSITORY} (or the whole test/ folder it unzips to)\n${shown.join("\n")}`,
    );
  }
  return { kind: read.images.kind, path: read.images.path, count: dataset.annotations.images };
}

/** The present copy when its `data/` still matches the tree, its `test.json` the checksum, and its images (if any) `test.json`. */
async function readIfIntact(
  dest: string,
  checksum: string,
  tree: PublishedTree,
  source: DatasetSource<FetchedVlguard>,
): Promise<FetchedVlguard | undefined> {
  try {
    if (!treeMatches(await compareWithPublishedTree(dest, tree))) return undefined;
    const dataset = await readAnnotations(dest, dest, source);
    if (dataset.checksum !== checksum) return undefined;
    const images = await findFirstEntry(dest, VLGUARD_IMAGE_ENTRIES);
    return { ...dataset, images: images === undefined ? null : await verifyImages(dataset, images) };
  } catch {
    // Damaged (test.json deleted, an image missing from the supplied part): fetched again, which names it.
    return undefined;
  }
}
