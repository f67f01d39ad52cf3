import { setTimeout as delay } from "node:timers/promises";
import pLimit from "p-limit";
import { z } from "zod";
import type { ListedObject, ObjectStore } from "../adapters/object-store.ts";
import type { RunRecord, RunStore } from "../adapters/run-store.ts";
import type { VerdictStore } from "../adapters/verdict-store.ts";
import { CATEGORIES, type Category, goldLabel } from "../core/benchmark.ts";
import { type RunCompletion, runCompletion } from "../core/completion.ts";
import { type AwsUsage, estimateAwsCost } from "../core/cost.ts";
import {
  buildHistoryIndex,
  type HistoryIndex,
  type InvalidSummary,
  parseRunSummary,
  type RunSummary,
  summarizeRun,
  trendChart,
} from "../core/history.ts";
import { renderHistoryHtml } from "../core/history-html.ts";
import { computeRow } from "../core/metrics.ts";
import { detectRegression, type RegressionCheck, runSummary } from "../core/regression.ts";
import { buildReport, type Headline, headlines, type ItemSelection, renderMarkdown } from "../core/report.ts";
import { type ChartSpec, chartSpecs, type VegaLiteSpec } from "../core/report-charts.ts";
import { escapeHtml, type HtmlReportInput, type RenderedChart, renderHtml } from "../core/report-html.ts";
import { addCounters, invocationCounters, runUsageFromCounters } from "../core/run-usage.ts";
import { categoryQuotas, countByCategory } from "../core/sampling.ts";
import type { DatasetItem, DatasetManifest } from "../core/schemas.ts";
import {
  REPORTS_INDEX_HTML_KEY,
  REPORTS_INDEX_JSON_KEY,
  RUN_SUMMARIES_PREFIX,
  reportHtmlKey,
  reportJsonKey,
  reportMarkdownKey,
  responsesKey,
  runShardKey,
  runSummaryKey,
} from "../core/storage-layout.ts";
import { parseShard, readDatasetManifest, toJsonl } from "./dataset-io.ts";
import { RunNotFoundError } from "./errors.ts";

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

export type { ListedObject };

/**
 * How long Aggregate may spend on the history after the run's report is out: well inside the function's
 * timeout, so that a slow listing can never time the run out. A history left behind is rebuilt whole by the
 * next run's Aggregate, since each one reads every summary.
 */
export const HISTORY_TIME_BUDGET_MS = 60_000;
/**
 * Index rebuilds at most per Aggregate: each one follows a listing that changed while the previous one was
 * written (another run's summary arrived), so more than a couple means unusual contention.
 */
const HISTORY_MAX_ROUNDS = 4;
/** Summaries read at once. */
const SUMMARY_READ_CONCURRENCY = 16;

/** Images read from S3 at once for thumbnails. */
const THUMBNAIL_CONCURRENCY = 16;

/**
 * The execution's output and the detail of the "mmsafe run completed" event: headline numbers, where the
 * report is, the regression check against the schedule's previous run, and a plain-text summary.
 */
export interface AggregateOutput {
  runId: string;
  status: "SUCCEEDED";
  /** How the run ended: every answer in, some errors or missing verdicts (a resume retries them), or a row with no answer. */
  completion: RunCompletion;
  schedule: string | null;
  headline: Headline[];
  report: { json: string; markdown: string; html: string; responses: string[] };
  regression: RegressionCheck;
  summary: string;
  /** The history of runs: this run's summary, and the index it rebuilt (null when it could not). */
  history: HistoryOutcome;
}

/** What Aggregate did to the history of runs. Never a failure of the run: `error` says what went wrong. */
export interface HistoryOutcome {
  /** This run's summary object, null when it could not be written. */
  summary: string | null;
  /** reports/index.json and reports/index.html, null when they were not rebuilt. */
  index: { json: string; html: string } | null;
  /** Runs listed in the index written, and summaries that could not be read. */
  runs: number;
  invalid: number;
  error: string | null;
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
 * The run's planned items, from its shards (JSONL of dataset items), in id order. A shard object that is
 * gone (a failure the run tolerated) leaves its items out of the examples rather than failing the report.
 */
async function readRunItems(store: ObjectStore, runId: string, shards: number): Promise<DatasetItem[]> {
  const keys = Array.from({ length: shards }, (_, i) => runShardKey(runId, i));
  const texts = await pLimit(16).map(keys, (key) => store.getTextIfExists(key));
  return keys.flatMap((key, i) => parseShard(texts[i] ?? "", key)).sort((a, b) => a.id - b.id);
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
  const eligible = run.eligible ?? (await eligibleInDataset(store, dataset, categories));
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
      .flatMap((shard, i) => parseShard(texts[i] ?? "", shard.key))
      .map((item) => item.category)
      .filter((category) => !categories || categories.includes(category)),
  );
}

/** Thumbnails by item id; an image that cannot be read or decoded gets null (a placeholder), never a failure. */
async function makeThumbnails(
  deps: AggregateDeps,
  items: readonly DatasetItem[],
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

/** Renders the charts; a chart that fails is shown as not rendered, with the reason, and fails nothing. */
async function renderChartsSafely(
  deps: Pick<AggregateDeps, "renderCharts">,
  specs: readonly ChartSpec[],
): Promise<RenderedChart[]> {
  const render = deps.renderCharts;
  return Promise.all(
    specs.map(async ({ id, title, caption, spec }): Promise<RenderedChart> => {
      if (!render) return { id, title, caption, svg: null, error: "no chart renderer configured" };
      try {
        const [svg] = await render([spec]);
        return { id, title, caption, svg: svg ?? null };
      } catch (error: unknown) {
        return {
          id,
          title,
          caption,
          svg: null,
          error: error instanceof Error ? error.message : String(error),
        };
      }
    }),
  );
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
    const message = error instanceof Error ? error.message : String(error);
    return (
      `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
      `<meta http-equiv="Content-Security-Policy" content="default-src 'none'">` +
      `<title>mmsafe report — ${escapeHtml(input.report.run.runId)}</title></head><body>` +
      `<p>report.html could not be built: ${escapeHtml(message)}. The results are in report.json and report.md.</p>` +
      "</body></html>\n"
    );
  }
}

/** A listing as one comparable string: any summary added, rewritten or removed changes it. */
const listingSignature = (listed: readonly ListedObject[]): string =>
  listed
    .map((o) => `${o.key}\t${o.etag ?? ""}`)
    .sort()
    .join("\n");

/** What {@link publishHistory} needs. */
export interface HistoryDeps {
  store: ObjectStore;
  listObjects: (prefix: string) => Promise<ListedObject[]>;
  renderCharts?: AggregateDeps["renderCharts"];
  now: () => Date;
  version: string;
  /** No index is written after this time (ms since the epoch): a late write would only be a stale one. */
  deadline?: number;
}

const emptyHistoryOutcome = (): HistoryOutcome => ({
  summary: null,
  index: null,
  runs: 0,
  invalid: 0,
  error: null,
});

/** Raised when the history's time budget is spent; the next run's Aggregate rebuilds the index whole. */
class HistoryDeadlineError extends Error {
  override readonly name = "HistoryDeadlineError";
}

/**
 * Writes this run's summary, then rebuilds reports/index.json and reports/index.html from every summary.
 *
 * Race-free without locks. Each run writes only its own summary key, and rebuilds the index from a listing
 * made after that write; S3 lists consistently, so of two runs finishing together the later lister sees
 * both summaries. The index objects are last-writer-wins, and a writer with an older listing could still
 * land last: so after writing, Aggregate lists again and rebuilds if the summaries changed meanwhile. The
 * last index written is then complete as of its writer's final listing, and a summary written after that
 * listing belongs to a run whose own Aggregate lists, and writes, later still.
 */
export async function publishHistory(
  summary: RunSummary,
  deps: HistoryDeps,
  /** Filled in as the work goes, so that a caller whose update failed half-way can say what was done. */
  outcome: HistoryOutcome = emptyHistoryOutcome(),
): Promise<HistoryOutcome> {
  const bucket = deps.store.bucket;
  const ownKey = runSummaryKey(summary.runId);
  const checkDeadline = () => {
    if (deps.deadline !== undefined && Date.now() > deps.deadline)
      throw new HistoryDeadlineError("the history's time budget ran out; the next run rebuilds the index");
  };
  await deps.store.put(ownKey, `${JSON.stringify(summary, null, 2)}\n`, "application/json");
  outcome.summary = `s3://${bucket}/${ownKey}`;
  // Across rounds, a summary is read again only if its ETag changed, and a chart rendered again only if its data did.
  const parsed = new Map<string, { summary: RunSummary } | { invalid: InvalidSummary } | null>();
  const charts = new Map<string, RenderedChart>();
  let listed = await deps.listObjects(RUN_SUMMARIES_PREFIX);
  for (let round = 1; ; round++) {
    checkDeadline();
    const { summaries, invalid } = await readSummaries(deps.store, listed, summary, parsed);
    const index = buildHistoryIndex({
      summaries,
      invalid,
      generatedAt: deps.now().toISOString(),
      version: deps.version,
    });
    const html = renderHistoryHtml({ index, charts: await trendCharts(deps, index, charts) });
    checkDeadline();
    // index.json first: the page is a view of it, so it is never newer than its data. Compact, unlike the
    // summaries: it grows with every run, and it is read by tools (jq) more than by eye.
    await deps.store.put(REPORTS_INDEX_JSON_KEY, `${JSON.stringify(index)}\n`, "application/json");
    await deps.store.put(REPORTS_INDEX_HTML_KEY, html, "text/html; charset=utf-8");
    Object.assign(outcome, {
      index: {
        json: `s3://${bucket}/${REPORTS_INDEX_JSON_KEY}`,
        html: `s3://${bucket}/${REPORTS_INDEX_HTML_KEY}`,
      },
      runs: index.runs.length,
      invalid: index.invalid.length,
    });
    const again = await deps.listObjects(RUN_SUMMARIES_PREFIX);
    if (listingSignature(again) === listingSignature(listed)) return outcome;
    if (round >= HISTORY_MAX_ROUNDS) {
      outcome.error = `the summaries kept changing over ${round} rebuilds; the next run's Aggregate rebuilds the index`;
      return outcome;
    }
    listed = again;
  }
}

/** Every listed summary, read (or taken from `cache`) and validated; this run's own is the one in memory. */
async function readSummaries(
  store: ObjectStore,
  listed: readonly ListedObject[],
  own: RunSummary,
  cache: Map<string, { summary: RunSummary } | { invalid: InvalidSummary } | null>,
): Promise<{ summaries: RunSummary[]; invalid: InvalidSummary[] }> {
  const ownKey = runSummaryKey(own.runId);
  const others = listed.filter((o) => o.key !== ownKey);
  const read = await pLimit(SUMMARY_READ_CONCURRENCY).map(others, async (o) => {
    const cacheKey = `${o.key}\t${o.etag ?? ""}`;
    // An object without an ETag cannot be told unchanged: it is read every round.
    const cached = o.etag === null ? undefined : cache.get(cacheKey);
    if (cached !== undefined) return cached;
    let result: { summary: RunSummary } | { invalid: InvalidSummary } | null;
    try {
      const text = await store.getTextIfExists(o.key);
      if (text === null)
        result = null; // Removed since the listing: gone, not unreadable.
      else {
        const p = parseRunSummary(o.key, text);
        result = p.ok ? { summary: p.summary } : { invalid: p.invalid };
      }
    } catch (error: unknown) {
      result = {
        invalid: {
          key: o.key,
          reason: `could not be read: ${error instanceof Error ? error.message : String(error)}`,
        },
      };
    }
    cache.set(cacheKey, result);
    return result;
  });
  const summaries = [own];
  const invalid: InvalidSummary[] = [];
  for (const r of read) {
    if (r === null) continue;
    if ("summary" in r) summaries.push(r.summary);
    else invalid.push(r.invalid);
  }
  return { summaries, invalid };
}

/** The index's trend charts, rendered (or taken from `cache` when their spec is unchanged). */
async function trendCharts(
  deps: Pick<HistoryDeps, "renderCharts">,
  index: HistoryIndex,
  cache: Map<string, RenderedChart>,
): Promise<RenderedChart[]> {
  const specs = index.trends.map(trendChart);
  const keys = specs.map((s) => JSON.stringify(s));
  const missing = specs.filter((_, i) => !cache.has(keys[i] ?? ""));
  const rendered = await renderChartsSafely(deps, missing);
  let next = 0;
  return specs.map((spec, i) => {
    const key = keys[i] ?? "";
    const found = cache.get(key);
    if (found) return found;
    const chart = rendered[next++] ?? { ...spec, svg: null, error: "not rendered" };
    cache.set(key, chart);
    return chart;
  });
}

/**
 * {@link publishHistory} that never fails the run: its own report is out already and matters more. Any error,
 * or the time budget running out, is logged and returned in the outcome.
 */
async function publishHistorySafely(summary: RunSummary, deps: AggregateDeps): Promise<HistoryOutcome> {
  const progress = emptyHistoryOutcome();
  const failed = (error: string): HistoryOutcome => {
    deps.logger?.warn("the history of runs (reports/index.html) was not updated", {
      runId: summary.runId,
      error,
    });
    // What was done before the failure (the summary, perhaps an index), as of now: the work may go on.
    return { ...progress, index: progress.index ? { ...progress.index } : null, error };
  };
  const listObjects = deps.listObjects ?? deps.store.list?.bind(deps.store);
  if (!listObjects) return failed("the object store cannot list objects");
  const budget = deps.historyTimeBudgetMs ?? HISTORY_TIME_BUDGET_MS;
  const timeout = new AbortController();
  try {
    const outcome = await Promise.race([
      publishHistory(summary, { ...deps, listObjects, deadline: Date.now() + budget }, progress),
      // Cancelled in `finally` as soon as the update ends, so it never holds a process open on its own.
      delay(budget, null, { signal: timeout.signal }),
    ]);
    if (outcome === null) return failed(`not done within ${budget} ms; the next run rebuilds the index`);
    if (outcome.error !== null)
      deps.logger?.warn("the history of runs may be incomplete", {
        runId: summary.runId,
        error: outcome.error,
      });
    return outcome;
  } catch (error: unknown) {
    return failed(error instanceof Error ? error.message : String(error));
  } finally {
    timeout.abort();
  }
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
  const [dataset, verdicts, items] = await Promise.all([
    readDatasetManifest(deps.store, run.dataset),
    deps.verdicts.listRun(runId),
    readRunItems(deps.store, runId, run.shards),
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
