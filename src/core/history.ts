/**
 * The history of runs, pure: a small summary of each run (written once by that run's Aggregate), and the
 * index every Aggregate rebuilds from all of them — the runs newest first, for each (model, strategy) of
 * MMSafeAware seen in more than one run a trend of Total and Balanced with their 95% intervals and the runs
 * flagged as regressions, and the runs of every plug-in benchmark (MOSSBench, VLGuard, your own dataset)
 * grouped by benchmark, with the columns and aggregates their rates are of.
 *
 * The index is read from N small summaries, never from N full reports, so rebuilding it stays cheap as runs
 * accumulate. A summary is untrusted input when read back (any writer of the bucket could have changed it):
 * it is validated, and one that does not validate is counted and named on the page, never silently dropped.
 */
import { z } from "zod";
import type { RegressionCheck } from "../benchmarks/mmsafeaware/regression.ts";
import type { Report } from "../benchmarks/mmsafeaware/report.ts";
import { DEFAULT_BENCHMARK, type PluginBenchmark } from "../benchmarks/names.ts";
import { RUN_SUMMARIES_PREFIX } from "../deployment/storage-layout.ts";
import type { BenchmarkReport } from "../report/benchmark-report.ts";
import { CHART_CONFIG, type ChartSpec, seriesLabel } from "../report/report-charts.ts";
import { datasetProvenanceSchema } from "./provenance.ts";
import { describeZodError } from "./schemas.ts";
import type { Interval } from "./statistics.ts";

/** Bump when a summary changes shape incompatibly; summaries of another version are reported as unreadable. */
export const RUN_SUMMARY_SCHEMA_VERSION = 1;
/** Bump when index.json changes shape incompatibly. */
export const HISTORY_INDEX_SCHEMA_VERSION = 1;

/** Run ids as the execution input allows them: the index links to `./<runId>/report.html` with them. */
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** Longest reason kept for an unreadable summary: the page names the problem, it does not dump the file. */
const MAX_REASON = 400;

/** Longest string kept in a summary (model ids, labels of your own dataset's columns, titles). */
const MAX_TEXT = 200;
/** Benchmark names as runs record them (`mossbench`); any slug, so a newer mmsafe's benchmark still parses. */
const BENCHMARK_NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** Columns and aggregates kept per plug-in run: your own dataset may have up to 100 columns. */
const MAX_METRICS = 128;
/** Your own dataset: runs of two datasets have different columns, so the history groups them by dataset too. */
const OWN_DATASET_BENCHMARK: PluginBenchmark = "custom";

const text = z.string().max(MAX_TEXT);
const count = z.number().int().min(0);
const interval = z.object({ low: z.number(), high: z.number() }).nullable();
const usd = z.number().min(0).nullable();

/** A column or aggregate of a plug-in benchmark, as the run's report declares it. */
const benchmarkMetricSchema = z.object({
  key: text,
  label: text,
  kind: z.enum(["column", "aggregate"]),
  /** null: an aggregate over columns of both directions. */
  lowerIsBetter: z.boolean().nullable(),
});
export type BenchmarkMetric = z.infer<typeof benchmarkMetricSchema>;

/** What a plug-in benchmark's run measured: its rates by column or aggregate key, and what scored them. */
const benchmarkResultsSchema = z.object({
  /** Columns first, then aggregates, in the definition's order. */
  metrics: z.array(benchmarkMetricSchema).max(MAX_METRICS),
  scorer: z.object({ id: text, label: text, official: z.boolean() }),
  /** The judge model, for a judged scorer; null otherwise. */
  judge: z.object({ modelId: text }).nullable(),
  /** One per model × strategy; rates in %, rounded to one decimal as the headline is (null: nothing scored). */
  rows: z.array(
    z.object({
      modelId: text,
      kind: z.enum(["model", "baseline"]),
      strategy: text,
      planned: count,
      answered: count,
      errored: count,
      missing: count,
      rates: z
        .record(text, z.number().nullable())
        .refine((rates) => Object.keys(rates).length <= MAX_METRICS, `at most ${MAX_METRICS} rates`),
    }),
  ),
});
export type BenchmarkResults = z.infer<typeof benchmarkResultsSchema>;

/**
 * One run, as the history shows it (`reports/_summaries/<runId>.json`). Unknown fields are accepted and
 * dropped, so a newer mmsafe can add some without older readers calling the summary unreadable.
 */
export const runSummarySchema = z
  .object({
    schemaVersion: z.literal(RUN_SUMMARY_SCHEMA_VERSION),
    runId: z.string().regex(RUN_ID),
    startedAt: z.iso.datetime({ offset: true }),
    finishedAt: z.iso.datetime({ offset: true }),
    generator: z.object({ name: z.literal("mmsafe"), version: text }),
    /** The benchmark evaluated; absent in summaries written before benchmarks were named (MMSafeAware). */
    benchmark: z.object({ name: z.string().regex(BENCHMARK_NAME), title: text }).optional(),
    dataset: z.object({
      name: text,
      provenance: datasetProvenanceSchema,
      checksum: text,
      /** Items planned per model × strategy. */
      plannedItems: count,
      /** The item limit of a sampled run; null when every runnable item was planned. */
      limit: z.number().int().min(1).nullable(),
    }),
    /** The schedule that started the run; null for a run started by hand. */
    schedule: text.nullable(),
    models: z.array(z.object({ id: text, kind: z.enum(["model", "baseline"]) })),
    strategies: z.array(text),
    /** How the run ended (see core/completion.ts): every answer in, some errors or missing, or a row with none. */
    completion: z.object({
      outcome: z.enum(["complete", "with_errors", "no_answers"]),
      errored: count,
      missing: count,
    }),
    /** MMSafeAware: one per model × strategy, paper scoring, rounded to one decimal as the headline is. Empty for a plug-in benchmark (see `results`). */
    rows: z.array(
      z.object({
        modelId: text,
        kind: z.enum(["model", "baseline"]),
        strategy: text,
        planned: count,
        answered: count,
        errored: count,
        missing: count,
        total: z.number().nullable(),
        totalCi: interval,
        balanced: z.number().nullable(),
        balancedCi: interval,
        costUsd: usd,
      }),
    ),
    /** Model tokens at the configured prices (null: no prices) and the AWS estimate (null: none made). */
    cost: z.object({ modelUsd: usd, awsUsd: usd }),
    /** A plug-in benchmark's rates; present exactly when the benchmark is not MMSafeAware. */
    results: benchmarkResultsSchema.optional(),
    /** The regression check against the schedule's previous run (benchmarks/mmsafeaware/regression.ts); MMSafeAware only. */
    regression: z.object({
      previousRunId: text.nullable(),
      detected: z.boolean(),
      findings: z.array(
        z.object({
          modelId: text,
          strategy: text,
          metric: z.enum(["total", "balanced"]),
          previous: z.number(),
          current: z.number(),
          drop: z.number(),
          margin: z.number(),
        }),
      ),
    }),
    /** The run's report files, relative to `reports/` (where index.html is). */
    report: z.object({ html: text, json: text, markdown: text }),
  })
  .superRefine((summary, ctx) => {
    const plugin = benchmarkOf(summary) !== DEFAULT_BENCHMARK;
    if (plugin && summary.results === undefined)
      ctx.addIssue({
        code: "custom",
        path: ["results"],
        message: "a plug-in benchmark's run needs its results",
      });
    if (!plugin && summary.results !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["results"],
        message: "an MMSafeAware run has no plug-in results",
      });
    // The page links to the report from the run id; a summary pointing anywhere else is not this run's.
    const expected = reportLinks(summary.runId);
    for (const key of ["html", "json", "markdown"] as const) {
      if (summary.report[key] !== expected[key])
        ctx.addIssue({ code: "custom", path: ["report", key], message: `expected "${expected[key]}"` });
    }
  });
export type RunSummary = z.infer<typeof runSummarySchema>;
export type RunSummaryRow = RunSummary["rows"][number];

/** The benchmark a summary is of: absent in summaries written before benchmarks were named, MMSafeAware. */
export const benchmarkOf = (summary: Pick<RunSummary, "benchmark">): string =>
  summary.benchmark?.name ?? DEFAULT_BENCHMARK;

/** Whether a summary is of an MMSafeAware run (the only runs with trends and regression checks). */
export const isMmsafeawareRun = (summary: Pick<RunSummary, "benchmark">): boolean =>
  benchmarkOf(summary) === DEFAULT_BENCHMARK;

/** A summary that could not be used: which object, and why. */
export interface InvalidSummary {
  key: string;
  reason: string;
}

/** Where a run's report files are, relative to `reports/`. */
export const reportLinks = (runId: string): RunSummary["report"] => ({
  html: `${runId}/report.html`,
  json: `${runId}/report.json`,
  markdown: `${runId}/report.md`,
});

const round1 = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);
const roundInterval = (ci: Interval | null): Interval | null =>
  ci === null ? null : { low: round1(ci.low) ?? ci.low, high: round1(ci.high) ?? ci.high };

/** A run's summary, from its report and its regression check. */
export function summarizeRun(input: {
  report: Report;
  schedule: string | null;
  regression: RegressionCheck;
}): RunSummary {
  const { report, regression } = input;
  const { run } = report;
  return {
    schemaVersion: RUN_SUMMARY_SCHEMA_VERSION,
    runId: run.runId,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    generator: { name: "mmsafe", version: report.generator.version },
    benchmark: { name: DEFAULT_BENCHMARK, title: "MMSafeAware" },
    dataset: {
      name: run.dataset.name,
      provenance: run.dataset.provenance,
      checksum: run.dataset.checksum,
      plannedItems: run.plannedItems,
      limit: run.selection.limit?.n ?? null,
    },
    schedule: input.schedule,
    models: run.models.map((m) => ({ id: m.id, kind: m.kind })),
    strategies: [...run.strategies],
    completion: {
      outcome: report.completion.outcome,
      errored: report.completion.errored,
      missing: report.completion.missing,
    },
    rows: report.rows.map((r) => ({
      modelId: r.modelId,
      kind: r.kind,
      strategy: r.strategy,
      planned: r.counts.planned,
      answered: r.counts.answered,
      errored: r.counts.errored,
      missing: r.counts.missing,
      total: round1(r.paper.total),
      totalCi: roundInterval(r.paperDetail.ci.total),
      balanced: round1(r.paperDetail.balanced),
      balancedCi: roundInterval(r.paperDetail.ci.balanced),
      costUsd: r.usage.costUsd,
    })),
    cost: { modelUsd: report.cost?.modelUsd ?? null, awsUsd: report.cost?.aws.totalUsd ?? null },
    regression: {
      previousRunId: regression.previousRunId,
      detected: regression.detected,
      findings: regression.findings.map((f) => ({ ...f })),
    },
    report: reportLinks(run.runId),
  };
}

/** A string cut to what a summary keeps (labels of your own dataset come from its records). */
const bounded = (s: string): string => (s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT - 1)}…` : s);

const sumOrNull = (values: readonly (number | null)[]): number | null => {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : known.reduce((s, v) => s + v, 0);
};

/**
 * A plug-in benchmark's run summary, from its report: no MMSafeAware rows (so no trend) and no regression
 * check (regressions compare MMSafeAware's Total and Balanced), its rates by column and aggregate instead.
 * `limit` is the run's item limit (the report records only the items planned).
 */
export function summarizeBenchmarkRun(input: {
  report: BenchmarkReport;
  schedule: string | null;
  limit: number | null;
}): RunSummary {
  const { report } = input;
  const { run, benchmark } = report;
  const metrics: BenchmarkMetric[] = [
    ...benchmark.columns.map((c) => ({
      key: bounded(c.key),
      label: bounded(c.label),
      kind: "column" as const,
      lowerIsBetter: c.lowerIsBetter,
    })),
    ...benchmark.aggregates.map((a) => ({
      key: bounded(a.key),
      label: bounded(a.label),
      kind: "aggregate" as const,
      lowerIsBetter: a.lowerIsBetter,
    })),
  ].slice(0, MAX_METRICS);
  const kept = new Set(metrics.map((m) => m.key));
  return {
    schemaVersion: RUN_SUMMARY_SCHEMA_VERSION,
    runId: run.runId,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    generator: { name: "mmsafe", version: bounded(report.generator.version) },
    benchmark: { name: benchmark.name, title: bounded(benchmark.title) },
    dataset: {
      name: bounded(run.dataset.name),
      provenance: run.dataset.provenance,
      checksum: bounded(run.dataset.checksum),
      plannedItems: run.plannedItems,
      limit: input.limit,
    },
    schedule: input.schedule === null ? null : bounded(input.schedule),
    models: run.models.map((m) => ({ id: bounded(m.id), kind: m.kind })),
    strategies: [...run.strategies],
    completion: {
      outcome: report.completion.outcome,
      errored: report.completion.errored,
      missing: report.completion.missing,
    },
    rows: [],
    results: {
      metrics,
      scorer: {
        id: bounded(run.scorer.id),
        label: bounded(run.scorer.label),
        official: run.scorer.official,
      },
      judge: run.judge === null ? null : { modelId: bounded(run.judge.modelId) },
      rows: report.rows.map((r) => ({
        modelId: bounded(r.modelId),
        kind: r.kind,
        strategy: r.strategy,
        planned: r.counts.planned,
        answered: r.counts.answered,
        errored: r.counts.errored,
        missing: r.counts.missing,
        rates: Object.fromEntries(
          [
            ...Object.entries(r.columns).map(([key, c]) => [bounded(key), round1(c.rate)] as const),
            ...Object.entries(r.aggregates).map(([key, a]) => [bounded(key), round1(a.rate)] as const),
          ].filter(([key]) => kept.has(key)),
        ),
      })),
    },
    // The judge is a model too: its tokens are part of what the models cost.
    cost: {
      modelUsd: sumOrNull([report.cost.modelUsd, report.cost.judgeUsd]),
      awsUsd: report.cost.aws?.totalUsd ?? null,
    },
    regression: { previousRunId: null, detected: false, findings: [] },
    report: reportLinks(run.runId),
  };
}

/** The run id a summary key names, or null for a key that is not `reports/_summaries/<runId>.json`. */
export function runIdOfSummaryKey(key: string): string | null {
  if (!key.startsWith(RUN_SUMMARIES_PREFIX) || !key.endsWith(".json")) return null;
  const runId = key.slice(RUN_SUMMARIES_PREFIX.length, -".json".length);
  return RUN_ID.test(runId) ? runId : null;
}

const shorten = (reason: string): string => {
  const line = reason.replace(/\s+/g, " ").trim();
  return line.length > MAX_REASON ? `${line.slice(0, MAX_REASON - 1)}…` : line;
};

/** Reads one summary object: the summary, or why it cannot be used (bad JSON, bad shape, another run's). */
export function parseRunSummary(
  key: string,
  text: string,
): { ok: true; summary: RunSummary } | { ok: false; invalid: InvalidSummary } {
  const bad = (reason: string) => ({ ok: false as const, invalid: { key, reason: shorten(reason) } });
  const runId = runIdOfSummaryKey(key);
  if (runId === null) return bad("not a summary key (reports/_summaries/<runId>.json)");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error: unknown) {
    return bad(`not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = runSummarySchema.safeParse(json);
  if (!parsed.success) return bad(describeZodError(parsed.error, "the summary"));
  if (parsed.data.runId !== runId)
    return bad(`names run "${parsed.data.runId}", but its key names run "${runId}"`);
  return { ok: true, summary: parsed.data };
}

/** One run on a trend: its numbers for the (model, strategy) and whether each was flagged as a regression. */
export interface TrendPoint {
  runId: string;
  startedAt: string;
  total: number | null;
  totalCi: Interval | null;
  balanced: number | null;
  balancedCi: Interval | null;
  regression: { total: boolean; balanced: boolean };
}

/** A (model, strategy) seen in more than one run: its points, oldest first. */
export interface Trend {
  modelId: string;
  strategy: string;
  /** As in the newest run (a model id could be re-used for a baseline). */
  kind: "model" | "baseline";
  points: TrendPoint[];
}

/**
 * The runs of one plug-in benchmark (of one dataset, for your own dataset, whose columns differ between
 * datasets), as the page shows them in a table of their own.
 */
export interface BenchmarkGroup {
  benchmark: string;
  /** The benchmark's title, as its newest run gives it. */
  title: string;
  /** Your own dataset's name; null for a published benchmark (its runs share its columns). */
  dataset: string | null;
  /** The columns and aggregates of the group's newest run: the table's columns. */
  metrics: BenchmarkMetric[];
  /** Newest first. */
  runIds: string[];
}

/**
 * reports/index.json: every readable run (of every benchmark), newest first, the unreadable summaries,
 * MMSafeAware's trends, and the runs of each plug-in benchmark grouped.
 */
export interface HistoryIndex {
  schemaVersion: typeof HISTORY_INDEX_SCHEMA_VERSION;
  generator: { name: "mmsafe"; version: string };
  generatedAt: string;
  runs: RunSummary[];
  invalid: InvalidSummary[];
  /** MMSafeAware's only. */
  trends: Trend[];
  /** Plug-in benchmarks' runs, by benchmark name, then dataset name. */
  benchmarks: BenchmarkGroup[];
}

/** Code-unit order: the same on every machine, unlike a locale's. */
const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Newest first: by start time, then run id (so the order is total and the page reproducible). */
const newestFirst = (a: RunSummary, b: RunSummary): number =>
  Date.parse(b.startedAt) - Date.parse(a.startedAt) || compareText(b.runId, a.runId);

/** The index of the history, from every summary read (any order) and the ones that could not be read. */
export function buildHistoryIndex(input: {
  summaries: readonly RunSummary[];
  invalid: readonly InvalidSummary[];
  generatedAt: string;
  version: string;
}): HistoryIndex {
  const runs = [...input.summaries].sort(newestFirst);
  return {
    schemaVersion: HISTORY_INDEX_SCHEMA_VERSION,
    generator: { name: "mmsafe", version: input.version },
    generatedAt: input.generatedAt,
    runs,
    invalid: [...input.invalid].sort((a, b) => compareText(a.key, b.key)),
    trends: trends(runs),
    benchmarks: benchmarkGroups(runs),
  };
}

/** Plug-in runs grouped by benchmark (and, for your own dataset, by dataset), ordered by name; runs newest first. */
export function benchmarkGroups(runs: readonly RunSummary[]): BenchmarkGroup[] {
  const groups = new Map<string, BenchmarkGroup>();
  for (const run of [...runs].sort(newestFirst)) {
    if (isMmsafeawareRun(run) || run.benchmark === undefined || run.results === undefined) continue;
    const dataset = run.benchmark.name === OWN_DATASET_BENCHMARK ? run.dataset.name : null;
    const key = JSON.stringify([run.benchmark.name, dataset]);
    const group = groups.get(key);
    if (group) group.runIds.push(run.runId);
    else
      groups.set(key, {
        benchmark: run.benchmark.name,
        title: run.benchmark.title,
        dataset,
        metrics: run.results.metrics.map((m) => ({ ...m })),
        runIds: [run.runId],
      });
  }
  return [...groups.values()].sort(
    (a, b) => compareText(a.benchmark, b.benchmark) || compareText(a.dataset ?? "", b.dataset ?? ""),
  );
}

/**
 * Trends of every (model, strategy) of MMSafeAware present in more than one run, ordered by model id, then
 * strategy. Plug-in runs have none: their rates are of other columns.
 */
export function trends(runs: readonly RunSummary[]): Trend[] {
  const byKey = new Map<string, Trend>();
  // Oldest first, so each trend's points are in time order and its kind is the newest run's.
  for (const run of runs.filter(isMmsafeawareRun).sort(newestFirst).reverse()) {
    for (const row of run.rows) {
      const key = JSON.stringify([row.modelId, row.strategy]);
      const trend = byKey.get(key) ?? {
        modelId: row.modelId,
        strategy: row.strategy,
        kind: row.kind,
        points: [],
      };
      trend.kind = row.kind;
      const flagged = (metric: "total" | "balanced") =>
        run.regression.findings.some(
          (f) => f.modelId === row.modelId && f.strategy === row.strategy && f.metric === metric,
        );
      trend.points.push({
        runId: run.runId,
        startedAt: run.startedAt,
        total: row.total,
        totalCi: row.totalCi,
        balanced: row.balanced,
        balancedCi: row.balancedCi,
        regression: { total: flagged("total"), balanced: flagged("balanced") },
      });
      byKey.set(key, trend);
    }
  }
  return [...byKey.values()]
    .filter((t) => t.points.length > 1)
    .sort((a, b) => compareText(a.modelId, b.modelId) || compareText(a.strategy, b.strategy));
}

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
/** Total and Balanced as in the report's charts; readable on light and dark pages. */
const METRIC_COLORS = { Total: "#4c78a8", Balanced: "#f58518" } as const;
/** Trends up to this many runs get an axis tick at each run. */
const MAX_RUN_TICKS = 8;
/** Trends longer than this draw their lines without a dot per run. */
const MAX_DOTTED_POINTS = 60;
/** The regression mark: the report's "wrong" red, mid-tone so it reads on both backgrounds. */
const REGRESSION_COLOR = "#e45756";

/**
 * A trend as a Vega-Lite spec: Total and Balanced over the runs' start times (UTC), each with its 95% band,
 * and a red downward triangle on every number flagged as a regression. Untrusted strings (run ids) are only
 * data values, never field names or expressions. The marks carry no ARIA description each (one per run and
 * metric would make most of the page's weight): the figure's caption and its table of numbers describe it.
 */
export function trendChart(trend: Trend): ChartSpec {
  const values = trend.points.flatMap((p) =>
    (
      [
        ["Total", p.total, p.totalCi, p.regression.total],
        ["Balanced", p.balanced, p.balancedCi, p.regression.balanced],
      ] as const
    ).map(([metric, value, ci, flagged]) => ({
      time: p.startedAt,
      run: p.runId,
      metric,
      value,
      low: ci?.low ?? null,
      high: ci?.high ?? null,
      flagged,
    })),
  );
  const flagged = trend.points.filter((p) => p.regression.total || p.regression.balanced).length;
  const y = { type: "quantitative", scale: { domain: [0, 100] }, title: "Score % (paper)" } as const;
  return {
    id: "trend",
    title: seriesLabel(trend.modelId, trend.strategy),
    caption:
      `Total and Balanced (paper scoring) over ${trend.points.length} runs, with 95% bootstrap bands` +
      (flagged > 0
        ? `; ▼ marks the ${flagged === 1 ? "run" : `${flagged} runs`} flagged as a regression against the schedule's previous run.`
        : "; no run flagged as a regression."),
    spec: {
      $schema: SCHEMA,
      description: `Total and Balanced over time for one model and strategy`,
      config: CHART_CONFIG,
      data: { values },
      // Small enough to stay legible when a phone scales it down; the page sets several side by side when wide.
      width: 440,
      height: 180,
      encoding: {
        x: {
          field: "time",
          type: "temporal",
          // UTC, as the page states times: the chart reads the same wherever it was rendered.
          scale: { type: "utc", padding: 12 },
          title: null,
          // A few runs: a tick at each, rather than at round hours no run started at. Many: the default
          // ticks (a tick and grid line per run would outweigh the chart).
          axis: {
            labelAngle: 0,
            labelOverlap: true,
            labelFlush: true,
            format: timeFormat(trend),
            ...(trend.points.length <= MAX_RUN_TICKS
              ? { values: [...new Set(trend.points.map((p) => Date.parse(p.startedAt)))] }
              : {}),
          },
        },
      },
      // The line first: the shared legend takes its marks (a full-colour stroke, not the faint band).
      layer: [
        {
          transform: [{ filter: "isValid(datum.value)" }],
          mark: {
            type: "line",
            // A dot per run while they can be told apart; beyond that, dots only add weight to the page.
            ...(trend.points.length <= MAX_DOTTED_POINTS
              ? { point: { filled: true, size: 36, aria: false } }
              : {}),
            strokeWidth: 2,
            aria: false,
          },
          encoding: {
            y: { field: "value", ...y },
            color: {
              field: "metric",
              type: "nominal",
              scale: metricScale(),
              legend: { orient: "top", title: null, symbolType: "stroke", symbolStrokeWidth: 2 },
            },
          },
        },
        {
          transform: [{ filter: "isValid(datum.low) && isValid(datum.high)" }],
          mark: { type: "area", opacity: 0.18, aria: false },
          encoding: {
            y: { field: "low", ...y },
            y2: { field: "high" },
            color: { field: "metric", type: "nominal", scale: metricScale() },
          },
        },
        {
          transform: [{ filter: "datum.flagged && isValid(datum.value)" }],
          mark: {
            type: "point",
            shape: "triangle-down",
            size: 160,
            filled: true,
            color: REGRESSION_COLOR,
            opacity: 1,
            aria: false,
          },
          encoding: { y: { field: "value", ...y } },
        },
      ],
    },
  };
}

/** Dates for a history of days or more; hours too within a couple of days; seconds within an hour. */
function timeFormat(trend: Trend): string {
  const times = trend.points.map((p) => Date.parse(p.startedAt));
  const span = Math.max(...times) - Math.min(...times);
  const hour = 3600 * 1000;
  return span < hour ? "%b %d %H:%M:%S" : span < 72 * hour ? "%b %d %H:%M" : "%Y-%m-%d";
}

const metricScale = () => ({
  domain: Object.keys(METRIC_COLORS),
  range: Object.values(METRIC_COLORS),
});
