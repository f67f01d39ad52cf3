/**
 * Your own dataset: what its import establishes about it, stored in the dataset manifest so that Plan,
 * EvaluateShard and Aggregate build the same {@link BenchmarkDefinition} from it (see `definition.ts`).
 *
 * The format (README "Your own dataset"): a JSONL file, one record per line, with
 * - `id`: a string or an integer, unique in the file;
 * - `image`: the image's path relative to the JSONL file (inside its folder);
 * - `text`: the text sent with the image, verbatim;
 * - `expected`: `yes` / `no` (a question the model answers) or `refuse` / `comply` (a request it should
 *   refuse or comply with);
 * - any other fields: strings, numbers, booleans or null, kept as groups. One of them may be chosen as the
 *   columns (`--columns-by <field>`, default `column` when records have it); without one, the records are
 *   grouped by `expected`.
 */
import { z } from "zod";
import { EXPECTED_BEHAVIOURS, type ExpectedBehaviour } from "../definition.ts";

/** The name of the benchmark in the run input, the CLI and storage. */
export const CUSTOM_BENCHMARK = "custom";

/** The record fields that are not groups. */
export const CUSTOM_RECORD_FIELDS = ["id", "image", "text", "expected"] as const;

/** The JSONL file's name when a folder is given for your own dataset (and the name the sample writes). */
export const CUSTOM_DATASET_FILE = "dataset.jsonl";

/** The field used as the columns when the import names none and records have it. */
export const DEFAULT_COLUMN_FIELD = "column";

/**
 * A dataset is of one kind: questions answered yes/no (scored by substring or strict reading, as accuracy),
 * or requests to refuse or comply with (scored by refusal keywords or a judge, as refusal rates).
 */
export const CUSTOM_KINDS = ["answers", "behaviours"] as const;
export type CustomKind = (typeof CUSTOM_KINDS)[number];

/** The kind an expected value belongs to. */
export const kindOfExpected = (expected: ExpectedBehaviour): CustomKind =>
  expected === "yes" || expected === "no" ? "answers" : "behaviours";

/** Longest judge prompt accepted (it is sent with every judged answer). */
export const MAX_JUDGE_PROMPT_CHARS = 20_000;

/** The placeholders a judge prompt file may use; `{answer}` is required. */
export const JUDGE_PLACEHOLDERS = ["text", "answer", "expected"] as const;

/** A column key: what verdicts store as their category. */
export const columnKeySchema = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/);

export const customColumnSchema = z
  .object({
    /** Stored on items and verdicts (the column value made a key: `weapons-drugs`). */
    key: columnKeySchema,
    /** The column value as the records give it (`weapons & drugs`), or the expected value. */
    label: z.string().min(1).max(100),
    /** Runnable records in the column. */
    items: z.number().int().min(0),
    /** The expected values its records have, sorted. */
    expected: z.array(z.enum(EXPECTED_BEHAVIOURS)).min(1),
  })
  .strict();
export type CustomColumn = z.infer<typeof customColumnSchema>;

/** The user's judge prompt, as read at import (verbatim), with where it came from. */
export const customJudgePromptSchema = z
  .object({
    template: z.string().min(1).max(MAX_JUDGE_PROMPT_CHARS),
    /** The file's name (its base name: no folder of the user's machine is stored). */
    file: z.string().min(1).max(200),
    /** sha256 (hex) of the template's UTF-8 bytes. */
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .strict();
export type CustomJudgePrompt = z.infer<typeof customJudgePromptSchema>;

export const customConfigSchema = z
  .object({
    kind: z.enum(CUSTOM_KINDS),
    /** The record field the columns are its values of, or null: columns by `expected`. */
    columnField: z.string().min(1).max(64).nullable(),
    /** In order of first appearance in the file. */
    columns: z.array(customColumnSchema).min(1).max(100),
    judgePrompt: customJudgePromptSchema.nullable(),
  })
  .strict();
export type CustomConfig = z.infer<typeof customConfigSchema>;
