/**
 * The history of runs, Aggregate's last step: this run's summary, then reports/index.json and
 * reports/index.html rebuilt from every summary in the bucket (see {@link publishHistory}).
 */
import { setTimeout as delay } from "node:timers/promises";
import pLimit from "p-limit";
import type { ListedObject, ObjectStore } from "../adapters/object-store.ts";
import {
  buildHistoryIndex,
  type HistoryIndex,
  type InvalidSummary,
  parseRunSummary,
  type RunSummary,
  trendChart,
} from "../core/history.ts";
import {
  REPORTS_INDEX_HTML_KEY,
  REPORTS_INDEX_JSON_KEY,
  RUN_SUMMARIES_PREFIX,
  runSummaryKey,
} from "../deployment/storage-layout.ts";
import { renderHistoryHtml } from "../report/history-html.ts";
import type { ChartSpec } from "../report/report-charts.ts";
import type { RenderedChart } from "../report/report-html.ts";
import type { AggregateDeps } from "./aggregate.ts";

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

/**
 * Renders the charts; a chart that fails is shown as not rendered, with the reason, and fails nothing. The
 * history's trends and report.html's charts (aggregate.ts) both go through it.
 */
export async function renderChartsSafely(
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
export async function publishHistorySafely(
  summary: RunSummary,
  deps: AggregateDeps,
): Promise<HistoryOutcome> {
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
