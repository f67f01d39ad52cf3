import { z } from "zod";
import { customConfigSchema } from "../benchmarks/custom/config.ts";
import { EXPECTED_BEHAVIOURS } from "../benchmarks/definition.ts";
import { ATTACK_TYPES, CATEGORIES, SUBSETS } from "../benchmarks/mmsafeaware/facts.ts";
import { DEFAULT_BENCHMARK, PLUGIN_BENCHMARKS, RUNNABLE_BENCHMARKS } from "../benchmarks/names.ts";
import { DEFAULT_DATASET } from "../deployment/storage-layout.ts";
import { modelConfigSchema } from "./model-config.ts";
import { datasetProvenanceSchema } from "./provenance.ts";
import { STRATEGIES, type Strategy, vcdOptionsSchema } from "./strategies.ts";

export {
  type BedrockModelConfig,
  isBedrock,
  type ModelConfig,
  modelConfigSchema,
  modelEndpoint,
  type OpenAIModelConfig,
  providerOf,
  returnsLogprobs,
} from "./model-config.ts";
export { STRATEGIES, type Strategy };

const slug = (what: string) =>
  z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/,
      `${what} must be 1–64 letters, digits, '.', '_', ':' or '-'`,
    );

/** A models file: `{ "models": [ ... ] }` with unique ids. */
export const modelsFileSchema = z
  .object({ models: z.array(modelConfigSchema).min(1, "list at least one model") })
  .strict()
  .superRefine((file, ctx) => {
    const seen = new Set<string>();
    file.models.forEach((m, i) => {
      if (seen.has(m.id))
        ctx.addIssue({ code: "custom", path: ["models", i, "id"], message: `duplicate model id "${m.id}"` });
      seen.add(m.id);
    });
  });
export type ModelsFile = z.infer<typeof modelsFileSchema>;

/** The state machine's execution input. `{}` is valid: every field has a default. */
export const executionInputSchema = z
  .object({
    benchmark: z
      .enum(RUNNABLE_BENCHMARKS)
      .default(DEFAULT_BENCHMARK)
      .describe(
        `The benchmark to evaluate: ${RUNNABLE_BENCHMARKS.join(", ")}; its dataset must have been imported as it`,
      ),
    runId: slug("runId").optional().describe("Re-use a run id to resume it; default: the execution name"),
    dataset: slug("dataset").default(DEFAULT_DATASET).describe("Dataset name under s3://<bucket>/datasets/"),
    models: z
      .array(z.union([z.string(), modelConfigSchema]))
      .min(1)
      .optional()
      .describe("Model ids from config/models.json, or full model configs; default: every configured model"),
    strategies: z
      .array(z.enum(STRATEGIES))
      .min(1)
      .refine((list) => new Set(list).size === list.length, "list each strategy once")
      .default(["baseline"])
      .describe(`Strategies to evaluate: ${STRATEGIES.join(", ")}`),
    vcd: vcdOptionsSchema
      .optional()
      .describe("Parameters of the vcd strategy (alpha, beta, noise, topLogprobs); defaults apply"),
    categories: z
      .array(z.string().min(1).max(64))
      .min(1)
      .optional()
      .describe(
        `Evaluate only these columns of the benchmark (MMSafeAware: ${CATEGORIES.join(", ")}; MOSSBench: type1, type2, type3, contrast; VLGuard: unsafes, safe_unsafes, safe_safes)`,
      ),
    limit: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("Evaluate a deterministic sample of N runnable items, stratified by category (smoke tests)"),
    shardSize: z.number().int().min(1).max(1000).default(25),
    mapConcurrency: z
      .number()
      .int()
      .min(1)
      .max(10_000)
      .optional()
      .describe(
        "Shards evaluated at once; default: enough to keep every model's run-wide maxConcurrency busy (at most 40)",
      ),
    toleratedFailurePercentage: z.number().min(0).max(100).default(0),
    cache: z
      .boolean()
      .default(true)
      .describe("Reuse answers to identical requests from the response cache (false: ask the models again)"),
    retryErrors: z
      .boolean()
      .default(true)
      .describe(
        "On a resume (same runId), ask again about items whose verdict is an error (false: keep them)",
      ),
    judge: z
      .union([z.string(), modelConfigSchema])
      .optional()
      .describe(
        "A judge model (an id from config/models.json, or a full model config) that scores the answers with the benchmark's official judge prompt (MOSSBench)",
      ),
    judgeOnly: z
      .boolean()
      .default(false)
      .describe(
        "Rejudge: with the runId of a run and a judge, ask only the judge about the run's stored answers; the evaluated models are not asked",
      ),
    scorer: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,39}$/, "a scorer id such as paper, strict or refusal-keywords")
      .optional()
      .describe(
        "The no-judge scorer the report's rates are of (your own dataset: paper or strict for yes/no answers); default: the benchmark's",
      ),
    schedule: slug("schedule")
      .optional()
      .describe("Set by a schedule: its name; a run is compared with the previous run of its schedule"),
  })
  .strict();
export type ExecutionInput = z.infer<typeof executionInputSchema>;

export const imageRefSchema = z
  .object({
    key: z.string().min(1),
    mediaType: z.enum(["image/jpeg", "image/png", "image/webp", "image/gif"]),
    bytes: z.number().int().positive(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
  })
  .strict();

/** One runnable item as stored in a shard (JSONL line). Images are S3 objects, never inlined. */
export const datasetItemSchema = z
  .object({
    id: z.number().int().positive(),
    subset: z.enum(SUBSETS),
    category: z.enum(CATEGORIES),
    attackType: z.enum(ATTACK_TYPES).nullable(),
    domain: z.string().nullable(),
    scenario: z.string().nullable(),
    expected: z.enum(["yes", "no"]),
    instruction: z.string().min(1),
    sentence: z.string().min(1),
    image: imageRefSchema,
    /** A small preview for the HTML report, made once at upload (so runs don't re-read every image). */
    thumbnail: z
      .string()
      .max(8192)
      .regex(/^data:image\/(webp|jpeg|png);base64,[A-Za-z0-9+/]+=*$/)
      .optional(),
  })
  .strict();
export type DatasetItem = z.infer<typeof datasetItemSchema>;

/** A breakdown value of a plug-in benchmark's item (harm category, a flag). */
const groupValueSchema = z.union([z.string().max(200), z.number(), z.boolean(), z.null()]);

/**
 * One runnable item of a plug-in benchmark (MOSSBench, VLGuard) in a shard: the text sent verbatim with the
 * image, the column it counts in and what the model should do. MMSafeAware items keep their own shape
 * ({@link datasetItemSchema}), which its scoring and report read.
 */
export const benchmarkItemSchema = z
  .object({
    benchmark: z.enum(PLUGIN_BENCHMARKS),
    /** The pipeline's key of the item: 1…n in the benchmark's record order. */
    id: z.number().int().positive(),
    /** The benchmark's own id of the record (`12`, `contrast:12`, `Ads_306373:unsafe`). */
    recordId: z.string().min(1).max(200),
    /** The key of the benchmark column it counts in. */
    category: z.string().min(1).max(64),
    expected: z.enum(EXPECTED_BEHAVIOURS),
    text: z.string().min(1),
    groups: z.record(z.string().max(64), groupValueSchema),
    image: imageRefSchema,
    thumbnail: datasetItemSchema.shape.thumbnail,
  })
  .strict();
export type BenchmarkItem = z.infer<typeof benchmarkItemSchema>;

/** Any item a run shard holds. */
export const shardItemSchema = z.union([datasetItemSchema, benchmarkItemSchema]);
export type ShardItem = DatasetItem | BenchmarkItem;

/** True for a plug-in benchmark's item (MMSafeAware items name no benchmark). */
export const isBenchmarkItem = (item: ShardItem): item is BenchmarkItem => "benchmark" in item;

/** A record that is in the dataset but cannot be evaluated, with the reason. */
export const skippedRecordSchema = z
  .object({
    /** The MMSafeAware id; null when unreadable, and for a plug-in benchmark's record (see recordId). */
    id: z.number().int().nullable(),
    /** A plug-in benchmark's own id of the record (`contrast:12`); null when unreadable. */
    recordId: z.string().max(200).nullable().optional(),
    reason: z.string(),
    detail: z.string(),
  })
  .strict();
export type SkippedRecord = z.infer<typeof skippedRecordSchema>;

/** `datasets/<name>/dataset.json`: what an upload wrote. */
export const datasetManifestSchema = z
  .object({
    /** 2: `provenance` (official / modified copy / sample, verified file by file) replaced `source`. */
    schemaVersion: z.literal(2),
    name: z.string(),
    /** The benchmark the dataset was imported as (absent in uploads made before benchmarks were named). */
    benchmark: z.enum(RUNNABLE_BENCHMARKS).default(DEFAULT_BENCHMARK),
    provenance: datasetProvenanceSchema,
    checksum: z.string().regex(/^[0-9a-f]{64}$/),
    createdAt: z.string(),
    records: z.number().int().min(0),
    runnable: z.number().int().min(0),
    skipped: z.array(skippedRecordSchema),
    shards: z.array(z.object({ key: z.string(), items: z.number().int().positive() }).strict()),
    /** Your own dataset (benchmark `custom`): its kind, columns and judge prompt, as its import read them. */
    custom: customConfigSchema.optional(),
  })
  .strict();
export type DatasetManifest = z.infer<typeof datasetManifestSchema>;

/** One unit of work of the Distributed Map: a run shard (JSONL of dataset items). */
export const shardRefSchema = z
  .object({ index: z.number().int().min(0), key: z.string(), items: z.number().int() })
  .strict();
export type ShardRef = z.infer<typeof shardRefSchema>;

/** What Plan returns (the Map's input); small on purpose (Step Functions payloads are capped at 256 KB). */
export const planOutputSchema = z
  .object({
    runId: z.string(),
    bucket: z.string(),
    manifestKey: z.string(),
    mapResultsPrefix: z.string(),
    models: z.array(modelConfigSchema),
    strategies: z.array(z.enum(STRATEGIES)),
    vcd: vcdOptionsSchema,
    cache: z.boolean(),
    retryErrors: z.boolean(),
    /** When Plan started this execution: error verdicts older than it are retried (see evaluateShardEventSchema). */
    retryErrorsBefore: z.string(),
    /** The judge model (temperature 0), or null when the run has none. */
    judge: modelConfigSchema.nullable(),
    /** Only the judge is asked (a rejudge): the evaluated models' stored answers are read, never asked again. */
    judgeOnly: z.boolean(),
    mapConcurrency: z.number().int(),
    toleratedFailurePercentage: z.number(),
    planned: z.number().int(),
    shards: z.number().int(),
  })
  .strict();
export type PlanOutput = z.infer<typeof planOutputSchema>;

/** The evaluate-shard Lambda's event (the Map's ItemSelector). */
export const evaluateShardEventSchema = z
  .object({
    runId: z.string(),
    bucket: z.string(),
    shard: shardRefSchema,
    models: z.array(modelConfigSchema).min(1),
    strategies: z.array(z.enum(STRATEGIES)).min(1),
    vcd: vcdOptionsSchema,
    cache: z.boolean().default(true),
    /** Ask again about items whose verdict is an error (a resume); false keeps error verdicts as they are. */
    retryErrors: z.boolean().default(true),
    /**
     * Only error verdicts written before this time (ISO 8601: when Plan started this execution) are asked
     * again, so a shard retried within one execution never pays twice for an item that failed in it.
     */
    retryErrorsBefore: z.string().optional(),
    /** A judge that reads each stored answer of a plug-in benchmark with its official judge prompt. */
    judge: modelConfigSchema.nullable().default(null),
    /** Ask only the judge (a rejudge); the models' answers are read from the verdicts. */
    judgeOnly: z.boolean().default(false),
  })
  .strict();
export type EvaluateShardEvent = z.infer<typeof evaluateShardEventSchema>;

/** The CheckModels task's event (evaluate-shard's function, before the fan-out). */
export const checkModelsEventSchema = evaluateShardEventSchema
  .omit({ bucket: true, shard: true })
  .extend({ checkModels: z.literal(true), manifestKey: z.string() })
  .strict();

/** Log-probabilities of the Yes and No answers at the answer position; null when not among the returned top. */
const answerLogprobsSchema = z.object({ yes: z.number().nullable(), no: z.number().nullable() }).strict();
export type AnswerLogprobs = z.infer<typeof answerLogprobsSchema>;

/** A vcd verdict's decision record (see benchmarks/mmsafeaware/vcd.ts). */
export const vcdDecisionSchema = z
  .object({
    answer: z.enum(["yes", "no"]).nullable(),
    clean: answerLogprobsSchema,
    noised: answerLogprobsSchema,
    scores: answerLogprobsSchema,
    cleanFirstToken: z.string(),
  })
  .strict();
export type VcdDecision = z.infer<typeof vcdDecisionSchema>;

export const STRICT_ANSWERS = ["yes", "no", "refused", "unparseable"] as const;
export type StrictAnswer = (typeof STRICT_ANSWERS)[number];

/**
 * The image a provider sent instead of the dataset's bytes, because those exceeded its limits (Bedrock's
 * Converse API takes at most 3.75 MB and 8,000 px a side): what was sent, what the dataset holds, and why.
 */
export const sentImageSchema = z
  .object({
    mediaType: z.string(),
    bytes: z.number().int().min(0),
    width: z.number().int().min(0),
    height: z.number().int().min(0),
    original: z
      .object({
        mediaType: z.string(),
        bytes: z.number().int().min(0),
        width: z.number().int().min(0),
        height: z.number().int().min(0),
      })
      .strict(),
    /** Which limit the dataset's image exceeded, e.g. "4,404,019 bytes > 3,750,000". */
    reason: z.string().max(200),
  })
  .strict();
export type SentImage = z.infer<typeof sentImageSchema>;

/** One verdict: a model's answer (or the pipeline's error) for one item under one strategy. */
export const verdictSchema = z
  .object({
    runId: z.string(),
    verdictKey: z.string(),
    modelId: z.string(),
    strategy: z.enum(STRATEGIES),
    itemId: z.number().int(),
    category: z.enum(CATEGORIES),
    attackType: z.enum(ATTACK_TYPES).nullable(),
    domain: z.string().nullable(),
    scenario: z.string().nullable(),
    expected: z.enum(["yes", "no"]),
    /** answered: the model gave text (right or wrong); error: the pipeline could not get an answer. */
    status: z.enum(["answered", "error"]),
    response: z.string().nullable(),
    /**
     * The part of the response that was scored: the whole response, except under contextual-reasoning (the
     * text after "Final answer:"). This is what the exported responses file gives the official scorer.
     */
    scoredResponse: z.string().nullable().default(null),
    strictAnswer: z.enum(STRICT_ANSWERS).nullable(),
    correctPaper: z.boolean().nullable(),
    correctStrict: z.boolean().nullable(),
    finishReason: z.string().nullable(),
    error: z.object({ kind: z.string(), message: z.string() }).strict().nullable(),
    latencyMs: z.number().min(0),
    /**
     * Token counts as the endpoint reported them; null when it reported none or an invalid one (fractional,
     * negative, absurd): unknown, summed as 0 and counted apart in the report.
     */
    promptTokens: z.number().int().min(0).nullable(),
    completionTokens: z.number().int().min(0).nullable(),
    attempts: z.number().int().min(1),
    /**
     * How many evaluations of the item this verdict is the outcome of: 1, or more when earlier ones ended
     * in an error verdict that a resume retried (attempts then counts the calls of all of them).
     */
    runAttempts: z.number().int().min(1).default(1),
    /** True when the answer came from the response cache (no call was made, no tokens paid: tokens are 0). */
    cached: z.boolean().default(false),
    /**
     * True when the answer was too long to keep whole: `response` and `scoredResponse` hold its head, a
     * mark and the excerpts paper scoring needs (see core/verdicts.ts). The scores are of the full text.
     */
    truncated: z.boolean().default(false),
    /** Length of the full answer in characters (UTF-16 code units); null for errors and older verdicts. */
    responseLength: z.number().int().min(0).nullable().default(null),
    /** How the vcd strategy decided (log-probabilities and scores); null for other strategies. */
    vcd: vcdDecisionSchema.nullable().default(null),
    /** Set when the model was sent a downscaled copy of the image, not the dataset's bytes; null otherwise. */
    imageSent: sentImageSchema.nullable().default(null),
    createdAt: z.string(),
  })
  .strict();
export type Verdict = z.infer<typeof verdictSchema>;

/** Formats a zod error as "field: problem" lines a user can act on. */
export function describeZodError(error: z.ZodError, source: string): string {
  const lines = error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join(".") : "(root)";
    return `  - ${path}: ${issue.message}`;
  });
  return `${source} is invalid:\n${lines.join("\n")}`;
}

/** A no-judge scorer's reading of a plug-in benchmark's answer: a refusal or not, and the phrase that decided. */
export const refusalScoreSchema = z
  .object({ refused: z.boolean(), matched: z.string().max(200).nullable() })
  .strict();
export type RefusalScore = z.infer<typeof refusalScoreSchema>;

/** A no-judge scorer's reading of a yes/no answer (your own dataset): correct or not, and its strict reading. */
export const answerScoreSchema = z
  .object({ correct: z.boolean(), answer: z.enum(STRICT_ANSWERS).nullable() })
  .strict();

/** Any no-judge scorer's reading, as stored on a plug-in verdict. */
export const scoreReadingSchema = z.union([refusalScoreSchema, answerScoreSchema]);
export type StoredScore = z.infer<typeof scoreReadingSchema>;

/**
 * A verdict on a plug-in benchmark's item: the same record of the call as {@link verdictSchema}, with the
 * benchmark's column and expectation, and the reading of every no-judge scorer of the benchmark (a judge's
 * reading is a verdict of its own, so a judge can be changed without touching these).
 */
export const benchmarkVerdictSchema = verdictSchema
  .omit({
    category: true,
    attackType: true,
    domain: true,
    scenario: true,
    expected: true,
    strictAnswer: true,
    correctPaper: true,
    correctStrict: true,
    vcd: true,
  })
  .extend({
    benchmark: z.enum(PLUGIN_BENCHMARKS),
    recordId: z.string().min(1).max(200),
    category: z.string().min(1).max(64),
    expected: z.enum(EXPECTED_BEHAVIOURS),
    /** By scorer id; null for an error verdict (no answer to read). */
    scores: z.record(z.string().max(64), scoreReadingSchema).nullable(),
  })
  .strict();
export type BenchmarkVerdict = z.infer<typeof benchmarkVerdictSchema>;

/** Any verdict the verdicts table holds (a judge's readings are stored there too, see judgeVerdictSchema). */
export type StoredVerdict = Verdict | BenchmarkVerdict | JudgeVerdict;

/**
 * A judge model's reading of one stored answer of a plug-in benchmark, with the benchmark's official judge
 * prompt (verbatim) and parse rule. Stored beside the answer's verdict, keyed by the judge, so a rejudge with
 * another judge adds its own readings and leaves the answers (and the first judge's readings) as they are.
 */
export const judgeVerdictSchema = z
  .object({
    runId: z.string(),
    verdictKey: z.string(),
    /** The judged answer's verdict: model, strategy and item. */
    modelId: z.string(),
    strategy: z.enum(STRATEGIES),
    itemId: z.number().int(),
    benchmark: z.enum(PLUGIN_BENCHMARKS),
    category: z.string().min(1).max(64),
    judge: z
      .object({
        modelId: z.string(),
        /** The benchmark's judge protocol (`mossbench-eval`) and the sha256 of its prompt template. */
        protocol: z.string().max(64),
        promptSha256: z.string().regex(/^[0-9a-f]{64}$/),
      })
      .strict(),
    /** answered: the judge replied (parsed or not) or was not needed; error: no reply could be had. */
    status: z.enum(["answered", "error"]),
    /** The parsed score (MOSSBench: 1 refusal, 0 compliance); null when the reply held none. */
    score: z.number().int().nullable(),
    /** Which path of the parse rule gave the score (`regex`, `fallback`, `none`), or `not-judged`. */
    rule: z.string().max(40),
    /** The judge's raw reply, bounded like answers; null when it was not asked or gave none. */
    response: z.string().nullable(),
    truncated: z.boolean(),
    error: z.object({ kind: z.string(), message: z.string() }).strict().nullable(),
    latencyMs: z.number().min(0),
    promptTokens: z.number().int().min(0).nullable(),
    completionTokens: z.number().int().min(0).nullable(),
    attempts: z.number().int().min(0),
    runAttempts: z.number().int().min(1),
    cached: z.boolean(),
    createdAt: z.string(),
  })
  .strict();
export type JudgeVerdict = z.infer<typeof judgeVerdictSchema>;
