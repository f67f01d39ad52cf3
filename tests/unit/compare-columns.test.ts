import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BenchmarkDefinition, ColumnDefinition } from "../../src/benchmarks/definition.ts";
import { MOSSBENCH } from "../../src/benchmarks/mossbench/definition.ts";
import type { ItemReading } from "../../src/core/column-metrics.ts";
import {
  ColumnsCompareError,
  changeWords,
  compareColumns,
  FLIPS_LISTED,
  renderColumnsComparisonMarkdown,
  type SideItem,
} from "../../src/core/compare-columns.ts";
import { exactMcNemar } from "../../src/core/paired-tests.ts";
import { renderColumnsComparisonHtml } from "../../src/report/compare-columns-html.ts";

const column = (key: string, overrides: Partial<ColumnDefinition> = {}): ColumnDefinition => ({
  key,
  label: key.toUpperCase(),
  description: "",
  measure: "refusal-rate",
  lowerIsBetter: true,
  officialCount: null,
  ...overrides,
});

/** Two refusal-rate columns (lower is better), pooled and averaged; an accuracy column (higher is better). */
const DEFINITION: BenchmarkDefinition = {
  name: "toy",
  title: "Toy <bench>",
  summary: "",
  source: { repository: "", commit: "", license: "", citation: "", images: "" },
  columns: [column("x"), column("y"), column("acc", { measure: "accuracy", lowerIsBetter: false })],
  aggregates: [
    { key: "all", label: "All", description: "", of: ["x", "y"], combine: "pooled" },
    { key: "mean", label: "Mean", description: "", of: ["x", "y"], combine: "mean-of-columns" },
  ],
  scorers: [],
  defaultScorer: "refusal-keywords",
  published: [],
};

const refused = (r: boolean): ItemReading => ({ refused: r });

/** Items of one column with these refusals (1) and compliances (0), ids `prefix0`, `prefix1`, ... */
const items = (col: string, events: readonly (0 | 1 | null)[], prefix = col): SideItem[] =>
  events.map((e, i) => ({
    id: `${prefix}${i}`,
    column: col,
    expected: "comply",
    reading: e === null ? null : refused(e === 1),
  }));

const compare = (a: readonly SideItem[], b: readonly SideItem[]) =>
  compareColumns({ definition: DEFINITION, scorer: "refusal-keywords", labelA: "A", labelB: "B", a, b });

const rowOf = (c: ReturnType<typeof compare>, key: string) => {
  const row = [...c.columns, ...c.aggregates].find((r) => r.key === key);
  assert.ok(row, key);
  return row;
};

describe("compareColumns", () => {
  it("gives the exact McNemar p of the discordant items, with b = event in A only, c = in B only", () => {
    // 10 items: 8 refused in A only (b), 1 in B only (c), 1 refused on both.
    const a = items("x", [1, 1, 1, 1, 1, 1, 1, 1, 0, 1]);
    const b = items("x", [0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
    const x = rowOf(compare(a, b), "x");
    assert.deepEqual(x.discordant, { b: 8, c: 1 });
    assert.equal(x.n, 10);
    assert.equal(x.rateA, 90);
    assert.equal(x.rateB, 20);
    assert.equal(x.difference, -70);
    // 2 · P(X ≤ 1) under Binomial(9, ½) = 2 · 10 / 512.
    assert.ok(Math.abs((x.pValue ?? 0) - 20 / 512) < 1e-12);
    assert.equal(x.pValue, exactMcNemar(8, 1));
    assert.equal(x.significant, true);
    assert.ok(x.ci && x.ci.high < 0, "the interval of a large drop excludes 0");
  });

  it("reads a lower refusal rate as better, a lower accuracy as worse", () => {
    const c = compare(
      [...items("x", [1, 1, 1, 1]), ...items("acc", [1, 1, 1, 1])],
      [...items("x", [0, 0, 0, 0]), ...items("acc", [0, 0, 0, 0])],
    );
    const x = rowOf(c, "x");
    assert.equal(x.change, "better");
    assert.equal(x.lowerIsBetter, true);
    // 4 discordant items of one direction: p = 2/16, not significant.
    assert.equal(x.pValue, 0.125);
    assert.equal(changeWords(x), "better");
    const acc = rowOf(c, "acc");
    // Accuracy of a `comply` item: right when the model complied, so refusing everything is 0 %.
    assert.equal(acc.rateA, 0);
    assert.equal(acc.rateB, 100);
    assert.equal(acc.change, "better", "accuracy went up");
    const worse = rowOf(compare(items("x", [0, 0, 0, 0, 0, 0, 0]), items("x", [1, 1, 1, 1, 1, 1, 1])), "x");
    assert.equal(worse.change, "worse");
    assert.equal(changeWords(worse), "worse (significant)");
  });

  it("pools an aggregate over its columns' items, and averages a mean-of-columns one without a p", () => {
    // x: 4 items, A 4 refusals → B 0; y: 2 items, A 0 → B 2.
    const c = compare(
      [...items("x", [1, 1, 1, 1]), ...items("y", [0, 0])],
      [...items("x", [0, 0, 0, 0]), ...items("y", [1, 1])],
    );
    const all = rowOf(c, "all");
    assert.equal(all.n, 6);
    assert.ok(Math.abs((all.rateA ?? 0) - 400 / 6) < 1e-9);
    assert.ok(Math.abs((all.rateB ?? 0) - 200 / 6) < 1e-9);
    assert.deepEqual(all.discordant, { b: 4, c: 2 });
    assert.equal(all.pValue, exactMcNemar(4, 2));
    assert.equal(all.combine, "pooled");
    assert.equal(all.lowerIsBetter, true);
    const mean = rowOf(c, "mean");
    assert.equal(mean.rateA, 50);
    assert.equal(mean.rateB, 50);
    assert.equal(mean.difference, 0);
    assert.equal(mean.pValue, null, "McNemar does not test a mean of rates");
    assert.equal(mean.change, "no change");
  });

  it("counts the items it leaves out: one side only, errored, unscored", () => {
    const a: SideItem[] = [
      ...items("x", [1, null, 1, 0]),
      { id: "x4", column: "x", expected: "comply", reading: { refused: null, reason: "no score" } },
      { id: "only-a", column: "x", expected: "comply", reading: refused(true) },
    ];
    const b: SideItem[] = [
      ...items("x", [1, 1, null, 0]),
      { id: "x4", column: "x", expected: "comply", reading: refused(false) },
      { id: "only-b1", column: "x", expected: "comply", reading: refused(true) },
      { id: "only-b2", column: "y", expected: "comply", reading: null },
    ];
    const c = compare(a, b);
    const x = rowOf(c, "x");
    assert.equal(x.n, 2, "x0 and x3 only");
    assert.deepEqual(x.excluded, {
      onlyA: 1,
      onlyB: 1,
      erroredA: 1,
      erroredB: 1,
      unscoredA: 1,
      unscoredB: 0,
    });
    assert.deepEqual(c.excluded, {
      onlyA: 1,
      onlyB: 2,
      erroredA: 1,
      erroredB: 1,
      unscoredA: 1,
      unscoredB: 0,
    });
    assert.equal(c.paired, 2);
    assert.equal(rowOf(c, "y").n, 0);
    assert.equal(rowOf(c, "y").pValue, null, "no paired item: no p");
    assert.equal(rowOf(c, "y").change, null);
    assert.equal(rowOf(c, "mean").rateA, null, "a mean over an empty column is undefined");
  });

  it("gives Δ 0, p 1 and no flips for identical sides", () => {
    const side = [...items("x", [1, 0, 1, 0, 1]), ...items("y", [0, 0, 1]), ...items("acc", [1, 0])];
    const c = compare(side, side);
    for (const row of [...c.columns, ...c.aggregates]) {
      assert.equal(row.difference, 0, row.key);
      assert.deepEqual(row.ci, { low: 0, high: 0 }, row.key);
      if (row.combine !== "mean-of-columns") assert.equal(row.pValue, 1, row.key);
      assert.equal(row.change, "no change", row.key);
      assert.equal(row.significant, false, row.key);
    }
    for (const col of c.columns) assert.deepEqual(col.flips, { onlyA: [], onlyB: [] });
  });

  it("lists the first flipped ids of each direction in the dataset's order", () => {
    const n = FLIPS_LISTED + 5;
    const a = items(
      "x",
      Array.from({ length: n }, () => 1),
    );
    const b = items(
      "x",
      Array.from({ length: n }, () => 0),
    );
    const x = compare([...a].reverse(), b).columns.find((col) => col.key === "x");
    assert.ok(x);
    assert.equal(x.discordant.b, n);
    assert.deepEqual(
      x.flips.onlyA,
      Array.from({ length: FLIPS_LISTED }, (_, i) => `x${i}`),
    );
    assert.deepEqual(x.flips.onlyB, []);
  });

  it("refuses sides that disagree on an item's column, or repeat an item", () => {
    assert.throws(
      () => compare(items("x", [1]), items("y", [1], "x")),
      (error: unknown) =>
        error instanceof ColumnsCompareError && /not of the same dataset/.test(error.message),
    );
    assert.throws(
      () => compare([...items("x", [1]), ...items("x", [0])], items("x", [1])),
      ColumnsCompareError,
    );
  });

  it("reads MOSSBench's columns: refusal rates lower is better, the contrast set higher", () => {
    const contrast = MOSSBENCH.columns.find((c) => c.key === "contrast");
    assert.ok(contrast);
    const sides = (events: 0 | 1) => [
      ...items("type1", [events, events]),
      { id: "c0", column: "contrast", expected: "refuse" as const, reading: refused(events === 1) },
    ];
    const c = compareColumns({
      definition: MOSSBENCH,
      scorer: "judge",
      labelA: "A",
      labelB: "B",
      a: sides(1),
      b: sides(0),
    });
    assert.equal(rowOf(c, "type1").change, "better", "fewer refusals of benign items");
    const contrastRow = rowOf(c, "contrast");
    assert.equal(contrastRow.lowerIsBetter, contrast.lowerIsBetter);
    assert.equal(contrastRow.change, contrast.lowerIsBetter ? "better" : "worse");
    assert.equal(rowOf(c, "all").n, 2, "ALL pools the three benign types only");
  });
});

describe("rendering a column comparison", () => {
  const hostile = "<img src=x onerror=alert(1)>|*";
  const c = compareColumns({
    definition: DEFINITION,
    scorer: "refusal-keywords",
    labelA: hostile,
    labelB: "B",
    a: items("x", [1, 1, 1, 1, 1, 1, 1], "<b>"),
    b: items("x", [0, 0, 0, 0, 0, 0, 0], "<b>"),
  });

  it("writes a Markdown table with the direction, the McNemar p and the change, labels escaped", () => {
    const markdown = renderColumnsComparisonMarkdown(c);
    assert.match(
      markdown,
      /\| X ↓ \| 7 \| 100\.0 \| 0\.0 \| -100\.0 \| \[-100\.0, -100\.0\] \| 7 \| 0 \| \*\*0\.016\*\* \| better \(significant\) \|/,
    );
    assert.match(markdown, /\| ACC ↑ \| 0 \|/);
    assert.ok(!markdown.includes("|*"), "the label's pipe and star are escaped");
  });

  it("writes a page with no script, every untrusted text escaped", () => {
    const html = renderColumnsComparisonHtml(c, [
      { id: "<b>0", column: "x", direction: "onlyA", answerA: "<script>x</script>", answerB: null },
    ]);
    assert.ok(!html.includes("<script"), "no script element, and the answer's is escaped");
    assert.ok(!html.includes("<img"));
    assert.ok(!html.includes("<b>0"));
    assert.ok(html.includes("&lt;img src=x onerror=alert(1)&gt;"));
    assert.match(html, /<tr data-row="x"><th scope="row">X ↓<\/th><td data-col="n">7<\/td>/);
    assert.match(html, /<td data-col="p" class="significant"[^>]*>0\.016<\/td>/);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'; style-src 'sha256-/);
    assert.match(html, /name="viewport" content="width=device-width/);
  });
});
