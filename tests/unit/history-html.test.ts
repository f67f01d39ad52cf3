/**
 * reports/index.html: self-contained, no script, every summary string inert, every run listed newest first
 * with its numbers and link, and a trend figure per (model, strategy) seen in more than one run.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { renderSvg } from "../../src/adapters/chart-render.ts";
import { buildHistoryIndex, type HistoryIndex, type RunSummary, trendChart } from "../../src/core/history.ts";
import {
  formatWhen,
  INDEX_CONTENT_SECURITY_POLICY,
  renderHistoryHtml,
  reportHref,
} from "../../src/report/history-html.ts";
import type { RenderedChart } from "../../src/report/report-html.ts";
import { OFFICIAL_RUN, runSummaries } from "../fixtures/run-summary.ts";

const HOSTILE_MODEL = `evil<script>window.__mmsafePwned=1</script>&"'`;
const HOSTILE_FILE = `data/<img src=x onerror="window.__mmsafePwned=1">.json`;
const HOSTILE_DATASET = `set</td></tr><script>alert(1)</script>`;
const HOSTILE_REASON = `<iframe src="javascript:alert(1)"></iframe>`;

/** A summary as Aggregate writes it, with one row per (model, Total, Balanced) given. */
const summary = runSummaries(OFFICIAL_RUN);

const RUNS: RunSummary[] = [
  summary("nightly-1", "2025-03-01T02:00:00.000Z", [
    { modelId: "m1", total: 60, balanced: 55 },
    { modelId: HOSTILE_MODEL, total: 40, balanced: 50 },
  ]),
  summary(
    "nightly-2",
    "2025-03-02T02:00:00.000Z",
    [
      { modelId: "m1", total: 61.25, balanced: 56 },
      { modelId: HOSTILE_MODEL, total: null, balanced: null },
    ],
    {
      completion: { outcome: "no_answers", errored: 1453, missing: 0 },
      dataset: {
        name: HOSTILE_DATASET,
        provenance: {
          kind: "modified",
          tree: "472df95",
          files: 1458,
          changed: 1,
          missing: 0,
          added: 0,
          examples: [HOSTILE_FILE],
        },
        checksum: "f".repeat(64),
        plannedItems: 6,
        limit: 6,
      },
      cost: { modelUsd: null, awsUsd: 0.002 },
    },
  ),
  summary("run:adhoc", "2025-03-03T02:00:00.000Z", [{ modelId: "m1", total: 40, balanced: 50 }], {
    schedule: null,
    regression: {
      previousRunId: "nightly-2",
      detected: true,
      findings: [
        {
          modelId: "m1",
          strategy: "baseline",
          metric: "total",
          previous: 61.3,
          current: 40,
          drop: 21.3,
          margin: 2.4,
        },
      ],
    },
  }),
];

const index = (runs: readonly RunSummary[], invalid: HistoryIndex["invalid"] = []): HistoryIndex =>
  buildHistoryIndex({
    summaries: runs,
    invalid,
    generatedAt: "2025-03-03T03:00:00.000Z",
    version: "0.1.0-test",
  });

/** The rendered trends of an index, as Aggregate renders them. */
async function charts(i: HistoryIndex): Promise<RenderedChart[]> {
  return Promise.all(
    i.trends.map(async (t) => {
      const c = trendChart(t);
      return { ...c, svg: await renderSvg(c.spec) };
    }),
  );
}

/** The markup of one run's `<tbody>`. */
const runBody = (html: string, runId: string): string =>
  html.match(new RegExp(`<tbody class="run" data-run-id="${runId}"[\\s\\S]*?</tbody>`))?.[0] ?? "";

describe("index.html", () => {
  let html: string;
  let full: HistoryIndex;

  before(async () => {
    full = index(RUNS, [{ key: `reports/_summaries/${HOSTILE_REASON}.json`, reason: HOSTILE_REASON }]);
    html = renderHistoryHtml({ index: full, charts: await charts(full) });
  });

  it("is self-contained and runs no script: a CSP without script-src, no external resource", () => {
    assert.ok(
      html.includes(
        `<meta http-equiv="Content-Security-Policy" content="${INDEX_CONTENT_SECURITY_POLICY.replaceAll("'", "&#39;")}">`,
      ),
    );
    assert.doesNotMatch(INDEX_CONTENT_SECURITY_POLICY, /script-src/);
    assert.match(INDEX_CONTENT_SECURITY_POLICY, /^default-src 'none';/);
    assert.doesNotMatch(html, /<script/i);
    // Every reference stays in the page or goes to a report beside it.
    for (const [, url] of html.matchAll(/\s(?:href|src)="([^"]*)"/g)) {
      assert.ok(
        url === "data:," || url?.startsWith("#") || /^\.\/[^/]+\/report\.html$/.test(url ?? ""),
        `unexpected reference ${url}`,
      );
    }
    assert.doesNotMatch(html, /https?:\/\/(?!www\.w3\.org\/)/, "no absolute URL but the SVG namespaces");
  });

  it("shows every untrusted string as text", () => {
    for (const hostile of [HOSTILE_MODEL, HOSTILE_FILE, HOSTILE_DATASET, HOSTILE_REASON]) {
      assert.equal(html.includes(hostile), false, hostile);
    }
    assert.doesNotMatch(html, /<(?:img|iframe)\b/);
    assert.ok(html.includes("evil&lt;script&gt;window.__mmsafePwned=1&lt;/script&gt;&amp;&quot;&#39;"));
    assert.ok(html.includes("set&lt;/td&gt;&lt;/tr&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
  });

  it("lists every run newest first, one row per model × strategy, with Total and Balanced and their CIs", () => {
    const order = [...html.matchAll(/<tbody class="run" data-run-id="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(order, ["run:adhoc", "nightly-2", "nightly-1"]);
    const first = runBody(html, "nightly-1");
    assert.equal((first.match(/<tr class="series"/g) ?? []).length, 2);
    assert.match(first, /<td class="r" data-col="when" data-label="When" rowspan="2">2025-03-01 02:00 UTC/);
    assert.match(first, /took 2 min 5 s/);
    assert.match(
      first,
      /<a href="\.\/nightly-1\/report\.html">nightly-1<\/a><span class="sub">2 models × 1 strategy/,
    );
    assert.match(
      first,
      /data-model="m1" data-strategy="baseline">.*<td data-col="total"[^>]*>60\.0<span class="ci">\[57\.5, 62\.4\]<\/span>/,
    );
    assert.match(first, /<td data-col="balanced"[^>]*>55\.0<span class="ci">\[53\.0, 57\.1\]<\/span>/);
    assert.match(
      first,
      /official<\/span><span class="sub">official MMSafeAware data \(verified against the published tree 472df95, 1,458 files\)/,
    );
    assert.match(first, /1,453 items per model × strategy</);
    assert.match(first, /data-col="schedule"[^>]*>nightly</);
    assert.match(
      first,
      /data-col="cost"[^>]*>\$1\.51<span class="sub">AWS \$0\.0123<\/span><span class="sub">models \$1\.50/,
    );
    assert.match(first, /<span class="status">complete<\/span>/);
  });

  it("says how a run ended, marks the numbers flagged as regressions and links a run id as a path", () => {
    const second = runBody(html, "nightly-2");
    assert.match(second, /data-outcome="no_answers"/);
    assert.match(second, /<span class="status">no answers<\/span><span class="sub">1,453 errors/);
    assert.match(second, /modified<\/span><span class="sub">modified copy/);
    assert.match(second, /6 items per model × strategy \(limit 6\)/);
    assert.match(second, /<td data-col="total"[^>]*>–<\/td>/);
    assert.match(second, /no model prices/);
    const third = runBody(html, "run%3Aadhoc".replace("%3A", ":"));
    assert.match(third, /data-regression="true"/);
    assert.match(third, /regression vs nightly-2/);
    assert.match(
      third,
      /<td data-col="total"[^>]*>40\.0<span class="ci">[^<]*<\/span><span class="flag" title="regression: 61\.3 → 40\.0 against nightly-2[^"]*">▼ −21\.3<\/span>/,
    );
    assert.doesNotMatch(third.match(/<td data-col="balanced".*?<\/td>/)?.[0] ?? "", /flag/);
    assert.match(third, /href="\.\/run%3Aadhoc\/report\.html"/);
    assert.match(third, /data-col="schedule"[^>]*><span class="muted">–/);
    assert.equal(reportHref("a:b"), "./a%3Ab/report.html");
  });

  it("draws a trend per (model, strategy) in more than one run, with its numbers in a table", () => {
    const figures = [
      ...html.matchAll(
        /<figure class="trend" data-model="([^"]*)" data-strategy="([^"]*)" data-runs="(\d+)">/g,
      ),
    ];
    assert.deepEqual(
      figures.map((f) => [f[1], f[3]]),
      [
        ["evil&lt;script&gt;window.__mmsafePwned=1&lt;/script&gt;&amp;&quot;&#39;", "2"],
        ["m1", "3"],
      ],
    );
    const m1 = html.slice(html.indexOf('<figure class="trend" data-model="m1"'));
    assert.match(m1, /<figcaption><strong>m1 · baseline<\/strong> — Total and Balanced/);
    assert.match(m1, /^[\s\S]*?<svg[\s\S]*?<\/svg><details><summary>Numbers of 3 runs, 1 flagged<\/summary>/);
    assert.match(
      m1,
      /<tr data-run-id="run:adhoc"><td><a href="\.\/run%3Aadhoc\/report\.html">run:adhoc<\/a><\/td><td>2025-03-03 02:00 UTC<\/td><td data-col="total">40\.0<span class="ci">\[37\.5, 42\.4\]<\/span><span class="flag">▼<\/span>/,
    );
  });

  it("names the summaries it could not read", () => {
    assert.match(
      html,
      /<div class="warn" id="invalid" role="alert"><p><strong>1 run summary could not be read<\/strong>/,
    );
    assert.ok(html.includes("&lt;iframe src=&quot;javascript:alert(1)&quot;&gt;&lt;/iframe&gt;"));
    assert.match(html, /<li data-key="reports\/_summaries\/&lt;iframe/);
  });

  it("fits a phone: the runs become cards and the charts scale to the width", () => {
    assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.match(
      html,
      /@media \(max-width:52rem\)\{[\s\S]*#runs,#runs tbody,#runs tr,#runs td,#runs th\{display:block\}/,
    );
    assert.match(html, /\[data-label\]::before\{content:attr\(data-label\)/);
    assert.match(html, /\.trend svg\{display:block;width:100%;max-width:44rem;height:auto\}/);
    assert.match(html, /\.table-wrap\{overflow-x:auto/);
  });

  it("stays small: about 20 KB a trend chart for three runs", () => {
    const kb = Buffer.byteLength(html) / 1024;
    assert.ok(kb < 80, `${kb.toFixed(1)} KB`);
  });

  it("shows a chart it cannot trust, or could not render, as a note; and pages without runs or trends", async () => {
    const two = index(RUNS.slice(0, 2));
    const [first] = two.trends;
    assert.ok(first);
    const page = renderHistoryHtml({
      index: two,
      charts: [
        {
          ...trendChart(first),
          svg: '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        },
        { ...trendChart(first), svg: null, error: "vega <exploded>" },
      ],
    });
    assert.doesNotMatch(page, /<script/);
    assert.match(page, /Chart not rendered: unexpected markup\./);
    assert.match(page, /Chart not rendered: vega &lt;exploded&gt;\./);
    const one = renderHistoryHtml({ index: index(RUNS.slice(0, 1)), charts: [] });
    assert.match(one, /No trends yet: a trend needs a model × strategy measured in more than one run\./);
    const none = renderHistoryHtml({ index: index([]), charts: [] });
    assert.match(none, /No runs yet/);
    assert.doesNotMatch(none, /id="invalid"/);
  });

  it("states times in UTC", () => {
    assert.equal(formatWhen("2025-03-01T02:00:59.999+02:00"), "2025-03-01 00:00 UTC");
    assert.equal(formatWhen("not a date"), "not a date");
  });
});
