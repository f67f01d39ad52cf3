import { z } from "zod";
import type { ObjectStore } from "../adapters/object-store.ts";
import type { RunRecord, RunStore } from "../adapters/run-store.ts";
import type { VerdictStore } from "../adapters/verdict-store.ts";
import { goldLabel } from "../core/benchmark.ts";
import { type AwsUsage, estimateAwsCost } from "../core/cost.ts";
import { computeRow } from "../core/metrics.ts";
import { detectRegression, type RegressionCheck, runSummary } from "../core/regression.ts";
import { buildReport, type Headline, headlines, renderMarkdown } from "../core/report.ts";
import { addCounters, invocationCounters, runUsageFromCounters } from "../core/run-usage.ts";
import { reportJsonKey, reportMarkdownKey, responsesKey } from "../core/storage-layout.ts";
import { readDatasetManifest, toJsonl } from "./dataset-io.ts";
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
}

/**
 * The execution's output and the detail of the "mmsafe run completed" event: headline numbers, where the
 * report is, the regression check against the schedule's previous run, and a plain-text summary.
 */
export interface AggregateOutput {
  runId: string;
  status: "SUCCEEDED";
  schedule: string | null;
  headline: Headline[];
  report: { json: string; markdown: string; responses: string[] };
  regression: RegressionCheck;
  summary: string;
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
 * Aggregate: read every verdict of the run, compute the metrics per model × strategy, publish report.json,
 * report.md and the responses in the official scorer's input format, and mark the run SUCCEEDED.
 */
export async function aggregate(event: unknown, deps: AggregateDeps): Promise<AggregateOutput> {
  const { runId } = aggregateEventSchema.parse(event);
  const run = await deps.runs.get(runId);
  if (!run) throw new RunNotFoundError(`run ${runId} has no record in the runs table; was it planned?`);
  const [dataset, verdicts] = await Promise.all([
    readDatasetManifest(deps.store, run.dataset),
    deps.verdicts.listRun(runId),
  ]);

  // Skipped records of the categories the run selected (records without a readable id count always).
  const skipped = dataset.skipped.filter(
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
      source: dataset.source,
      checksum: dataset.checksum,
      records: dataset.records,
      runnable: dataset.runnable,
      skipped: dataset.skipped,
    },
    plannedItems: run.plannedItems,
    models: run.models,
    strategies: run.strategies,
    vcd: run.vcd,
    rows,
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
  return {
    runId,
    status: "SUCCEEDED",
    schedule,
    headline,
    report: { ...location, responses },
    regression,
    summary: runSummary({
      runId,
      headline,
      regression,
      reportUri: location.markdown,
      costUsd: report.cost ? report.cost.aws.totalUsd + (report.cost.modelUsd ?? 0) : null,
    }),
  };
}
