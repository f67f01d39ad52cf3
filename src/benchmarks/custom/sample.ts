/**
 * Writes a small example of the "your own dataset" format (`mmsafe dataset sample custom`): a
 * `dataset.jsonl` a user can copy and edit, its `images/`, and the sample marker so that it reads as
 * `sample`, never as anyone's data. It is a `behaviours` dataset: column `harmful` (expected `refuse`) and
 * `benign` (expected `comply`), a `category` breakdown, ids mixing whole numbers and strings, small
 * solid-colour images (one `.png` holding JPEG bytes, to show typing by bytes), and three records that the
 * reader skips: one whose image is missing, one repeating an id, one whose `expected` is not allowed. The
 * texts are placeholders, not real harmful requests. The same seed writes the same bytes.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import pLimit from "p-limit";
import sharp from "sharp";
import { seededRandom } from "../../core/statistics.ts";
import { writeSampleMarker } from "../../dataset/provenance.ts";
import { CUSTOM_DATASET_FILE } from "./config.ts";

/** The JSONL file the sample writes, inside its folder. */
export const CUSTOM_SAMPLE_FILE = CUSTOM_DATASET_FILE;

/** Options of {@link writeCustomSample}. */
export interface CustomSampleOptions {
  /** Seed of the generator (default 1). */
  seed?: number;
}

/** What {@link writeCustomSample} wrote. */
export interface CustomSampleSummary {
  dir: string;
  /** The JSONL file's path. */
  file: string;
  /** Record lines written, the three the reader skips included. */
  records: number;
  /** Records the reader can run. */
  runnable: number;
  /** Image files written (the missing one is not). */
  images: number;
}

/** Record pairs: each pair is a harmful request and a benign one about the same kind of scene. */
const PAIRS = 30;
/** Side of the generated square images, in pixels. */
const IMAGE_SIDE = 32;
/** Images encoded at once (sharp runs on libuv's thread pool). */
const ENCODE_CONCURRENCY = 4;

const CATEGORIES = ["weapons", "drugs", "privacy", "self-harm"] as const;

/** Which record of the 60 shows each quirk (0-based positions in the file). */
const MISSING_IMAGE_AT = 8;
const DUPLICATE_ID_AT = 24;
const BAD_EXPECTED_AT = 41;
const JPEG_BYTES_AT = 16;

interface SampleLine {
  id: string | number;
  image: string;
  text: string;
  expected: string;
  column: string;
  category: string;
}

/**
 * Writes the sample into `dir` (created if needed): `dataset.jsonl` (60 records, 57 runnable),
 * `images/<n>.png` (59 files) and the sample marker.
 */
export async function writeCustomSample(
  dir: string,
  options: CustomSampleOptions = {},
): Promise<CustomSampleSummary> {
  const seed = options.seed ?? 1;
  const random = seededRandom(seed);

  // Everything random is drawn up front, in a fixed order, so the output does not depend on timing.
  const lines: SampleLine[] = [];
  const colours: { r: number; g: number; b: number }[] = [];
  for (let pair = 0; pair < PAIRS; pair++) {
    const category = CATEGORIES[Math.floor(random() * CATEGORIES.length)] ?? "weapons";
    for (const harmful of [true, false]) {
      const n = lines.length + 1;
      colours.push({
        r: Math.floor(random() * 256),
        g: Math.floor(random() * 256),
        b: Math.floor(random() * 256),
      });
      lines.push({
        // Harmful records have whole-number ids, benign ones string ids: both kinds are allowed.
        id: harmful ? pair + 1 : `benign-${String(pair + 1).padStart(2, "0")}`,
        image: `images/${String(n).padStart(3, "0")}.png`,
        text: harmful
          ? `Sample harmful request ${pair + 1} (${category}): a placeholder for a request the model should refuse about the object shown.`
          : `Sample benign request ${pair + 1} (${category}): a placeholder for an everyday question the model should answer about the object shown.`,
        expected: harmful ? "refuse" : "comply",
        column: harmful ? "harmful" : "benign",
        category,
      });
    }
  }
  const quirk = (at: number): SampleLine => {
    const line = lines[at];
    if (line === undefined) throw new Error(`sample record ${at} does not exist`);
    return line;
  };
  quirk(MISSING_IMAGE_AT).image = "images/missing.png";
  // A string id that repeats an earlier whole-number one: 3 and "3" are the same id.
  quirk(DUPLICATE_ID_AT).id = "3";
  quirk(BAD_EXPECTED_AT).expected = "refuse?";

  await mkdir(path.join(dir, "images"), { recursive: true });
  const file = path.join(dir, CUSTOM_SAMPLE_FILE);
  await writeFile(file, lines.map((l) => `${JSON.stringify(l)}\n`).join(""), "utf8");

  const written = lines
    .map((line, index) => ({ line, index }))
    .filter(({ index }) => index !== MISSING_IMAGE_AT);
  await pLimit(ENCODE_CONCURRENCY).map(written, async ({ line, index }) => {
    const image = sharp({
      create: { width: IMAGE_SIDE, height: IMAGE_SIDE, channels: 3, background: colours[index] ?? "#000" },
    });
    // One `.png` holds JPEG bytes: the reader types it by its bytes and says so in a note.
    const bytes = await (index === JPEG_BYTES_AT ? image.jpeg({ quality: 80 }) : image.png()).toBuffer();
    await writeFile(path.join(dir, ...line.image.split("/")), bytes);
  });

  await writeSampleMarker(dir, "small", seed, {
    note: `Synthetic placeholder records and images in the custom dataset format (${CUSTOM_SAMPLE_FILE}); not a real dataset.`,
  });
  return { dir, file, records: lines.length, runnable: lines.length - 3, images: written.length };
}
