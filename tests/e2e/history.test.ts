/**
 * End to end, locally: three short scheduled runs with the reference baselines, and the history of runs
 * that Aggregate keeps in the bucket and the runner copies to `<reports>/index.html` — every run listed with
 * a working link to its report, a trend per (model, strategy), regressions marked as the runs flagged them.
 * In Chromium (when the machine has it), the page loads offline with no script, and fits 390 px and
 * 1400 px without sideways scrolling; the screenshots are kept in test-output/browser/.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import type { HistoryIndex } from "../../src/core/history.ts";
import { closeLocalSession, type LocalRunResult, runLocal } from "../../src/local/runner.ts";
import { findChromium, launchChromium, NO_CHROMIUM, recordProblemsOffline } from "../fixtures/browser.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-e2e-history-"));
const reportsDir = path.join(home, "reports");
const OUTPUT_DIR = path.resolve("test-output", "browser");
/** Different sample sizes, so the runs' numbers (and perhaps a regression) differ. */
const RUNS = [
  { runId: "hist-1", limit: 6 },
  { runId: "hist-2", limit: 9 },
  { runId: "hist-3", limit: 12 },
];

/** Evaluated in the page (a string: this file is type-checked without the DOM library). */
const LAYOUT_SCRIPT = `({
  page: document.documentElement.scrollWidth,
  viewport: document.documentElement.clientWidth,
  runs: document.querySelectorAll("#runs tbody.run").length,
  charts: Array.from(document.querySelectorAll("figure.trend svg"), (svg) => svg.getBoundingClientRect().width),
})`;

describe("the history of runs, from three local runs", () => {
  const results: LocalRunResult[] = [];
  let html: string;
  let index: HistoryIndex;

  before(async () => {
    for (const { runId, limit } of RUNS) {
      const result = await runLocal({ home, reportsDir, input: { runId, limit, schedule: "nightly" } });
      assert.equal(
        result.execution.status,
        "SUCCEEDED",
        `${result.execution.error}: ${result.execution.cause}`,
      );
      results.push(result);
    }
    html = await readFile(path.join(reportsDir, "index.html"), "utf8");
    index = JSON.parse(await readFile(path.join(reportsDir, "index.json"), "utf8")) as HistoryIndex;
  });

  after(async () => {
    await closeLocalSession();
    await rm(home, { recursive: true, force: true });
  });

  it("says in each run's output where the history is, and it lists the runs so far", () => {
    results.forEach((r, i) => {
      assert.equal(r.output?.history.error, null);
      assert.equal(r.output?.history.runs, i + 1);
      assert.equal(r.output?.history.index?.html, "s3://mmsafe-local/reports/index.html");
      assert.equal(r.output?.history.summary, `s3://mmsafe-local/reports/_summaries/${r.runId}.json`);
    });
  });

  it("lists every run newest first in index.json, with its dataset, schedule and numbers", () => {
    assert.deepEqual(
      index.runs.map((r) => r.runId),
      ["hist-3", "hist-2", "hist-1"],
    );
    assert.deepEqual(index.invalid, []);
    for (const run of index.runs) {
      const limit = RUNS.find((r) => r.runId === run.runId)?.limit;
      assert.equal(run.dataset.limit, limit);
      assert.equal(run.dataset.provenance.kind, "sample");
      assert.equal(run.schedule, "nightly");
      assert.deepEqual(
        run.rows.map((r) => r.modelId),
        ["always-yes", "always-no", "random"],
      );
      // The summary's numbers are the report's headline numbers.
      const output = results.find((r) => r.runId === run.runId)?.output;
      assert.deepEqual(
        run.rows.map((r) => [r.total, r.balanced]),
        output?.headline.map((h) => [h.total, h.balanced]),
      );
      assert.deepEqual(run.regression.findings, output?.regression.findings);
    }
  });

  it("lists the 3 runs in index.html, each linking to a report beside it", async () => {
    const bodies = [...html.matchAll(/<tbody class="run" data-run-id="([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(bodies, ["hist-3", "hist-2", "hist-1"]);
    for (const { runId } of RUNS) {
      assert.ok(html.includes(`<a href="./${runId}/report.html">${runId}</a>`));
      const report = await readFile(path.join(reportsDir, runId, "report.html"), "utf8");
      assert.match(report, new RegExp(`<title>mmsafe report — ${runId}</title>`));
    }
    assert.doesNotMatch(html, /<script/i);
  });

  it("draws a trend over the 3 runs for each baseline, marking the numbers the runs flagged", () => {
    const figures = [
      ...html.matchAll(
        /<figure class="trend" data-model="([^"]+)" data-strategy="baseline" data-runs="(\d)">/g,
      ),
    ].map((m) => [m[1], m[2]]);
    assert.deepEqual(figures, [
      ["always-no", "3"],
      ["always-yes", "3"],
      ["random", "3"],
    ]);
    assert.equal(
      (html.match(/<figure class="trend"[^>]*><figcaption>[\s\S]*?<\/figcaption><svg/g) ?? []).length,
      3,
    );
    const flagged = results.flatMap((r) => r.output?.regression.findings ?? []);
    const marks = index.trends.flatMap((t) =>
      t.points.flatMap((p) => [
        ...(p.regression.total ? [[t.modelId, p.runId, "total"]] : []),
        ...(p.regression.balanced ? [[t.modelId, p.runId, "balanced"]] : []),
      ]),
    );
    assert.equal(marks.length, flagged.length, JSON.stringify({ marks, flagged }));
  });

  it("measures index.html for 3 runs", async () => {
    const bytes = Buffer.byteLength(html);
    console.log(`index.html, 3 runs × 3 baselines, 3 trends: ${(bytes / 1024).toFixed(1)} KB`);
    assert.ok(bytes < 150 * 1024);
  });

  const executablePath = findChromium();
  it("loads offline in Chromium with no script, and fits 390 px and 1400 px", {
    skip: executablePath ? false : NO_CHROMIUM,
  }, async () => {
    const browser = await launchChromium(executablePath);
    try {
      await mkdir(OUTPUT_DIR, { recursive: true });
      for (const width of [390, 1400]) {
        const page = await browser.newPage({ viewport: { width, height: 900 } });
        const problems: string[] = [];
        // Offline: any request leaving the file would be a resource the page must not have.
        await recordProblemsOffline(page, problems);
        const started = performance.now();
        await page.goto(pathToFileURL(path.join(reportsDir, "index.html")).href);
        const loadMs = performance.now() - started;
        const layout = (await page.evaluate(LAYOUT_SCRIPT)) as {
          page: number;
          viewport: number;
          runs: number;
          charts: number[];
        };
        assert.deepEqual(problems, [], `${width} px`);
        assert.ok(layout.page <= layout.viewport, `${width} px: page ${layout.page} px wide`);
        assert.equal(layout.runs, 3);
        assert.equal(layout.charts.length, 3);
        assert.ok(
          layout.charts.every((w) => w > 200 && w <= layout.viewport),
          `${width} px: charts ${layout.charts}`,
        );
        // Total and Balanced of the newest run's first row are on screen, not scrolled away.
        for (const col of ["total", "balanced"]) {
          const box = await page
            .locator(`tbody.run[data-run-id="hist-3"] tr.series >> nth=0 >> td[data-col="${col}"]`)
            .boundingBox();
          assert.ok(
            box && box.x >= 0 && box.x + box.width <= width,
            `${width} px: ${col} at ${JSON.stringify(box)}`,
          );
        }
        await page.screenshot({ path: path.join(OUTPUT_DIR, `index-${width}.png`), fullPage: true });
        console.log(`index.html at ${width} px: loaded in ${loadMs.toFixed(0)} ms`);
        // The link opens the run's report.
        await page.locator('a[href="./hist-1/report.html"]').first().click();
        await page.waitForURL(/hist-1\/report\.html$/);
        assert.match(await page.title(), /hist-1/);
        await page.close();
      }
    } finally {
      await browser.close();
    }
  });
});
