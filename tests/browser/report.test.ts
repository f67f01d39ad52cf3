/**
 * The HTML report in a real browser: Debian's Chromium, headless, driven by playwright-core. The report
 * comes from a real local run whose models include one that answers with script-injection attempts.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import type { Browser, Page } from "playwright-core";
import sharp from "sharp";
import { thumbnailDataUrl } from "../../src/adapters/thumbnails.ts";
import { computeRow } from "../../src/benchmarks/mmsafeaware/metrics.ts";
import { buildReport, type Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import { runCompletion } from "../../src/core/completion.ts";
import { type DatasetItem, type ModelConfig, modelConfigSchema } from "../../src/core/schemas.ts";
import { formatPercent } from "../../src/core/text.ts";
import { buildVerdict } from "../../src/core/verdicts.ts";
import { type ReferenceServer, startReferenceModelServer } from "../../src/local/reference-model-server.ts";
import { closeLocalSession, type LocalRunResult, runLocal } from "../../src/local/runner.ts";
import { EXAMPLES_PAGE_SIZE, renderHtml } from "../../src/report/report-html.ts";
import { findChromium, launchChromium, NO_CHROMIUM, recordProblemsOffline } from "../fixtures/browser.ts";
import { datasetItem } from "../fixtures/dataset-item.ts";
import { referenceModel } from "../fixtures/reference-models.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

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

interface HeadlineFit {
  page: number;
  headline: number;
  totals: boolean;
  balanced: boolean;
  totalFirst: boolean;
}

/**
 * Checks the headline at 1400 px and at 390 px: neither the page nor the headline scrolls sideways, and
 * every row's Total and Balanced are visible; `more` checks more at each width. The window is set back to
 * `restore` afterwards.
 */
async function checkHeadlineFits(
  page: Page,
  restore: { width: number; height: number },
  more?: (width: number, fit: HeadlineFit) => Promise<void>,
): Promise<void> {
  try {
    for (const width of [1400, 390]) {
      await page.setViewportSize({ width, height: 900 });
      // A string, not a function: run as written in the page (no transpiler helpers, no DOM types here).
      const fit = (await page.evaluate(FIT_SCRIPT)) as HeadlineFit;
      assert.equal(fit.page, 0, `${width} px: the page scrolls sideways`);
      assert.equal(fit.headline, 0, `${width} px: the headline scrolls sideways`);
      assert.ok(fit.totals && fit.balanced, `${width} px: Total and Balanced visible`);
      await more?.(width, fit);
    }
  } finally {
    await page.setViewportSize(restore);
  }
}

describe("HTML report in Chromium", {
  skip: executablePath ? false : NO_CHROMIUM,
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

    browser = await launchChromium(executablePath);
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // Offline: any request leaving the file would be a CDN or tracker the report must not have.
    await recordProblemsOffline(page, consoleErrors);
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
    await checkHeadlineFits(page, { width: 1280, height: 900 }, async (width, fit) => {
      assert.equal(
        fit.totalFirst,
        width === 390,
        `${width} px: Total ${width === 390 ? "first" : "after the columns"}`,
      );
      await page.locator("#results").scrollIntoViewIfNeeded();
      await page.screenshot({ path: path.join(OUTPUT_DIR, `headline-${width}.png`) });
      await page.locator("#charts").scrollIntoViewIfNeeded();
      await page.screenshot({ path: path.join(OUTPUT_DIR, `charts-${width}.png`) });
    });
  });

  it("filters the examples browser, and keeps the filters in the URL hash", async () => {
    const visible = () => page.locator("article.example").count();
    const all = await visible();
    assert.equal(all, Math.min(report.run.dataset.runnable, EXAMPLES_PAGE_SIZE));
    assert.equal(
      ((await page.locator("#examples-count").textContent()) ?? "").trim(),
      String(report.run.dataset.runnable),
    );
    assert.equal(await page.locator("#examples-nojs").isHidden(), true, "the no-script note is hidden");

    await page.locator("#filter-category").selectOption("typical");
    const typical = await visible();
    assert.ok(typical > 0 && typical < all, `category filter: ${typical} of ${all}`);
    assert.match(await page.evaluate("location.hash"), /^#examples\?category=typical$/);
    await page.locator("#filter-category").selectOption({ index: 0 });

    await page.locator("#filter-model").selectOption("always-no");
    await page.locator("#filter-wrong").check();
    // always-no is wrong exactly on the over-safety items.
    const oversafety = report.rows.find((r) => r.modelId === "always-no")?.paper.oversafety.n ?? -1;
    assert.equal(await visible(), oversafety);
    assert.equal(
      await page.locator('li.answer:not([data-model="always-no"])').count(),
      0,
      "only the chosen model's answers",
    );
    assert.match(await page.evaluate("location.hash"), /model=always-no&wrong=1/);
    await page.locator("#filter-wrong").uncheck();
    await page.locator("#filter-model").selectOption({ index: 0 });

    await page.locator("#search").fill("zzzz-no-such-text-zzzz");
    assert.equal(await visible(), 0);
    assert.equal(((await page.locator("#page-range").textContent()) ?? "").trim(), "no items match");
    await page.locator("#search").fill("");
    assert.equal(await visible(), all);
    assert.equal(await page.evaluate("location.hash"), "", "no state, no hash");
  });

  it("opens an item's detail: larger image, the link to its object, prompts and every raw response", async () => {
    const article = page.locator("article.example").first();
    const id = await article.getAttribute("data-id");
    await article.locator(".sentence").click();
    const dialog = page.locator("#example-detail[open]");
    await dialog.waitFor();
    assert.equal(((await dialog.locator("#detail-title").textContent()) ?? "").trim(), `Item #${id}`);
    const link = dialog.locator("a.image-link");
    const key = ((await link.textContent()) ?? "").trim();
    assert.match(key, new RegExp(`^datasets/.+/images/${id}\\.\\w+$`));
    assert.equal(await link.getAttribute("href"), `../../${key}`);
    assert.equal((await dialog.locator("img").count()) <= 1, true, "at most the embedded thumbnail");
    assert.equal(await dialog.locator(".prompt").count(), report.run.strategies.length);
    assert.equal(await dialog.locator("li.answer").count(), report.rows.length, "every model × strategy");
    const hostile = dialog.locator('li.answer[data-model="hostile"] pre.full').first();
    assert.ok(((await hostile.textContent()) ?? "").includes("<script>window.__mmsafePwned=1</script>"));
    assert.ok(((await dialog.textContent()) ?? "").includes("Latency"));
    assert.match(await page.evaluate("location.hash"), new RegExp(`^#examples\\?item=${id}$`));
    assert.equal(
      await page
        .locator("#example-detail script, #example-detail img[src='x'], #example-detail b:not(.mark)")
        .count(),
      0,
    );
    await page.locator("#detail-close").click();
    assert.equal(await page.locator("#example-detail[open]").count(), 0);
    assert.equal(await page.evaluate("location.hash"), "");
  });

  it("restores the filters and the open item from the hash, after a reload and on hashchange", async () => {
    const oversafety = report.rows.find((r) => r.modelId === "always-no")?.paper.oversafety.n ?? -1;
    const first = await page.locator("article.example").first().getAttribute("data-id");
    const url = `${pathToFileURL(path.join(result.reportDir ?? "", "report.html")).href}#examples?model=always-no&wrong=1&item=${first}`;
    await page.goto(url);
    await page.reload();
    assert.equal(await page.locator("#filter-model").inputValue(), "always-no");
    assert.equal(await page.locator("#filter-wrong").isChecked(), true);
    assert.equal(await page.locator("article.example").count(), oversafety);
    assert.equal(
      ((await page.locator("#example-detail[open] #detail-title").textContent()) ?? "").trim(),
      `Item #${first}`,
    );
    await page.evaluate('location.hash = "#examples?category=typical"');
    await page.waitForFunction('document.getElementById("filter-category").value === "typical"');
    assert.equal(await page.locator("#filter-model").inputValue(), "");
    assert.equal(await page.locator("#example-detail[open]").count(), 0, "no item in the hash: closed");
    await page.goto(pathToFileURL(path.join(result.reportDir ?? "", "report.html")).href);
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
    assert.equal(
      await page.locator("#examples script, #examples img[src='x'], #examples-list b:not(.mark)").count(),
      0,
    );
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

/**
 * A generated run of 1,453 items × 3 models (a page built by renderHtml from synthetic verdicts, one real
 * thumbnail shared by every item): at most a page of articles in the DOM, paging, the detail at 390 and
 * 1400 px (screenshots), and the page's size and load time.
 */
describe("HTML report of 1,453 items × 3 models in Chromium", {
  skip: executablePath ? false : NO_CHROMIUM,
}, () => {
  const N = 1453;
  let dir: string;
  let file: string;
  let failingFile: string;
  let browser: Browser;
  let page: Page;
  let wrongOfRandom = 0;
  const errors: string[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "mmsafe-browser-big-"));
    const items: DatasetItem[] = Array.from({ length: N }, (_, i) => ({
      ...datasetItem(1 + (i % 1153) + (i >= 1153 ? 1000 : 0), i % 7 === 0 ? null : `scenario_${i % 40}`),
      id: i + 1,
      sentence: `A sentence of about the usual length for the item number ${i + 1}`,
    }));
    const models = ["always-yes", "always-no", "random"].map((id) => ({
      ...modelConfigSchema.parse({ id, baseURL: "http://127.0.0.1:9/v1", model: id }),
      kind: "baseline" as const,
    }));
    const now = new Date("2025-01-02T03:04:05.000Z");
    const verdicts = models.flatMap((m) =>
      items.map((item, i) => {
        const text = m.id === "always-yes" ? "Yes." : m.id === "always-no" ? "No." : i % 2 ? "Yes." : "No.";
        return buildVerdict(
          "run-big",
          m.id,
          "baseline",
          item,
          {
            kind: "answer",
            text: `${text} ${"Because of what the image shows. ".repeat(i % 5)}`,
            finishReason: "stop",
            latencyMs: 100 + i,
            promptTokens: 900,
            completionTokens: 5,
            attempts: 1,
            cached: false,
          },
          now,
        );
      }),
    );
    wrongOfRandom = verdicts.filter((v) => v.modelId === "random" && v.correctPaper !== true).length;
    const report = buildReport({
      version: "0.1.0-test",
      runId: "run-big",
      startedAt: "2025-01-02T03:00:00.000Z",
      finishedAt: now.toISOString(),
      dataset: {
        name: "generated",
        provenance: { kind: "sample", size: "full", seed: 0 },
        checksum: "d".repeat(64),
        records: N,
        runnable: N,
        skipped: [],
      },
      plannedItems: N,
      models,
      strategies: ["baseline"],
      rows: models.map((m) =>
        computeRow(
          m,
          "baseline",
          verdicts.filter((v) => v.modelId === m.id),
          N,
        ),
      ),
    });
    const pixels = Buffer.alloc(320 * 240 * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7) % 251;
    const thumb = await thumbnailDataUrl(
      await sharp(pixels, { raw: { width: 320, height: 240, channels: 3 } })
        .png()
        .toBuffer(),
    );
    file = path.join(dir, "report.html");
    await writeFile(
      file,
      renderHtml({
        report,
        items,
        verdicts,
        thumbnails: new Map(items.map((it) => [it.id, thumb])),
        charts: [],
      }),
    );
    // The same run with a fourth model whose endpoint was unreachable: every verdict a connection error.
    const unreachable = {
      ...modelConfigSchema.parse({ id: "unreachable", baseURL: "http://127.0.0.1:9/v1", model: "m" }),
    };
    const failedVerdicts = items.map((item) =>
      buildVerdict(
        "run-big",
        unreachable.id,
        "baseline",
        item,
        {
          kind: "error",
          errorKind: "connection",
          message: "connect ECONNREFUSED 127.0.0.1:9",
          latencyMs: 3,
          attempts: 4,
        },
        now,
      ),
    );
    const failingRows = [...report.rows, computeRow(unreachable, "baseline", failedVerdicts, N)];
    failingFile = path.join(dir, "failing.html");
    await writeFile(
      failingFile,
      renderHtml({
        report: {
          ...report,
          run: {
            ...report.run,
            models: [
              ...report.run.models,
              {
                id: "unreachable",
                model: "m",
                kind: "model",
                provider: "openai",
                baseURL: "http://127.0.0.1:9/v1",
              },
            ],
          },
          rows: failingRows,
          completion: runCompletion(failingRows, [...verdicts, ...failedVerdicts]),
        },
        items,
        verdicts: [...verdicts, ...failedVerdicts],
        thumbnails: new Map(items.map((it) => [it.id, thumb])),
        charts: [],
      }),
    );
    browser = await launchChromium(executablePath);
    page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    await recordProblemsOffline(page, errors);
    const t0 = performance.now();
    await page.goto(pathToFileURL(file).href);
    const loaded = performance.now() - t0;
    console.log(
      `report.html for ${N} items × 3 models: ${((await stat(file)).size / 1e6).toFixed(2)} MB, loaded in ${loaded.toFixed(0)} ms`,
    );
  });

  after(async () => {
    await browser?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const range = async () => ((await page.locator("#page-range").textContent()) ?? "").trim();

  it("fits its headline at 1400 px and shows Total and Balanced on a 390 px phone", async () => {
    await checkHeadlineFits(page, { width: 1400, height: 900 });
  });

  it("opens with the failure banner when a model was unreachable, and its row says 'no answers'", async () => {
    const other = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      await other.goto(pathToFileURL(failingFile).href);
      for (const width of [1400, 390]) {
        await other.setViewportSize({ width, height: 900 });
        const banner = other.locator("#completion[role=alert]");
        const box = await banner.boundingBox();
        assert.ok(
          box && box.y < 450 && box.width > 0,
          `${width} px: the banner is at the top (${JSON.stringify(box)})`,
        );
        const text = (await banner.textContent()) ?? "";
        assert.match(text, /No result for unreachable \/ baseline/);
        assert.match(text, /connection 1,453/);
        assert.match(text, /ECONNREFUSED/);
        assert.match(text, /--run-id run-big/);
        const row = other.locator('#headline tr[data-model="unreachable"] td.no-answers');
        assert.match((await row.textContent()) ?? "", /no answers: 1,453 errors/);
        await other.screenshot({ path: path.join(OUTPUT_DIR, `banner-${width}.png`) });
      }
    } finally {
      await other.close();
    }
  });

  it("renders one page of at most 100 articles and pages through the rest", async () => {
    assert.deepEqual(errors, []);
    assert.equal(await page.locator("article.example").count(), EXAMPLES_PAGE_SIZE);
    assert.equal(await range(), `items 1–100 of ${N}`);
    assert.equal(await page.locator("#page-prev").isDisabled(), true);
    await page.locator("#page-next").click();
    assert.equal(await range(), `items 101–200 of ${N}`);
    assert.equal(await page.locator("article.example").first().getAttribute("data-id"), "101");
    assert.match(await page.evaluate("location.hash"), /^#examples\?page=2$/);
    await page.locator("#filter-model").selectOption("random");
    await page.locator("#filter-wrong").check();
    assert.equal(((await page.locator("#examples-count").textContent()) ?? "").trim(), String(wrongOfRandom));
    assert.equal(await range(), `items 1–100 of ${wrongOfRandom}`, "a filter starts again at page 1");
    assert.ok((await page.locator("article.example").count()) <= EXAMPLES_PAGE_SIZE);
  });

  it("restores page and item from the hash after a reload, and screenshots the detail at 1400 and 390 px", async () => {
    await page.goto(`${pathToFileURL(file).href}#examples?model=random&page=3&item=983`);
    await page.reload();
    assert.equal(await range(), `items 201–300 of ${N}`);
    assert.equal(await page.locator("article.example").count(), EXAMPLES_PAGE_SIZE);
    const dialog = page.locator("#example-detail[open]");
    assert.equal(((await dialog.locator("#detail-title").textContent()) ?? "").trim(), "Item #983");
    assert.equal(await dialog.locator("li.answer").count(), 3);
    assert.equal(
      await dialog.locator("a.image-link").getAttribute("href"),
      "../../datasets/t/images/983.png",
    );
    await mkdir(OUTPUT_DIR, { recursive: true });
    for (const width of [1400, 390]) {
      await page.setViewportSize({ width, height: 900 });
      await page.screenshot({ path: path.join(OUTPUT_DIR, `detail-${width}.png`) });
      assert.equal(
        await page.evaluate(
          "document.getElementById('example-detail').scrollWidth <= document.getElementById('example-detail').clientWidth",
        ),
        true,
        `${width} px: the detail does not scroll sideways`,
      );
    }
    await page.keyboard.press("Escape");
    assert.equal(await page.locator("#example-detail[open]").count(), 0);
    // The dialog's close event, which rewrites the hash, fires after the dialog is closed: wait for it.
    await page
      .waitForFunction("!location.hash.includes('item=')", undefined, { timeout: 5_000 })
      .catch(() => undefined);
    assert.match(await page.evaluate("location.hash"), /^#examples\?model=random&page=3$/);
    await page.setViewportSize({ width: 390, height: 900 });
    await page.locator("#examples-pager").scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(OUTPUT_DIR, "examples-390.png") });
    assert.deepEqual(errors, []);
  });
});
