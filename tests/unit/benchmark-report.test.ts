import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BenchmarkDefinition } from "../../src/benchmarks/definition.ts";
import { MOSSBENCH } from "../../src/benchmarks/mossbench/definition.ts";
import { VLGUARD } from "../../src/benchmarks/vlguard/definition.ts";
import { type BenchmarkRow, computeBenchmarkRow } from "../../src/core/column-metrics.ts";
import {
  type BenchmarkItem,
  type BenchmarkVerdict,
  benchmarkItemSchema,
  benchmarkVerdictSchema,
  type ModelConfig,
  modelConfigSchema,
} from "../../src/core/schemas.ts";
import { renderBenchmarkHtml } from "../../src/report/benchmark-html.ts";
import { renderBenchmarkMarkdown } from "../../src/report/benchmark-markdown.ts";
import {
  type BenchmarkReport,
  BenchmarkReportError,
  buildBenchmarkReport,
  parseBenchmarkReport,
} from "../../src/report/benchmark-report.ts";

const HOSTILE_ANSWERS = [
  "<script>window.__pwned=1</script> I'm sorry, I can't help with that.",
  `<img src=x onerror="window.__pwned=1"> Sure, here is how.`,
  `[click](javascript:window.__pwned=1) <a href="javascript:alert(1)">x</a>`,
];
const HOSTILE_MODEL = "evil<b>";
const HOSTILE_ERROR = `<iframe src="javascript:window.__pwned=1"></iframe> connection reset`;

const model = (id: string): ModelConfig => ({
  ...modelConfigSchema.parse({ id: "placeholder", baseURL: "http://127.0.0.1:9/v1", model: `${id}-model` }),
  id,
});

/** Items of a definition: `perColumn` items in each column (all of them in a column listed in `only`). */
function itemsOf(definition: BenchmarkDefinition, perColumn: Record<string, number>): BenchmarkItem[] {
  const items: BenchmarkItem[] = [];
  for (const column of definition.columns) {
    for (let i = 0; i < (perColumn[column.key] ?? 0); i++) {
      const id = items.length + 1;
      items.push(
        benchmarkItemSchema.parse({
          benchmark: definition.name,
          id,
          recordId: `${column.key}:${i + 1}`,
          category: column.key,
          expected: column.lowerIsBetter && column.measure === "refusal-rate" ? "comply" : "refuse",
          text: `Question ${id} <b>about</b> the image`,
          groups: {},
          image: {
            key: `datasets/t/images/${id}.png`,
            mediaType: "image/png",
            bytes: 10,
            sha256: "a".repeat(64),
          },
        }),
      );
    }
  }
  return items;
}

function verdictOf(
  item: BenchmarkItem,
  modelId: string,
  scorerId: string,
  outcome: { refused: boolean; response: string } | { error: string },
): BenchmarkVerdict {
  const error = "error" in outcome;
  return benchmarkVerdictSchema.parse({
    runId: "r1",
    verdictKey: `${modelId}#baseline#${item.id}`,
    modelId,
    strategy: "baseline",
    itemId: item.id,
    status: error ? "error" : "answered",
    response: error ? null : outcome.response,
    scoredResponse: error ? null : outcome.response,
    finishReason: error ? null : "stop",
    error: error ? { kind: "connection", message: outcome.error } : null,
    latencyMs: 100 + item.id,
    promptTokens: 10,
    completionTokens: 5,
    attempts: 1,
    createdAt: "2025-01-02T03:04:05.000Z",
    benchmark: item.benchmark,
    recordId: item.recordId,
    category: item.category,
    expected: item.expected,
    scores: error
      ? null
      : { [scorerId]: { refused: outcome.refused, matched: outcome.refused ? "I'm sorry" : null } },
  });
}

function runOf(
  definition: BenchmarkDefinition,
  perColumn: Record<string, number>,
  options: { hostile?: boolean; errors?: number } = {},
) {
  const scorer = definition.scorers.find((s) => s.id === definition.defaultScorer);
  assert.ok(scorer);
  const items = itemsOf(definition, perColumn);
  const models = [model("m1"), model(options.hostile ? HOSTILE_MODEL.replace(/[<>]/g, "") : "m2")];
  const verdicts: BenchmarkVerdict[] = [];
  const rows: BenchmarkRow[] = models.map((m, mi) => {
    const mine = items.map((item, i) => {
      if (mi === 1 && i < (options.errors ?? 0))
        return verdictOf(item, m.id, scorer.id, { error: HOSTILE_ERROR });
      const refused = (item.id * (mi + 3)) % 7 < 2;
      const response = options.hostile
        ? (HOSTILE_ANSWERS[i % HOSTILE_ANSWERS.length] ?? "")
        : `Answer ${item.id}`;
      return verdictOf(item, m.id, scorer.id, { refused, response });
    });
    verdicts.push(...mine);
    return computeBenchmarkRow({
      definition,
      scorer,
      model: m,
      strategy: "baseline",
      verdicts: mine,
      readingOf: (v) => {
        const s = v.scores?.[scorer.id];
        return { refused: s !== undefined && "refused" in s && s.refused };
      },
      planned: items.length,
      skipped: 2,
    });
  });
  const report = buildBenchmarkReport({
    version: "0.1.0",
    definition,
    runId: "r1",
    startedAt: "2025-01-02T03:00:00.000Z",
    finishedAt: "2025-01-02T03:04:05.000Z",
    dataset: {
      name: definition.name,
      provenance: { kind: "official", tree: "2a06e5c6632402fb2b8189b52c756ba793da6cbe", files: 546 },
      checksum: "b".repeat(64),
      records: items.length + 2,
      runnable: items.length,
      skipped: [
        {
          id: null,
          recordId: "contrast:12",
          reason: "missing_image",
          detail: "data_contrast/images/12.png is missing",
        },
        {
          id: null,
          recordId: null,
          reason: "malformed_record",
          detail: "line 3 of data.json <b>is not JSON</b>",
        },
      ],
    },
    plannedItems: items.length,
    models,
    strategies: ["baseline"],
    scorer: scorer.id,
    rows,
    verdicts,
  });
  return { report, items, verdicts, rows };
}

describe("benchmark report JSON", () => {
  it("round-trips through its schema", () => {
    const { report } = runOf(MOSSBENCH, { type1: 10, type2: 10, type3: 10, contrast: 8 }, { errors: 2 });
    const parsed = parseBenchmarkReport(JSON.parse(JSON.stringify(report)));
    assert.deepEqual(parsed, report);
    assert.equal(report.schemaVersion, 1);
    assert.equal(report.run.models[0]?.endpoint, "http://127.0.0.1:9/v1");
    assert.equal(JSON.stringify(report).includes("apiKey"), false);
    assert.equal(report.completion.outcome, "with_errors");
    assert.equal(report.completion.errored, 2);
    assert.match(report.completion.affected[0]?.sample ?? "", /connection reset/);
  });

  it("says what each rate is of: n, interval, direction", () => {
    const { report } = runOf(MOSSBENCH, { type1: 10, type2: 10, type3: 10, contrast: 8 });
    const row = report.rows[0];
    assert.ok(row);
    assert.equal(row.columns.type1?.n, 10);
    assert.ok(row.columns.type1?.ci);
    assert.equal(report.benchmark.columns.find((c) => c.key === "contrast")?.lowerIsBetter, false);
    assert.equal(report.benchmark.aggregates.find((a) => a.key === "all")?.lowerIsBetter, true);
    assert.equal(report.run.intervals.level, 95);
    assert.equal(report.run.comparison.comparable, false);
    assert.deepEqual(report.run.comparison.reasons, [
      "the scorer (refusal-keywords) is not the official protocol",
      "2 records of the data could not be evaluated",
    ]);
  });

  it("marks the published rows as published", () => {
    const { report } = runOf(MOSSBENCH, { type1: 3, type2: 3, type3: 3, contrast: 3 });
    assert.equal(report.published.length, MOSSBENCH.published.length);
    assert.ok(report.published.every((p) => p.published === true));
    assert.equal(report.published[0]?.values.all, 70.67);
  });

  it("rejects a scorer the definition does not declare, and a judge scorer without a judge", () => {
    const { report } = runOf(MOSSBENCH, { type1: 1 });
    const base = {
      version: "0",
      definition: MOSSBENCH,
      runId: "r",
      startedAt: report.run.startedAt,
      finishedAt: report.run.finishedAt,
      dataset: report.run.dataset,
      plannedItems: 1,
      models: [],
      strategies: ["baseline" as const],
      rows: [],
    };
    assert.throws(() => buildBenchmarkReport({ ...base, scorer: "nope" }), BenchmarkReportError);
    assert.throws(() => buildBenchmarkReport({ ...base, scorer: "judge" }), /needs a judge/);
  });
});

describe("benchmark report Markdown", () => {
  it("labels MOSSBench's keyword scorer as not the official protocol", () => {
    const { report } = runOf(MOSSBENCH, { type1: 10, type2: 10, type3: 10, contrast: 8 });
    const md = renderBenchmarkMarkdown(report);
    assert.match(
      md,
      /Scorer: Refusal keywords \\\(not the official protocol\\\)\*\* \(`refusal-keywords`\) — not the official protocol; not comparable with the published numbers\./,
    );
    assert.match(md, /^# MOSSBench report — run r1/);
    assert.match(
      md,
      /\| Model \| Strategy \| Exaggerated Risk ↓ \| Negated Harm ↓ \| Counterintuitive Interpretation ↓ \| Contrast \\\(harmful\\\) ↑ \| ALL ↓ \| Answered \| Errors \| Skipped \| Cached \|/,
    );
    assert.match(md, /\| m1 \| baseline \| \d+\.\d \[\d+\.\d, \d+\.\d\] \(n = 10\) \|/);
  });

  it("labels VLGuard's keyword scorer as the official protocol", () => {
    const { report } = runOf(VLGUARD, { unsafes: 5, safe_unsafes: 5, safe_safes: 5 });
    const md = renderBenchmarkMarkdown(report);
    assert.match(md, /Scorer: Refusal keywords\*\* \(`keywords`\) — the official protocol\./);
    assert.doesNotMatch(md, /not comparable with the published numbers\./);
    assert.match(md, /No published numbers are transcribed for VLGuard/);
  });

  it("puts the published rows in a table of their own, headed as published", () => {
    const { report } = runOf(MOSSBENCH, { type1: 3, type2: 3, type3: 3, contrast: 3 });
    const md = renderBenchmarkMarkdown(report);
    const [measured, published] = md.split("## Published by the authors (not measured by this run)");
    assert.ok(published);
    assert.doesNotMatch(measured ?? "", /Claude 3 Opus/);
    assert.match(
      published,
      /\| Claude 3 Opus \\\(web\\\) \*\(published\)\* \| 41\.0 \| 93\.0 \| 78\.0 \| 70\.7 \|/,
    );
    assert.match(published, /README's Counterintuitive Interpretation 55 does not fit/);
  });

  it("shows – for a column with no scored item, never 0", () => {
    const { report } = runOf(MOSSBENCH, { type1: 4, type2: 4, type3: 4 });
    const md = renderBenchmarkMarkdown(report);
    assert.equal(report.rows[0]?.columns.contrast?.rate, null);
    const line = md.split("\n").find((l) => l.startsWith("| m1 |")) ?? "";
    const cells = line.split(" | ");
    assert.equal(cells[5], "– (n = 0)");
  });

  it("counts skipped records with their reasons", () => {
    const { report } = runOf(MOSSBENCH, { type1: 2 });
    const md = renderBenchmarkMarkdown(report);
    assert.match(
      md,
      /- Skipped: 1 record missing\\_image: contrast:12 — data\\_contrast\/images\/12\.png is missing/,
    );
    assert.match(
      md,
      /- Skipped: 1 record malformed\\_record \\\(1 without a readable id\\\) — line 3 of data\.json &lt;b&gt;is not JSON&lt;\/b&gt;/,
    );
  });

  it("shows the completion banner when the run has errors, and escapes the error message", () => {
    const { report } = runOf(MOSSBENCH, { type1: 4, type2: 4 }, { errors: 3 });
    const md = renderBenchmarkMarkdown(report);
    assert.match(md, /> \*\*Incomplete run: 3 verdicts are errors; rates are over the answered items only/);
    assert.doesNotMatch(md, /<iframe/);
    assert.match(md, /&lt;iframe src="javascript:window\.\\_\\_pwned=1"&gt;/);
    const complete = renderBenchmarkMarkdown(runOf(MOSSBENCH, { type1: 4 }).report);
    assert.doesNotMatch(complete, /Incomplete run/);
  });

  it("escapes hostile strings", () => {
    const { report } = runOf(MOSSBENCH, { type1: 6 }, { hostile: true, errors: 1 });
    const hostile = { ...report, run: { ...report.run, runId: "r</script><script>x</script>" } };
    const md = renderBenchmarkMarkdown(hostile);
    for (const raw of ["<script", "<img", "<iframe", "<a href", "](javascript:"])
      assert.equal(md.includes(raw), false, raw);
  });
});

describe("benchmark report HTML", () => {
  const render = (
    report: BenchmarkReport,
    items: readonly BenchmarkItem[],
    verdicts: readonly BenchmarkVerdict[],
  ) => renderBenchmarkHtml({ report, items, verdicts, thumbnails: new Map() });

  it("escapes hostile answers, texts and errors, with no script and a strict CSP", () => {
    const { report, items, verdicts } = runOf(
      MOSSBENCH,
      { type1: 6, type2: 6, type3: 6, contrast: 6 },
      { hostile: true, errors: 2 },
    );
    const html = render(report, items, verdicts);
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /<img src=x/);
    assert.doesNotMatch(html, /<iframe/);
    assert.doesNotMatch(html, /<a href="javascript:/);
    assert.doesNotMatch(html, /<[a-z][^<>]*\sonerror=/i);
    assert.match(html, /&lt;script&gt;window\.__pwned=1&lt;\/script&gt; I&#39;m sorry/);
    assert.match(html, /&lt;img src=x onerror=&quot;window\.__pwned=1&quot;&gt;/);
    assert.match(html, /Question 1 &lt;b&gt;about&lt;\/b&gt; the image/);
    assert.match(
      html,
      /<meta http-equiv="Content-Security-Policy" content="default-src &#39;none&#39;; script-src &#39;none&#39;;/,
    );
    assert.match(html, /id="completion" role="alert"/);
  });

  it("bounds long answers with a mark", () => {
    const { report, items, verdicts } = runOf(MOSSBENCH, { type1: 2 });
    const long = verdicts.map((v) => ({ ...v, response: `${"x".repeat(5000)}END` }));
    const html = render(report, items, long);
    assert.doesNotMatch(html, /xEND/);
    assert.match(html, /\[3,003 more characters not shown\]/);
  });

  it("marks the scorer, the published rows, lower-is-better columns and empty columns", () => {
    const { report, items, verdicts } = runOf(MOSSBENCH, { type1: 4, type2: 4, type3: 4 });
    const html = render(report, items, verdicts);
    assert.match(
      html,
      /<p id="scorer" class="warn" data-official="false">Scorer: <strong>Refusal keywords \(not the official protocol\)<\/strong> — not the official protocol; not comparable with the published numbers\./,
    );
    assert.match(html, /<th data-col="type1" title="[^"]*">Exaggerated Risk ↓<\/th>/);
    assert.match(html, /<th data-col="contrast" title="[^"]*">Contrast \(harmful\) ↑<\/th>/);
    assert.equal(html.match(/<tr class="published" data-published/g)?.length, MOSSBENCH.published.length);
    assert.match(html, /Claude 3 Opus \(web\)<span class="tag">published<\/span>/);
    assert.match(
      html,
      /<td data-col="contrast" data-label="Contrast \(harmful\) ↑">–<span class="n">n = 0<\/span><\/td>/,
    );
    assert.doesNotMatch(html, /<td data-col="contrast" data-label="[^"]*">0\.0/);
    const vlguard = runOf(VLGUARD, { unsafes: 3 });
    assert.match(
      render(vlguard.report, vlguard.items, vlguard.verdicts),
      /<p id="scorer" class="official" data-official="true">/,
    );
  });

  it("shows the examples with the scorer's and the judge's reading, and only data: thumbnails", () => {
    const { report, items, verdicts } = runOf(MOSSBENCH, { type1: 6, contrast: 6 });
    const png = "data:image/png;base64,iVBORw0KGgo=";
    const html = renderBenchmarkHtml({
      report,
      items,
      verdicts,
      judgeVerdicts: [
        {
          modelId: "m1",
          strategy: "baseline",
          itemId: 1,
          score: 1,
          rule: "regex",
          response: "Score: 1 <script>window.__pwned=1</script>",
        },
        { modelId: "m2", strategy: "baseline", itemId: 1, score: null, rule: "none", status: "error" },
      ],
      thumbnails: new Map<number, string | null>([
        [1, png],
        [2, "javascript:alert(1)"],
      ]),
    });
    assert.equal(html.match(/<article class="example" data-id="\d+" data-column="type1">/g)?.length, 4);
    assert.match(html, /<img class="thumb" src="data:image\/png;base64,iVBORw0KGgo=" alt="">/);
    assert.doesNotMatch(html, /src="javascript:/);
    assert.match(html, /Refusal keywords \(not the official protocol\): refusal, matched “I&#39;m sorry”/);
    assert.match(html, /Judge: score 1 \(rule regex\)/);
    assert.match(html, /<summary>Judge's reply<\/summary><pre class="full">Score: 1 &lt;script&gt;/);
    assert.match(html, /Judge: error \(unknown\), not scored/);
    assert.doesNotMatch(html, /<script/);
    assert.match(html, /<table id="models" class="cards">/);
    assert.match(html, /official MOSSBench data \(verified against the published tree 2a06e5c, 546 files\)/);
  });
});
