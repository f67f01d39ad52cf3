import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { customConfigSchema } from "../../src/benchmarks/custom/config.ts";
import {
  CustomDatasetError,
  columnKeyOf,
  MAX_CUSTOM_IMAGE_BYTES,
  readCustomDataset,
} from "../../src/benchmarks/custom/layout.ts";
import { writeCustomSample } from "../../src/benchmarks/custom/sample.ts";
import { datasetProvenanceSchema } from "../../src/core/provenance.ts";

const scratch: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "custom-dataset-"));
  scratch.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

let png: Buffer;
let jpeg: Buffer;
before(async () => {
  const image = () =>
    sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 200, g: 0, b: 0 } } });
  png = await image().png().toBuffer();
  jpeg = await image().jpeg().toBuffer();
});

type Line = Record<string, unknown> | string;

/** A record with every required field; `fields` adds or replaces some (undefined removes one). */
const rec = (id: unknown, fields: Record<string, unknown> = {}): Record<string, unknown> => {
  const record: Record<string, unknown> = {
    id,
    image: "images/a.png",
    text: `Text ${String(id)}`,
    expected: "refuse",
    ...fields,
  };
  for (const [key, value] of Object.entries(record)) if (value === undefined) delete record[key];
  return record;
};

/**
 * Writes `dataset.jsonl` (objects as JSON lines, strings verbatim) and the images into a fresh folder;
 * `images/a.png` and `images/b.png` are PNGs unless `images` says otherwise.
 */
async function fixture(
  lines: readonly Line[],
  images: Record<string, Buffer | string> = {},
  raw?: string | Buffer,
): Promise<{ dir: string; file: string; bytes: Buffer }> {
  const dir = await tempDir();
  await mkdir(path.join(dir, "images"), { recursive: true });
  for (const [name, bytes] of Object.entries({ "images/a.png": png, "images/b.png": png, ...images }))
    await writeFile(path.join(dir, ...name.split("/")), bytes);
  const file = path.join(dir, "dataset.jsonl");
  const bytes = Buffer.from(
    raw ?? lines.map((l) => `${typeof l === "string" ? l : JSON.stringify(l)}\n`).join(""),
  );
  await writeFile(file, bytes);
  return { dir, file, bytes };
}

async function rejects(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof CustomDatasetError, `expected a CustomDatasetError, got ${String(error)}`);
    assert.equal(error.name, "CustomDatasetError");
    assert.match(error.message, pattern);
    return true;
  });
}

describe("readCustomDataset: a good file", () => {
  test("reads records, columns, groups, config and provenance exactly", async () => {
    const { dir, file, bytes } = await fixture([
      rec(1, { column: "harmful", category: "weapons", severity: 3, flagged: true, note: null }),
      rec("b-1", { expected: "comply", column: "benign", category: "weapons", image: "./images/b.png" }),
      rec(2, { column: "harmful", category: "drugs", image: "images/b.png" }),
    ]);
    const judgePrompt = { template: "Judge {answer}", file: "judge.txt", sha256: "a".repeat(64) };
    const dataset = await readCustomDataset(file, { judgePrompt });
    assert.deepEqual(dataset.records, [
      {
        id: "1",
        column: "harmful",
        expected: "refuse",
        text: "Text 1",
        imagePath: "images/a.png",
        mediaType: "image/png",
        imageBytes: png.byteLength,
        groups: { column: "harmful", category: "weapons", severity: 3, flagged: true, note: null },
      },
      {
        id: "b-1",
        column: "benign",
        expected: "comply",
        text: "Text b-1",
        imagePath: "images/b.png",
        mediaType: "image/png",
        imageBytes: png.byteLength,
        groups: { column: "benign", category: "weapons" },
      },
      {
        id: "2",
        column: "harmful",
        expected: "refuse",
        text: "Text 2",
        imagePath: "images/b.png",
        mediaType: "image/png",
        imageBytes: png.byteLength,
        groups: { column: "harmful", category: "drugs" },
      },
    ]);
    assert.deepEqual(dataset.skipped, []);
    assert.deepEqual(dataset.config, {
      kind: "behaviours",
      columnField: "column",
      columns: [
        { key: "harmful", label: "harmful", items: 2, expected: ["refuse"] },
        { key: "benign", label: "benign", items: 1, expected: ["comply"] },
      ],
      judgePrompt,
    });
    assert.equal(customConfigSchema.safeParse(dataset.config).success, true);
    assert.deepEqual(dataset.provenance, {
      kind: "own",
      file: "dataset.jsonl",
      sha256: createHash("sha256").update(bytes).digest("hex"),
      images: 2,
    });
    assert.equal(datasetProvenanceSchema.safeParse(dataset.provenance).success, true);
    assert.equal(dataset.root, dir);
    assert.deepEqual(dataset.notes, []);
  });

  test("a relative path is resolved and the judge prompt defaults to null", async () => {
    const { dir, file } = await fixture([rec(1)]);
    const dataset = await readCustomDataset(path.relative(process.cwd(), file));
    assert.equal(dataset.root, dir);
    assert.equal(dataset.config.judgePrompt, null);
  });

  test("a column with both expected values lists them sorted", async () => {
    const { file } = await fixture([
      rec(1, { column: "mixed", expected: "refuse" }),
      rec(2, { column: "mixed", expected: "comply" }),
    ]);
    const dataset = await readCustomDataset(file);
    assert.deepEqual(dataset.config.columns, [
      { key: "mixed", label: "mixed", items: 2, expected: ["comply", "refuse"] },
    ]);
  });
});

describe("readCustomDataset: skipped records", () => {
  test("each record problem skips the record with its reason, line and field", async () => {
    const longName = "f".repeat(65);
    const { file } = await fixture(
      [
        rec(1, { column: "c" }), // line 1: fine
        "{not json", // 2
        "[1, 2]", // 3
        rec(undefined, { column: "c" }), // 4: no id
        rec(1.5, { column: "c" }), // 5
        rec("x".repeat(201), { column: "c" }), // 6
        rec(7, { column: "c", image: 7 }), // 7
        rec(8, { column: "c", text: "" }), // 8
        rec(9, { column: "c", text: "t".repeat(20_001) }), // 9
        rec(10, { column: "c", expected: "Refuse" }), // 10
        rec(11, { column: "c", meta: { a: 1 } }), // 11
        rec(12, { column: "c", tags: ["a"] }), // 12
        rec(13, { column: "c", [longName]: "v" }), // 13
        rec("1", { column: "c" }), // 14: duplicate of line 1
        rec(15), // 15: no column
        rec(16, { column: null }), // 16
        rec(17, { column: "c", image: "../x.png" }), // 17
        rec(18, { column: "c", image: "/etc/x.png" }), // 18
        rec(19, { column: "c", image: "images/none.png" }), // 19
        rec(20, { column: "c", image: "images/text.png" }), // 20
        rec(21, { column: "c", image: "images/big.png" }), // 21
        rec(22, { column: "c", image: "images" }), // 22: a folder
      ],
      { "images/text.png": "not an image at all" },
    );
    const big = path.join(path.dirname(file), "images", "big.png");
    await writeFile(big, png);
    await truncate(big, MAX_CUSTOM_IMAGE_BYTES + 1); // sparse: a PNG head and 20 MiB + 1 byte
    const dataset = await readCustomDataset(file);
    assert.deepEqual(
      dataset.records.map((r) => r.id),
      ["1"],
    );
    const expected: [string | null, string, number, RegExp][] = [
      [null, "malformed_record", 2, /line 2: is not JSON .*one JSON object per line/],
      [null, "malformed_record", 3, /line 3: is a list, not a JSON object/],
      [null, "malformed_record", 4, /line 4: field "id" is missing/],
      [null, "malformed_record", 5, /line 5: field "id" is 1\.5: use a whole number or a string/],
      [null, "malformed_record", 6, /line 6: field "id" is 201 characters long: use at most 200/],
      ["7", "malformed_record", 7, /line 7 \(id "7"\): field "image" is number: give the image's path/],
      ["8", "malformed_record", 8, /line 8 \(id "8"\): field "text" is empty/],
      [
        "9",
        "malformed_record",
        9,
        /line 9 \(id "9"\): field "text" is 20,001 characters long: use at most 20,000/,
      ],
      [
        "10",
        "malformed_record",
        10,
        /line 10 \(id "10"\): field "expected" is "Refuse": use one of yes, no, refuse, comply/,
      ],
      ["11", "malformed_record", 11, /line 11 \(id "11"\): field "meta" is an object: other fields must be/],
      ["12", "malformed_record", 12, /line 12 \(id "12"\): field "tags" is a list/],
      [
        "13",
        "malformed_record",
        13,
        /line 13 \(id "13"\): field "f+… has a name of 65 characters: use at most 64/,
      ],
      ["1", "duplicate_id", 14, /line 14 \(id "1"\): field "id" is already used by line 1/],
      ["15", "missing_column", 15, /line 15 \(id "15"\): field "column" is missing/],
      ["16", "missing_column", 16, /line 16 \(id "16"\): field "column" is null/],
      [
        "17",
        "image_outside",
        17,
        /line 17 \(id "17"\): field "image" "\.\.\/x\.png" is outside dataset\.jsonl's folder/,
      ],
      ["18", "image_outside", 18, /line 18 \(id "18"\): field "image" "\/etc\/x\.png" is outside/],
      ["19", "missing_image", 19, /line 19 \(id "19"\): field "image" "images\/none\.png" does not exist/],
      [
        "20",
        "unreadable_image",
        20,
        /line 20 \(id "20"\): field "image" "images\/text\.png" is not a JPEG, PNG, WebP or GIF \(first bytes 6e6f7420616e2069\)/,
      ],
      [
        "21",
        "image_too_large",
        21,
        /line 21 \(id "21"\): field "image" "images\/big\.png" is 20\.0 MiB: use images of at most 20 MiB/,
      ],
      [
        "22",
        "unreadable_image",
        22,
        /line 22 \(id "22"\): field "image" "images" is a folder, not an image file/,
      ],
    ];
    assert.deepEqual(
      dataset.skipped.map((s) => [s.id, s.reason]),
      expected.map(([id, reason]) => [id, reason]),
    );
    for (const [index, [, , line, pattern]] of expected.entries()) {
      const detail = dataset.skipped[index]?.detail ?? "";
      assert.ok(detail.startsWith(`dataset.jsonl line ${line}`), detail);
      assert.match(detail, pattern);
    }
    assert.deepEqual(dataset.provenance.kind === "own" && dataset.provenance.images, 1);
  });

  test('the integer id 12 and the string id "12" are one id; later repeats name the first line', async () => {
    const { file } = await fixture([rec(12), rec("12"), rec(12)]);
    const dataset = await readCustomDataset(file);
    assert.deepEqual(
      dataset.records.map((r) => r.id),
      ["12"],
    );
    assert.deepEqual(dataset.skipped, [
      {
        id: "12",
        reason: "duplicate_id",
        detail:
          'dataset.jsonl line 2 (id "12"): field "id" is already used by line 1: give every record a unique id (12 and "12" are the same id)',
      },
      {
        id: "12",
        reason: "duplicate_id",
        detail:
          'dataset.jsonl line 3 (id "12"): field "id" is already used by line 1: give every record a unique id (12 and "12" are the same id)',
      },
    ]);
  });

  test("an image several records use: each record that uses a missing one is skipped", async () => {
    const { file } = await fixture([rec(1), rec(2, { image: "gone.png" }), rec(3, { image: "gone.png" })]);
    const dataset = await readCustomDataset(file);
    assert.deepEqual(
      dataset.skipped.map((s) => [s.id, s.reason]),
      [
        ["2", "missing_image"],
        ["3", "missing_image"],
      ],
    );
  });
});

describe("readCustomDataset: file-level errors", () => {
  test("a file that does not exist", async () => {
    const dir = await tempDir();
    await rejects(
      readCustomDataset(path.join(dir, "nope.jsonl")),
      /nope\.jsonl does not exist: give the path/,
    );
  });

  test("a folder", async () => {
    const dir = await tempDir();
    await rejects(readCustomDataset(dir), /is a folder: give the JSONL file itself/);
  });

  test("an empty file, and one of blank lines only", async () => {
    const empty = await fixture([], {}, "");
    await rejects(readCustomDataset(empty.file), /dataset\.jsonl is empty: write one JSON record per line/);
    const blank = await fixture([], {}, "\n  \r\n\t\n");
    await rejects(readCustomDataset(blank.file), /dataset\.jsonl is empty/);
  });

  test("a file that is not UTF-8", async () => {
    const { file } = await fixture([], {}, Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]));
    await rejects(readCustomDataset(file), /dataset\.jsonl is not UTF-8 text: save it as UTF-8/);
  });

  test("no runnable record: how many were skipped and the first reason", async () => {
    const { file } = await fixture([rec(1, { image: "x.png" }), "nope"]);
    await rejects(
      readCustomDataset(file),
      /dataset\.jsonl: no record can be run \(2 skipped; the first, missing_image: dataset\.jsonl line 1 \(id "1"\): field "image" "x\.png" does not exist/,
    );
  });

  test("a column field that no record has", async () => {
    const { file } = await fixture([rec(1, { category: "a" }), rec(2, { category: null })]);
    await rejects(
      readCustomDataset(file, { columnField: "categroy" }),
      /no record has the field "categroy" to make the columns of: check its spelling/,
    );
  });

  test("a column field that is a record field", async () => {
    const { file } = await fixture([rec(1)]);
    for (const field of ["id", "image", "text", "expected"])
      await rejects(
        readCustomDataset(file, { columnField: field }),
        new RegExp(`the columns cannot be the field "${field}"`),
      );
  });

  test("records of both kinds: the first of the other kind is named", async () => {
    const { file } = await fixture([
      rec("q1", { expected: "comply" }),
      rec(2),
      rec("q3", { expected: "no" }),
    ]);
    await rejects(
      readCustomDataset(file),
      /dataset\.jsonl: line 3 \(id "q3"\) expects "no", a question answered yes\/no, but line 1 \(id "q1"\) expects "comply", a request to refuse or comply with: a dataset holds one kind/,
    );
  });

  test("more than 100 columns", async () => {
    const { file } = await fixture(Array.from({ length: 101 }, (_, i) => rec(i, { column: `c${i}` })));
    await rejects(readCustomDataset(file), /the records make 101 columns, more than 100/);
    const ok = await fixture(Array.from({ length: 100 }, (_, i) => rec(i, { column: `c${i}` })));
    assert.equal((await readCustomDataset(ok.file)).config.columns.length, 100);
  });

  test("two column values that make the same key", async () => {
    const { file } = await fixture([
      rec(1, { column: "Weapons & Drugs" }),
      rec(2, { column: "harmless" }),
      rec(3, { column: "weapons-drugs" }),
    ]);
    await rejects(
      readCustomDataset(file),
      /the column values "Weapons & Drugs" \(line 1\) and "weapons-drugs" \(line 3\) both make the column key "weapons-drugs"/,
    );
  });
});

describe("readCustomDataset: columns", () => {
  test("column keys: valid values kept, others slugged; labels are the values", async () => {
    const long = `${"Long value ".repeat(11)}end`;
    const { file } = await fixture([
      rec(1, { column: "Weapons & Drugs" }),
      rec(2, { column: "type.1" }),
      rec(3, { column: 3 }),
      rec(4, { column: true }),
      rec(5, { column: long }),
      rec(6, { column: "Ärger über Öl" }),
      rec(7, { column: "  Spaced  " }),
      rec(8, { column: "???" }),
    ]);
    const dataset = await readCustomDataset(file);
    assert.deepEqual(
      dataset.config.columns.map((c) => [c.key, c.label]),
      [
        ["weapons-drugs", "Weapons & Drugs"],
        ["type.1", "type.1"],
        ["3", "3"],
        ["true", "true"],
        ["long-value-long-value-long-value-long-value-long-value-long-valu", long.slice(0, 100)],
        ["arger-uber-ol", "Ärger über Öl"],
        ["spaced", "  Spaced  "],
      ],
    );
    assert.deepEqual(
      dataset.records.map((r) => r.column),
      [
        "weapons-drugs",
        "type.1",
        "3",
        "true",
        "long-value-long-value-long-value-long-value-long-value-long-valu",
        "arger-uber-ol",
        "spaced",
      ],
    );
    assert.deepEqual(dataset.records[2]?.groups, { column: 3 });
    assert.deepEqual(
      dataset.skipped.map((s) => [s.id, s.reason]),
      [["8", "malformed_record"]],
    );
    assert.match(
      dataset.skipped[0]?.detail ?? "",
      /line 8 \(id "8"\): field "column" is "\?\?\?", which has no letter or digit/,
    );
    assert.equal(customConfigSchema.safeParse(dataset.config).success, true);
  });

  test("columnKeyOf", () => {
    assert.equal(columnKeyOf("Self-Harm"), "Self-Harm");
    assert.equal(columnKeyOf("-lead"), "lead");
    assert.equal(columnKeyOf("a/b c"), "a-b-c");
    assert.equal(columnKeyOf(-1), "1");
    assert.equal(columnKeyOf("---"), null);
    assert.equal(columnKeyOf(`${"a".repeat(63)} b`), "a".repeat(63));
  });

  test("without a column field the columns are the expected values", async () => {
    const { file } = await fixture([
      rec(1, { expected: "yes", category: "x" }),
      rec(2, { expected: "no" }),
      rec(3, { expected: "yes" }),
    ]);
    const dataset = await readCustomDataset(file);
    assert.deepEqual(dataset.config, {
      kind: "answers",
      columnField: null,
      columns: [
        { key: "yes", label: "yes", items: 2, expected: ["yes"] },
        { key: "no", label: "no", items: 1, expected: ["no"] },
      ],
      judgePrompt: null,
    });
    assert.deepEqual(
      dataset.records.map((r) => [r.id, r.column]),
      [
        ["1", "yes"],
        ["2", "no"],
        ["3", "yes"],
      ],
    );
    assert.deepEqual(dataset.records[0]?.groups, { category: "x" });
  });

  test("a column field that is null everywhere is not chosen by default", async () => {
    const { file } = await fixture([rec(1, { column: null }), rec(2, { expected: "comply", column: null })]);
    const dataset = await readCustomDataset(file);
    assert.equal(dataset.config.columnField, null);
    assert.deepEqual(
      dataset.config.columns.map((c) => c.key),
      ["refuse", "comply"],
    );
  });

  test("--columns-by another field: its values are the columns, `column` stays a group", async () => {
    const { file } = await fixture([
      rec(1, { column: "harmful", category: "drugs" }),
      rec(2, { column: "harmful", category: "weapons" }),
      rec(3, { column: "benign", category: "drugs", expected: "comply" }),
      rec(4, { column: "benign" }),
    ]);
    const dataset = await readCustomDataset(file, { columnField: "category" });
    assert.equal(dataset.config.columnField, "category");
    assert.deepEqual(dataset.config.columns, [
      { key: "drugs", label: "drugs", items: 2, expected: ["comply", "refuse"] },
      { key: "weapons", label: "weapons", items: 1, expected: ["refuse"] },
    ]);
    assert.deepEqual(dataset.records[0]?.groups, { column: "harmful", category: "drugs" });
    assert.deepEqual(
      dataset.skipped.map((s) => [s.id, s.reason]),
      [["4", "missing_column"]],
    );
    assert.match(
      dataset.skipped[0]?.detail ?? "",
      /^dataset\.jsonl line 4 \(id "4"\): field "category" is missing/,
    );
  });
});

describe("readCustomDataset: text and bytes", () => {
  test("blank lines are ignored, a BOM is accepted, \\r\\n ends lines; line numbers count every line", async () => {
    const raw = `\uFEFF${JSON.stringify(rec(1))}\r\n\r\n   \r\n${JSON.stringify(rec(2, { text: "two" }))}\r\n{bad\r\n`;
    const { file } = await fixture([], {}, raw);
    const dataset = await readCustomDataset(file);
    assert.deepEqual(
      dataset.records.map((r) => [r.id, r.text]),
      [
        ["1", "Text 1"],
        ["2", "two"],
      ],
    );
    assert.deepEqual(
      dataset.skipped.map((s) => [s.id, s.reason]),
      [[null, "malformed_record"]],
    );
    assert.match(dataset.skipped[0]?.detail ?? "", /^dataset\.jsonl line 5: is not JSON/);
  });

  test("the type comes from the bytes: a .png holding JPEG is image/jpeg, with a note", async () => {
    const { file } = await fixture(
      [
        rec(1, { image: "images/photo.png" }),
        rec(2, { image: "images/real.jpeg" }),
        rec(3, { image: "images/noext" }),
        rec(4, { image: "images/photo.png" }),
      ],
      { "images/photo.png": jpeg, "images/real.jpeg": jpeg, "images/noext": png },
    );
    const dataset = await readCustomDataset(file);
    assert.deepEqual(
      dataset.records.map((r) => [r.id, r.mediaType, r.imageBytes]),
      [
        ["1", "image/jpeg", jpeg.byteLength],
        ["2", "image/jpeg", jpeg.byteLength],
        ["3", "image/png", png.byteLength],
        ["4", "image/jpeg", jpeg.byteLength],
      ],
    );
    assert.deepEqual(dataset.notes, [
      "1 image whose bytes are another format than the extension says, typed by their bytes: images/photo.png (JPEG)",
    ]);
  });

  test("the mismatch note names the first five and counts the rest", async () => {
    const names = Array.from({ length: 7 }, (_, i) => `images/m${i}.gif`);
    const { file } = await fixture(
      names.map((image, i) => rec(i, { image })),
      Object.fromEntries(names.map((n) => [n, png])),
    );
    const dataset = await readCustomDataset(file);
    assert.deepEqual(dataset.notes, [
      "7 images whose bytes are another format than the extension says, typed by their bytes: images/m0.gif (PNG), images/m1.gif (PNG), images/m2.gif (PNG), images/m3.gif (PNG), images/m4.gif (PNG), and 2 more",
    ]);
  });

  test("backslashes and ./ segments give a / path relative to the folder", async () => {
    const { file } = await fixture([
      rec(1, { image: "images\\a.png" }),
      rec(2, { image: "./x/../images/b.png" }),
    ]);
    const dataset = await readCustomDataset(file);
    assert.deepEqual(
      dataset.records.map((r) => r.imagePath),
      ["images/a.png", "images/b.png"],
    );
  });
});

describe("writeCustomSample", () => {
  test("reads back as a sample with the summary's counts and its three skips", async () => {
    const dir = await tempDir();
    const summary = await writeCustomSample(dir);
    assert.deepEqual(summary, {
      dir,
      file: path.join(dir, "dataset.jsonl"),
      records: 60,
      runnable: 57,
      images: 59,
    });
    assert.equal((await readdir(path.join(dir, "images"))).length, summary.images);
    const lines = (await readFile(summary.file, "utf8")).split("\n").filter((l) => l !== "");
    assert.equal(lines.length, summary.records);

    const dataset = await readCustomDataset(summary.file);
    assert.deepEqual(dataset.provenance, { kind: "sample", size: "small", seed: 1 });
    assert.equal(dataset.records.length, summary.runnable);
    assert.deepEqual(
      dataset.skipped.map((s) => [s.id, s.reason]),
      [
        ["5", "missing_image"],
        ["3", "duplicate_id"],
        ["benign-21", "malformed_record"],
      ],
    );
    assert.deepEqual(dataset.config.kind, "behaviours");
    assert.equal(dataset.config.columnField, "column");
    assert.deepEqual(dataset.config.columns, [
      { key: "harmful", label: "harmful", items: 28, expected: ["refuse"] },
      { key: "benign", label: "benign", items: 29, expected: ["comply"] },
    ]);
    const categories = new Set(dataset.records.map((r) => r.groups.category));
    assert.ok(categories.size >= 3 && categories.size <= 4, [...categories].join(", "));
    assert.ok(
      dataset.records.some((r) => /^\d+$/.test(r.id)) && dataset.records.some((r) => /^benign-/.test(r.id)),
    );
    assert.equal(dataset.records.filter((r) => r.mediaType === "image/jpeg").length, 1);
    assert.deepEqual(dataset.notes, [
      "1 image whose bytes are another format than the extension says, typed by their bytes: images/017.png (JPEG)",
    ]);
  });

  test("the same seed writes the same bytes; another seed other ones", async () => {
    const [one, two, other] = [await tempDir(), await tempDir(), await tempDir()];
    await writeCustomSample(one, { seed: 7 });
    await writeCustomSample(two, { seed: 7 });
    await writeCustomSample(other, { seed: 8 });
    const files = async (dir: string): Promise<Map<string, Buffer>> => {
      const names = [
        "dataset.jsonl",
        "mmsafe-sample.json",
        ...(await readdir(path.join(dir, "images"))).map((n) => `images/${n}`),
      ];
      return new Map(
        await Promise.all(names.map(async (n) => [n, await readFile(path.join(dir, n))] as const)),
      );
    };
    assert.deepEqual(await files(one), await files(two));
    assert.notDeepEqual(
      await readFile(path.join(one, "dataset.jsonl")),
      await readFile(path.join(other, "dataset.jsonl")),
    );
    assert.deepEqual((await readCustomDataset(path.join(one, "dataset.jsonl"))).provenance, {
      kind: "sample",
      size: "small",
      seed: 7,
    });
  });
});
