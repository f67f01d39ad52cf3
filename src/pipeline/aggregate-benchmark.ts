import type { ObjectStore } from "../adapters/object-store.ts";
import type { RunRecord } from "../adapters/run-store.ts";
import { CUSTOM_BENCHMARK } from "../benchmarks/custom/config.ts";
import type { PluginBenchmark } from "../benchmarks/names.ts";
import type { BenchmarkPlugin } from "../benchmarks/plugin.ts";
import { pluginFor } from "../benchmarks/registry.ts";
import { tokenCost } from "../core/call-accounting.ts";
import {
  type BenchmarkHeadline,
  type BenchmarkRow,
  benchmarkHeadlines,
  computeBenchmarkRow,
  type ItemReading,
} from "../core/column-metrics.ts";
import type { RunCompletion } from "../core/completion.ts";
import {
  type BenchmarkItem,
  type BenchmarkVerdict,
  type DatasetManifest,
  isBenchmarkItem,
  type JudgeVerdict,
  type ModelConfig,
} from "../core/schemas.ts";
import type { estimateAwsCost } from "../deployment/cost.ts";
import { reportHtmlKey, reportJsonKey, reportMarkdownKey } from "../deployment/storage-layout.ts";
import { renderBenchmarkHtml } from "../report/benchmark-html.ts";
import { renderBenchmarkMarkdown } from "../report/benchmark-markdown.ts";
import {
  type BenchmarkReport,
  benchmarkCompletion,
  buildBenchmarkReport,
} from "../report/benchmark-report.ts";
import { reportFailedPage } from "../report/report-html.ts";
import { parseShard, readRunShards } from "./dataset-io.ts";
import { readRunCustomConfig } from "./run-plugins.ts";

export interface BenchmarkAggregateResult {
  report: BenchmarkReport;
  headline: BenchmarkHeadline[];
  keys: { json: string; markdown: string; html: string };
}

const readingKey = (modelId: string, strategy: string, itemId: number) =>
  `${modelId}\u0000${strategy}\u0000${itemId}`;

/**
 * How each answered verdict reads under the run's scorer. With a judge: its score (1 refused, 0 complied);
 * an error reading, a reply with no score or no reading yet leaves the item unscored (a resume asks again).
 * Without one: the default scorer's reading stored on the verdict.
 */
export function scorerOf(
  plugin: BenchmarkPlugin,
  judge: ModelConfig | undefined,
  judgements: readonly JudgeVerdict[],
  chosen: string | undefined,
): { id: string; readingOf: (v: BenchmarkVerdict) => ItemReading; judgements: JudgeVerdict[] } {
  if (judge && plugin.judge) {
    const own = judgements.filter((j) => j.judge.modelId === judge.id);
    const byKey = new Map(own.map((j) => [readingKey(j.modelId, j.strategy, j.itemId), j]));
    const judgeScorer = plugin.definition.scorers.find((s) => s.needsJudge);
    return {
      id: judgeScorer?.id ?? "judge",
      judgements: own,
      readingOf: (v) => {
        const j = byKey.get(readingKey(v.modelId, v.strategy, v.itemId));
        if (!j) return { refused: null, reason: "not judged yet" };
        if (j.status === "error")
          return { refused: null, reason: `judge error: ${j.error?.kind ?? "unknown"}` };
        if (j.score === null) return { refused: null, reason: "the judge's reply holds no score" };
        return { refused: j.score === 1 };
      },
    };
  }
  const id = chosen ?? plugin.definition.defaultScorer;
  return {
    id,
    judgements: [],
    readingOf: (v) => {
      const score = v.scores?.[id];
      if (!score) return { refused: null, reason: `no ${id} reading` };
      return "refused" in score ? { refused: score.refused } : { correct: score.correct };
    },
  };
}

/** Builds and writes a plug-in run's reports. */
export async function aggregateBenchmarkRun(input: {
  run: RunRecord;
  benchmark: PluginBenchmark;
  dataset: DatasetManifest;
  verdicts: readonly BenchmarkVerdict[];
  judgements: readonly JudgeVerdict[];
  store: ObjectStore;
  version: string;
  finishedAt: string;
  awsCost: ReturnType<typeof estimateAwsCost>;
  thumbnails: (items: readonly BenchmarkItem[]) => Promise<Map<number, string | null>>;
}): Promise<BenchmarkAggregateResult> {
  const { run, benchmark, dataset, store } = input;
  // Your own dataset: as the run was planned (the dataset may have been uploaded again since).
  const custom =
    benchmark === CUSTOM_BENCHMARK ? ((await readRunCustomConfig(store, run.runId)) ?? dataset.custom) : null;
  const plugin = pluginFor(benchmark, custom);
  const { definition } = plugin;
  const items = await readRunShards(store, run.runId, run.shards, (text, key) =>
    parseShard(text, key).filter(isBenchmarkItem),
  );
  const scorer = scorerOf(plugin, run.judge, input.judgements, run.scorer);
  const scorerDefinition = definition.scorers.find((s) => s.id === scorer.id);
  const scorerInfo = {
    id: scorer.id,
    label: scorerDefinition?.label ?? scorer.id,
    official: scorerDefinition?.official ?? false,
  };
  // Skipped records of the selected columns (a limit samples runnable items only: none was selected).
  const skipped = run.limit !== undefined ? 0 : dataset.skipped.length;
  const rows = run.models.flatMap((model) =>
    run.strategies.map((strategy) =>
      computeBenchmarkRow({
        definition,
        scorer: scorerInfo,
        model,
        strategy,
        verdicts: input.verdicts.filter((v) => v.modelId === model.id && v.strategy === strategy),
        readingOf: scorer.readingOf,
        planned: run.plannedItems,
        skipped,
      }),
    ),
  );
  const judge = run.judge && plugin.judge ? run.judge : null;
  const judgeCost = judge
    ? tokenCost(
        judge,
        scorer.judgements.reduce((s, j) => s + (j.promptTokens ?? 0), 0),
        scorer.judgements.reduce((s, j) => s + (j.completionTokens ?? 0), 0),
      )
    : null;
  const report = buildBenchmarkReport({
    version: input.version,
    definition,
    runId: run.runId,
    startedAt: run.startedAt,
    finishedAt: input.finishedAt,
    dataset: {
      name: dataset.name,
      provenance: run.datasetProvenance ?? dataset.provenance,
      checksum: dataset.checksum,
      records: dataset.records,
      runnable: dataset.runnable,
      skipped: dataset.skipped,
    },
    plannedItems: run.plannedItems,
    models: run.models,
    strategies: run.strategies,
    scorer: scorer.id,
    judge:
      judge && plugin.judge
        ? {
            model: judge,
            protocol: plugin.judge,
            promptSha256: scorer.judgements[0]?.judge.promptSha256 ?? plugin.judge.promptSha256,
            costUsd: judgeCost,
          }
        : null,
    rows,
    verdicts: input.verdicts,
    completion: judge
      ? withJudgeGaps(benchmarkCompletion(rows, input.verdicts), rows, input.verdicts, scorer)
      : undefined,
    awsCost: input.awsCost,
  });
  const keys = {
    json: reportJsonKey(run.runId),
    markdown: reportMarkdownKey(run.runId),
    html: reportHtmlKey(run.runId),
  };
  await Promise.all([
    store.put(keys.json, `${JSON.stringify(report, null, 2)}\n`, "application/json"),
    store.put(keys.markdown, renderBenchmarkMarkdown(report), "text/markdown; charset=utf-8"),
  ]);
  let html: string;
  try {
    html = renderBenchmarkHtml({
      report,
      items,
      verdicts: input.verdicts,
      judgeVerdicts: scorer.judgements,
      thumbnails: await input.thumbnails(items),
    });
  } catch (error: unknown) {
    // The page is a view of report.json: a failure to build it costs the page, never the run.
    html = reportFailedPage(run.runId, error);
  }
  await store.put(keys.html, html, "text/html; charset=utf-8");
  return { report, headline: benchmarkHeadlines(rows), keys };
}

/**
 * A judged run is complete only when the judge read every answer: answers without a reading (the judge
 * failed, replied with no score, or has not been asked yet) are counted per model × strategy under
 * `judge: <why>`, so the run ends with errors and its resume asks the judge again.
 */
function withJudgeGaps(
  completion: RunCompletion,
  rows: readonly BenchmarkRow[],
  verdicts: readonly BenchmarkVerdict[],
  scorer: { readingOf: (v: BenchmarkVerdict) => ItemReading },
): RunCompletion {
  const affected = [...completion.affected];
  let gaps = 0;
  for (const row of rows) {
    const kinds: Record<string, number> = {};
    let unread = 0;
    for (const v of verdicts) {
      if (v.modelId !== row.modelId || v.strategy !== row.strategy || v.status !== "answered") continue;
      const reading = scorer.readingOf(v);
      if (!("reason" in reading)) continue;
      unread++;
      const kind = `judge: ${reading.reason}`;
      kinds[kind] = (kinds[kind] ?? 0) + 1;
    }
    if (unread === 0) continue;
    gaps += unread;
    const existing = affected.findIndex((a) => a.modelId === row.modelId && a.strategy === row.strategy);
    const entry = existing >= 0 ? affected[existing] : undefined;
    const merged = {
      modelId: row.modelId,
      strategy: row.strategy,
      planned: row.counts.planned,
      answered: row.counts.answered,
      errored: entry?.errored ?? 0,
      missing: entry?.missing ?? row.counts.missing,
      kinds: { ...(entry?.kinds ?? {}), ...kinds },
      sample: entry?.sample ?? null,
      unjudged: unread,
    };
    if (existing >= 0) affected[existing] = merged;
    else affected.push(merged);
  }
  if (gaps === 0) return completion;
  return {
    outcome: completion.outcome === "no_answers" ? "no_answers" : "with_errors",
    errored: completion.errored,
    missing: completion.missing,
    unjudged: gaps,
    affected,
  };
}
