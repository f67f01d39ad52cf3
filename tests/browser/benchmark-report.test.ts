/**
 * A plug-in benchmark's HTML report in a real browser (Debian's Chromium, headless, driven by playwright-core):
 * MOSSBench's 300 benign and 244 contrast items, two models, one of which answers with script-injection
 * attempts; the rows are computed with computeBenchmarkRow over generated verdicts.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import { MOSSBENCH } from "../../src/benchmarks/mossbench/definition.ts";
import { computeBenchmarkRow } from "../../src/core/column-metrics.ts";
import {
  type BenchmarkItem,
  type BenchmarkVerdict,
  benchmarkItemSchema,
  benchmarkVerdictSchema,
  type ModelConfig,
  modelConfigSchema,
} from "../../src/core/schemas.ts";
import { renderBenchmarkHtml } from "../../src/report/benchmark-html.ts";
import { buildBenchmarkReport } from "../../src/report/benchmark-report.ts";
import { findChromium, launchChromium, NO_CHROMIUM, recordProblemsOffline } from "../fixtures/browser.ts";

const executablePath = findChromium();
/** Where the screenshots are kept for a look (ignored by git). */
const OUTPUT_DIR = path.resolve("test-output", "browser");
if (!executablePath && process.env.MMSAFE_REQUIRE_BROWSER) {
  throw new Error(
    "no Chromium found: install Debian's chromium package (apt-get install chromium) or set MMSAFE_CHROMIUM",
  );
}

/** A 1 × 1 PNG. */
const PIXEL =
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
const HOSTILE = [
  "<script>window.__pwned=1</script> I'm sorry, I can't help with that.",
  `<img src=x onerror="window.__pwned=1"> Sure: ${"a very long unbroken answer ".repeat(200)}`,
  `<a href="javascript:window.__pwned=1">click</a> ${"x".repeat(3000)}`,
];
const SCORER = MOSSBENCH.scorers.find((s) => s.id === "refusal-keywords");

const model = (id: string): ModelConfig => ({
  ...modelConfigSchema.parse({ id: "placeholder", baseURL: "http://127.0.0.1:9/v1", model: `${id}-model` }),
  id,
});

/** 100 items of each type, then the 244 contrast items. */
function mossbenchItems(): BenchmarkItem[] {
  const columns = [
    ...["type1", "type2", "type3"].flatMap((c) => Array.from({ length: 100 }, () => c)),
    ...Array.from({ length: 244 }, () => "contrast"),
  ];
  return columns.map((column, i) =>
    benchmarkItemSchema.parse({
      benchmark: "mossbench",
      id: i + 1,
      recordId: column === "contrast" ? `contrast:${i - 299}` : String(i + 1),
      category: column,
      expected: column === "contrast" ? "refuse" : "comply",
      text: `Question ${i + 1}: how do I use what is shown? </p><script>window.__pwned=1</script>`,
      groups: {},
      image: {
        key: `datasets/m/images/${i + 1}.png`,
        mediaType: "image/png",
        bytes: 68,
        sha256: "a".repeat(64),
      },
    }),
  );
}

function verdictsOf(items: readonly BenchmarkItem[], modelId: string, hostile: boolean): BenchmarkVerdict[] {
  return items.map((item) => {
    const errored = hostile && item.id % 97 === 0;
    const refused = item.category === "contrast" ? item.id % 5 !== 0 : item.id % (hostile ? 4 : 9) === 0;
    const response = hostile
      ? (HOSTILE[item.id % HOSTILE.length] ?? "")
      : refused
        ? "I'm sorry, but I can't help with that."
        : "Here is how.";
    return benchmarkVerdictSchema.parse({
      runId: "bench-browser",
      verdictKey: `${modelId}#baseline#${item.id}`,
      modelId,
      strategy: "baseline",
      itemId: item.id,
      status: errored ? "error" : "answered",
      response: errored ? null : response,
      scoredResponse: errored ? null : response,
      finishReason: errored ? null : "stop",
      error: errored
        ? { kind: "connection", message: `<iframe src="javascript:window.__pwned=1"></iframe>` }
        : null,
      latencyMs: 200 + (item.id % 50),
      promptTokens: 120,
      completionTokens: 40,
      attempts: 1,
      createdAt: "2025-01-02T03:04:05.000Z",
      benchmark: "mossbench",
      recordId: item.recordId,
      category: item.category,
      expected: item.expected,
      scores: errored ? null : { "refusal-keywords": { refused, matched: refused ? "I'm sorry" : null } },
    });
  });
}

/** Sideways overflow of the page and of the headline's container, and whether each row's rates are on screen. */
const FIT_SCRIPT = `(() => {
  const wrap = document.getElementById("headline").parentElement;
  const rows = Array.from(document.querySelectorAll("#headline tr[data-model]:not([data-published])"));
  const visible = (el) => { if (!el) return false; const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth; };
  return {
    page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    headline: wrap.scrollWidth - wrap.clientWidth,
    rows: rows.length,
    rates: rows.every((tr) => ["type1", "type2", "type3", "contrast", "all"].every((c) => visible(tr.querySelector('td[data-col="' + c + '"]')))),
    published: document.querySelectorAll("#headline tr[data-published]").length,
    headVisible: getComputedStyle(document.querySelector("#headline thead")).display !== "none",
    pwned: window.__pwned === undefined ? null : window.__pwned,
  };
})()`;

interface Fit {
  page: number;
  headline: number;
  rows: number;
  rates: boolean;
  published: number;
  headVisible: boolean;
  pwned: unknown;
}

describe("benchmark HTML report in Chromium", { skip: executablePath ? false : NO_CHROMIUM }, () => {
  let dir: string;
  let browser: Browser;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    assert.ok(SCORER);
    const items = mossbenchItems();
    const models = [model("gentle"), model("hostile")];
    const verdicts: BenchmarkVerdict[] = [];
    const rows = models.map((m, i) => {
      const mine = verdictsOf(items, m.id, i === 1);
      verdicts.push(...mine);
      return computeBenchmarkRow({
        definition: MOSSBENCH,
        scorer: SCORER,
        model: m,
        strategy: "baseline",
        verdicts: mine,
        readingOf: (v) => {
          const s = v.scores?.["refusal-keywords"];
          return { refused: s !== undefined && "refused" in s && s.refused };
        },
        planned: items.length,
        skipped: 0,
      });
    });
    const report = buildBenchmarkReport({
      version: "0.1.0",
      definition: MOSSBENCH,
      runId: "bench-browser",
      startedAt: "2025-01-02T03:00:00.000Z",
      finishedAt: "2025-01-02T03:04:05.000Z",
      dataset: {
        name: "mossbench",
        provenance: { kind: "sample", size: "full", seed: 1 },
        checksum: "b".repeat(64),
        records: items.length,
        runnable: items.length,
        skipped: [],
      },
      plannedItems: items.length,
      models,
      strategies: ["baseline"],
      scorer: SCORER.id,
      rows,
      verdicts,
    });
    const html = renderBenchmarkHtml({
      report,
      items,
      verdicts,
      thumbnails: new Map(items.map((item) => [item.id, item.id % 3 === 0 ? null : PIXEL])),
    });
    dir = await mkdtemp(path.join(os.tmpdir(), "mmsafe-bench-browser-"));
    const file = path.join(dir, "report.html");
    await writeFile(file, html);
    browser = await launchChromium(executablePath);
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await recordProblemsOffline(page, problems);
    await page.goto(pathToFileURL(file).href);
  });

  after(async () => {
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("loads offline with no console errors and runs nothing from the answers", async () => {
    assert.equal((await page.title()).includes("MOSSBench report"), true);
    assert.deepEqual(problems, []);
    assert.equal(await page.evaluate("document.scripts.length"), 0);
    assert.equal(
      await page.evaluate(
        'document.querySelectorAll(\'#examples img[src^="data:,"], #examples iframe, #examples a[href^="javascript:"]\').length',
      ),
      0,
    );
  });

  for (const width of [1400, 390]) {
    it(`fits ${width} px: no sideways scroll, the headline's rates on screen`, async () => {
      await page.setViewportSize({ width, height: 900 });
      const fit = (await page.evaluate(FIT_SCRIPT)) as Fit;
      assert.equal(fit.page, 0, `${width} px: the page scrolls sideways`);
      assert.equal(fit.headline, 0, `${width} px: the headline scrolls sideways`);
      assert.equal(fit.rows, 2);
      assert.ok(fit.rates, `${width} px: every measured rate is visible`);
      assert.equal(fit.published, MOSSBENCH.published.length);
      // On a phone the rows are cards labelled by data-label, the column heads hidden.
      assert.equal(fit.headVisible, width > 640);
      assert.equal(fit.pwned, null);
      await mkdir(OUTPUT_DIR, { recursive: true });
      await page.screenshot({ path: path.join(OUTPUT_DIR, `benchmark-${width}.png`), fullPage: false });
      await page
        .locator("#headline tbody")
        .first()
        .screenshot({ path: path.join(OUTPUT_DIR, `benchmark-headline-${width}.png`) });
      assert.deepEqual(problems, []);
    });
  }

  it("shows each column's examples with thumbnails and bounded answers", async () => {
    await page.setViewportSize({ width: 390, height: 900 });
    for (const column of ["type1", "type2", "type3", "contrast"]) {
      const n = await page
        .locator(`section.column-examples[data-column="${column}"] article.example`)
        .count();
      assert.equal(n, 4, column);
    }
    assert.ok((await page.locator("#examples img.thumb").count()) > 0);
    const cut = await page.locator("#examples p.cut").count();
    assert.ok(cut > 0, "long answers carry the cut mark");
    const answer = await page
      .locator('#examples li.answer[data-model="hostile"] pre.full')
      .first()
      .textContent();
    assert.match(answer ?? "", /<script>window\.__pwned=1<\/script>|<img src=x onerror|<a href="javascript:/);
  });
});
