import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { before, describe, it } from "node:test";
import pLimit from "p-limit";
import sharp from "sharp";
import { renderCharts, renderSvg } from "../../src/adapters/chart-render.ts";
import type { ObjectStore } from "../../src/adapters/object-store.ts";
import type { RunRecord, RunStore } from "../../src/adapters/run-store.ts";
import { thumbnailDataUrl } from "../../src/adapters/thumbnails.ts";
import type { VerdictStore } from "../../src/adapters/verdict-store.ts";
import { PUBLISHED_RESULTS } from "../../src/benchmarks/mmsafeaware/facts.ts";
import { readOfficialDataset } from "../../src/benchmarks/mmsafeaware/layout.ts";
import { computeRow } from "../../src/benchmarks/mmsafeaware/metrics.ts";
import { buildReport, headlines, type Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import { writeSampleDataset } from "../../src/benchmarks/mmsafeaware/sample.ts";
import { buildChatMessages } from "../../src/core/prompts.ts";
import {
  type DatasetItem,
  type ModelConfig,
  modelConfigSchema,
  type Strategy,
  type Verdict,
} from "../../src/core/schemas.ts";
import { formatPercent } from "../../src/core/text.ts";
import { buildVerdict, type ModelOutcome } from "../../src/core/verdicts.ts";
import { estimateAwsCost } from "../../src/deployment/cost.ts";
import { runUsageFromCounters } from "../../src/deployment/run-usage.ts";
import { datasetManifestKey, reportHtmlKey, runShardKey } from "../../src/deployment/storage-layout.ts";
import { aggregate } from "../../src/pipeline/aggregate.ts";
import { toJsonl } from "../../src/pipeline/dataset-io.ts";
import { chartSpecs, confusionMatrices } from "../../src/report/report-charts.ts";
import {
  EXAMPLES_PAGE_SIZE,
  type ExamplesData,
  escapeHtml,
  FILTER_SCRIPT,
  type HtmlReportInput,
  RESPONSE_MAX_CHARS,
  type RenderedChart,
  renderHtml,
} from "../../src/report/report-html.ts";
import { datasetItem } from "../fixtures/dataset-item.ts";

const NOW = new Date("2025-01-02T03:04:05.000Z");
/** Untrusted strings that would run or break out if they reached the page unescaped. */
const HOSTILE_RUN = `run-</script><script>window.__mmsafePwned=1</script>`;
const HOSTILE_MODEL = `evil<script>window.__mmsafePwned=1</script>&"'`;
const HOSTILE_SCENARIO = `<img src=x onerror="window.__mmsafePwned=1">&'`;
const SCRIPT_RESPONSE = "<script>window.__mmsafePwned=1</script> No";
const IMG_RESPONSE = `<img src=x onerror="window.__mmsafePwned=1"> Yes`;
const HOSTILE_SENTENCE = `</article></main><script>window.__mmsafePwned=1</script>`;
const HOSTILE_ERROR = `<iframe src="javascript:window.__mmsafePwned=1"></iframe>`;
const LONG_RESPONSE = `No. ${"This combination is harmful because of what the picture shows. ".repeat(12)}`;

const model = (id: string, kind: ModelConfig["kind"] = "model", priced = false): ModelConfig => ({
  ...modelConfigSchema.parse({ id: "placeholder", baseURL: "http://127.0.0.1:9/v1", model: `${id}-model` }),
  id,
  kind,
  ...(priced ? { pricing: { inputPerMillionTokens: 2.5, outputPerMillionTokens: 10 } } : {}),
});

function answer(text: string, cached = false): ModelOutcome {
  return {
    kind: "answer",
    text,
    finishReason: "stop",
    latencyMs: 120,
    promptTokens: 900,
    completionTokens: 5,
    attempts: 1,
    cached,
  };
}
const failure = (message: string): ModelOutcome => ({
  kind: "error",
  errorKind: "http_500",
  message,
  latencyMs: 5000,
  attempts: 3,
});

/** A right answer for an item: Yes for over-safety, No for unsafe. */
const right = (item: DatasetItem) => (item.expected === "yes" ? "Yes." : "No.");
const wrong = (item: DatasetItem) => (item.expected === "yes" ? "No." : "Yes.");

/** Items over every column, with a scenario label, the hostile one and unlabelled ones. */
function fixtureItems(): DatasetItem[] {
  return [
    datasetItem(983, "privacy"),
    datasetItem(1000, "privacy"),
    datasetItem(1153, HOSTILE_SCENARIO),
    datasetItem(128, "violence"),
    { ...datasetItem(470, "violence"), sentence: HOSTILE_SENTENCE },
    datasetItem(700, HOSTILE_SCENARIO),
    datasetItem(1),
    datasetItem(2),
    datasetItem(2001),
    datasetItem(2002, "definition"),
  ];
}

interface Fixture {
  report: Report;
  items: DatasetItem[];
  verdicts: Verdict[];
  input: HtmlReportInput;
  html: string;
}

const MODELS = [model("m1", "model", true), model(HOSTILE_MODEL), model("always-no", "baseline")];
const STRATEGIES: Strategy[] = ["baseline", "safety-system-prompt"];

async function buildFixture(): Promise<Fixture> {
  const items = fixtureItems();
  const verdicts: Verdict[] = [];
  const add = (m: ModelConfig, s: Strategy, item: DatasetItem, outcome: ModelOutcome) =>
    verdicts.push(buildVerdict(HOSTILE_RUN, m.id, s, item, outcome, NOW));
  for (const [i, item] of items.entries()) {
    const [m1, evil, alwaysNo] = MODELS as [ModelConfig, ModelConfig, ModelConfig];
    add(m1, "baseline", item, answer(i === 0 ? LONG_RESPONSE : i % 3 === 0 ? wrong(item) : right(item)));
    if (i !== 5) add(m1, "safety-system-prompt", item, answer(i === 2 ? "I cannot help with that." : "No."));
    const hostile =
      i === 3
        ? failure(HOSTILE_ERROR)
        : answer(item.expected === "yes" ? IMG_RESPONSE : SCRIPT_RESPONSE, i === 4);
    add(evil, "baseline", item, hostile);
    add(evil, "safety-system-prompt", item, answer(right(item), true));
    add(alwaysNo, "baseline", item, answer("No."));
    add(alwaysNo, "safety-system-prompt", item, answer("No."));
  }
  const rows = MODELS.flatMap((m) =>
    STRATEGIES.map((s) =>
      computeRow(
        m,
        s,
        verdicts.filter((v) => v.modelId === m.id && v.strategy === s),
        items.length,
        2,
      ),
    ),
  );
  const report = buildReport({
    version: "0.1.0-test",
    runId: HOSTILE_RUN,
    startedAt: "2025-01-02T03:00:00.000Z",
    finishedAt: NOW.toISOString(),
    dataset: {
      name: "sample<&>",
      provenance: { kind: "sample", size: "small", seed: 0 },
      checksum: "c".repeat(64),
      records: 12,
      runnable: 10,
      skipped: [
        { id: 2301, reason: "have no image", detail: "no file" },
        { id: 2302, reason: "have no image", detail: "no file" },
      ],
    },
    plannedItems: items.length,
    models: MODELS,
    strategies: STRATEGIES,
    rows,
    awsCost: estimateAwsCost(
      runUsageFromCounters({ planInvocations: 1, evaluateShardInvocations: 2, aggregateInvocations: 1 }, 2),
    ),
  });
  const specs = chartSpecs(report, verdicts);
  const svgs = await renderCharts(specs.map((s) => s.spec));
  const charts: RenderedChart[] = specs.map((s, i) => ({ ...s, svg: svgs[i] ?? null }));
  const photo = await syntheticPhoto(800, 600, "png");
  const thumbnails = new Map<number, string | null>(items.map((item) => [item.id, null]));
  thumbnails.set(983, await thumbnailDataUrl(photo));
  thumbnails.set(1000, "javascript:window.__mmsafePwned=1");
  const input: HtmlReportInput = { report, items, verdicts, thumbnails, charts };
  return { report, items, verdicts, input, html: renderHtml(input) };
}

/** A noisy photo-like image (noise is the worst case for compression). */
async function syntheticPhoto(width: number, height: number, format: "png" | "jpeg"): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      pixels[o] = (x * 255) / width;
      pixels[o + 1] = (y * 255) / height;
      pixels[o + 2] = ((x * y) % 97) * 2;
    }
  const noise = randomBytes(pixels.length);
  for (let i = 0; i < pixels.length; i++) pixels[i] = ((pixels[i] ?? 0) + ((noise[i] ?? 0) % 32)) & 255;
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  return format === "png" ? image.png().toBuffer() : image.jpeg({ quality: 85 }).toBuffer();
}

/** Every start tag outside script blocks, with its attribute names (attribute values are quoted). */
function startTags(html: string): { name: string; attributes: string[]; raw: string }[] {
  const withoutScripts = html.replace(/<script\b[^>]*>[\s\S]*?<\/script>/g, "");
  const out: { name: string; attributes: string[]; raw: string }[] = [];
  const tag = /<([a-zA-Z][\w:-]*)((?:\s+[^\s"'=<>/]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*\/?>/g;
  for (const m of withoutScripts.matchAll(tag)) {
    const attributes = [
      ...(m[2] ?? "").matchAll(/\s+([^\s"'=<>/]+)(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?/g),
    ].map((a) => (a[1] ?? "").toLowerCase());
    out.push({ name: (m[1] ?? "").toLowerCase(), attributes, raw: m[0] });
  }
  return out;
}

/** The text before the first tag inside each `<td data-col>` of a row. */
function cells(row: string): Map<string, string> {
  return new Map(
    [...row.matchAll(/<td data-col="([a-z]+)"[^>]*>([^<]*)/g)].map((m) => [m[1] ?? "", (m[2] ?? "").trim()]),
  );
}

/** Rows of a table by id: attributes and inner HTML. */
function tableRows(html: string, id: string): { attributes: string; inner: string }[] {
  const table = html.match(new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`))?.[1] ?? "";
  return [...table.matchAll(/<tr([^>]*)>([\s\S]*?)<\/tr>/g)].map((m) => ({
    attributes: m[1] ?? "",
    inner: m[2] ?? "",
  }));
}

/** The examples' data block, parsed (its text has no `<`: checked where it matters). */
function examplesData(html: string): ExamplesData {
  const json = html.match(/<script type="application\/json" id="examples-data">([\s\S]*?)<\/script>/)?.[1];
  assert.ok(json !== undefined, "the data block");
  return JSON.parse(json) as ExamplesData;
}

const figure = (html: string, chart: string): string =>
  html.match(new RegExp(`<figure class="chart" data-chart="${chart}">([\\s\\S]*?)</figure>`))?.[1] ?? "";

describe("report.html", () => {
  let f: Fixture;
  before(async () => {
    f = await buildFixture();
  });

  it("has exactly two scripts: the JSON data block and the inline filter script", () => {
    const scripts = [...f.html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    assert.equal((f.html.match(/<script\b/gi) ?? []).length, 2);
    assert.equal(scripts.length, 2);
    assert.equal(scripts[0]?.[1], ' type="application/json" id="examples-data"');
    assert.equal(scripts[1]?.[1], "");
    assert.equal(scripts[1]?.[2], FILTER_SCRIPT);
    assert.doesNotMatch(FILTER_SCRIPT, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
    const json = scripts[0]?.[2] ?? "";
    assert.ok(!json.includes("<"), "no < inside the JSON block");
    const data = JSON.parse(json) as ExamplesData;
    assert.equal(data.runId, HOSTILE_RUN);
    assert.equal(data.items, f.items.length);
    assert.equal(data.rows.length, f.items.length);
    assert.equal(data.series.length, MODELS.length * STRATEGIES.length);
  });

  it("has a strict CSP with the inline script's hash", () => {
    const csp = f.html.match(/<meta http-equiv="Content-Security-Policy" content="([^"]*)">/)?.[1];
    assert.ok(csp, "CSP meta tag present");
    const policy = csp.replaceAll("&#39;", "'");
    const inline = [...f.html.matchAll(/<script>([\s\S]*?)<\/script>/g)][0]?.[1] ?? "";
    const hash = createHash("sha256").update(inline, "utf8").digest("base64");
    assert.match(policy, /(^|; )default-src 'none'(;|$)/);
    assert.ok(policy.includes(`script-src 'sha256-${hash}'`), policy);
    assert.match(policy, /img-src data:(;|$)/);
    assert.match(policy, /style-src 'unsafe-inline'(;|$)/);
    assert.ok(!/script-src[^;]*unsafe/.test(policy), "no unsafe script sources");
    // The policy comes before anything it governs.
    assert.ok(f.html.indexOf("Content-Security-Policy") < f.html.indexOf("<style>"));
  });

  it("shows every untrusted string only escaped", () => {
    for (const hostile of [
      HOSTILE_RUN,
      HOSTILE_MODEL,
      HOSTILE_SCENARIO,
      SCRIPT_RESPONSE,
      IMG_RESPONSE,
      HOSTILE_SENTENCE,
      HOSTILE_ERROR,
      "sample<&>",
    ]) {
      assert.ok(!f.html.includes(hostile), `raw ${hostile}`);
    }
    // In the markup (filter options), HTML-escaped; in the data block, JSON with every < escaped.
    for (const text of [HOSTILE_MODEL, HOSTILE_SCENARIO]) {
      assert.ok(f.html.includes(escapeHtml(text)), `escaped ${text}`);
    }
    assert.ok(f.html.includes(`<option value="${escapeHtml(HOSTILE_MODEL)}">`));
    assert.ok(f.html.includes(`<option value="s:${escapeHtml(HOSTILE_SCENARIO)}">`));
    for (const text of [SCRIPT_RESPONSE, IMG_RESPONSE, HOSTILE_SENTENCE, `http_500: ${HOSTILE_ERROR}`])
      assert.ok(f.html.includes(JSON.stringify(text).replace(/</g, "\\u003c")), `JSON-escaped ${text}`);
    const data = examplesData(f.html);
    const texts = data.rows.flatMap((r) => [r.s, ...r.a.map((a) => a?.[1] ?? "")]);
    for (const text of [SCRIPT_RESPONSE, IMG_RESPONSE, HOSTILE_SENTENCE, `http_500: ${HOSTILE_ERROR}`])
      assert.ok(texts.includes(text), `the data holds ${text} as it was`);
    assert.ok(data.rows.some((r) => r.sc === HOSTILE_SCENARIO));

    // Structure: no event handlers, no element beyond what the page itself makes.
    const tags = startTags(f.html);
    assert.ok(tags.length > 300, `parsed ${tags.length} tags`);
    for (const t of tags) {
      assert.ok(!t.attributes.some((a) => a.startsWith("on")), `event handler in ${t.raw.slice(0, 200)}`);
      assert.ok(
        !["iframe", "object", "embed", "base", "form", "foreignobject", "script"].includes(t.name),
        t.raw.slice(0, 200),
      );
      if (t.name === "a") assert.match(t.raw, /^<a href="#[a-z-]+">$/);
      if (t.name === "link") assert.equal(t.raw, '<link rel="icon" href="data:,">');
    }
    assert.equal(
      tags.filter((t) => t.name === "img").length,
      0,
      "thumbnails are in the data, not the markup",
    );
    assert.deepEqual(
      data.rows.filter((r) => r.t !== null).map((r) => [r.id, r.t?.startsWith("data:image/webp;base64,")]),
      [[983, true]],
      "one valid thumbnail; the javascript: one dropped",
    );
  });

  it("shows the headline numbers of headlines(), with CIs, and marks baselines", () => {
    const rows = tableRows(f.html, "headline");
    for (const h of headlines(f.report)) {
      const row = rows.find(
        (r) =>
          r.attributes.includes(`data-model="${escapeHtml(h.modelId)}"`) &&
          r.attributes.includes(`data-strategy="${h.strategy}"`),
      );
      assert.ok(row, `row for ${h.modelId} / ${h.strategy}`);
      const c = cells(row.inner);
      for (const col of ["typical", "attack", "oversafety", "total", "balanced"] as const) {
        const text = c.get(col) ?? "";
        assert.ok(text.startsWith(formatPercent(h[col])), `${h.modelId} ${col}: ${text} vs ${h[col]}`);
        assert.equal(text, formatPercent(h[col]), "the number alone before the interval's markup");
      }
      assert.equal(c.get("answered"), `${h.answered}/${f.items.length}`);
      assert.equal(c.get("errored"), String(h.errored));
      assert.equal(c.get("skipped"), String(h.skipped));
      assert.equal(c.get("missing"), String(h.missing));
      assert.equal(c.get("cached"), String(h.cached));
      const baseline = h.kind === "baseline";
      assert.equal(row.attributes.includes('data-kind="baseline"'), baseline);
      assert.equal(row.inner.includes('<span class="tag baseline">baseline</span>'), baseline);
    }
    const m1 = rows.find((r) => r.attributes.includes('data-model="m1" data-strategy="baseline"'));
    assert.match(
      m1?.inner ?? "",
      /data-col="total"[^>]*>\d+\.\d <span class="ci">\[\d+\.\d, \d+\.\d\]<\/span>/,
    );
    assert.match(cells(m1?.inner ?? "").get("cost") ?? "", /^\$0\.\d+$/);
    // Missing and error rows: the hostile model errored once; m1 has one item without verdict.
    assert.equal(headlines(f.report).find((h) => h.modelId === HOSTILE_MODEL)?.errored, 1);
    assert.equal(headlines(f.report).find((h) => h.strategy === "safety-system-prompt")?.missing, 1);
  });

  it("shows judged rates among answers that said yes or no, refusals and unparseable answers apart", () => {
    const rows = tableRows(f.html, "judged");
    const rowOf = (modelId: string, strategy: Strategy) => {
      const row = rows.find((r) =>
        r.attributes.includes(`data-model="${escapeHtml(modelId)}" data-strategy="${strategy}"`),
      );
      assert.ok(row, `judged row for ${modelId} / ${strategy}`);
      return new Map(
        [...row.inner.matchAll(/<td data-col="([a-z-]+)"[^>]*>([^<]*)<span class="n">([^<]*)<\/span>/g)].map(
          (m) => [m[1] ?? "", `${(m[2] ?? "").trim()} (${m[3]})`],
        ),
      );
    };
    assert.equal(
      rows.length,
      MODELS.length * STRATEGIES.length + 1,
      "a header and a row per model × strategy",
    );
    // The hostile model's answers start with markup: all unparseable, nothing judged. (100 − paper accuracy
    // would call it 0 % judged safe: every answer contains "no" or "yes".)
    assert.deepEqual(Object.fromEntries(rowOf(HOSTILE_MODEL, "baseline")), {
      "unsafe-judged-safe": "– (n = 0)",
      "benign-judged-unsafe": "– (n = 0)",
      "refused-unsafe": "0.0 (n = 5)",
      "refused-benign": "0.0 (n = 4)",
      "unparseable-unsafe": "100.0 (n = 5)",
      "unparseable-benign": "100.0 (n = 4)",
    });
    // m1 with the safety prompt: "No." everywhere but one refusal (1153) and one missing verdict (700).
    assert.deepEqual(Object.fromEntries(rowOf("m1", "safety-system-prompt")), {
      "unsafe-judged-safe": "0.0 (n = 4)",
      "benign-judged-unsafe": "100.0 (n = 4)",
      "refused-unsafe": "20.0 (n = 5)",
      "refused-benign": "0.0 (n = 4)",
      "unparseable-unsafe": "0.0 (n = 5)",
      "unparseable-benign": "0.0 (n = 4)",
    });
    assert.ok(
      f.html.includes("among answers that said yes or no; refusals and unparseable answers counted apart"),
    );
  });

  it("says what a limit selected, in the header and the run section", () => {
    const limited: Report = {
      ...f.report,
      run: {
        ...f.report.run,
        selection: {
          categories: null,
          limit: {
            n: 10,
            method: "stratified-by-category",
            eligible: 1453,
            byCategory: [
              { category: "typical", planned: 1, eligible: 171 },
              { category: "attack", planned: 6, eligible: 855 },
              { category: "oversafety", planned: 3, eligible: 427 },
            ],
          },
        },
      },
    };
    const html = renderHtml({ ...f.input, report: limited });
    assert.ok(html.includes("10 items (of 1,453 runnable: limit, stratified by category) × 3 models"));
    const run = html.match(/<section id="run">([\s\S]*?)<\/section>/)?.[1] ?? "";
    assert.ok(
      run.includes(
        "<dt>Selection</dt><dd>limit 10 of 1,453 runnable items, stratified by category (proportional quotas, " +
          "at least one item per category, lowest ids within each): Typical 1 of 171, Attack 6 of 855, Over-Safe 3 of 427</dd>",
      ),
      run,
    );
    assert.ok(run.includes("Skipped records (by the dataset; not selected under the limit)"));
    const unlimited = f.html.match(/<section id="run">([\s\S]*?)<\/section>/)?.[1] ?? "";
    assert.ok(unlimited.includes("<dt>Selection</dt><dd>every runnable item</dd>"));
    assert.ok(!f.html.includes("stratified by category"));
  });

  it("marks the paper's rows as published, not measured", () => {
    const published = tableRows(f.html, "headline").filter((r) => r.attributes.includes("data-published="));
    assert.equal(published.length, PUBLISHED_RESULTS.length);
    for (const p of PUBLISHED_RESULTS) {
      const row = published.find((r) => r.attributes.includes(`data-published="${escapeHtml(p.model)}"`));
      assert.ok(row, p.model);
      assert.ok(row.inner.includes("published, not measured"));
      assert.ok(!row.attributes.includes("data-model="));
      assert.equal(cells(row.inner).get("total"), p.total.toFixed(1));
    }
  });

  it("labels every headline cell for the phone layout, and aligns the published rows' empty cells", () => {
    for (const row of tableRows(f.html, "headline")) {
      const tds = [...row.inner.matchAll(/<td([^>]*)>/g)].map((m) => m[1] ?? "");
      if (tds.length === 0) continue; // the header row
      for (const attributes of tds) assert.match(attributes, /data-label="[^"]+"/, attributes);
      // After the strategy cell, every cell is a column cell (right-aligned, "–" included).
      for (const attributes of tds.slice(1)) assert.match(attributes, /data-col="[a-z]+"/, attributes);
    }
    const published = tableRows(f.html, "headline").find((r) => r.attributes.includes("data-published="));
    assert.equal(cells(published?.inner ?? "").get("balanced"), "–");
    assert.equal(cells(published?.inner ?? "").get("cost"), "–");
  });

  it("says 'no answers' for a row that answered nothing, and the banner says how to resume", () => {
    const [first, ...rest] = f.report.rows;
    assert.ok(first);
    const silent = { ...first, counts: { ...first.counts, answered: 0, errored: first.counts.planned } };
    const report: Report = {
      ...f.report,
      rows: [silent, ...rest],
      completion: {
        outcome: "no_answers",
        errored: first.counts.planned,
        missing: 0,
        affected: [
          {
            modelId: first.modelId,
            strategy: first.strategy,
            planned: first.counts.planned,
            answered: 0,
            errored: first.counts.planned,
            missing: 0,
            kinds: { connection: first.counts.planned },
            sample: "connect ECONNREFUSED",
          },
        ],
      },
    };
    const html = renderHtml({ ...f.input, report });
    const row = tableRows(html, "headline").find(
      (r) =>
        r.attributes.includes(`data-model="${escapeHtml(first.modelId)}"`) &&
        r.attributes.includes(`data-strategy="${first.strategy}"`),
    );
    assert.ok(row);
    assert.match(row.inner, /<td class="no-answers" colspan="5"[^>]*>no answers: \d+ errors, 0 missing/);
    assert.ok(!cells(row.inner).has("total"), "no row of dashes");
    const banner = html.match(/<div class="warn" id="completion" role="alert">([\s\S]*?)<\/div>/)?.[1] ?? "";
    assert.match(banner, /No result for /);
    assert.match(banner, /connection \d+/);
    assert.ok(
      banner.includes(`--run-id ${escapeHtml(f.report.run.runId)}`),
      "the resume command names the run",
    );
    assert.ok(banner.includes("npm run mmsafe -- start --run-id"), "and how to resume it on AWS");
  });

  it("gives the scenario heat map a list form for phones", () => {
    const list = figure(f.html, "scenarios").match(/<div class="scenario-list">([\s\S]*?)<\/div>/)?.[1] ?? "";
    const groups = new Set(
      f.report.rows.flatMap((r) =>
        r.paperDetail.byScenario.map((s) => JSON.stringify([s.category, s.domain, s.scenario])),
      ),
    );
    assert.equal([...list.matchAll(/<h4>/g)].length, groups.size);
    assert.equal(
      [...list.matchAll(/<li>/g)].length,
      f.report.rows.reduce((n, r) => n + r.paperDetail.byScenario.length, 0),
    );
  });

  it("inlines the three charts as SVG, labels escaped", () => {
    for (const chart of ["accuracy", "scenarios", "confusion"]) {
      const body = figure(f.html, chart);
      assert.match(body, /<svg[\s>]/, `${chart} has an inline SVG`);
      assert.ok(!body.includes("<script") && !body.includes("__mmsafePwned=1</"), chart);
    }
    assert.ok(
      figure(f.html, "accuracy").includes("evil&lt;script&gt;window.__mmsafePwned=1&lt;/script&gt;&amp;"),
    );
    assert.ok(figure(f.html, "confusion").includes("evil&lt;script&gt;"));
    assert.ok(figure(f.html, "scenarios").includes("&lt;img src=x onerror="));
    assert.ok(figure(f.html, "scenarios").includes("(n=2)"), "scenario rows carry n");
    // Dark and light: transparent background, text in currentColor.
    assert.ok(!/<rect[^>]*fill="white"/.test(figure(f.html, "accuracy")));
    assert.ok(figure(f.html, "accuracy").includes('fill="currentColor"'));
  });

  it("counts expected × given answers per model × strategy", () => {
    const matrices = confusionMatrices(f.report, f.verdicts);
    assert.equal(matrices.length, MODELS.length * STRATEGIES.length);
    const evil = matrices.find((m) => m.modelId === HOSTILE_MODEL && m.strategy === "baseline");
    // The hostile answers do not start with Yes/No: the strict reading finds them unparseable.
    assert.deepEqual(evil?.counts.no, { yes: 0, no: 0, refused: 0, unparseable: 5, error: 1 });
    assert.deepEqual(evil?.counts.yes, { yes: 0, no: 0, refused: 0, unparseable: 4, error: 0 });
    const alwaysNo = matrices.find((m) => m.modelId === "always-no" && m.strategy === "baseline");
    assert.deepEqual(alwaysNo?.counts.yes, { yes: 0, no: 4, refused: 0, unparseable: 0, error: 0 });
    const careful = matrices.find((m) => m.modelId === "m1" && m.strategy === "safety-system-prompt");
    assert.equal(careful?.counts.no.refused, 1);
  });

  it("holds every item with each model × strategy's answer in the data block, right/wrong/error/missing marked", () => {
    const data = examplesData(f.html);
    assert.deepEqual(
      data.rows.map((r) => r.id),
      f.items.map((i) => i.id).sort((a, b) => a - b),
    );
    assert.deepEqual(
      data.series,
      MODELS.flatMap((m) => STRATEGIES.map((s) => ({ model: m.id, strategy: s }))),
    );
    const row = (id: number) => {
      const r = data.rows.find((x) => x.id === id);
      assert.ok(r, `item ${id}`);
      return r;
    };
    const outcomes = (id: number) =>
      row(id).a.map((a, j) => `${data.series[j]?.model}|${data.series[j]?.strategy}|${a ? a[0] : "missing"}`);
    // Every verdict is there, once, in its series.
    assert.equal(
      data.rows.reduce((n, r) => n + r.a.filter((a) => a !== null).length, 0),
      f.verdicts.length,
    );
    for (const r of data.rows) assert.equal(r.a.length, data.series.length);
    assert.ok(outcomes(128).includes(`${HOSTILE_MODEL}|baseline|error`));
    assert.ok(outcomes(700).includes("m1|safety-system-prompt|missing"));
    assert.ok(outcomes(1).includes("always-no|baseline|false"));
    assert.ok(outcomes(983).includes("always-no|baseline|true"));
    assert.equal(row(1).c, "oversafety");
    assert.equal(row(1).sc, null);
    assert.equal(row(983).k, "datasets/t/images/983.png");
    assert.match(row(983).m, /^#983 · .* · expected (Yes|No)$/);
    assert.equal(row(983).a[0]?.[1], LONG_RESPONSE, "a response under the bound is whole");
    const error = row(128).a[2];
    assert.deepEqual(error?.slice(0, 2), ["error", `http_500: ${HOSTILE_ERROR}`]);
    assert.deepEqual(error?.slice(4, 6), [5000, 3], "latency and attempts of the error");
    const answered = row(983).a[0];
    assert.deepEqual(answered?.slice(2, 9), ["no", true, 120, 1, 900, 5, "stop"]);
    assert.ok(row(1153).a[1]?.[9]?.g?.includes("strict: refused"));
    assert.ok(row(470).a[2]?.[9]?.g?.includes("cached"));
    // The markup: controls, an empty list the script fills, a pager, the dialog and the no-script note.
    assert.match(f.html, /<span id="examples-count">10<\/span>/);
    for (const id of ["filter-model", "filter-strategy", "filter-category", "filter-scenario"])
      assert.match(f.html, new RegExp(`<select id="${id}">`));
    assert.match(f.html, /<input type="checkbox" id="filter-wrong">/);
    assert.match(f.html, /<input type="search" id="search"/);
    assert.ok(f.html.includes('<option value="none">unlabelled</option>'));
    assert.ok(f.html.includes('<div id="examples-list"></div>'));
    assert.ok(f.html.includes('<dialog id="example-detail"'));
    assert.match(f.html, /<p class="note" id="examples-nojs">The examples need JavaScript/);
    assert.equal(
      (f.html.match(/<article\b/g) ?? []).length,
      0,
      "articles are built by the script, a page at a time",
    );
    assert.ok(FILTER_SCRIPT.includes(`var PAGE = ${EXAMPLES_PAGE_SIZE}`));
  });

  it("ships each strategy's prompts as the core builds them, shared text stored once", () => {
    const data = examplesData(f.html);
    assert.deepEqual(data.strategies, STRATEGIES);
    for (const item of f.items) {
      const r = data.rows.find((x) => x.id === item.id);
      assert.ok(r);
      data.strategies.forEach((strategy, k) => {
        const [system, before, after] = data.prompts[r.p[k] ?? -1] ?? [-2, -2, -2];
        const user = (data.texts[before] ?? "") + (after >= 0 ? r.s + (data.texts[after] ?? "") : "");
        const messages = buildChatMessages(item, strategy, "data:,");
        const expectedSystem = messages.find((m) => m.role === "system")?.content ?? null;
        const expectedUser = messages.flatMap((m) =>
          m.role === "user" ? m.content.flatMap((c) => (c.type === "text" ? [c.text] : [])) : [],
        );
        assert.equal(
          system >= 0 ? data.texts[system] : null,
          expectedSystem,
          `${item.id} ${strategy} system`,
        );
        assert.equal(user, expectedUser.join("\n"), `${item.id} ${strategy} user`);
      });
    }
    // One instruction for every item: a handful of texts, not one per item and strategy.
    assert.ok(data.texts.length <= 4, `${data.texts.length} texts`);
    assert.ok(!data.texts.some((t) => f.items.some((i) => t.includes(i.sentence))), "sentences not repeated");
  });

  it("bounds each answer in the data block, and no answer can close the block", () => {
    const [v0, ...rest] = f.verdicts;
    assert.ok(v0);
    const long = `</script><script>window.__mmsafePwned=1</script>${"x".repeat(10_000)}`;
    const html = renderHtml({ ...f.input, verdicts: [{ ...v0, response: long }, ...rest] });
    const block =
      html.match(/<script type="application\/json" id="examples-data">([\s\S]*?)<\/script>/)?.[1] ?? "";
    assert.ok(!block.includes("<"), "no < in the block");
    assert.ok(!html.includes("</script><script>window"), "the answer's </script> is not in the page");
    assert.equal((html.match(/<\/script>/g) ?? []).length, 2, "the two scripts' own ends only");
    const data = examplesData(html);
    const answer = data.rows.find((r) => r.id === v0.itemId)?.a[0];
    assert.equal(answer?.[1], long.slice(0, RESPONSE_MAX_CHARS));
    assert.equal(answer?.[9]?.m, long.length - RESPONSE_MAX_CHARS, "how much was cut");
    for (const r of data.rows)
      for (const a of r.a) assert.ok((a?.[1].length ?? 0) <= RESPONSE_MAX_CHARS, `item ${r.id}`);
  });

  it("describes the run: dataset, models and endpoints, strategies, scoring, timing, cache, version, cost", () => {
    const run = f.html.match(/<section id="run">([\s\S]*?)<\/section>/)?.[1] ?? "";
    for (const part of [
      "c".repeat(64),
      "http://127.0.0.1:9/v1",
      "m1-model",
      "safety-system-prompt",
      "paper (headline); strict reported beside it",
      "2025-01-02T03:00:00.000Z",
      "4 min 5 s",
      "0.1.0-test",
      "2 records have no image: ids 2301–2302",
      "AWS item",
      "Model tokens: $",
    ])
      assert.ok(run.includes(part), `run section has ${part}`);
    const cached = f.report.rows.reduce((s, r) => s + r.counts.cached, 0);
    assert.ok(cached > 0 && run.includes(`${cached} of `));
    assert.ok(!f.html.includes("apiKey"), "never a key or key name field");
  });

  it("makes small WebP thumbnails and refuses bytes that are no image", async () => {
    for (const [w, h, format] of [
      [1600, 1200, "jpeg"],
      [300, 900, "png"],
      [40, 30, "png"],
    ] as const) {
      const url = await thumbnailDataUrl(await syntheticPhoto(w, h, format));
      const bytes = Buffer.from(url.replace(/^data:image\/webp;base64,/, ""), "base64");
      const meta = await sharp(bytes).metadata();
      assert.equal(meta.format, "webp");
      assert.ok(Math.max(meta.width ?? 0, meta.height ?? 0) <= 64, `${meta.width}×${meta.height}`);
      assert.ok(bytes.length <= 2048, `${w}×${h}: ${bytes.length} bytes`);
      if (w < 64) assert.equal(meta.width, w, "small images are not enlarged");
    }
    await assert.rejects(thumbnailDataUrl(new TextEncoder().encode("not an image")));
  });

  it("escapes hostile labels in a rendered chart (adapter alone)", async () => {
    const svg = await renderSvg({
      data: { values: [{ label: `</svg><script>alert(1)</script>"'&`, v: 1 }] },
      mark: "bar",
      encoding: { x: { field: "label", type: "nominal" }, y: { field: "v", type: "quantitative" } },
    });
    assert.ok(svg.startsWith("<svg"));
    assert.ok(!svg.includes("<script") && !svg.includes("</svg><"));
    assert.ok(svg.includes("&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
  });
});

describe("report.html at full size", () => {
  it("stays a few MB for 1,500 items with 2 KB thumbnails", async () => {
    const base = datasetItem(983);
    const items: DatasetItem[] = Array.from({ length: 1500 }, (_, i) => ({
      ...datasetItem(1 + (i % 1153) + (i >= 1153 ? 1000 : 0), i % 7 === 0 ? null : `scenario_${i % 40}`),
      id: i + 1,
      sentence: `${base.sentence} with a somewhat longer sentence of about the usual length, number ${i}`,
    }));
    const models = ["always-yes", "always-no", "random"].map((id) => model(id, "baseline"));
    const verdicts = models.flatMap((m) =>
      items.map((item, i) =>
        buildVerdict(
          "run-size",
          m.id,
          "baseline",
          item,
          answer(m.id === "always-yes" ? "Yes." : m.id === "always-no" ? "No." : i % 2 ? "Yes." : "No."),
          NOW,
        ),
      ),
    );
    const rows = models.map((m) =>
      computeRow(
        m,
        "baseline",
        verdicts.filter((v) => v.modelId === m.id),
        items.length,
      ),
    );
    const report = buildReport({
      version: "0.1.0-test",
      runId: "run-size",
      startedAt: "2025-01-02T03:00:00.000Z",
      finishedAt: NOW.toISOString(),
      dataset: {
        name: "big",
        provenance: { kind: "sample", size: "small", seed: 0 },
        checksum: "d".repeat(64),
        records: 1500,
        runnable: 1500,
        skipped: [],
      },
      plannedItems: items.length,
      models,
      strategies: ["baseline"],
      rows,
    });
    // 2,048 bytes of image data per thumbnail: the budget's upper end.
    const thumbnails = new Map(
      items.map((item) => [item.id, `data:image/webp;base64,${randomBytes(2048).toString("base64")}`]),
    );
    const started = performance.now();
    const specs = chartSpecs(report, verdicts);
    const svgs = await renderCharts(specs.map((s) => s.spec));
    const html = renderHtml({
      report,
      items,
      verdicts,
      thumbnails,
      charts: specs.map((s, i) => ({ ...s, svg: svgs[i] ?? null })),
    });
    const size = Buffer.byteLength(html);
    console.log(
      `report.html for 1,500 items × 3 series with 2 KB thumbnails: ${(size / 1e6).toFixed(2)} MB ` +
        `(${(size / 1500 / 1024).toFixed(2)} KiB per item), charts + render ${(performance.now() - started).toFixed(0)} ms`,
    );
    assert.equal(examplesData(html).rows.length, 1500);
    // Thumbnails are most of it (2 KB each is 4.1 MB of base64); the page of articles is built in the browser.
    assert.ok(size < 6e6, `${size} bytes`);
  });

  it("builds from the full generated sample (1,453 items): thumbnails, charts, page", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "mmsafe-html-full-"));
    try {
      await writeSampleDataset(dir, { size: "full" });
      const dataset = await readOfficialDataset(dir);
      const items: DatasetItem[] = dataset.items.map((item) => ({
        id: item.id,
        subset: item.label.subset,
        category: item.label.category,
        attackType: item.label.attackType,
        domain: item.scenario.domain,
        scenario: item.scenario.scenario,
        expected: item.label.expected,
        instruction: item.instruction,
        sentence: item.sentence,
        image: {
          key: item.imagePath,
          mediaType: "image/png",
          bytes: item.imageBytes,
          sha256: item.imageSha256,
        },
      }));
      assert.equal(items.length, 1453);
      const models = ["always-yes", "always-no", "random"].map((id) => model(id, "baseline"));
      const verdicts = models.flatMap((m) =>
        items.map((item) =>
          buildVerdict(
            "run-full",
            m.id,
            "baseline",
            item,
            answer(
              m.id === "always-yes" ? "Yes." : m.id === "always-no" ? "No." : item.id % 3 ? "Yes." : "No.",
            ),
            NOW,
          ),
        ),
      );
      const report = buildReport({
        version: "0.1.0-test",
        runId: "run-full",
        startedAt: "2025-01-02T03:00:00.000Z",
        finishedAt: NOW.toISOString(),
        dataset: {
          name: "sample",
          provenance: { kind: "sample", size: "small", seed: 0 },
          checksum: dataset.checksum,
          records: 1523,
          runnable: 1453,
          skipped: dataset.skipped,
        },
        plannedItems: items.length,
        models,
        strategies: ["baseline"],
        rows: models.map((m) =>
          computeRow(
            m,
            "baseline",
            verdicts.filter((v) => v.modelId === m.id),
            items.length,
          ),
        ),
      });

      const t0 = performance.now();
      const urls = await pLimit(16).map(items, async (item) => {
        try {
          return await thumbnailDataUrl(await readFile(item.image.key));
        } catch {
          return null;
        }
      });
      const t1 = performance.now();
      const specs = chartSpecs(report, verdicts);
      const svgs = await renderCharts(specs.map((s) => s.spec));
      const t2 = performance.now();
      const html = renderHtml({
        report,
        items,
        verdicts,
        thumbnails: new Map(items.map((item, i) => [item.id, urls[i] ?? null])),
        charts: specs.map((s, i) => ({ ...s, svg: svgs[i] ?? null })),
      });
      const t3 = performance.now();
      // Thumbnails of photo-sized images (the sample's are tiny): a noisy 1024×768 JPEG (~0.5 MB, slow to
      // decode), 200 times, extrapolated to 1,453.
      const photo = await syntheticPhoto(1024, 768, "jpeg");
      const t4 = performance.now();
      const photoThumbs = await pLimit(16).map(items.slice(0, 200), () => thumbnailDataUrl(photo));
      const t5 = performance.now();
      const thumbBytes = urls.map((u) => (u ? (u.length * 3) / 4 : 0));
      console.log(
        `full sample, 1,453 items × 3 series: thumbnails ${(t1 - t0).toFixed(0)} ms ` +
          `(${urls.filter(Boolean).length} made, mean ${(thumbBytes.reduce((a, b) => a + b, 0) / items.length).toFixed(0)} B), ` +
          `charts ${(t2 - t1).toFixed(0)} ms, page ${(t3 - t2).toFixed(0)} ms, total ${(t3 - t0).toFixed(0)} ms; ` +
          `report.html ${(Buffer.byteLength(html) / 1e6).toFixed(2)} MB. ` +
          `Thumbnails of a ${(photo.length / 1e6).toFixed(2)} MB 1024×768 JPEG: ${((t5 - t4) / 200).toFixed(1)} ms each, ` +
          `${(((t5 - t4) / 200) * 1453).toFixed(0)} ms for 1,453 (extrapolated), ${photoThumbs[0]?.length ?? 0} chars each`,
      );
      assert.equal(urls.filter(Boolean).length, 1453);
      const data = examplesData(html);
      assert.equal(data.rows.length, 1453);
      assert.equal(
        data.rows.reduce((n, r) => n + r.a.filter((a) => a !== null).length, 0),
        1453 * 3,
      );
      assert.ok(Buffer.byteLength(html) < 3e6, `${Buffer.byteLength(html)} bytes`);
      // The same run with ~1 KB thumbnails (the upper range of real photos' thumbnails).
      const kilobyte = renderHtml({
        report,
        items,
        verdicts,
        thumbnails: new Map(
          items.map((item) => [item.id, `data:image/webp;base64,${randomBytes(1024).toString("base64")}`]),
        ),
        charts: specs.map((s, i) => ({ ...s, svg: svgs[i] ?? null })),
      });
      console.log(
        `the same with 1 KB thumbnails: report.html ${(Buffer.byteLength(kilobyte) / 1e6).toFixed(2)} MB`,
      );
      assert.ok(Buffer.byteLength(kilobyte) < 3e6, `${Buffer.byteLength(kilobyte)} bytes`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** In-memory stores: enough of S3, the runs table and the verdicts table for Aggregate. */
function memoryStore(objects: Map<string, Uint8Array | string>): ObjectStore {
  const bytes = (key: string): Uint8Array => {
    const value = objects.get(key);
    if (value === undefined) throw Object.assign(new Error(`no ${key}`), { name: "ObjectNotFoundError" });
    return typeof value === "string" ? new TextEncoder().encode(value) : value;
  };
  return {
    bucket: "test-bucket",
    getBytes: async (key) => bytes(key),
    getText: async (key) => new TextDecoder().decode(bytes(key)),
    getTextIfExists: async (key) => (objects.has(key) ? new TextDecoder().decode(bytes(key)) : null),
    put: async (key, body) => {
      objects.set(key, body);
    },
    exists: async (key) => objects.has(key),
  };
}

describe("Aggregate publishes report.html", () => {
  const runId = "run-agg";
  const items = [datasetItem(983, "privacy"), datasetItem(128), datasetItem(1), datasetItem(2001)];
  const models = [model("m1"), model("always-no", "baseline")];
  let objects: Map<string, Uint8Array | string>;
  let verdicts: Verdict[];
  const record = (): RunRecord => ({
    runId,
    status: "RUNNING",
    executionId: "exec",
    dataset: "t",
    datasetChecksum: "e".repeat(64),
    datasetProvenance: { kind: "sample", size: "small", seed: 0 },
    configHash: "h",
    models,
    strategies: ["baseline"],
    categories: undefined,
    limit: undefined,
    plannedItems: items.length,
    plannedVerdicts: items.length * models.length,
    shards: 2,
    startedAt: "2025-01-02T03:00:00.000Z",
    updatedAt: "2025-01-02T03:00:00.000Z",
    attempts: 1,
  });
  const runs = (): RunStore => ({
    get: async () => record(),
    addUsage: async () => undefined,
    previousOfSchedule: async () => null,
    startOrResume: async (r) => r,
    markSucceeded: async () => undefined,
  });
  const verdictStore = (): VerdictStore => ({
    existing: async () => new Map(),
    put: async () => true,
    listRun: async () => verdicts,
  });

  before(async () => {
    objects = new Map();
    objects.set(
      datasetManifestKey("t"),
      JSON.stringify({
        schemaVersion: 2,
        name: "t",
        provenance: { kind: "sample", size: "small", seed: 0 },
        checksum: "e".repeat(64),
        createdAt: NOW.toISOString(),
        records: 4,
        runnable: 4,
        skipped: [],
        shards: [],
      }),
    );
    objects.set(runShardKey(runId, 0), toJsonl(items.slice(0, 2)));
    objects.set(runShardKey(runId, 1), toJsonl(items.slice(2)));
    const photo = await syntheticPhoto(320, 240, "jpeg");
    objects.set(items[0]?.image.key ?? "", photo);
    objects.set(items[1]?.image.key ?? "", new TextEncoder().encode("corrupt")); // thumbnail fails
    objects.set(items[2]?.image.key ?? "", photo);
    // items[3]'s image is missing: its read fails.
    verdicts = models.flatMap((m) =>
      items.map((item) =>
        buildVerdict(runId, m.id, "baseline", item, answer(m.id === "m1" ? right(item) : "No."), NOW),
      ),
    );
  });

  it("writes reports/<runId>/report.html with charts and thumbnails, placeholders for failed images", async () => {
    const output = await aggregate(
      { runId, bucket: "test-bucket" },
      {
        store: memoryStore(objects),
        runs: runs(),
        verdicts: verdictStore(),
        now: () => NOW,
        version: "0.1.0-test",
        renderCharts,
        thumbnail: (bytes) => thumbnailDataUrl(bytes),
      },
    );
    assert.equal(output.report.html, `s3://test-bucket/${reportHtmlKey(runId)}`);
    assert.ok(output.report.json.endsWith("report.json") && output.report.markdown.endsWith("report.md"));
    const html = String(objects.get(reportHtmlKey(runId)));
    const rows = examplesData(html).rows;
    assert.equal(rows.length, items.length);
    assert.equal(rows.filter((r) => r.t !== null).length, 2);
    assert.equal(rows.filter((r) => r.t === null).length, 2);
    for (const chart of ["accuracy", "scenarios", "confusion"]) assert.match(figure(html, chart), /<svg/);
  });

  it("still writes the page when the adapters are missing or fail", async () => {
    const output = await aggregate(
      { runId, bucket: "test-bucket" },
      {
        store: memoryStore(objects),
        runs: runs(),
        verdicts: verdictStore(),
        now: () => NOW,
        version: "0.1.0-test",
        renderCharts: async () => {
          throw new Error("vega <exploded>");
        },
      },
    );
    const html = String(objects.get(reportHtmlKey(runId)));
    assert.ok(output.report.html.endsWith("report.html"));
    assert.ok(figure(html, "accuracy").includes("Chart not rendered: vega &lt;exploded&gt;"));
    assert.equal(examplesData(html).rows.filter((r) => r.t === null).length, items.length);
  });
});
