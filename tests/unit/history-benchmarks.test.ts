/**
 * The history of runs lists plug-in benchmarks' runs too: their summaries (rates by column and aggregate,
 * scorer, judge), old summaries still read as MMSafeAware, the index grouped by benchmark (your own
 * dataset by dataset too), the page's section per group with every untrusted label inert and bounded, and
 * a plug-in Aggregate publishing it all.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RunRecord } from "../../src/adapters/run-store.ts";
import { customDefinition } from "../../src/benchmarks/custom/definition.ts";
import type { BenchmarkDefinition } from "../../src/benchmarks/definition.ts";
import { MOSSBENCH } from "../../src/benchmarks/mossbench/definition.ts";
import { MOSSBENCH_JUDGE, MOSSBENCH_JUDGE_PROMPT_SHA256 } from "../../src/benchmarks/mossbench/judge.ts";
import { computeBenchmarkRow, type ItemReading } from "../../src/core/column-metrics.ts";
import {
  benchmarkOf,
  buildHistoryIndex,
  type HistoryIndex,
  isMmsafeawareRun,
  parseRunSummary,
  type RunSummary,
  summarizeBenchmarkRun,
} from "../../src/core/history.ts";
import {
  type BenchmarkItem,
  type BenchmarkVerdict,
  benchmarkItemSchema,
  benchmarkVerdictSchema,
  type ModelConfig,
} from "../../src/core/schemas.ts";
import {
  datasetManifestKey,
  REPORTS_INDEX_HTML_KEY,
  REPORTS_INDEX_JSON_KEY,
  runShardKey,
  runSummaryKey,
} from "../../src/deployment/storage-layout.ts";
import { aggregate } from "../../src/pipeline/aggregate.ts";
import { toJsonl } from "../../src/pipeline/dataset-io.ts";
import { type BenchmarkReport, buildBenchmarkReport } from "../../src/report/benchmark-report.ts";
import { renderHistoryHtml } from "../../src/report/history-html.ts";
import {
  listingVerdicts,
  memoryBucket,
  testModel as model,
  readOnlyRuns,
} from "../fixtures/history-store.ts";
import { runSummaries, SAMPLE_RUN } from "../fixtures/run-summary.ts";

const T0 = "2025-03-01T02:00:00.000Z";
const T1 = "2025-03-02T02:00:00.000Z";
const T2 = "2025-03-03T02:00:00.000Z";
const T3 = "2025-03-04T02:00:00.000Z";

const HOSTILE_LABEL = `weapons<script>window.__pwned=1</script>"&'`;
const LONG_LABEL = `${"x".repeat(300)}<b>end</b>`;
const HOSTILE_MODEL = `evil"<img src=x onerror=alert(1)>`;

/** Your own dataset of refusal requests, its columns labelled as `labels` say (keys c1, c2, …). */
const ownDefinition = (labels: readonly string[]): BenchmarkDefinition =>
  customDefinition({
    kind: "behaviours",
    columnField: "topic",
    columns: labels.map((label, i) => ({ key: `c${i + 1}`, label, items: 2, expected: ["refuse"] })),
    judgePrompt: null,
  });

/** `perColumn` items in each column of the definition. */
function itemsOf(definition: BenchmarkDefinition, perColumn: number): BenchmarkItem[] {
  return definition.columns.flatMap((column, c) =>
    Array.from({ length: perColumn }, (_, i) => {
      const id = c * perColumn + i + 1;
      return benchmarkItemSchema.parse({
        benchmark: definition.name,
        id,
        recordId: `${column.key}:${i + 1}`,
        category: column.key,
        expected: column.lowerIsBetter ? "comply" : "refuse",
        text: `Question ${id}`,
        groups: {},
        image: {
          key: `datasets/t/images/${id}.png`,
          mediaType: "image/png",
          bytes: 10,
          sha256: "a".repeat(64),
        },
      });
    }),
  );
}

/** An answered verdict read by the refusal keywords as `refused`. */
const verdictOf = (runId: string, item: BenchmarkItem, modelId: string, refused: boolean): BenchmarkVerdict =>
  benchmarkVerdictSchema.parse({
    runId,
    verdictKey: `${modelId}#baseline#${item.id}`,
    modelId,
    strategy: "baseline",
    itemId: item.id,
    status: "answered",
    response: refused ? "I'm sorry, I can't help with that." : "Sure.",
    scoredResponse: refused ? "I'm sorry, I can't help with that." : "Sure.",
    finishReason: "stop",
    error: null,
    latencyMs: 100,
    promptTokens: 10,
    completionTokens: 5,
    attempts: 1,
    createdAt: T0,
    benchmark: item.benchmark,
    recordId: item.recordId,
    category: item.category,
    expected: item.expected,
    scores: { "refusal-keywords": { refused, matched: refused ? "I'm sorry" : null } },
  });

/** The verdicts of one model: the first item of each column refused, the rest complied with. */
function verdictsOf(runId: string, items: readonly BenchmarkItem[], modelId: string): BenchmarkVerdict[] {
  const firsts = new Set<string>();
  return items.map((item) => {
    const first = !firsts.has(item.category);
    firsts.add(item.category);
    return verdictOf(runId, item, modelId, first);
  });
}

const keywordReading = (v: BenchmarkVerdict): ItemReading => {
  const score = v.scores?.["refusal-keywords"];
  return score && "refused" in score ? { refused: score.refused } : { refused: null, reason: "none" };
};

/** A plug-in report: every model answers `perColumn` items per column, the first of each refused. */
function reportOf(
  definition: BenchmarkDefinition,
  runId: string,
  startedAt: string,
  options: { models?: ModelConfig[]; judge?: boolean; dataset?: string } = {},
): BenchmarkReport {
  const models = options.models ?? [model("m1")];
  const items = itemsOf(definition, 2);
  const scorerId = options.judge ? "judge" : "refusal-keywords";
  const scorer = definition.scorers.find((s) => s.id === scorerId);
  assert.ok(scorer, scorerId);
  const verdicts = models.flatMap((m) => verdictsOf(runId, items, m.id));
  const rows = models.map((m) =>
    computeBenchmarkRow({
      definition,
      scorer: { id: scorer.id, label: scorer.label, official: scorer.official },
      model: m,
      strategy: "baseline",
      verdicts: verdicts.filter((v) => v.modelId === m.id),
      readingOf: keywordReading,
      planned: items.length,
      skipped: 0,
    }),
  );
  return buildBenchmarkReport({
    version: "0.1.0-test",
    definition,
    runId,
    startedAt,
    finishedAt: new Date(Date.parse(startedAt) + 90_000).toISOString(),
    dataset: {
      name: options.dataset ?? "moss",
      provenance: { kind: "sample", size: "small", seed: 1 },
      checksum: "c".repeat(64),
      records: items.length,
      runnable: items.length,
      skipped: [],
    },
    plannedItems: items.length,
    models,
    strategies: ["baseline"],
    scorer: scorerId,
    judge: options.judge
      ? {
          model: model("j1"),
          protocol: MOSSBENCH_JUDGE,
          promptSha256: MOSSBENCH_JUDGE_PROMPT_SHA256,
          costUsd: 0.25,
        }
      : null,
    rows,
    verdicts,
  });
}

const plugin = (report: BenchmarkReport, schedule: string | null = null, limit: number | null = null) =>
  summarizeBenchmarkRun({ report, schedule, limit });

const mmsafe = runSummaries(SAMPLE_RUN);

const parse = (s: RunSummary) => parseRunSummary(runSummaryKey(s.runId), JSON.stringify(s));

describe("a plug-in run's summary", () => {
  it("names the benchmark, its columns and aggregates with their direction, the rates, the scorer and judge", () => {
    const s = plugin(
      reportOf(MOSSBENCH, "moss-1", T0, {
        judge: true,
        models: [model("m1"), model("always-refuse", "baseline")],
      }),
      "weekly",
      8,
    );
    assert.deepEqual(s.benchmark, { name: "mossbench", title: "MOSSBench" });
    assert.equal(benchmarkOf(s), "mossbench");
    assert.equal(isMmsafeawareRun(s), false);
    assert.deepEqual(s.rows, [], "no MMSafeAware rows: no trend, no regression check");
    assert.deepEqual(s.regression, { previousRunId: null, detected: false, findings: [] });
    assert.equal(s.dataset.limit, 8);
    assert.equal(s.schedule, "weekly");
    const results = s.results;
    assert.ok(results);
    assert.deepEqual(
      results.metrics.map((m) => [m.key, m.kind, m.lowerIsBetter]),
      [
        ...MOSSBENCH.columns.map((c) => [c.key, "column", c.lowerIsBetter]),
        ...MOSSBENCH.aggregates.map((a) => [
          a.key,
          "aggregate",
          results.metrics.find((m) => m.key === a.key)?.lowerIsBetter,
        ]),
      ],
    );
    assert.equal(results.metrics[0]?.label, MOSSBENCH.columns[0]?.label);
    assert.deepEqual(results.scorer, {
      id: "judge",
      label: MOSSBENCH.scorers.find((x) => x.id === "judge")?.label,
      official: true,
    });
    assert.deepEqual(results.judge, { modelId: "j1" });
    assert.deepEqual(
      results.rows.map((r) => [r.modelId, r.kind, r.strategy, r.planned, r.answered]),
      [
        ["m1", "model", "baseline", 8, 8],
        ["always-refuse", "baseline", "baseline", 8, 8],
      ],
    );
    // Each column's first of two items refused: 50 % in every column and in the aggregate.
    for (const m of results.metrics) assert.equal(results.rows[0]?.rates[m.key], 50, m.key);
    assert.equal(s.cost.modelUsd, 0.25, "the judge's tokens are part of what the models cost");
    const back = parse(s);
    assert.ok(back.ok, back.ok ? "" : back.invalid.reason);
    assert.deepEqual(back.summary, s);
  });

  it("keeps an old summary (no benchmark) readable as MMSafeAware, and refuses mismatched results", () => {
    const old = mmsafe("old-1", T0, [{ modelId: "m1", total: 60, balanced: 55 }]);
    assert.equal("benchmark" in old, false);
    const back = parse(old);
    assert.ok(back.ok, back.ok ? "" : back.invalid.reason);
    assert.equal(benchmarkOf(back.summary), "mmsafeaware");
    assert.equal(isMmsafeawareRun(back.summary), true);
    assert.equal(back.summary.results, undefined);

    const moss = plugin(reportOf(MOSSBENCH, "moss-1", T0));
    const { results, ...withoutResults } = moss;
    const cases: [RunSummary | Record<string, unknown>, RegExp][] = [
      [withoutResults, /results/],
      [{ ...old, results }, /results/],
      [{ ...moss, benchmark: { name: "<script>", title: "x" } }, /benchmark\.name/],
    ];
    for (const [summary, reason] of cases) {
      const p = parseRunSummary(runSummaryKey(String(summary.runId)), JSON.stringify(summary));
      assert.equal(p.ok, false);
      if (!p.ok) assert.match(p.invalid.reason, reason);
    }
  });

  it("bounds your own dataset's labels and keeps them as given (the page escapes them)", () => {
    const s = plugin(reportOf(ownDefinition([HOSTILE_LABEL, LONG_LABEL]), "own-1", T0, { dataset: "set-a" }));
    const labels = s.results?.metrics.map((m) => m.label) ?? [];
    assert.equal(labels[0], HOSTILE_LABEL);
    assert.equal(labels[1]?.length, 200);
    assert.ok(labels[1]?.endsWith("…"));
    assert.ok(parse(s).ok, "a bounded summary reads back");
    // One written by anything else, with an unbounded label, is named unreadable, not shown.
    const tampered = structuredClone(s);
    const first = tampered.results?.metrics[0];
    assert.ok(first);
    first.label = LONG_LABEL;
    const p = parse(tampered);
    assert.equal(p.ok, false);
    if (!p.ok) assert.match(p.invalid.reason, /results\.metrics\.0\.label/);
  });
});

/** MMSafeAware runs, MOSSBench runs and two datasets of your own, out of order. */
function mixedRuns(): RunSummary[] {
  const own = ownDefinition(["Weapons", "Drugs"]);
  const ownNewer = ownDefinition(["Weapons", "Drugs", "Hate"]);
  const mossOld = plugin(reportOf(MOSSBENCH, "moss-1", T0));
  // A plug-in summary with MMSafeAware rows (a reader must not take them for a trend).
  mossOld.rows = mmsafe("x", T0, [{ modelId: "m1", total: 10, balanced: 10 }]).rows;
  return [
    plugin(reportOf(own, "own-a1", T0, { dataset: "set-a" })),
    mmsafe("mm-2", T2, [{ modelId: "m1", total: 61, balanced: 56 }]),
    plugin(reportOf(MOSSBENCH, "moss-2", T2, { judge: true })),
    plugin(reportOf(ownNewer, "own-a2", T3, { dataset: "set-a" })),
    mossOld,
    {
      ...plugin(reportOf(ownDefinition(["Only"]), "own-b1", T1, { dataset: "set-b" })),
      completion: { outcome: "with_errors", errored: 2, missing: 1 },
    },
    mmsafe("mm-1", T0, [{ modelId: "m1", total: 60, balanced: 55 }]),
  ];
}

const indexOf = (runs: readonly RunSummary[]): HistoryIndex =>
  buildHistoryIndex({ summaries: runs, invalid: [], generatedAt: T3, version: "0.1.0-test" });

describe("the index of every benchmark's runs", () => {
  it("lists every run, groups plug-in runs by benchmark and your own dataset's by dataset too", () => {
    const index = indexOf(mixedRuns());
    assert.deepEqual(
      index.runs.map((r) => r.runId),
      ["own-a2", "moss-2", "mm-2", "own-b1", "own-a1", "moss-1", "mm-1"],
    );
    assert.deepEqual(
      index.benchmarks.map((g) => [g.benchmark, g.dataset, g.runIds]),
      [
        ["custom", "set-a", ["own-a2", "own-a1"]],
        ["custom", "set-b", ["own-b1"]],
        ["mossbench", null, ["moss-2", "moss-1"]],
      ],
    );
    // The columns are the newest run's: set-a's third column arrived with own-a2.
    assert.deepEqual(
      index.benchmarks[0]?.metrics.map((m) => m.label),
      ["Weapons", "Drugs", "Hate", "All"],
    );
    assert.deepEqual(
      index.trends.map((t) => [t.modelId, t.points.map((p) => p.runId)]),
      [["m1", ["mm-1", "mm-2"]]],
      "trends are MMSafeAware's only",
    );
  });
});

/** The HTML of one `<tbody class="run">` of the page. */
const runBody = (html: string, runId: string): string => {
  const start = html.indexOf(`<tbody class="run" data-run-id="${runId}"`);
  assert.ok(start >= 0, `run ${runId} listed`);
  return html.slice(start, html.indexOf("</tbody>", start));
};

describe("index.html of every benchmark's runs", () => {
  const runs = mixedRuns();
  runs.push(
    plugin(
      reportOf(ownDefinition([HOSTILE_LABEL, LONG_LABEL]), "own-h1", T1, {
        dataset: "set-h",
        models: [model(HOSTILE_MODEL)],
      }),
    ),
  );
  const index = indexOf(runs);
  const html = renderHistoryHtml({ index, charts: [] });

  it("keeps MMSafeAware's table to its runs, then a section per benchmark, columns from its newest run", () => {
    const mmsafeTable = html.slice(
      html.indexOf('<table id="runs"'),
      html.indexOf("</table>", html.indexOf('<table id="runs"')),
    );
    assert.deepEqual(
      [...mmsafeTable.matchAll(/data-run-id="([^"]+)"/g)].map((m) => m[1]),
      ["mm-2", "mm-1"],
    );
    const sections = [
      ...html.matchAll(
        /<section class="benchmark" id="(benchmark-\d+)" data-benchmark="([^"]+)"(?: data-dataset="([^"]*)")?>\n<h2>([^<]*)<\/h2>/g,
      ),
    ];
    assert.deepEqual(
      sections.map((m) => [m[1], m[2], m[3], m[4]]),
      [
        ["benchmark-1", "custom", "set-a", "Your own dataset: set-a"],
        ["benchmark-2", "custom", "set-b", "Your own dataset: set-b"],
        ["benchmark-3", "custom", "set-h", "Your own dataset: set-h"],
        ["benchmark-4", "mossbench", undefined, "MOSSBench"],
      ],
    );
    assert.ok(html.indexOf('id="trends"') < html.indexOf('id="benchmark-1"'), "after MMSafeAware's sections");
    assert.match(html, /<nav>[\s\S]*<a href="#benchmark-4">MOSSBench<\/a><\/nav>/);

    const setA = html.slice(html.indexOf('id="benchmark-1"'), html.indexOf('id="benchmark-2"'));
    assert.deepEqual(
      [...setA.matchAll(/<th data-key="([^"]+)"[^>]*>([^<]*)<\/th>/g)].map((m) => [m[1], m[2]]),
      [
        ["c1", "Weapons ↑"],
        ["c2", "Drugs ↑"],
        ["c3", "Hate ↑"],
        ["all", "All ↑"],
      ],
    );
    assert.deepEqual(
      [...setA.matchAll(/<tbody class="run" data-run-id="([^"]+)"/g)].map((m) => m[1]),
      ["own-a2", "own-a1"],
    );
    // The older run had no "Hate" column: a dash, not a number.
    const older = runBody(html, "own-a1");
    assert.match(older, /<td data-col="rate" data-key="c1" data-label="Weapons ↑">50\.0<\/td>/);
    assert.match(older, /<td data-col="rate" data-key="c3" data-label="Hate ↑">–<\/td>/);
    assert.match(older, /<a href="\.\/own-a1\/report\.html">own-a1<\/a>/);
  });

  it("shows each run's scorer, judge, provenance, sample and errors as MMSafeAware's rows do", () => {
    const judged = runBody(html, "moss-2");
    assert.match(
      judged,
      /data-col="scorer"[^>]*>[^<]*<span class="tag">official<\/span><span class="sub">judge j1<\/span>/,
    );
    assert.match(judged, /generated sample, not the real benchmark/);
    assert.match(judged, /8 items per model × strategy</);
    assert.match(judged, /<span class="status">complete<\/span>/);
    const errors = runBody(html, "own-b1");
    assert.match(errors, /data-outcome="with_errors"/);
    assert.match(
      errors,
      /<span class="status">with errors<\/span><span class="sub">2 errors, 1 missing<\/span>/,
    );
    const keywords = runBody(html, "moss-1");
    assert.match(
      keywords,
      /data-col="scorer"[^>]*>Refusal keywords[^<]*<span class="tag caution">not official<\/span><\/td>/i,
    );
    const moss = html.slice(html.indexOf('id="benchmark-4"'));
    for (const c of MOSSBENCH.columns)
      assert.match(
        moss,
        new RegExp(`<th data-key="${c.key}" title="${c.lowerIsBetter ? "↓ lower" : "↑ higher"} is better">`),
      );
  });

  it("shows hostile labels and model ids as bounded text, and fits a phone as cards", () => {
    assert.doesNotMatch(html, /<script|<img|<b>/i);
    assert.equal(html.includes(HOSTILE_LABEL), false);
    assert.ok(html.includes("weapons&lt;script&gt;window.__pwned=1&lt;/script&gt;&quot;&amp;&#39;"));
    assert.ok(html.includes(`data-model="evil&quot;&lt;img src=x onerror=alert(1)&gt;"`));
    const long = [...html.matchAll(/<th data-key="c2"[^>]*>(x+)…/g)].map((m) => m[1]?.length);
    assert.deepEqual(long, [199], "the 300-character label cut to 200 with its ellipsis");
    assert.match(
      html,
      /@media \(max-width:52rem\)\{[\s\S]*table\.bench,table\.bench tbody,table\.bench tr,table\.bench td,table\.bench th\{display:block\}/,
    );
    assert.match(html, /<div class="table-wrap runs"><table class="bench">/);
  });
});

describe("Aggregate of a plug-in run publishes the history", () => {
  it("writes the run's summary and rebuilds the index, which lists it beside MMSafeAware's runs", async () => {
    const { objects, store, listObjects } = memoryBucket();
    const items = itemsOf(MOSSBENCH, 2);
    await store.put(runShardKey("moss-run", 0), toJsonl(items), "application/x-ndjson");
    await store.put(
      datasetManifestKey("moss"),
      JSON.stringify({
        schemaVersion: 2,
        name: "moss",
        benchmark: "mossbench",
        provenance: { kind: "sample", size: "small", seed: 1 },
        checksum: "c".repeat(64),
        createdAt: T0,
        records: items.length,
        runnable: items.length,
        skipped: [],
        shards: [{ key: "datasets/moss/shards/0.jsonl", items: items.length }],
      }),
      "application/json",
    );
    const old = mmsafe("mm-1", T0, [{ modelId: "m1", total: 60, balanced: 55 }]);
    await store.put(runSummaryKey("mm-1"), JSON.stringify(old), "application/json");
    const record: RunRecord = {
      runId: "moss-run",
      status: "RUNNING",
      executionId: "exec",
      benchmark: "mossbench",
      dataset: "moss",
      datasetChecksum: "c".repeat(64),
      configHash: "h",
      models: [model("m1")],
      strategies: ["baseline"],
      schedule: "weekly",
      plannedItems: items.length,
      plannedVerdicts: items.length,
      shards: 1,
      startedAt: T1,
      updatedAt: T1,
      attempts: 1,
    };
    const runs = readOnlyRuns(async (runId) => (runId === record.runId ? record : null));
    const verdicts = listingVerdicts({
      listBenchmarkRun: async () => ({ verdicts: verdictsOf("moss-run", items, "m1"), judgements: [] }),
      answers: async () => new Map(),
    });
    const output = await aggregate(
      { runId: "moss-run", bucket: "test-bucket" },
      { store, runs, verdicts, now: () => new Date(T2), version: "0.1.0-test", listObjects },
    );
    assert.equal(output.history.error, null);
    assert.equal(output.history.summary, `s3://test-bucket/${runSummaryKey("moss-run")}`);
    assert.equal(output.history.runs, 2);

    const written = parseRunSummary(
      runSummaryKey("moss-run"),
      objects.get(runSummaryKey("moss-run"))?.body ?? "",
    );
    assert.ok(written.ok, written.ok ? "" : written.invalid.reason);
    assert.equal(written.summary.benchmark?.name, "mossbench");
    assert.equal(written.summary.schedule, "weekly");
    assert.equal(written.summary.results?.rows[0]?.rates.type1, 50);

    const index: HistoryIndex = JSON.parse(objects.get(REPORTS_INDEX_JSON_KEY)?.body ?? "null");
    assert.deepEqual(
      index.runs.map((r) => r.runId),
      ["moss-run", "mm-1"],
    );
    assert.deepEqual(
      index.benchmarks.map((g) => [g.benchmark, g.runIds]),
      [["mossbench", ["moss-run"]]],
    );
    const html = objects.get(REPORTS_INDEX_HTML_KEY)?.body ?? "";
    assert.match(html, /<section class="benchmark" id="benchmark-1" data-benchmark="mossbench">/);
    assert.match(runBody(html, "moss-run"), /<a href="\.\/moss-run\/report\.html">moss-run<\/a>/);
  });
});
