/**
 * The history of runs, pure: a small summary of each run (written once by that run's Aggregate), and the
 * index every Aggregate rebuilds from all of them — the runs newest first, and for each (model, strategy)
 * seen in more than one run a trend of Total and Balanced with their 95% intervals and the runs flagged as
 * regressions.
 *
 * The index is read from N small summaries, never from N full reports, so rebuilding it stays cheap as runs
 * accumulate. A summary is untrusted input when read back (any writer of the bucket could have changed it):
 * it is validated, and one that does not validate is counted and named on the page, never silently dropped.
 */
import { z } from "zod";
import { CHART_CONFIG, type ChartSpec, seriesLabel } from "../report/report-charts.ts";
import { datasetProvenanceSchema } from "./provenance.ts";
import type { RegressionCheck } from "./regression.ts";
import type { Report } from "./report.ts";
import { describeZodError } from "./schemas.ts";
import type { Interval } from "./statistics.ts";
import { RUN_SUMMARIES_PREFIX } from "./storage-layout.ts";

/** Bump when a summary changes shape incompatibly; summaries of another version are reported as unreadable. */
export const RUN_SUMMARY_SCHEMA_VERSION = 1;
/** Bump when index.json changes shape incompatibly. */
export const HISTORY_INDEX_SCHEMA_VERSION = 1;

/** Run ids as the execution input allows them: the index links to `./<runId>/report.html` with them. */
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
/** Longest reason kept for an unreadable summary: the page names the problem, it does not dump the file. */
const MAX_REASON = 400;

const text = z.string().max(200);
const count = z.number().int().min(0);
const interval = z.object({ low: z.number(), high: z.number() }).nullable();
const usd = z.number().min(0).nullable();

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
    /** One per model × strategy, paper scoring, rounded to one decimal as the headline is. */
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
    /** The regression check against the schedule's previous run (core/regression.ts). */
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
    // The page links to the report from the run id; a summary pointing anywhere else is not this run's.
    const expected = reportLinks(summary.runId);
    for (const key of ["html", "json", "markdown"] as const) {
      if (summary.report[key] !== expected[key])
        ctx.addIssue({ code: "custom", path: ["report", key], message: `expected "${expected[key]}"` });
    }
  });
export type RunSummary = z.infer<typeof runSummarySchema>;
export type RunSummaryRow = RunSummary["rows"][number];

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

/** reports/index.json: every readable run, newest first, the unreadable summaries, and the trends. */
export interface HistoryIndex {
  schemaVersion: typeof HISTORY_INDEX_SCHEMA_VERSION;
  generator: { name: "mmsafe"; version: string };
  generatedAt: string;
  runs: RunSummary[];
  invalid: InvalidSummary[];
  trends: Trend[];
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
  };
}

/** Trends of every (model, strategy) present in more than one run, ordered by model id, then strategy. */
export function trends(runs: readonly RunSummary[]): Trend[] {
  const byKey = new Map<string, Trend>();
  // Oldest first, so each trend's points are in time order and its kind is the newest run's.
  for (const run of [...runs].sort(newestFirst).reverse()) {
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
