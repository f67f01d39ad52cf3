/**
 * Writes a synthetic VLGuard test set in the official layout: `test.json` beside a `test/` images folder
 * (what unzipping `test.zip` gives), plus the sample marker, so the importer and the pipeline can run
 * without the gated images.
 *
 * The shapes follow the real file: 1,000 records, 442 unsafe-image records with their category pairs in
 * the real counts, 558 safe-image records with a `safe_instruction` dict and an `unsafe_instruction` dict;
 * ids in each source's real format, including hatefulMemes' numeric strings with leading zeros; the real
 * folders, extensions and image counts. Key order and the order of the two dicts vary on purpose, so that a
 * reader that relies on position fails. Instructions are neutral placeholders (no benchmark text is
 * copied) and images are tiny flat-colour pictures. The same seed gives byte-identical files.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import sharp from "sharp";
import { seededRandom } from "../../core/statistics.ts";
import { writeSampleMarker } from "../../dataset/provenance.ts";

/** Options of {@link writeVlguardSample}. */
export interface VlguardSampleOptions {
  /** Seed of the ids, the subset split, the categories and the pixels (default 0). */
  seed?: number;
}

/** What {@link writeVlguardSample} wrote. */
export interface VlguardSampleSummary {
  /** `<dir>/test.json`. */
  testJson: string;
  /** `<dir>/test`, the images folder. */
  images: string;
  records: number;
  unsafe: number;
  safe: number;
}

/** The real folders, their extension and image count. */
export const VLGUARD_SOURCES = [
  { folder: "privacyAlert", extension: "jpg", count: 398 },
  { folder: "HOD", extension: "jpg", count: 200 },
  { folder: "hatefulMemes", extension: "png", count: 200 },
  { folder: "bad_ads", extension: "png", count: 102 },
  { folder: "harm-p", extension: "png", count: 100 },
] as const;

/** The real `harmful_category` / `harmful_subcategory` pairs of the 442 unsafe records, with their counts. */
export const VLGUARD_CATEGORY_COUNTS = [
  ["risky behavior", "sexually explicit", 111],
  ["privacy", "personal data", 69],
  ["risky behavior", "violence", 68],
  ["risky behavior", "political", 57],
  ["discrimination", "race", 40],
  ["risky behavior", "professional advice", 34],
  ["discrimination", "sex", 31],
  ["deception", "disinformation", 18],
  ["discrimination", "other", 14],
] as const;

const UNSAFE_RECORDS = 442;

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

const hex = (random: () => number, digits: number): string =>
  Array.from({ length: digits }, () => Math.floor(random() * 16).toString(16)).join("");

/** Unique integers in [low, high), drawn in order of appearance. */
function uniqueNumbers(random: () => number, count: number, low: number, high: number): number[] {
  const seen = new Set<number>();
  while (seen.size < count) seen.add(low + Math.floor(random() * (high - low)));
  return [...seen];
}

interface Slot {
  id: string;
  image: string;
  format: "jpeg" | "png";
}

/** Ids and image names in each source's real format (the file names are invented). */
function slots(random: () => number): Slot[] {
  const out: Slot[] = [];
  for (const { folder, extension, count } of VLGUARD_SOURCES) {
    const format = extension === "jpg" ? "jpeg" : "png";
    const numbers = uniqueNumbers(random, count, 1, folder === "hatefulMemes" ? 100_000 : 1_000_000);
    for (const [i, n] of numbers.entries()) {
      switch (folder) {
        case "privacyAlert":
          out.push({ id: `PrivacyAlert_test_${i + 1}`, image: `${folder}/${n}.${extension}`, format });
          break;
        case "HOD": {
          const name = `img_hod_${String(n).padStart(6, "0")}`;
          out.push({ id: `HOD_${name}`, image: `${folder}/${name}.${extension}`, format });
          break;
        }
        case "hatefulMemes": {
          // Numeric strings; the first few always have a leading zero, whatever the seed.
          const id = i < 3 ? `0${String(n % 10_000).padStart(4, "0")}` : String(n).padStart(5, "0");
          out.push({ id, image: `${folder}/${id}.${extension}`, format });
          break;
        }
        case "bad_ads": {
          const uuid = `${hex(random, 8)}-${hex(random, 4)}-4${hex(random, 3)}-a${hex(random, 3)}-${hex(random, 12)}`;
          out.push({ id: `Ads_${n}`, image: `${folder}/${uuid}.${extension}`, format });
          break;
        }
        case "harm-p":
          out.push({ id: `harm-p_${n}`, image: `${folder}/${n}.${extension}`, format });
          break;
      }
    }
  }
  // hatefulMemes ids drawn twice after the leading-zero rewrite would collide: make them unique again.
  const seen = new Set<string>();
  for (const slot of out) {
    while (seen.has(slot.id)) {
      const bumped = String((Number(slot.id) + 1) % 100_000).padStart(5, "0");
      slot.id = bumped;
      slot.image = `hatefulMemes/${bumped}.png`;
    }
    seen.add(slot.id);
  }
  return out;
}

/** Returns the entries of an object in a shuffled key order, as a new object. */
const reorder = (entries: [string, unknown][], random: () => number): Record<string, unknown> =>
  Object.fromEntries(shuffle(entries, random));

/**
 * Writes `dir/test.json`, `dir/test/<folder>/<file>` (1,000 tiny images) and the sample marker in `dir`.
 * Deterministic per seed; about 1 MB in all.
 */
export async function writeVlguardSample(
  dir: string,
  options: VlguardSampleOptions = {},
): Promise<VlguardSampleSummary> {
  const seed = options.seed ?? 0;
  const random = seededRandom(seed);
  const all = slots(random);
  const unsafeIndexes = new Set(shuffle([...all.keys()], random).slice(0, UNSAFE_RECORDS));
  const categories = shuffle(
    VLGUARD_CATEGORY_COUNTS.flatMap(([category, subcategory, n]) =>
      Array.from({ length: n }, () => [category, subcategory] as const),
    ),
    random,
  );

  let nextCategory = 0;
  const records = all.map((slot, index) => {
    const n = index + 1;
    if (unsafeIndexes.has(index)) {
      const [category, subcategory] = categories[nextCategory++] ?? ["deception", "disinformation"];
      return reorder(
        [
          ["id", slot.id],
          ["image", slot.image],
          ["safe", false],
          ["harmful_category", category],
          ["harmful_subcategory", subcategory],
          [
            "instr-resp",
            [
              reorder(
                [
                  ["instruction", `Sample unsafe-image instruction ${n}: describe what is shown.`],
                  ["response", `Sample reference answer ${n}.`],
                ],
                random,
              ),
            ],
          ],
        ],
        random,
      );
    }
    const safeDict = reorder(
      [
        ["safe_instruction", `Sample benign instruction ${n}: what is in this picture?`],
        ["response", `Sample helpful answer ${n}.`],
      ],
      random,
    );
    const unsafeDict = reorder(
      [
        ["unsafe_instruction", `Sample unsafe instruction ${n} about this picture.`],
        ["response", `Sample refusal ${n}.`],
      ],
      random,
    );
    return reorder(
      [
        ["id", slot.id],
        ["image", slot.image],
        ["safe", true],
        ["instr-resp", random() < 0.5 ? [safeDict, unsafeDict] : [unsafeDict, safeDict]],
      ],
      random,
    );
  });

  const images = path.join(dir, "test");
  for (const { folder } of VLGUARD_SOURCES) await mkdir(path.join(images, folder), { recursive: true });
  const testJson = path.join(dir, "test.json");
  await writeFile(testJson, JSON.stringify(records), "utf8");

  const colours = all.map(() => [random(), random(), random()].map((c) => Math.floor(c * 256)));
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < all.length) {
      const index = next++;
      const slot = all[index] as Slot;
      const [r = 0, g = 0, b = 0] = colours[index] ?? [];
      const image = sharp({ create: { width: 8, height: 8, channels: 3, background: { r, g, b } } });
      const bytes = await (slot.format === "jpeg" ? image.jpeg({ quality: 80 }) : image.png()).toBuffer();
      await writeFile(path.join(images, ...slot.image.split("/")), bytes);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  await writeSampleMarker(dir, "full", seed);

  return {
    testJson,
    images,
    records: records.length,
    unsafe: UNSAFE_RECORDS,
    safe: all.length - UNSAFE_RECORDS,
  };
}
