/**
 * Reads VLGuard's test set from its two official parts: `test.json` (`data/test.json` of ys-zong/VLGuard
 * at the pinned commit) and the images: the gated `test.zip` itself, or the `test/` folder unzipping it
 * gives. Image paths in `test.json` are relative to that folder, as in the official loader
 * (`os.path.join(root_path, img_id)`); in the zip, the archive's root folder `test/` is stripped.
 *
 * Images from a zip are never extracted to disk: entries are indexed from the central directory, each used
 * image's first bytes are read (a few at a time) to check it, and {@link VlguardDataset.openImage} later
 * returns an image's bytes from the archive (or the folder) when it is uploaded.
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
 * folder itself (for a zip: beside the archive only, never inside it); the marker wins over every other
 * check.
 */
import { createHash } from "node:crypto";
import type { Dirent } from "node:fs";
import { open, readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import yauzl from "yauzl";
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
const DOWNLOAD_IMAGES = `request access to the Hugging Face dataset ${VLGUARD_REPOSITORY}, download test.zip and pass it (or the test/ folder unzipping it gives)`;

/** Where `test.json` may be in a VLGuard folder: beside the images (a sample), or the repository's `data/` (a fetch). */
export const VLGUARD_TEST_JSON_PLACES = ["test.json", "data/test.json"] as const;

/** Names the images may have in a VLGuard folder, in the order they are looked for. */
export const VLGUARD_IMAGE_ENTRIES = ["test", "test.zip"] as const;

/**
 * The annotations and images of a VLGuard folder: `test.json` (or `data/test.json`, as `dataset fetch
 * vlguard` leaves it) and `test/` (or `test.zip`) beside it.
 *
 * @throws VlguardLayoutError naming the folder and what to put where, when either part is not there
 */
export async function locateVlguardFolder(dir: string): Promise<{ testJson: string; images: string }> {
  const exists = (p: string) =>
    stat(p).then(
      () => true,
      () => false,
    );
  let testJson: string | undefined;
  for (const place of VLGUARD_TEST_JSON_PLACES) {
    const candidate = path.join(dir, ...place.split("/"));
    if (await exists(candidate)) {
      testJson = candidate;
      break;
    }
  }
  if (testJson === undefined)
    throw new VlguardLayoutError(
      `no VLGuard annotations in ${dir} (looked for ${VLGUARD_TEST_JSON_PLACES.join(" and ")}): run \`mmsafe dataset fetch vlguard\`, or ${DOWNLOAD_TEST_JSON}`,
    );
  for (const name of VLGUARD_IMAGE_ENTRIES) {
    const candidate = path.join(dir, name);
    if (await exists(candidate)) return { testJson, images: candidate };
  }
  throw new VlguardLayoutError(
    `no VLGuard images in ${dir} (looked for test/ and test.zip): the images are not in the repository; ` +
      `request access to the Hugging Face dataset ${VLGUARD_REPOSITORY}, download test.zip and run ` +
      `\`mmsafe dataset fetch vlguard --images <path to test.zip>\`, or put test.zip (or the test/ folder it unzips to) into ${dir}`,
  );
}

/** `test.json` or the images folder cannot be read at all; the message names the path and what to fetch. */
export class VlguardLayoutError extends Error {
  override readonly name = "VlguardLayoutError";
}

/** Options of {@link readVlguardDataset}. */
export interface VlguardReadOptions {
  /** Images read at once, from the folder or the zip (default 16). */
  concurrency?: number;
}

/** Where the images are read from. */
export interface VlguardImagesLocation {
  kind: "folder" | "zip";
  /** Absolute path of the folder or the `.zip` file. */
  path: string;
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
  images: VlguardImagesLocation;
  /**
   * The bytes of a record's image, read from the folder or from the zip (nothing is extracted to disk);
   * this is how the images get to the upload. Only paths of this dataset's records are accepted.
   *
   * @throws VlguardLayoutError when the path is not one of the records' images, or the image has gone
   */
  openImage(record: Pick<BenchmarkRecord, "imagePath">): Promise<Buffer>;
  /**
   * Closes the zip archive that {@link openImage} keeps open (nothing to do for a folder). Reading is done
   * when `readVlguardDataset` returns, with the archive closed; the first `openImage` opens it again.
   */
  close(): Promise<void>;
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
 * Reads VLGuard's `test.json` and images (see the module comment for the layout and provenance).
 *
 * @param testJson path of `test.json`
 * @param images the images folder (the unzipped `test/`), or `test.zip` itself (a file ending in `.zip`)
 * @throws VlguardLayoutError when `test.json` or the images are missing, `test.json` is not a JSON list,
 *   or the zip cannot be read or has an entry whose name leaves the archive (`/x`, `../x`), naming it
 */
export async function readVlguardDataset(
  testJson: string,
  images: string,
  options: VlguardReadOptions = {},
): Promise<VlguardDataset> {
  const annotationBytes = await readTestJson(testJson);
  const entries = parseTestJson(annotationBytes, testJson);
  const source = await openImageSource(images);
  try {
    return await readWithSource(source, testJson, annotationBytes, entries, options);
  } finally {
    await source.close();
  }
}

async function readWithSource(
  source: ImageSource,
  testJson: string,
  annotationBytes: Buffer,
  entries: unknown[],
  options: VlguardReadOptions,
): Promise<VlguardDataset> {
  const { pending, skipped } = parseAnnotations(entries, testJson);
  const used = [...new Set(pending.map((r) => r.imagePath))];
  const checks = await checkImages(source, used, options.concurrency ?? 16);

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
  const extraImages = (await source.list()).filter((f) => !usedSet.has(f) && f !== SAMPLE_MARKER_FILE);
  const provenance = await establishVlguardProvenance(source.markerDirs, annotationBytes, checks);
  return {
    records,
    skipped,
    provenance,
    extraImages,
    mismatchedExtensions: [...mismatched].sort(),
    images: { kind: source.kind, path: source.path },
    openImage: async (record) => {
      if (!usedSet.has(record.imagePath))
        throw new VlguardLayoutError(`${record.imagePath} is not the image of a record of ${testJson}`);
      return source.read(record.imagePath);
    },
    close: () => source.close(),
  };
}

/** What `test.json` holds, read without the images: its records and the items they give. */
export interface VlguardAnnotations {
  /** Annotation records in the file (each gives one or two items). */
  records: number;
  /** Items per column (`unsafes`, `safe_unsafes`, `safe_safes`). */
  items: Record<string, number>;
  /** Distinct images the items name. */
  images: number;
  /** Annotation records that cannot be read (malformed, a duplicate id), with the reason. */
  skipped: SkippedBenchmarkRecord[];
}

/**
 * Reads `test.json` alone, as {@link readVlguardDataset} reads it but without looking for images: for a
 * copy whose gated images have not been supplied yet.
 *
 * @throws VlguardLayoutError when `test.json` is missing or not a JSON list
 */
export async function readVlguardAnnotations(testJson: string): Promise<VlguardAnnotations> {
  const entries = parseTestJson(await readTestJson(testJson), testJson);
  const { pending, skipped } = parseAnnotations(entries, testJson);
  const items: Record<string, number> = {};
  for (const item of pending) items[item.column] = (items[item.column] ?? 0) + 1;
  return {
    records: entries.length,
    items,
    images: new Set(pending.map((item) => item.imagePath)).size,
    skipped,
  };
}

/** Every annotation record's items, and the records that cannot be read (with file, record and field). */
function parseAnnotations(
  entries: unknown[],
  testJson: string,
): { pending: PendingRecord[]; skipped: SkippedBenchmarkRecord[] } {
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

  return { pending, skipped };
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

/**
 * Where the images are: a folder or a zip archive. `check` looks at an image the same way for both
 * (present, a non-empty regular file, JPEG/PNG/WebP/GIF first bytes); `read` returns its bytes.
 */
interface ImageSource {
  kind: "folder" | "zip";
  path: string;
  /** Folders where a sample marker labels the data (the marker wins over every other check). */
  markerDirs: string[];
  check(relative: string): Promise<ImageCheck>;
  read(relative: string): Promise<Buffer>;
  /** Every file, relative with `/` separators, sorted. */
  list(): Promise<string[]>;
  close(): Promise<void>;
}

async function openImageSource(images: string): Promise<ImageSource> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(images)).isDirectory();
  } catch (error: unknown) {
    throw new VlguardLayoutError(`VLGuard images folder ${images} not found: ${DOWNLOAD_IMAGES}`, {
      cause: error,
    });
  }
  if (isDirectory) return folderSource(path.resolve(images));
  if (images.toLowerCase().endsWith(".zip")) {
    const zip = await readVlguardImagesZip(images);
    await zip.ready();
    return zip;
  }
  throw new VlguardLayoutError(
    `VLGuard images folder ${images} is not a folder or a .zip file: ${DOWNLOAD_IMAGES}`,
  );
}

function folderSource(root: string): ImageSource {
  return {
    kind: "folder",
    path: root,
    markerDirs: [path.dirname(root), root],
    check: (relative) => checkFolderImage(root, relative),
    read: async (relative) => {
      try {
        return await readFile(path.join(root, ...relative.split("/")));
      } catch (error: unknown) {
        throw new VlguardLayoutError(`image ${relative} cannot be read from ${root}`, { cause: error });
      }
    },
    list: () => listFiles(root),
    close: async () => {},
  };
}

/** The root folder `test.zip` holds its images in; stripped from entry names when every entry is in it. */
const ZIP_ROOT = "test/";
/** Resource-fork entries some archivers add; ignored. */
const MACOS_METADATA = "__MACOSX/";

/** Why an entry name is refused (it would leave the archive's folder), or null when it is safe. */
function unsafeEntryName(name: string): string | null {
  if (name === "") return "is empty";
  if (name.includes("\0")) return "contains a NUL character";
  if (name.includes("\\")) return "contains a backslash";
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) return "is an absolute path";
  if (name.split("/").includes("..")) return "contains a '..' segment";
  return null;
}

/** The entries of a zip archive by name (root folder stripped), and the open archive. */
interface ZipIndex {
  zip: yauzl.ZipFile;
  files: Map<string, yauzl.Entry>;
  folders: Set<string>;
}

/** Images in a zip archive: {@link readVlguardDataset}'s source for `test.zip`. */
export interface VlguardZipImages extends ImageSource {
  kind: "zip";
  /** Opens the archive and reads its central directory (the first `check`, `read` or `list` does it too). */
  ready(): Promise<void>;
}

/**
 * The images of VLGuard's `test.zip`, read in place. Opening reads only the central directory: every
 * entry's name is checked (no absolute paths, no `..`, no backslashes: the whole archive is refused,
 * naming the entry), and the root folder `test/` is stripped when every entry is inside it, so names
 * match `test.json`'s `image` fields. An image's bytes are read from the archive when asked for.
 *
 * @param zipPath path of `test.zip`
 */
export function readVlguardImagesZip(zipPath: string): VlguardZipImages {
  const full = path.resolve(zipPath);
  const name = path.basename(full);
  let index: Promise<ZipIndex> | undefined;

  const openIndex = async (): Promise<ZipIndex> => {
    let zip: yauzl.ZipFile;
    try {
      // Names are decoded and checked here, so that a refused entry is named in our own message.
      zip = await yauzl.openPromise(full, {
        autoClose: false,
        decodeStrings: false,
        validateEntrySizes: true,
      });
    } catch (error: unknown) {
      throw new VlguardLayoutError(
        `${zipPath} is not a readable zip archive (${error instanceof Error ? error.message : String(error)}): ${DOWNLOAD_IMAGES}, or unzip it`,
        { cause: error },
      );
    }
    try {
      const names: [string, yauzl.Entry][] = [];
      for await (const entry of zip.eachEntry()) {
        const entryName = yauzl.getFileNameLowLevel(
          entry.generalPurposeBitFlag,
          entry.fileNameRaw,
          entry.extraFields,
          true,
        );
        const unsafe = unsafeEntryName(entryName);
        if (unsafe !== null)
          throw new VlguardLayoutError(
            `${zipPath}: entry ${JSON.stringify(entryName)} ${unsafe}; the archive is refused (it is not VLGuard's test.zip, or it was tampered with)`,
          );
        if (entryName.startsWith(MACOS_METADATA)) continue;
        names.push([entryName, entry]);
      }
      const strip = names.length > 0 && names.every(([n]) => n.startsWith(ZIP_ROOT));
      const files = new Map<string, yauzl.Entry>();
      const folders = new Set<string>();
      for (const [entryName, entry] of names) {
        const relative = strip ? entryName.slice(ZIP_ROOT.length) : entryName;
        if (relative === "") continue;
        if (relative.endsWith("/")) {
          folders.add(relative.slice(0, -1));
          continue;
        }
        if (files.has(relative))
          throw new VlguardLayoutError(
            `${zipPath}: entry ${JSON.stringify(entryName)} is in the archive twice; the archive is refused`,
          );
        files.set(relative, entry);
        // Folders implied by a file's path (archives need not list them).
        const parts = relative.split("/");
        for (let k = 1; k < parts.length; k++) folders.add(parts.slice(0, k).join("/"));
      }
      return { zip, files, folders };
    } catch (error: unknown) {
      zip.close();
      if (error instanceof VlguardLayoutError) throw error;
      throw new VlguardLayoutError(
        `${zipPath}: the archive's directory cannot be read (${error instanceof Error ? error.message : String(error)}): ${DOWNLOAD_IMAGES}, or unzip it`,
        { cause: error },
      );
    }
  };
  const opened = (): Promise<ZipIndex> => {
    index ??= openIndex().catch((error: unknown) => {
      index = undefined;
      throw error;
    });
    return index;
  };

  return {
    kind: "zip",
    path: full,
    // The marker sits beside test.json and the archive; nothing is looked for inside the archive.
    markerDirs: [path.dirname(full)],
    ready: async () => {
      await opened();
    },
    check: async (relative) => {
      const { zip, files, folders } = await opened();
      const entry = files.get(relative);
      if (entry === undefined) {
        return folders.has(relative)
          ? { ok: false, reason: "unreadable_image", detail: `image ${relative} is not a file` }
          : { ok: false, reason: "missing_image", detail: `image ${relative} is not in ${name}` };
      }
      if (entry.uncompressedSize === 0)
        return { ok: false, reason: "unreadable_image", detail: `image ${relative} is 0 bytes` };
      let head: Buffer;
      try {
        head = await readEntry(zip, entry, 16);
      } catch (error: unknown) {
        const why = error instanceof Error ? error.message : String(error);
        return {
          ok: false,
          reason: "unreadable_image",
          detail: `image ${relative} cannot be read from ${name} (${why})`,
        };
      }
      const type = detectImageType(head);
      if (type === null)
        return {
          ok: false,
          reason: "unreadable_image",
          detail: `image ${relative} holds no JPEG, PNG, WebP or GIF bytes`,
        };
      return { ok: true, type, bytes: entry.uncompressedSize };
    },
    read: async (relative) => {
      const { zip, files } = await opened();
      const entry = files.get(relative);
      if (entry === undefined) throw new VlguardLayoutError(`image ${relative} is no longer in ${zipPath}`);
      try {
        return await readEntry(zip, entry, Number.POSITIVE_INFINITY);
      } catch (error: unknown) {
        throw new VlguardLayoutError(`image ${relative} cannot be read from ${zipPath}`, { cause: error });
      }
    },
    list: async () => [...(await opened()).files.keys()].sort(),
    close: async () => {
      const current = index;
      index = undefined;
      if (current === undefined) return;
      try {
        (await current).zip.close();
      } catch {
        // It never opened: nothing to close.
      }
    },
  };
}

/** The first `limit` bytes of an entry (all of them for `Infinity`), decompressed; sizes are checked. */
async function readEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, limit: number): Promise<Buffer> {
  const stream: Readable = await zip.openReadStreamPromise(entry);
  const chunks: Buffer[] = [];
  let size = 0;
  // Breaking out of the loop destroys the stream, which stops reading the entry.
  for await (const chunk of stream) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    if (size >= limit) break;
  }
  const bytes = Buffer.concat(chunks);
  return Number.isFinite(limit) ? bytes.subarray(0, limit) : bytes;
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
  source: ImageSource,
  used: readonly string[],
  concurrency: number,
): Promise<Map<string, ImageCheck>> {
  const checks = new Map<string, ImageCheck>();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < used.length) {
      const relative = used[next++] as string;
      checks.set(relative, await source.check(relative));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, used.length)) }, worker));
  return checks;
}

async function checkFolderImage(root: string, relative: string): Promise<ImageCheck> {
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
  markerDirs: readonly string[],
  annotationBytes: Buffer,
  checks: ReadonlyMap<string, ImageCheck>,
): Promise<DatasetProvenance> {
  for (const dir of markerDirs) {
    const marker = await readSampleMarker(dir);
    if (marker) return { kind: "sample", size: marker.size, seed: marker.seed };
  }

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
    // The gated images have no published hashes: only test.json is verified byte by byte.
    return { kind: "official", tree: PUBLISHED_LABEL, files: 1, unhashed: VLGUARD_OFFICIAL_IMAGES };
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
