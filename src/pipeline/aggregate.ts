import pLimit from "p-limit";
import { z } from "zod";
import type { ListedObject, ObjectStore } from "../adapters/object-store.ts";
import type { RunRecord, RunStore } from "../adapters/run-store.ts";
import type { VerdictStore } from "../adapters/verdict-store.ts";
import { CATEGORIES, type Category, goldLabel } from "../benchmarks/mmsafeaware/facts.ts";
import { computeRow } from "../benchmarks/mmsafeaware/metrics.ts";
import { detectRegression, type RegressionCheck, runSummary } from "../benchmarks/mmsafeaware/regression.ts";
import {
  buildReport,
  type Headline,
  headlines,
  type ItemSelection,
  renderMarkdown,
} from "../benchmarks/mmsafeaware/report.ts";
import { DEFAULT_BENCHMARK, type PluginBenchmark, type RunnableBenchmark } from "../benchmarks/names.ts";
import type { BenchmarkHeadline } from "../core/column-metrics.ts";
import { completionBanner, type RunCompletion, runCompletion } from "../core/completion.ts";
import { summarizeBenchmarkRun, summarizeRun } from "../core/history.ts";
import { categoryQuotas, countByCategory } from "../core/sampling.ts";
import type { DatasetManifest, ShardItem } from "../core/schemas.ts";
import { type AwsUsage, estimateAwsCost } from "../deployment/cost.ts";
import { addCounters, invocationCounters, runUsageFromCounters } from "../deployment/run-usage.ts";
import {
  reportHtmlKey,
  reportJsonKey,
  reportMarkdownKey,
  responsesKey,
} from "../deployment/storage-layout.ts";
import { scorerStanding } from "../report/benchmark-report.ts";
import { chartSpecs, type VegaLiteSpec } from "../report/report-charts.ts";
import { type HtmlReportInput, renderHtml, reportFailedPage } from "../report/report-html.ts";
import { aggregateBenchmarkRun } from "./aggregate-benchmark.ts";
import { parseMmsafeawareShard, readDatasetManifest, readRunShards, toJsonl } from "./dataset-io.ts";
import { RunNotFoundError } from "./errors.ts";
import {
  HISTORY_TIME_BUDGET_MS,
  type HistoryOutcome,
  publishHistorySafely,
  renderChartsSafely,
} from "./publish-history.ts";

export const aggregateEventSchema = z.object({ runId: z.string(), bucket: z.string() });

export interface AggregateDeps {
  store: ObjectStore;
  runs: RunStore;
  verdicts: VerdictStore;
  now: () => Date;
  version: string;
  /** This invocation's own usage so far (it is recorded on the run only after the report is written). */
  usageSoFar?: () => { durationMs: number; aws: AwsUsage };
  /**
   * Renders report.html's Vega-Lite charts to SVG, one string per spec (adapters/chart-render.ts). Without
   * it the page says the charts were not rendered.
   */
  renderCharts?: (specs: readonly VegaLiteSpec[]) => Promise<string[]>;
  /**
   * Downscales an item's image to a small `data:` URL (adapters/thumbnails.ts). Without it, or when it
   * fails for an image, the page shows a placeholder.
   */
  thumbnail?: (bytes: Uint8Array) => Promise<string>;
  /**
   * Lists the objects under a prefix, for the history of runs (reports/index.html). Without it, the S3 store's
   * own listing is used (ObjectStore.list); with neither, the history is not updated and the output says
   * why.
   */
  listObjects?: (prefix: string) => Promise<ListedObject[]>;
  /** Where a history that could not be updated is logged (the handlers pass their Powertools logger). */
  logger?: AggregateLogger;
  /** The time the history update may take at most, in ms (default {@link HISTORY_TIME_BUDGET_MS}). */
  historyTimeBudgetMs?: number;
}

/** The part of a logger Aggregate uses: the run goes on, so a problem is a warning. */
export interface AggregateLogger {
  warn(message: string, extra: Record<string, unknown>): void;
}

export type { HistoryOutcome, ListedObject };
export { HISTORY_TIME_BUDGET_MS };

/** Images read from S3 at once for thumbnails. */
const THUMBNAIL_CONCURRENCY = 16;

/**
 * The execution's output and the detail of the "mmsafe run completed" event: headline numbers, where the
 * report is, the regression check against the schedule's previous run, and a plain-text summary.
 */
export interface AggregateOutput {
  runId: string;
  status: "SUCCEEDED";
  /** The benchmark evaluated (absent: MMSafeAware, in outputs of runs before benchmarks were named). */
  benchmark?: RunnableBenchmark;
  /** How the run ended: every answer in, some errors or missing verdicts (a resume retries them), or a row with no answer. */
  completion: RunCompletion;
  schedule: string | null;
  /** MMSafeAware's headline (empty for a plug-in benchmark, see benchmarkHeadline). */
  headline: Headline[];
  /** A plug-in benchmark's headline: the rate of each of its columns and aggregates; absent for MMSafeAware. */
  benchmarkHeadline?: BenchmarkHeadline[];
  report: { json: string; markdown: string; html: string; responses: string[] };
  regression: RegressionCheck;
  summary: string;
  /** The history of runs: this run's summary, and the index it rebuilt (null when it could not). */
  history: HistoryOutcome;
}

/** The run's measured usage, with this aggregate invocation's own so far. */
function runUsage(run: RunRecord, deps: AggregateDeps) {
  const own = deps.usageSoFar?.();
  const counters = own
    ? addCounters(run.usage ?? {}, invocationCounters("aggregate", own.durationMs, own.aws))
    : (run.usage ?? {});
  return runUsageFromCounters(counters, run.shards);
}

/**
 * How the run chose its items. Under a limit, what the stratified sample was drawn from (the dataset's
 * runnable items of the selected categories, as Plan recorded them; read from the dataset again only for a
 * run planned before Plan recorded them) and its quotas, recomputed as Plan computed them.
 */
async function itemSelection(
  store: ObjectStore,
  run: RunRecord,
  dataset: DatasetManifest,
): Promise<ItemSelection> {
  const categories = run.categories ? CATEGORIES.filter((c) => run.categories?.includes(c)) : null;
  if (run.limit === undefined) return { categories, limit: null };
  const recorded = run.eligible;
  const eligible = recorded
    ? countByCategory(CATEGORIES.flatMap((c) => Array<Category>(recorded[c] ?? 0).fill(c)))
    : await eligibleInDataset(store, dataset, categories);
  const planned = categoryQuotas(eligible, run.limit);
  return {
    categories,
    limit: {
      n: run.limit,
      method: "stratified-by-category",
      eligible: CATEGORIES.reduce((sum, c) => sum + eligible[c], 0),
      byCategory: CATEGORIES.filter((c) => eligible[c] > 0).map((c) => ({
        category: c,
        planned: planned[c],
        eligible: eligible[c],
      })),
    },
  };
}

/** Runnable items per category of the dataset, within `categories` (null: all). */
async function eligibleInDataset(
  store: ObjectStore,
  dataset: DatasetManifest,
  categories: readonly Category[] | null,
): Promise<Record<Category, number>> {
  const texts = await pLimit(16).map(dataset.shards, (shard) => store.getText(shard.key));
  return countByCategory(
    dataset.shards
      .flatMap((shard, i) => parseMmsafeawareShard(texts[i] ?? "", shard.key))
      .map((item) => item.category)
      .filter((category) => !categories || categories.includes(category)),
  );
}

/** Thumbnails by item id; an image that cannot be read or decoded gets null (a placeholder), never a failure. */
async function makeThumbnails(
  deps: AggregateDeps,
  items: readonly ShardItem[],
): Promise<Map<number, string | null>> {
  const thumbnail = deps.thumbnail;
  const urls = await pLimit(THUMBNAIL_CONCURRENCY).map(items, async (item) => {
    // Made at upload: no image read, no resize.
    if (item.thumbnail) return item.thumbnail;
    if (!thumbnail) return null;
    try {
      return await thumbnail(await deps.store.getBytes(item.image.key));
    } catch {
      return null;
    }
  });
  return new Map(items.map((item, i) => [item.id, urls[i] ?? null]));
}

/**
 * report.html. The page is a view of report.json: should building it fail, a short page saying why is
 * published instead, and the run still succeeds with its report.json and report.md.
 */
async function htmlReport(deps: AggregateDeps, input: Omit<HtmlReportInput, "charts">): Promise<string> {
  try {
    const charts = await renderChartsSafely(deps, chartSpecs(input.report, input.verdicts));
    return renderHtml({ ...input, charts });
  } catch (error: unknown) {
    return reportFailedPage(input.report.run.runId, error);
  }
}

/** Aggregate of a plug-in benchmark's run: its report from the definition (see aggregate-benchmark.ts). */
async function aggregatePlugin(
  run: RunRecord,
  benchmark: PluginBenchmark,
  deps: AggregateDeps,
): Promise<AggregateOutput> {
  if (!deps.verdicts.listBenchmarkRun)
    throw new Error("this verdict store cannot list a plug-in benchmark's verdicts");
  const [dataset, stored] = await Promise.all([
    readDatasetManifest(deps.store, run.dataset),
    deps.verdicts.listBenchmarkRun(run.runId),
  ]);
  const finishedAt = deps.now().toISOString();
  const { report, headline, keys } = await aggregateBenchmarkRun({
    run,
    benchmark,
    dataset,
    verdicts: stored.verdicts,
    judgements: stored.judgements,
    store: deps.store,
    version: deps.version,
    finishedAt,
    awsCost: estimateAwsCost(runUsage(run, deps)),
    thumbnails: (items) => makeThumbnails(deps, items),
  });
  const location = {
    json: `s3://${deps.store.bucket}/${keys.json}`,
    markdown: `s3://${deps.store.bucket}/${keys.markdown}`,
  };
  await deps.runs.markSucceeded(run.runId, finishedAt, headline, location);
  const schedule = run.schedule ?? null;
  // Regressions compare MMSafeAware's Total and Balanced; a plug-in run is not checked (and says so).
  const regression: RegressionCheck = { schedule, previousRunId: null, detected: false, findings: [] };
  const fmt = (x: number | null | undefined) => (x === null || x === undefined ? "–" : x.toFixed(1));
  const columns = [
    ...report.benchmark.columns.map((c) => c.key),
    ...report.benchmark.aggregates.map((a) => a.key),
  ];
  const banner = completionBanner(report.completion, "rates");
  // As for MMSafeAware: after the run is marked SUCCEEDED, within its time budget, never failing the run.
  const history = await publishHistorySafely(
    summarizeBenchmarkRun({ report, schedule, limit: run.limit ?? null }),
    deps,
  );
  return {
    runId: run.runId,
    status: "SUCCEEDED",
    benchmark,
    completion: report.completion,
    schedule,
    headline: [],
    benchmarkHeadline: headline,
    report: { ...location, html: `s3://${deps.store.bucket}/${keys.html}`, responses: [] },
    regression,
    summary: [
      `mmsafe run ${run.runId} (${report.benchmark.title}) ${report.completion.outcome === "complete" ? "SUCCEEDED" : "FINISHED WITH ERRORS"}`,
      "",
      ...(banner ? [banner.headline, ...banner.lines.map((line) => `  ${line}`), ""] : []),
      ...headline.map(
        (h) =>
          `${h.modelId}${h.kind === "baseline" ? " (baseline)" : ""} / ${h.strategy}: ` +
          columns.map((key) => `${key} ${fmt(h.rates[key])}`).join(", ") +
          `; ${h.answered} answered, ${h.errored} errors, ${h.missing} missing`,
      ),
      "",
      `Scorer: ${report.run.scorer.label} (${scorerStanding(report.run.scorer, report.benchmark)})`,
      `Report: ${location.markdown}`,
    ].join("\n"),
    history,
  };
}

/**
 * Aggregate: read every verdict of the run, compute the metrics per model × strategy, publish report.json,
 * report.md, report.html and the responses in the official scorer's input format, and mark the run
 * SUCCEEDED.
 */
export async function aggregate(event: unknown, deps: AggregateDeps): Promise<AggregateOutput> {
  const { runId } = aggregateEventSchema.parse(event);
  const run = await deps.runs.get(runId);
  if (!run) throw new RunNotFoundError(`run ${runId} has no record in the runs table; was it planned?`);
  if (run.benchmark !== undefined && run.benchmark !== DEFAULT_BENCHMARK)
    return aggregatePlugin(run, run.benchmark, deps);
  const [dataset, verdicts, items] = await Promise.all([
    readDatasetManifest(deps.store, run.dataset),
    deps.verdicts.listRun(runId),
    readRunShards(deps.store, runId, run.shards, parseMmsafeawareShard),
  ]);
  // Before the cost estimate, so the image (and, under a limit, dataset) reads are part of it.
  const [thumbnails, selection] = await Promise.all([
    makeThumbnails(deps, items),
    itemSelection(deps.store, run, dataset),
  ]);

  // Skipped records of the categories the run selected (records without a readable id count always). A
  // limit samples runnable items only: no skipped record was selected.
  const skipped =
    run.limit !== undefined
      ? 0
      : dataset.skipped.filter(
          (r) => r.id === null || !run.categories || run.categories.includes(goldLabel(r.id).category),
        ).length;
  const rows = run.models.flatMap((model) =>
    run.strategies.map((strategy) =>
      computeRow(
        model,
        strategy,
        verdicts.filter((v) => v.modelId === model.id && v.strategy === strategy),
        run.plannedItems,
        skipped,
      ),
    ),
  );
  const finishedAt = deps.now().toISOString();
  const report = buildReport({
    version: deps.version,
    runId,
    startedAt: run.startedAt,
    finishedAt,
    dataset: {
      name: dataset.name,
      // As planned: the manifest may have been replaced by a later upload since.
      provenance: run.datasetProvenance ?? dataset.provenance,
      checksum: dataset.checksum,
      records: dataset.records,
      runnable: dataset.runnable,
      skipped: dataset.skipped,
    },
    plannedItems: run.plannedItems,
    selection,
    models: run.models,
    strategies: run.strategies,
    vcd: run.vcd,
    rows,
    completion: runCompletion(rows, verdicts),
    awsCost: estimateAwsCost(runUsage(run, deps)),
  });

  // Official scorer input: one {"id", "response"} line per answered item (errors have no response to score).
  // The response is the scored part (the final answer under contextual-reasoning), so the official script
  // reproduces the paper-mode columns exactly.
  const responses = await Promise.all(
    run.models.flatMap((model) =>
      run.strategies.map(async (strategy) => {
        const key = responsesKey(runId, model.id, strategy);
        const lines = verdicts
          .filter((v) => v.modelId === model.id && v.strategy === strategy && v.status === "answered")
          .sort((a, b) => a.itemId - b.itemId)
          .map((v) => ({ id: v.itemId, response: v.scoredResponse ?? v.response ?? "" }));
        await deps.store.put(key, toJsonl(lines), "application/x-ndjson");
        return `s3://${deps.store.bucket}/${key}`;
      }),
    ),
  );
  const jsonKey = reportJsonKey(runId);
  const markdownKey = reportMarkdownKey(runId);
  await Promise.all([
    deps.store.put(jsonKey, `${JSON.stringify(report, null, 2)}\n`, "application/json"),
    deps.store.put(markdownKey, renderMarkdown(report), "text/markdown; charset=utf-8"),
  ]);
  const htmlKey = reportHtmlKey(runId);
  await deps.store.put(
    htmlKey,
    await htmlReport(deps, { report, items, verdicts, thumbnails }),
    "text/html; charset=utf-8",
  );
  const location = {
    json: `s3://${deps.store.bucket}/${jsonKey}`,
    markdown: `s3://${deps.store.bucket}/${markdownKey}`,
  };
  const headline = headlines(report);
  const schedule = run.schedule ?? null;
  const previous = schedule ? await deps.runs.previousOfSchedule(schedule, run.startedAt) : null;
  const regression = detectRegression(
    schedule,
    rows,
    previous ? { runId: previous.runId, headline: previous.headline ?? [] } : null,
  );
  await deps.runs.markSucceeded(runId, finishedAt, headline, location);
  // After the run is marked SUCCEEDED: the history lists finished runs, and it may never hold the run back.
  const history = await publishHistorySafely(summarizeRun({ report, schedule, regression }), deps);
  return {
    runId,
    status: "SUCCEEDED",
    benchmark: DEFAULT_BENCHMARK,
    completion: report.completion,
    schedule,
    headline,
    report: { ...location, html: `s3://${deps.store.bucket}/${htmlKey}`, responses },
    regression,
    summary: runSummary({
      runId,
      headline,
      regression,
      reportUri: location.markdown,
      completion: report.completion,
      costUsd: report.cost ? report.cost.aws.totalUsd + (report.cost.modelUsd ?? 0) : null,
    }),
    history,
  };
}
