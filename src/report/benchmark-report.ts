/**
 * report.json of a plug-in benchmark (MOSSBench, VLGuard, a user's own dataset): built from the benchmark's
 * definition, so nothing here knows a benchmark by name. It is written so a reader can set it beside the
 * paper: every rate carries what it is of (n scored items, events), its 95% interval, and the column says
 * what is measured and whether lower is better; the scorer says whether it is the authors' protocol, and the
 * authors' own rows are carried apart, marked published (never measured by the run).
 */
import { z } from "zod";
import type { BenchmarkDefinition, JudgeProtocol } from "../benchmarks/definition.ts";
import type { BenchmarkRow } from "../core/column-metrics.ts";
import { type RunCompletion, runCompletion } from "../core/completion.ts";
import { modelEndpoint, PROVIDERS, providerOf } from "../core/model-config.ts";
import { datasetProvenanceSchema, describeProvenance } from "../core/provenance.ts";
import {
  type BenchmarkVerdict,
  type ModelConfig,
  STRATEGIES,
  type Strategy,
  skippedRecordSchema,
} from "../core/schemas.ts";
import type { CostEstimate } from "../deployment/cost.ts";

/** Bump when the benchmark report.json changes shape incompatibly. */
export const BENCHMARK_REPORT_SCHEMA_VERSION = 1;

/** How the 95% intervals of the rates are computed (see core/statistics.ts and core/column-metrics.ts). */
export const INTERVAL_METHOD =
  "percentile bootstrap, 1,000 seeded resamples of the scored items within each column";

const intervalSchema = z.object({ low: z.number(), high: z.number() }).strict();
const rate = z.number().nullable();
const count = z.number().int().min(0);

const columnSchema = z
  .object({
    key: z.string(),
    label: z.string(),
    description: z.string(),
    measure: z.enum(["accuracy", "refusal-rate", "attack-success-rate"]),
    lowerIsBetter: z.boolean(),
    officialCount: count.nullable(),
  })
  .strict();

const aggregateSchema = z
  .object({
    key: z.string(),
    label: z.string(),
    description: z.string(),
    of: z.array(z.string()),
    combine: z.enum(["mean-of-columns", "pooled"]),
    /** True when every column it summarises is lower-is-better, false when none is, null when mixed. */
    lowerIsBetter: z.boolean().nullable(),
  })
  .strict();

const scorerSchema = z
  .object({
    id: z.string(),
    label: z.string(),
    official: z.boolean(),
    description: z.string(),
    needsJudge: z.boolean(),
  })
  .strict();

const columnRateSchema = z
  .object({ n: count, events: count, rate, ci: intervalSchema.nullable(), unscored: count })
  .strict();

const rowCountsSchema = z
  .object({
    planned: count,
    answered: count,
    errored: count,
    missing: count,
    skipped: count,
    cached: count,
    retries: count,
    reattempted: count,
    truncated: count,
    invalidUsage: count,
    imageDownscaled: count,
  })
  .strict();

/** {@link BenchmarkRow} as stored in report.json. */
export const benchmarkRowSchema = z
  .object({
    modelId: z.string(),
    model: z.string(),
    kind: z.enum(["model", "baseline"]),
    strategy: z.enum(STRATEGIES),
    scorer: z.object({ id: z.string(), label: z.string(), official: z.boolean() }).strict(),
    counts: rowCountsSchema,
    columns: z.record(z.string(), columnRateSchema),
    aggregates: z.record(z.string(), z.object({ rate, ci: intervalSchema.nullable(), n: count }).strict()),
    errorsByKind: z.record(z.string(), count),
    usage: z
      .object({ promptTokens: count, completionTokens: count, costUsd: z.number().nullable() })
      .strict(),
    latencyMs: z.object({ p50: z.number().nullable(), p95: z.number().nullable() }).strict(),
  })
  .strict();

/** A row of the authors' published table: carried as published, never a measurement of this run. */
const publishedRowSchema = z
  .object({
    published: z.literal(true),
    model: z.string(),
    values: z.record(z.string(), z.number()),
    source: z.string(),
    note: z.string().optional(),
  })
  .strict();

/** {@link RunCompletion} as stored in report.json. */
const completionSchema = z
  .object({
    outcome: z.enum(["complete", "with_errors", "no_answers"]),
    errored: count,
    missing: count,
    /** Answers the run's judge has no reading of (absent without a judge). */
    unjudged: count.optional(),
    affected: z.array(
      z
        .object({
          modelId: z.string(),
          strategy: z.enum(STRATEGIES),
          planned: count,
          answered: count,
          errored: count,
          missing: count,
          kinds: z.record(z.string(), count),
          sample: z.string().nullable(),
          unjudged: count.optional(),
        })
        .strict(),
    ),
  })
  .strict();

const costLineSchema = z
  .object({
    item: z.string(),
    quantity: z.number(),
    unit: z.string(),
    unitPriceUsd: z.number(),
    usd: z.number(),
    price: z.string(),
  })
  .strict();

export const benchmarkReportSchema = z
  .object({
    schemaVersion: z.literal(BENCHMARK_REPORT_SCHEMA_VERSION),
    generator: z.object({ name: z.literal("mmsafe"), version: z.string() }).strict(),
    benchmark: z
      .object({
        name: z.string(),
        title: z.string(),
        summary: z.string(),
        source: z
          .object({
            repository: z.string(),
            commit: z.string(),
            license: z.string(),
            citation: z.string(),
            images: z.string(),
          })
          .strict(),
        columns: z.array(columnSchema),
        aggregates: z.array(aggregateSchema),
        /** Every scorer the benchmark declares (the run's is `run.scorer`). */
        scorers: z.array(scorerSchema),
      })
      .strict(),
    run: z
      .object({
        runId: z.string(),
        startedAt: z.string(),
        finishedAt: z.string(),
        dataset: z
          .object({
            name: z.string(),
            provenance: datasetProvenanceSchema,
            checksum: z.string(),
            records: count,
            runnable: count,
            skipped: z.array(skippedRecordSchema),
          })
          .strict(),
        /** Items planned per model × strategy. */
        plannedItems: count,
        models: z.array(
          z
            .object({
              id: z.string(),
              model: z.string(),
              kind: z.enum(["model", "baseline"]),
              provider: z.enum(PROVIDERS),
              /** The endpoint's base URL, or `bedrock:<region>/<model>`; never a key. */
              endpoint: z.string(),
            })
            .strict(),
        ),
        strategies: z.array(z.enum(STRATEGIES)),
        /** The scorer every rate of `rows` is of. */
        scorer: scorerSchema,
        judge: z
          .object({
            modelId: z.string(),
            endpoint: z.string(),
            protocolId: z.string(),
            /** sha256 (hex) of the judge prompt template the verdicts were produced with. */
            promptSha256: z.string(),
            parseRule: z.string(),
            costUsd: z.number().nullable(),
          })
          .strict()
          .nullable(),
        intervals: z.object({ level: z.literal(95), method: z.string() }).strict(),
        /**
         * Whether the rates can be set beside the published ones: the official scorer, on the official data,
         * every runnable item planned. `reasons` says what stands in the way (empty when comparable).
         */
        comparison: z.object({ comparable: z.boolean(), reasons: z.array(z.string()) }).strict(),
      })
      .strict(),
    rows: z.array(benchmarkRowSchema),
    published: z.array(publishedRowSchema),
    completion: completionSchema,
    cost: z
      .object({
        /** Model tokens at the configured prices; null when no model has prices. */
        modelUsd: z.number().nullable(),
        /** The judge's tokens; null without a judge or without its prices. */
        judgeUsd: z.number().nullable(),
        aws: z
          .object({
            totalUsd: z.number(),
            lines: z.array(costLineSchema),
            prices: z.object({ region: z.string(), asOf: z.string() }).strict(),
          })
          .strict()
          .nullable(),
      })
      .strict(),
  })
  .strict();
export type BenchmarkReport = z.infer<typeof benchmarkReportSchema>;
export type BenchmarkReportRow = z.infer<typeof benchmarkRowSchema>;
export type BenchmarkReportColumn = BenchmarkReport["benchmark"]["columns"][number];
export type BenchmarkReportAggregate = BenchmarkReport["benchmark"]["aggregates"][number];

/** The judge of a run, as the report records it. */
export interface BenchmarkJudgeInput {
  model: ModelConfig;
  protocol: Pick<JudgeProtocol, "id" | "parseRule">;
  /** sha256 (hex) of the prompt template (MOSSBench: MOSSBENCH_JUDGE_PROMPT_SHA256). */
  promptSha256: string;
  /** What the judge's calls cost at its prices; null when unpriced. */
  costUsd: number | null;
}

export interface BenchmarkReportInput {
  version: string;
  definition: BenchmarkDefinition;
  runId: string;
  startedAt: string;
  finishedAt: string;
  dataset: BenchmarkReport["run"]["dataset"];
  plannedItems: number;
  models: readonly ModelConfig[];
  strategies: readonly Strategy[];
  /** The id of the scorer the rows were computed with (one of the definition's scorers). */
  scorer: string;
  judge?: BenchmarkJudgeInput | null | undefined;
  rows: readonly BenchmarkRow[];
  /** The run's verdicts, for the completion's sample error messages (rows alone give the counts). */
  verdicts?: readonly BenchmarkVerdict[] | undefined;
  /** Computed from the rows (and verdicts) when absent. */
  completion?: RunCompletion | undefined;
  awsCost?: CostEstimate | undefined;
}

/** An error in the report's input: a scorer the definition does not declare, a judge missing or unneeded. */
export class BenchmarkReportError extends Error {
  override readonly name = "BenchmarkReportError";
}

/** The completion of a plug-in benchmark's run: its rows and verdicts have every field runCompletion reads. */
export function benchmarkCompletion(
  rows: readonly BenchmarkRow[],
  verdicts: readonly BenchmarkVerdict[] = [],
): RunCompletion {
  return runCompletion(rows, verdicts);
}

/** Whether the aggregate's columns are all lower-is-better (true), none (false), or mixed (null). */
function aggregateDirection(definition: BenchmarkDefinition, of: readonly string[]): boolean | null {
  const directions = new Set(
    of.map((key) => definition.columns.find((c) => c.key === key)?.lowerIsBetter ?? null),
  );
  return directions.size === 1 ? ([...directions][0] ?? null) : null;
}

function comparison(
  input: BenchmarkReportInput,
  scorer: BenchmarkDefinition["scorers"][number],
): { comparable: boolean; reasons: string[] } {
  const reasons: string[] = [];
  if (input.definition.published.length === 0)
    reasons.push("the benchmark has no published numbers transcribed");
  if (!scorer.official) reasons.push(`the scorer (${scorer.id}) is not the official protocol`);
  const provenance = input.dataset.provenance.kind;
  if (provenance === "sample") reasons.push("the data is a generated sample, not the real benchmark");
  if (provenance === "modified") reasons.push("the data is a modified copy, not the official data");
  if (input.plannedItems < input.dataset.runnable)
    reasons.push(
      `${input.plannedItems.toLocaleString("en-US")} of ${input.dataset.runnable.toLocaleString("en-US")} runnable items were planned`,
    );
  if (input.dataset.skipped.length > 0)
    reasons.push(
      `${input.dataset.skipped.length.toLocaleString("en-US")} records of the data could not be evaluated`,
    );
  return { comparable: reasons.length === 0, reasons };
}

const sumOrNull = (values: readonly (number | null)[]): number | null => {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : known.reduce((s, v) => s + v, 0);
};

/** report.json of a plug-in benchmark's run. */
export function buildBenchmarkReport(input: BenchmarkReportInput): BenchmarkReport {
  const { definition } = input;
  const scorer = definition.scorers.find((s) => s.id === input.scorer);
  if (!scorer)
    throw new BenchmarkReportError(
      `scorer "${input.scorer}" is not one of ${definition.title}'s (${definition.scorers.map((s) => s.id).join(", ")})`,
    );
  const judge = input.judge ?? null;
  if (scorer.needsJudge && judge === null)
    throw new BenchmarkReportError(`scorer "${scorer.id}" needs a judge, and the run names none`);
  const report: BenchmarkReport = {
    schemaVersion: BENCHMARK_REPORT_SCHEMA_VERSION,
    generator: { name: "mmsafe", version: input.version },
    benchmark: {
      name: definition.name,
      title: definition.title,
      summary: definition.summary,
      source: { ...definition.source },
      columns: definition.columns.map((c) => ({ ...c })),
      aggregates: definition.aggregates.map((a) => ({
        ...a,
        of: [...a.of],
        lowerIsBetter: aggregateDirection(definition, a.of),
      })),
      scorers: definition.scorers.map((s) => ({ ...s })),
    },
    run: {
      runId: input.runId,
      startedAt: input.startedAt,
      finishedAt: input.finishedAt,
      dataset: input.dataset,
      plannedItems: input.plannedItems,
      models: input.models.map((m) => ({
        id: m.id,
        model: m.model,
        kind: m.kind,
        provider: providerOf(m),
        endpoint: modelEndpoint(m),
      })),
      strategies: [...input.strategies],
      scorer: { ...scorer },
      judge:
        judge === null
          ? null
          : {
              modelId: judge.model.id,
              endpoint: modelEndpoint(judge.model),
              protocolId: judge.protocol.id,
              promptSha256: judge.promptSha256,
              parseRule: judge.protocol.parseRule,
              costUsd: judge.costUsd,
            },
      intervals: { level: 95, method: INTERVAL_METHOD },
      comparison: comparison(input, scorer),
    },
    rows: input.rows.map((r) => {
      if (r.scorer.id !== scorer.id)
        throw new BenchmarkReportError(
          `row ${r.modelId} / ${r.strategy} is scored with "${r.scorer.id}", the run with "${scorer.id}"`,
        );
      return { ...r, scorer: { id: r.scorer.id, label: r.scorer.label, official: r.scorer.official } };
    }),
    published: definition.published.map((p) => ({
      published: true as const,
      model: p.model,
      values: { ...p.values },
      source: p.source,
      ...(p.note === undefined ? {} : { note: p.note }),
    })),
    completion: input.completion ?? benchmarkCompletion(input.rows, input.verdicts),
    cost: {
      modelUsd: sumOrNull(input.rows.map((r) => r.usage.costUsd)),
      judgeUsd: judge?.costUsd ?? null,
      aws: input.awsCost ?? null,
    },
  };
  return report;
}

/** Reads a report.json of a plug-in benchmark (throws a zod error on a shape it does not know). */
export const parseBenchmarkReport = (json: unknown): BenchmarkReport => benchmarkReportSchema.parse(json);

/* Words shared by the Markdown and the HTML report (plain text: each format escapes it). */

/**
 * The dataset's provenance in one phrase, naming the benchmark: "official MOSSBench data (verified against
 * the published tree 2a06e5c, 546 files)", a modified copy, or a generated sample.
 */
export const describeBenchmarkProvenance = (report: BenchmarkReport): string =>
  describeProvenance(report.run.dataset.provenance, report.benchmark.title);

/** Skipped records at most named per reason; the count says how many there are. */
const SKIPPED_NAMED = 8;

/** Skipped records grouped by reason: "2 records missing_image: 12, contrast:7 (detail of the first)". */
export function describeBenchmarkSkipped(skipped: BenchmarkReport["run"]["dataset"]["skipped"]): string[] {
  const byReason = new Map<string, typeof skipped>();
  for (const s of skipped) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s]);
  return [...byReason.entries()].map(([reason, records]) => {
    const ids = records.flatMap((r) => {
      const id = r.recordId ?? (r.id === null ? null : String(r.id));
      return id === null ? [] : [id];
    });
    const unnamed = records.length - ids.length;
    const named =
      ids.length > 0
        ? `: ${ids.slice(0, SKIPPED_NAMED).join(", ")}${ids.length > SKIPPED_NAMED ? `, … (${ids.length - SKIPPED_NAMED} more)` : ""}`
        : "";
    const first = records[0]?.detail ?? "";
    return (
      `${records.length.toLocaleString("en-US")} record${records.length === 1 ? "" : "s"} ${reason}${named}` +
      `${unnamed > 0 ? ` (${unnamed} without a readable id)` : ""}${first ? ` — ${first}` : ""}`
    );
  });
}

/**
 * The scorer's standing: "the official protocol", or that it is not and cannot be compared; for a benchmark
 * with no official protocol (your own dataset), that there is none to compare with.
 */
export const scorerStanding = (
  scorer: { official: boolean },
  benchmark: { scorers: readonly { official: boolean }[] },
): string =>
  scorer.official
    ? "the official protocol"
    : benchmark.scorers.some((s) => s.official)
      ? "not the official protocol; not comparable with the published numbers"
      : "your own dataset has no official protocol or published numbers";

/** "↓ lower is better" / "↑ higher is better" / "" (mixed). */
export const directionWords = (lowerIsBetter: boolean | null): string =>
  lowerIsBetter === null ? "" : lowerIsBetter ? "↓ lower is better" : "↑ higher is better";

/** What a column's rate is a percentage of. */
export const MEASURE_WORDS: Record<BenchmarkReportColumn["measure"], string> = {
  accuracy: "% answered as expected",
  "refusal-rate": "% refused",
  "attack-success-rate": "% complied with (attack success: no refusal)",
};
