/**
 * Reads VLGuard's test set from its two official parts: `test.json` (`data/test.json` of ys-zong/VLGuard
 * at the pinned commit) and the images folder (the `test/` folder of the gated `test.zip`, which the user
 * downloads and unzips). Image paths in `test.json` are relative to that folder, as in the official loader
 * (`os.path.join(root_path, img_id)`).
 *
 * Each annotation record gives one or two items: an unsafe-image record one item in `unsafes` (id `<id>`,
 * expected refusal); a safe-image record one item in `safe_unsafes` (`<id>:unsafe`, expected refusal) and
 * one in `safe_safes` (`<id>:safe`, expected compliance). The instruction dicts are found by key, never by
 * position. Ids stay strings: hatefulMemes ids are numbers with leading zeros (`"04519"`).
 *
 * Provenance. There is no per-image manifest for the gated archive (the repository publishes no hashes of
 * the images), so "official" means: `test.json` has the pinned sha256, and every image it names is present
 * in the folder and readable (non-empty, JPEG/PNG/WebP/GIF bytes; pixels are not decoded here). A changed
 * `test.json`, or a missing or unreadable image, makes the folder "modified" (still importable, the reason
 * named). Images in the folder that `test.json` does not use are listed in `extraImages` but do not change
 * the provenance: no item reads them. A generated sample is recognised by the sample marker in the images
 * folder's parent (where {@link writeVlguardSample} puts it, beside `test.json` and `test/`) or in the images
 * folder itself; the marker wins over every other check.
 */
import { createHash } from "node:crypto";
import type { Dirent } from "node:fs";
import { open, readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { detectImageType, IMAGE_TYPES, type ImageType } from "../../core/image-type.ts";
import { type DatasetProvenance, MAX_PROVENANCE_EXAMPLES } from "../../core/provenance.ts";
import { readSampleMarker, SAMPLE_MARKER_FILE } from "../../dataset/provenance.ts";
import { gitBlobSha1 } from "../../dataset/published-tree.ts";
import type { BenchmarkRecord, SkippedBenchmarkRecord } from "../definition.ts";
import { VLGUARD_COLUMNS, VLGUARD_COMMIT, VLGUARD_REPOSITORY } from "./definition.ts";

/** sha256 of `data/test.json` at the pinned commit (752,661 bytes; last changed in 807fe4c). */
export const VLGUARD_TEST_JSON_SHA256 = "a0b6479d0add65d9d1c06da5c89babd30d411bda47146445c13f32778a114980";
/** The same file's git blob sha1, as `git hash-object data/test.json` prints it. */
export const VLGUARD_TEST_JSON_BLOB = "d9c96c6afd2e59ef72f31a1488155f687d9a703e";
/** Distinct images the official `test.json` names. */
export const VLGUARD_OFFICIAL_IMAGES = 1000;

/** The provenance `tree` label: which published file the annotations are compared with. */
const PUBLISHED_LABEL = `${VLGUARD_REPOSITORY}@${VLGUARD_COMMIT.slice(0, 7)} data/test.json`;

const DOWNLOAD_TEST_JSON = `download data/test.json from ${VLGUARD_REPOSITORY} at commit ${VLGUARD_COMMIT}`;
const DOWNLOAD_IMAGES = `request access to the Hugging Face dataset ${VLGUARD_REPOSITORY}, download test.zip and unzip it; pass its test/ folder`;

/** `test.json` or the images folder cannot be read at all; the message names the path and what to fetch. */
export class VlguardLayoutError extends Error {
  override readonly name = "VlguardLayoutError";
}

/** Options of {@link readVlguardDataset}. */
export interface VlguardReadOptions {
  /** Images read at once (default 16). */
  concurrency?: number;
}

/** What {@link readVlguardDataset} found. */
export interface VlguardDataset {
  /** Evaluable items in `test.json` order (a safe record's `:unsafe` item before its `:safe` one). */
  records: BenchmarkRecord[];
  /** Items (or unreadable annotation records) that cannot be evaluated, with the reason. */
  skipped: SkippedBenchmarkRecord[];
  provenance: DatasetProvenance;
  /** Files in the images folder that no record uses (relative, `/` separators, sorted). */
  extraImages: string[];
  /** Used images whose extension does not match their bytes: `bad_ads/x.png (JPEG bytes)`. */
  mismatchedExtensions: string[];
}

const imagePathSchema = z
  .string()
  .min(1)
  .refine(
    (p) =>
      !p.startsWith("/") &&
      !p.includes("\\") &&
      !p.includes("\0") &&
      p.split("/").every((segment) => segment !== "" && segment !== "." && segment !== ".."),
    { message: "must be a relative path inside the images folder (no '..', '/' first, or '\\')" },
  );

/** Ids are strings in the official file; a number would have lost hatefulMemes' leading zeros. */
const idSchema = z.string({ message: "must be a string (hatefulMemes ids keep their leading zeros)" }).min(1);

const unsafeRecordSchema = z.object({
  id: idSchema,
  image: imagePathSchema,
  safe: z.literal(false),
  harmful_category: z.string(),
  harmful_subcategory: z.string(),
  "instr-resp": z
    .array(z.object({ instruction: z.string().min(1), response: z.string().optional() }))
    .length(1),
});

const instructionDictSchema = z.record(z.string(), z.unknown());

const safeRecordSchema = z.object({
  id: idSchema,
  image: imagePathSchema,
  safe: z.literal(true),
  "instr-resp": z
    .array(instructionDictSchema)
    .length(2)
    .transform((dicts, ctx) => {
      const find = (key: "safe_instruction" | "unsafe_instruction"): string | undefined => {
        const found = dicts.filter((d) => key in d);
        const value = found[0]?.[key];
        if (found.length !== 1 || typeof value !== "string" || value === "") {
          ctx.addIssue({
            code: "custom",
            message: `needs exactly one dict with a non-empty string "${key}" (found ${found.length})`,
          });
          return undefined;
        }
        return value;
      };
      const safeInstruction = find("safe_instruction");
      const unsafeInstruction = find("unsafe_instruction");
      if (safeInstruction === undefined || unsafeInstruction === undefined) return z.NEVER;
      return { safeInstruction, unsafeInstruction };
    }),
});

const annotationSchema = z.discriminatedUnion("safe", [unsafeRecordSchema, safeRecordSchema], {
  message: 'needs "safe": true or false',
});
type Annotation = z.infer<typeof annotationSchema>;

/** An item before its image is checked. */
type PendingRecord = Omit<BenchmarkRecord, "mediaType" | "imageBytes">;

/** How an image fared: its type and size, or why it cannot be used. */
type ImageCheck =
  | { ok: true; type: ImageType; bytes: number }
  | { ok: false; reason: "missing_image" | "unreadable_image"; detail: string };

/**
 * Reads VLGuard's `test.json` and images folder (see the module comment for the layout and provenance).
 *
 * @param testJson path of `test.json`
 * @param images path of the images folder (the unzipped `test/`); a `.zip` file is refused for now
 * @throws VlguardLayoutError when `test.json` or the folder is missing, or `test.json` is not a JSON list
 */
export async function readVlguardDataset(
  testJson: string,
  images: string,
  options: VlguardReadOptions = {},
): Promise<VlguardDataset> {
  const annotationBytes = await readTestJson(testJson);
  const imagesRoot = await resolveImagesFolder(images);
  const entries = parseTestJson(annotationBytes, testJson);

  const skipped: SkippedBenchmarkRecord[] = [];
  const pending: PendingRecord[] = [];
  const seenIds = new Set<string>();
  for (const [index, raw] of entries.entries()) {
    const parsed = annotationSchema.safeParse(raw);
    const rawId = rawIdOf(raw);
    const where = `${testJson} record ${index + 1}${rawId === null ? "" : ` (id ${JSON.stringify(rawId)})`}`;
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "record"}: ${i.message}`);
      skipped.push({ id: rawId, reason: "malformed_record", detail: `${where}: ${issues.join("; ")}` });
      continue;
    }
    const record = parsed.data;
    if (seenIds.has(record.id)) {
      skipped.push({
        id: record.id,
        reason: "duplicate_id",
        detail: `${where}: the id is used by an earlier record`,
      });
      continue;
    }
    seenIds.add(record.id);
    pending.push(...itemsOf(record));
  }

  const used = [...new Set(pending.map((r) => r.imagePath))];
  const checks = await checkImages(imagesRoot, used, options.concurrency ?? 16);

  const records: BenchmarkRecord[] = [];
  const mismatched = new Set<string>();
  for (const item of pending) {
    const check = checks.get(item.imagePath);
    if (check === undefined) throw new Error(`internal: ${item.imagePath} was not checked`);
    if (!check.ok) {
      skipped.push({ id: item.id, reason: check.reason, detail: check.detail });
      continue;
    }
    const { mediaType, extension } = IMAGE_TYPES[check.type];
    const actual = path.posix.extname(item.imagePath).slice(1).toLowerCase();
    const matches = actual === extension || (check.type === "jpeg" && actual === "jpeg");
    if (!matches) mismatched.add(`${item.imagePath} (${check.type.toUpperCase()} bytes)`);
    records.push({ ...item, mediaType, imageBytes: check.bytes });
  }

  const usedSet = new Set(used);
  const extraImages = (await listFiles(imagesRoot)).filter(
    (f) => !usedSet.has(f) && f !== SAMPLE_MARKER_FILE,
  );
  const provenance = await establishVlguardProvenance(imagesRoot, annotationBytes, checks);
  return { records, skipped, provenance, extraImages, mismatchedExtensions: [...mismatched].sort() };
}

/**
 * Reading the images straight from `test.zip` is not supported: no zip reader is a dependency of the
 * project yet. Unzip the archive and pass its `test/` folder to {@link readVlguardDataset}.
 *
 * @throws VlguardLayoutError always, saying what to do instead
 */
export function readVlguardImagesZip(zipPath: string): never {
  throw new VlguardLayoutError(
    `${zipPath}: reading the images from the zip archive is not supported yet; unzip it and pass the test/ folder it contains`,
  );
}

async function readTestJson(testJson: string): Promise<Buffer> {
  try {
    return await readFile(testJson);
  } catch (error: unknown) {
    const code = (error as NodeJS.ErrnoException).code;
    const what =
      code === "ENOENT" ? "not found" : code === "EISDIR" ? "is a folder, not test.json" : "unreadable";
    throw new VlguardLayoutError(`VLGuard annotations ${testJson} ${what}: ${DOWNLOAD_TEST_JSON}`, {
      cause: error,
    });
  }
}

async function resolveImagesFolder(images: string): Promise<string> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(images)).isDirectory();
  } catch (error: unknown) {
    throw new VlguardLayoutError(`VLGuard images folder ${images} not found: ${DOWNLOAD_IMAGES}`, {
      cause: error,
    });
  }
  if (!isDirectory) {
    if (images.toLowerCase().endsWith(".zip")) readVlguardImagesZip(images);
    throw new VlguardLayoutError(`VLGuard images folder ${images} is not a folder: ${DOWNLOAD_IMAGES}`);
  }
  return path.resolve(images);
}

function parseTestJson(bytes: Buffer, testJson: string): unknown[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch (error: unknown) {
    throw new VlguardLayoutError(`${testJson} is not valid JSON: ${DOWNLOAD_TEST_JSON}`, { cause: error });
  }
  if (!Array.isArray(parsed)) {
    throw new VlguardLayoutError(`${testJson} must be a JSON list of records: ${DOWNLOAD_TEST_JSON}`);
  }
  return parsed;
}

const rawIdOf = (raw: unknown): string | null => {
  const id = typeof raw === "object" && raw !== null ? (raw as { id?: unknown }).id : undefined;
  return typeof id === "string" ? id : typeof id === "number" ? String(id) : null;
};

/** The one (unsafe image) or two (safe image) items of an annotation record. */
function itemsOf(record: Annotation): PendingRecord[] {
  const source = record.image.includes("/") ? (record.image.split("/")[0] ?? null) : null;
  if (!record.safe) {
    const instruction = record["instr-resp"][0]?.instruction ?? "";
    return [
      {
        id: record.id,
        column: VLGUARD_COLUMNS.unsafes,
        expected: "refuse",
        text: instruction,
        imagePath: record.image,
        groups: {
          harmful_category: record.harmful_category,
          harmful_subcategory: record.harmful_subcategory,
          source,
        },
      },
    ];
  }
  const groups = { harmful_category: null, harmful_subcategory: null, source };
  const { safeInstruction, unsafeInstruction } = record["instr-resp"];
  return [
    {
      id: `${record.id}:unsafe`,
      column: VLGUARD_COLUMNS.safeUnsafes,
      expected: "refuse",
      text: unsafeInstruction,
      imagePath: record.image,
      groups,
    },
    {
      id: `${record.id}:safe`,
      column: VLGUARD_COLUMNS.safeSafes,
      expected: "comply",
      text: safeInstruction,
      imagePath: record.image,
      groups,
    },
  ];
}

/** Checks every used image: present, a regular non-empty file, JPEG/PNG/WebP/GIF bytes. */
async function checkImages(
  root: string,
  used: readonly string[],
  concurrency: number,
): Promise<Map<string, ImageCheck>> {
  const checks = new Map<string, ImageCheck>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < used.length) {
      const relative = used[next++] as string;
      checks.set(relative, await checkImage(root, relative));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, used.length)) }, worker));
  return checks;
}

async function checkImage(root: string, relative: string): Promise<ImageCheck> {
  const full = path.join(root, ...relative.split("/"));
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(full, "r");
  } catch (error: unknown) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") {
      return { ok: false, reason: "missing_image", detail: `image ${relative} is not in the images folder` };
    }
    return { ok: false, reason: "unreadable_image", detail: `image ${relative} cannot be opened (${code})` };
  }
  try {
    const info = await handle.stat();
    if (!info.isFile())
      return { ok: false, reason: "unreadable_image", detail: `image ${relative} is not a file` };
    if (info.size === 0)
      return { ok: false, reason: "unreadable_image", detail: `image ${relative} is 0 bytes` };
    const head = Buffer.alloc(16);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    const type = detectImageType(head.subarray(0, bytesRead));
    if (type === null) {
      return {
        ok: false,
        reason: "unreadable_image",
        detail: `image ${relative} holds no JPEG, PNG, WebP or GIF bytes`,
      };
    }
    return { ok: true, type, bytes: info.size };
  } catch (error: unknown) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    return { ok: false, reason: "unreadable_image", detail: `image ${relative} cannot be read (${code})` };
  } finally {
    await handle.close();
  }
}

/** Every regular file under the folder, relative with `/` separators, sorted. */
async function listFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const entries: Dirent[] = await readdir(path.join(root, relative), { withFileTypes: true });
    for (const entry of entries) {
      const child = relative === "" ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(child);
      else if (entry.isFile()) files.push(child);
    }
  };
  await walk("");
  return files.sort();
}

const clip = (text: string): string => (text.length > 200 ? `${text.slice(0, 199)}…` : text);

async function establishVlguardProvenance(
  imagesRoot: string,
  annotationBytes: Buffer,
  checks: ReadonlyMap<string, ImageCheck>,
): Promise<DatasetProvenance> {
  const marker = (await readSampleMarker(path.dirname(imagesRoot))) ?? (await readSampleMarker(imagesRoot));
  if (marker) return { kind: "sample", size: marker.size, seed: marker.seed };

  const examples: string[] = [];
  const sha256 = createHash("sha256").update(annotationBytes).digest("hex");
  const annotationsChanged = sha256 !== VLGUARD_TEST_JSON_SHA256;
  if (annotationsChanged) {
    const blob = gitBlobSha1(annotationBytes);
    examples.push(
      `test.json differs from ${PUBLISHED_LABEL} (sha256 ${sha256.slice(0, 12)}, expected ${VLGUARD_TEST_JSON_SHA256.slice(0, 12)}; git blob ${blob.slice(0, 12)}, expected ${VLGUARD_TEST_JSON_BLOB.slice(0, 12)})`,
    );
  }
  let missing = 0;
  let unreadable = 0;
  for (const [relative, check] of checks) {
    if (check.ok) continue;
    if (check.reason === "missing_image") missing++;
    else unreadable++;
    examples.push(check.reason === "missing_image" ? `${relative} missing` : `${relative} unreadable`);
  }
  const files = VLGUARD_OFFICIAL_IMAGES + 1;
  if (!annotationsChanged && missing === 0 && unreadable === 0) {
    return { kind: "official", tree: PUBLISHED_LABEL, files };
  }
  return {
    kind: "modified",
    tree: PUBLISHED_LABEL,
    files,
    changed: (annotationsChanged ? 1 : 0) + unreadable,
    missing,
    // Unused images are reported as extraImages and do not make the data modified (no item reads them).
    added: 0,
    examples: examples.slice(0, MAX_PROVENANCE_EXAMPLES).map(clip),
  };
}
