/**
 * The HTML report in a real browser: Debian's Chromium, headless, driven by playwright-core. The report
 * comes from a real local run whose models include one that answers with script-injection attempts.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { formatPercent, type Report } from "../../src/core/report.ts";
import type { ModelConfig } from "../../src/core/schemas.ts";
import { type ReferenceServer, startReferenceModelServer } from "../../src/local/reference-model-server.ts";
import { closeLocalSession, type LocalRunResult, runLocal } from "../../src/local/runner.ts";
import { referenceModel } from "../fixtures/reference-models.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

/** Debian's Chromium (or MMSAFE_CHROMIUM); null when this machine has none. */
function findChromium(): string | null {
  const candidates = [process.env.MMSAFE_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"];
  for (const candidate of candidates) if (candidate && existsSync(candidate)) return candidate;
  try {
    return execFileSync("which", ["chromium"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

const executablePath = findChromium();
if (!executablePath && process.env.MMSAFE_REQUIRE_BROWSER) {
  throw new Error(
    "no Chromium found: install Debian's chromium package (apt-get install chromium) or set MMSAFE_CHROMIUM",
  );
}
const OUTPUT_DIR = path.resolve("test-output", "browser");

/**
 * How the headline fits the window: sideways overflow of the page and of the headline's own container,
 * whether every measured row's Total and Balanced are on screen, and whether Total comes before Typical (the
 * phone cards put Total and Balanced first).
 */
const FIT_SCRIPT = `(() => {
  const wrap = document.getElementById("headline").parentElement;
  const rows = Array.from(document.querySelectorAll("#headline tr[data-model]"));
  const box = (tr, col) => { const el = tr.querySelector('td[data-col="' + col + '"]'); return el ? el.getBoundingClientRect() : null; };
  const visible = (r) => r !== null && r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= window.innerWidth;
  return {
    page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    headline: wrap.scrollWidth - wrap.clientWidth,
    totals: rows.every((tr) => visible(box(tr, "total"))),
    balanced: rows.every((tr) => visible(box(tr, "balanced"))),
    totalFirst: rows.every((tr) => {
      const total = box(tr, "total"), typical = box(tr, "typical");
      return total !== null && typical !== null && (total.top < typical.top - 1 || (Math.abs(total.top - typical.top) <= 1 && total.left < typical.left));
    }),
  };
})()`;

describe("HTML report in Chromium", {
  skip: executablePath ? false : "no Chromium on this machine (apt-get install chromium)",
}, () => {
  let home: string;
  let server: ReferenceServer;
  let result: LocalRunResult;
  let report: Report;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];

  before(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-browser-"));
    server = await startReferenceModelServer();
    const model = (id: string, name: string, kind: ModelConfig["kind"] = "model") =>
      referenceModel(server, id, name, { kind });
    result = await runLocal({
      home,
      reportsDir: path.join(home, "reports"),
      models: [
        model("always-no", "always-no", "baseline"),
        model("random", "random", "baseline"),
        model("hostile", "hostile"),
      ],
      input: { runId: "browser-1" },
    });
    assert.equal(
      result.execution.status,
      "SUCCEEDED",
      `${result.execution.error}: ${result.execution.cause}`,
    );
    report = JSON.parse(await readFile(path.join(result.reportDir ?? "", "report.json"), "utf8")) as Report;

    browser = await chromium.launch({
      executablePath: executablePath ?? undefined,
      headless: true,
      // Containers often run as root, where Chromium's sandbox cannot start.
      args: ["--no-sandbox", "--disable-gpu"],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("console", (message) => {
      if (message.type() === "error") consoleErrors.push(message.text());
    });
    page.on("pageerror", (error) => consoleErrors.push(error.message));
    // Offline: any request leaving the file would be a CDN or tracker the report must not have.
    await page.route(/^(?!file:|data:)/, (route) => {
      consoleErrors.push(`network request: ${route.request().url()}`);
      return route.abort();
    });
    await page.goto(pathToFileURL(path.join(result.reportDir ?? "", "report.html")).href);
  });

  after(async () => {
    await browser?.close();
    await closeLocalSession();
    await server?.close();
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("loads offline with no console errors", async () => {
    assert.equal(await page.title().then((t) => t.includes("browser-1")), true);
    assert.deepEqual(consoleErrors, []);
  });

  it("renders every chart as a non-empty SVG", async () => {
    for (const chart of ["accuracy", "scenarios", "confusion"]) {
      const marks = await page
        .locator(`figure[data-chart^="${chart}"] svg`)
        .first()
        .evaluate((svg) => ({
          children: svg.querySelectorAll("path, rect, text").length,
          width: svg.getBoundingClientRect().width,
        }));
      assert.ok(marks.children > 0 && marks.width > 0, `${chart}: ${JSON.stringify(marks)}`);
    }
  });

  it("shows the numbers of report.json in the headline table", async () => {
    for (const row of report.rows) {
      const tr = page.locator(`#headline tr[data-model="${row.modelId}"][data-strategy="${row.strategy}"]`);
      const cell = async (col: string) =>
        ((await tr.locator(`td[data-col="${col}"]`).textContent()) ?? "").trim();
      assert.ok((await cell("typical")).startsWith(formatPercent(row.paper.typical.accuracy)));
      assert.ok((await cell("attack")).startsWith(formatPercent(row.paper.attack.accuracy)));
      assert.ok((await cell("oversafety")).startsWith(formatPercent(row.paper.oversafety.accuracy)));
      assert.ok((await cell("total")).startsWith(formatPercent(row.paper.total)));
      assert.ok((await cell("balanced")).startsWith(formatPercent(row.paperDetail.balanced)));
    }
    assert.ok(
      (await page.locator("#headline tr[data-published]").count()) >= 10,
      "the paper's rows, marked published",
    );
  });

  it("fits the headline at 1400 px and turns it into cards on a 390 px phone, Total and Balanced first", async () => {
    await mkdir(OUTPUT_DIR, { recursive: true });
    try {
      for (const width of [1400, 390]) {
        await page.setViewportSize({ width, height: 900 });
        // A string, not a function: run as written in the page (no transpiler helpers, no DOM types here).
        const fit = (await page.evaluate(FIT_SCRIPT)) as {
          page: number;
          headline: number;
          totals: boolean;
          balanced: boolean;
          totalFirst: boolean;
        };
        assert.equal(fit.page, 0, `${width} px: the page scrolls sideways`);
        assert.equal(fit.headline, 0, `${width} px: the headline scrolls sideways`);
        assert.ok(fit.totals && fit.balanced, `${width} px: Total and Balanced visible`);
        assert.equal(
          fit.totalFirst,
          width === 390,
          `${width} px: Total ${width === 390 ? "first" : "after the columns"}`,
        );
        await page.locator("#results").scrollIntoViewIfNeeded();
        await page.screenshot({ path: path.join(OUTPUT_DIR, `headline-${width}.png`) });
        await page.locator("#charts").scrollIntoViewIfNeeded();
        await page.screenshot({ path: path.join(OUTPUT_DIR, `charts-${width}.png`) });
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 900 });
    }
  });

  it("filters the examples browser", async () => {
    const visible = () => page.locator("article.example:not([hidden])").count();
    const all = await visible();
    assert.equal(all, report.run.dataset.runnable);
    assert.equal(((await page.locator("#examples-count").textContent()) ?? "").trim(), String(all));

    await page.locator("#filter-category").selectOption("typical");
    const typical = await visible();
    assert.ok(typical > 0 && typical < all, `category filter: ${typical} of ${all}`);
    await page.locator("#filter-category").selectOption({ index: 0 });

    await page.locator("#filter-model").selectOption("always-no");
    await page.locator("#filter-wrong").check();
    // always-no is wrong exactly on the over-safety items.
    const oversafety = report.rows.find((r) => r.modelId === "always-no")?.paper.oversafety.n ?? -1;
    assert.equal(await visible(), oversafety);
    await page.locator("#filter-wrong").uncheck();
    await page.locator("#filter-model").selectOption({ index: 0 });

    await page.locator("#search").fill("zzzz-no-such-text-zzzz");
    assert.equal(await visible(), 0);
    await page.locator("#search").fill("");
    assert.equal(await visible(), all);
  });

  it("shows an injected <script> as text and never runs it", async () => {
    assert.equal(
      await page.evaluate(() => (globalThis as unknown as { __mmsafePwned?: number }).__mmsafePwned),
      undefined,
    );
    const text = (await page.locator("#examples").textContent()) ?? "";
    assert.ok(
      text.includes("<script>window.__mmsafePwned=1</script>"),
      "the hostile answer is visible as text",
    );
    assert.equal(await page.locator("#examples script, #examples img[src='x']").count(), 0);
  });

  it("saves a screenshot and stays a small file", async () => {
    await mkdir(OUTPUT_DIR, { recursive: true });
    const file = path.join(OUTPUT_DIR, "report.png");
    await page.locator("h1").first().scrollIntoViewIfNeeded();
    await page.mouse.wheel(0, -100_000);
    await page.screenshot({ path: file, fullPage: false });
    await page.screenshot({ path: path.join(OUTPUT_DIR, "report-full.png"), fullPage: true });
    const size = (await stat(path.join(result.reportDir ?? "", "report.html"))).size;
    console.log(
      `screenshot: ${file}; report.html ${(size / 1024).toFixed(0)} KB for ${report.run.dataset.runnable} items`,
    );
    assert.ok((await stat(file)).size > 10_000);
  });
});
