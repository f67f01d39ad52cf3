/**
 * MMSafeAware's part of `mmsafe dataset fetch`: the official repository at the pinned commit, its `data/`
 * unpacked and compared file by file with the shipped `git ls-tree -r` listing, then read with the runner's
 * importer, which must find 1,523 records and 1,453 runnable pairs.
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import {
  DatasetFetchError,
  type DatasetLayout,
  type DatasetSource,
  describeCause,
  readTreeListing,
  verifyTree,
} from "../../dataset/fetch-layout.ts";
import { MMSAFEAWARE_PUBLISHED_TREE } from "../../dataset/provenance.ts";
import { compareWithPublishedTree, type PublishedTree, treeMatches } from "../../dataset/published-tree.ts";
import { describeImport } from "../../dataset/upload.ts";
import { MMSAFEAWARE_COMMIT } from "./definition.ts";
import { type OfficialDataset, readOfficialDataset } from "./layout.ts";

/** The first commit with the complete data (2025-05-30); its `data/` is the same git tree. */
const MMSAFEAWARE_FIRST_COMPLETE_COMMIT = "07c0de2a957238d5dbc3c163f4b2463dd249f4ed";

/**
 * MMSafeAware's official layout: `data/` (prompt.txt and the image folders), every file compared with the
 * published `git ls-tree -r` listing of `data/`, then read with the runner's importer.
 */
export const MMSAFEAWARE_LAYOUT: DatasetLayout<OfficialDataset> = {
  folders: ["data"],
  async load(source) {
    const tree = await readTreeListing(source);
    return {
      async verify(content, label, identity) {
        const files = await verifyTree(content, tree, label, source, identity);
        const dataset = await verifyContent(content, label, source);
        return {
          dataset,
          files,
          treeId: tree.treeId,
          checksum: dataset.checksum,
          records: dataset.records,
          runnable: dataset.items.length,
        };
      },
      readIfIntact: (dest, checksum) => readIfIntact(dest, checksum, tree),
      relocate,
    };
  },
  describeVerified: (result) =>
    `verified: all ${result.files.toLocaleString("en-US")} files under data/ match the published tree (git blob hashes)` +
    (result.source.expect === null
      ? ""
      : `; ${result.source.expect.records.toLocaleString("en-US")} records / ${result.source.expect.runnable.toLocaleString("en-US")} runnable pairs as expected`),
  describeChecksum: (result) =>
    `dataset checksum ${result.dataset.checksum.slice(0, 12)}… (prompt.txt and the runnable images: identifies what a run evaluates)`,
  describeData: describeImport,
  sameData: "its data/ is identical to the published tree",
};

/**
 * The official MMSafeAware repository. Its `data/` (tree 472df95…) is identical at both accepted commits;
 * every unpacked file is checked against the shipped listing of that tree, and the import must then find
 * 1,523 records and 1,453 runnable pairs.
 */
export const MMSAFEAWARE_SOURCE: DatasetSource<OfficialDataset> = {
  name: "mmsafeaware",
  repository: "Jarviswang94/MMSafetyAwareness",
  commit: MMSAFEAWARE_COMMIT,
  acceptedCommits: [MMSAFEAWARE_COMMIT, MMSAFEAWARE_FIRST_COMPLETE_COMMIT],
  url: `https://github.com/Jarviswang94/MMSafetyAwareness/archive/${MMSAFEAWARE_COMMIT}.tar.gz`,
  tree: MMSAFEAWARE_PUBLISHED_TREE,
  archiveSha256: null,
  expect: { records: 1523, runnable: 1453 },
  layout: MMSAFEAWARE_LAYOUT,
};

/** The present copy, read by the importer, when it still matches the published tree and its record. */
async function readIfIntact(
  dest: string,
  checksum: string,
  tree: PublishedTree,
): Promise<OfficialDataset | undefined> {
  try {
    if (!treeMatches(await compareWithPublishedTree(dest, tree))) return undefined;
    const dataset = await readOfficialDataset(dest);
    return dataset.checksum === checksum ? dataset : undefined;
  } catch {
    // Unreadable (e.g. prompt.txt deleted): treated like any other damage, by fetching again.
    return undefined;
  }
}

/** Reads the staged data with the runner's importer and checks it against the catalogue's expectations. */
async function verifyContent(
  content: string,
  label: string,
  source: DatasetSource<OfficialDataset>,
): Promise<OfficialDataset> {
  try {
    await stat(path.join(content, "data", "prompt.txt"));
  } catch (error: unknown) {
    throw new DatasetFetchError(
      `${label} has no data/prompt.txt under its top-level folder: it is not an archive of ${source.repository}`,
      { cause: error },
    );
  }
  let dataset: OfficialDataset;
  try {
    dataset = await readOfficialDataset(content);
  } catch (error: unknown) {
    throw new DatasetFetchError(`the data unpacked from ${label} cannot be read: ${describeCause(error)}`, {
      cause: error,
    });
  }
  const { expect } = source;
  if (expect !== null && (dataset.records !== expect.records || dataset.items.length !== expect.runnable)) {
    throw new DatasetFetchError(
      `the data unpacked from ${label} has ${dataset.records} records / ${dataset.items.length} ` +
        `runnable pairs, expected ${expect.records} records / ${expect.runnable} runnable pairs`,
    );
  }
  return dataset;
}

/** The staged dataset as seen from its final place (paths only; the checksum covers bytes, not paths). */
function relocate(dataset: OfficialDataset, from: string, to: string): OfficialDataset {
  return {
    ...dataset,
    dir: to,
    items: dataset.items.map((item) => ({
      ...item,
      imagePath: path.join(to, path.relative(from, item.imagePath)),
    })),
  };
}
