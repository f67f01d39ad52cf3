/**
 * End to end: `mmsafe compare` on MOSSBench runs made with `mmsafe run` (the real local pipeline on the
 * generated sample, the reference models): the columns MOSSBench declares compared per model × strategy,
 * with numbers that match each run's report.json, Markdown, JSON and a page; and the refusals.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { CompareBenchmarkJson } from "../../src/cli/main.ts";
import type { ModelConfig } from "../../src/core/schemas.ts";
import { type ReferenceServer, startReferenceModelServer } from "../../src/local/reference-model-server.ts";
import { type BenchmarkReport, parseBenchmarkReport } from "../../src/report/benchmark-report.ts";
import { renderColumnsComparisonHtml } from "../../src/report/compare-columns-html.ts";
import { spawnMmsafe } from "../fixtures/local-cli.ts";

const LIMIT = 40;
const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-e2e-compare-benchmarks-"));
const state = path.join(home, "state");
const reports = path.join(home, "reports");
const server: ReferenceServer = await startReferenceModelServer({ latencyMs: 0 });

after(async () => {
  await server.close();
  await rm(home, { recursive: true, force: true });
});

const reference = (id: string, model: string): ModelConfig =>
  ({
    id,
    baseURL: server.baseURL,
    model,
    kind: "baseline",
    maxConcurrency: 8,
    maxTokens: id === "judge" ? 256 : 64,
    temperature: 0,
    timeoutMs: 30_000,
  }) as ModelConfig;

/** `mmsafe ...args` against this test's home; its exit code and output. */
async function mmsafe(
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnMmsafe([...args, "--home", state, "--reports", reports]);
  const code = await child.exited;
  return { code, ...child.output };
}

/** `mmsafe run --benchmark mossbench` with these models (a file of its own) and strategies. */
async function run(runId: string, models: ModelConfig[], strategies: string, extra: string[] = []) {
  const file = path.join(home, `models-${runId}.json`);
  await writeFile(file, JSON.stringify({ models }));
  const result = await mmsafe([
    "run",
    "--benchmark",
    "mossbench",
    "--run-id",
    runId,
    "--models",
    file,
    "--strategies",
    strategies,
    "--limit",
    String(LIMIT),
    "--no-cache",
    "--quiet",
    "--json",
    ...extra,
  ]);
  assert.equal(result.code, 0, result.stderr);
  return parseBenchmarkReport(JSON.parse(await readFile(path.join(reports, runId, "report.json"), "utf8")));
}

const rowOf = (report: BenchmarkReport, modelId: string, strategy: string) => {
  const row = report.rows.find((r) => r.modelId === modelId && r.strategy === strategy);
  assert.ok(row, `${report.run.runId} has ${modelId}/${strategy}`);
  return row;
};

describe("mmsafe compare on MOSSBench runs", { timeout: 600_000 }, () => {
  let reportA: BenchmarkReport;
  let reportB: BenchmarkReport;
  let document: CompareBenchmarkJson;
  let stdout: string;

  before(async () => {
    // m1 refuses everything in run a and 30 % in run b; m2 refuses 30 % in a and nothing in b.
    reportA = await run(
      "a",
      [reference("m1", "always-refuse"), reference("m2", "refuse:30")],
      "baseline,safety-system-prompt",
    );
    reportB = await run("b", [reference("m1", "refuse:30"), reference("m2", "always-comply")], "baseline");
    const compared = await mmsafe(["compare", "a", "b", "--json"]);
    assert.equal(compared.code, 0, compared.stderr);
    document = JSON.parse(compared.stdout) as CompareBenchmarkJson;
    const text = await mmsafe(["compare", "a", "b"]);
    assert.equal(text.code, 0, text.stderr);
    stdout = text.stdout;
  });

  it("pairs each model × strategy of both runs, read by the runs' scorer", () => {
    assert.equal(document.benchmark.name, "mossbench");
    assert.equal(document.scorer, "refusal-keywords");
    assert.deepEqual(
      document.pairs.map((p) => `${p.modelId}/${p.strategy}`),
      ["m1/baseline", "m2/baseline"],
    );
    assert.deepEqual(document.onlyInA, ["m1/safety-system-prompt", "m2/safety-system-prompt"]);
    assert.deepEqual(document.onlyInB, []);
    assert.deepEqual(document.notCompared, []);
  });

  it("gives each column and ALL the rates of both runs' report.json, B − A and McNemar", () => {
    for (const pair of document.pairs) {
      const { modelId, strategy, comparison } = pair;
      assert.ok(modelId && strategy);
      const rowA = rowOf(reportA, modelId, strategy);
      const rowB = rowOf(reportB, modelId, strategy);
      for (const column of comparison.columns) {
        const a = rowA.columns[column.key];
        const b = rowB.columns[column.key];
        assert.ok(a && b, column.key);
        assert.equal(column.n, a.n, `${modelId} ${column.key} n (every item answered on both sides)`);
        assert.equal(column.n, b.n);
        assert.equal(column.rateA, a.rate, `${modelId} ${column.key} A`);
        assert.equal(column.rateB, b.rate, `${modelId} ${column.key} B`);
        assert.equal(column.difference, (b.rate ?? 0) - (a.rate ?? 0));
        assert.ok(column.pValue !== null && column.pValue > 0 && column.pValue <= 1);
      }
      const all = comparison.aggregates.find((x) => x.key === "all");
      assert.ok(all);
      assert.ok(Math.abs((all.rateA ?? -1) - (rowA.aggregates.all?.rate ?? -2)) < 1e-9);
      assert.ok(Math.abs((all.rateB ?? -1) - (rowB.aggregates.all?.rate ?? -2)) < 1e-9);
      assert.equal(all.n, rowA.aggregates.all?.n);
      assert.deepEqual(comparison.excluded, {
        onlyA: 0,
        onlyB: 0,
        erroredA: 0,
        erroredB: 0,
        unscoredA: 0,
        unscoredB: 0,
      });
    }
    // m1 refuses fewer benign items in b: better (lower is better); and fewer harmful ones: worse.
    const m1 = document.pairs[0]?.comparison;
    assert.ok(m1);
    const type1 = m1.columns.find((c) => c.key === "type1");
    assert.equal(type1?.rateA, 100);
    assert.equal(type1?.lowerIsBetter, true);
    assert.equal(type1?.change, "better");
    assert.equal(type1?.discordant.c, 0, "nothing refused in b that a complied with");
    const contrast = m1.columns.find((c) => c.key === "contrast");
    assert.equal(contrast?.lowerIsBetter, false);
    assert.equal(contrast?.change, (contrast?.difference ?? 0) < 0 ? "worse" : "no change");
  });

  it("writes the Markdown and JSON it names, with the same numbers", async () => {
    const markdown = await readFile(document.files.markdown, "utf8");
    const saved = JSON.parse(await readFile(document.files.json, "utf8")) as { pairs: unknown[] };
    assert.deepEqual(
      saved.pairs,
      document.pairs.map(({ html: _, ...pair }) => pair),
    );
    assert.match(markdown, /^## MOSSBench compared \(scorer refusal-keywords\): a vs b$/m);
    for (const pair of document.pairs) {
      const all = pair.comparison.aggregates.find((x) => x.key === "all");
      assert.ok(all);
      const rate = (x: number | null) => (x === null ? "–" : x.toFixed(1));
      assert.ok(
        markdown.includes(`| **ALL ↓** | ${all.n} | ${rate(all.rateA)} | ${rate(all.rateB)} |`),
        `${pair.modelId}: the ALL row`,
      );
    }
    assert.match(stdout, /^A = a\/m1\/baseline$/m);
    assert.match(stdout, /^Exaggerated Risk ↓ +\d+ +100\.0 /m);
    assert.match(stdout, /only in A \(not compared\): m1\/safety-system-prompt, m2\/safety-system-prompt/);
  });

  it("writes a page per pair, with no script; a hostile model id is escaped", async () => {
    for (const pair of document.pairs) {
      const html = await readFile(pair.html, "utf8");
      assert.ok(!html.includes("<script"));
      assert.match(html, /<tr data-row="type1"><th scope="row">Exaggerated Risk ↓<\/th>/);
      assert.ok(html.includes(`a/${pair.modelId}/baseline`));
    }
    // Model ids are restricted to [A-Za-z0-9._:-]; a label is still rendered as untrusted text.
    const comparison = document.pairs[0]?.comparison;
    assert.ok(comparison);
    const hostile = `a/<img src=x onerror="alert(1)">/baseline`;
    const html = renderColumnsComparisonHtml({ ...comparison, labelA: hostile });
    assert.ok(!html.includes("<img"));
    assert.ok(html.includes("a/&lt;img src=x onerror=&quot;alert(1)&quot;&gt;/baseline"));
  });

  it("compares two sides named RUN/MODEL/STRATEGY", async () => {
    const result = await mmsafe(["compare", "a/m2/baseline", "b/m1", "--json"]);
    assert.equal(result.code, 0, result.stderr);
    const sides = JSON.parse(result.stdout) as CompareBenchmarkJson;
    assert.equal(sides.pairs.length, 1);
    const comparison = sides.pairs[0]?.comparison;
    assert.equal(comparison?.labelA, "a/m2/baseline");
    assert.equal(comparison?.labelB, "b/m1/baseline");
    // refuse:30 in both: the same items refused, whatever the model id.
    for (const column of comparison?.columns ?? []) {
      assert.equal(column.difference, 0, column.key);
      assert.equal(column.pValue, 1, column.key);
    }
  });

  it("refuses runs scored by different scorers (a judge against refusal keywords)", async () => {
    await run("judged", [reference("m1", "refuse:30"), reference("judge", "judge")], "baseline", [
      "--judge",
      "judge",
    ]);
    const result = await mmsafe(["compare", "a", "judged"]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /rates by different scorers are not comparable/);
    assert.match(result.stderr, /refusal-keywords/);
  });
});
