import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  type Comparison,
  compareVerdicts,
  comparisonTableLines,
  type RunComparison,
  renderComparisonMarkdown,
  renderRunComparisonMarkdown,
  runComparisonLines,
} from "../../src/benchmarks/mmsafeaware/compare.ts";
import type { Category } from "../../src/benchmarks/mmsafeaware/facts.ts";
import {
  exactMcNemar,
  excludesZero,
  formatDifference,
  formatInterval,
  formatPValue,
} from "../../src/core/paired-tests.ts";
import { type Verdict, verdictSchema } from "../../src/core/schemas.ts";

/** Asserts |actual − expected| < epsilon; null fails. */
function assertClose(actual: number | null, expected: number, epsilon = 1e-9): void {
  assert.ok(
    actual !== null && Math.abs(actual - expected) < epsilon,
    `expected ${expected} ± ${epsilon}, got ${actual}`,
  );
}

/** Exact two-sided McNemar p with BigInt binomials: min(1, 2·Σ_{i≤k} C(n, i) / 2^n). */
function bigIntMcNemar(b: number, c: number): number {
  const n = BigInt(b + c);
  const k = BigInt(Math.min(b, c));
  let binomial = 1n;
  let tail = 0n;
  for (let i = 0n; i <= k; i++) {
    if (i > 0n) binomial = (binomial * (n - i + 1n)) / i;
    tail += binomial;
  }
  // 2·tail / 2^n with full relative precision: keep the top 60 bits of tail, and fold the rest into
  // the power of two (split in two factors so neither overflows nor underflows on its own).
  const shift = Math.max(0, tail.toString(2).length - 60);
  const exponent = shift + 1 - Number(n);
  const half = Math.trunc(exponent / 2);
  const p = Number(tail >> BigInt(shift)) * 2 ** half * 2 ** (exponent - half);
  return Math.min(1, p);
}

type Outcome = "right" | "wrong" | "error" | "strict-only-wrong";

/**
 * A schema-valid verdict. "right"/"wrong" set both scorings alike; "strict-only-wrong" is right under
 * paper scoring but wrong under strict scoring (e.g. "No, ..." buried after a preamble).
 */
function verdict(itemId: number, category: Category, outcome: Outcome, modelId = "m"): Verdict {
  const answered = outcome !== "error";
  const paper = outcome === "right" || outcome === "strict-only-wrong";
  const strict = outcome === "right";
  return verdictSchema.parse({
    runId: "r",
    verdictKey: `verdicts/${modelId}/baseline/${itemId}.json`,
    modelId,
    strategy: "baseline",
    itemId,
    category,
    attackType: category === "attack" ? "role_play" : null,
    domain: null,
    scenario: null,
    expected: category === "oversafety" ? "yes" : "no",
    status: answered ? "answered" : "error",
    response: answered ? "text" : null,
    strictAnswer: answered ? "no" : null,
    correctPaper: answered ? paper : null,
    correctStrict: answered ? strict : null,
    finishReason: answered ? "stop" : null,
    error: answered ? null : { kind: "timeout", message: "slow" },
    latencyMs: 1,
    promptTokens: 0,
    completionTokens: 0,
    attempts: 1,
    createdAt: "2025-01-01T00:00:00.000Z",
  });
}

const OPTIONS = { scoring: "paper", labelA: "model-a", labelB: "model-b" } as const;

describe("exactMcNemar", () => {
  it("is 1 without discordant pairs and when they are balanced", () => {
    assert.equal(exactMcNemar(0, 0), 1);
    assert.equal(exactMcNemar(5, 5), 1);
    assert.equal(exactMcNemar(3, 4), 1);
  });

  it("matches hand-computed small cases", () => {
    assertClose(exactMcNemar(0, 5), 0.0625, 1e-15);
    assertClose(exactMcNemar(5, 0), 0.0625, 1e-15);
    assertClose(exactMcNemar(1, 9), 0.021484375, 1e-15);
    assertClose(exactMcNemar(9, 1), 0.021484375, 1e-15);
  });

  it("matches an exact BigInt sum", () => {
    for (const [b, c] of [
      [10, 20],
      [2, 30],
      [40, 60],
      [150, 200],
    ] as const) {
      const expected = bigIntMcNemar(b, c);
      const actual = exactMcNemar(b, c);
      assert.ok(
        Math.abs(actual - expected) <= 1e-12 * expected,
        `(${b}, ${c}): expected ${expected}, got ${actual}`,
      );
    }
  });

  it("stays finite and accurate for thousands of discordant pairs", () => {
    const p = exactMcNemar(1000, 1100);
    assert.ok(Number.isFinite(p) && p > 0 && p <= 1, `got ${p}`);
    const expected = bigIntMcNemar(1000, 1100);
    assert.ok(Math.abs(p - expected) <= 1e-10 * expected, `expected ${expected}, got ${p}`);
    assert.equal(exactMcNemar(2500, 2500), 1);
    const tiny = exactMcNemar(100, 3000);
    assert.ok(Number.isFinite(tiny) && tiny >= 0 && tiny < 1e-100, `got ${tiny}`);
  });

  it("rejects counts that are not non-negative integers", () => {
    assert.throws(() => exactMcNemar(-1, 2), RangeError);
    assert.throws(() => exactMcNemar(1.5, 2), RangeError);
    assert.throws(() => exactMcNemar(1, Number.NaN), RangeError);
  });
});

describe("compareVerdicts", () => {
  // Typical 1–4, attack 11–13, over-safety 21–22.
  const a = [
    verdict(1, "typical", "right"),
    verdict(2, "typical", "right"),
    verdict(3, "typical", "wrong"),
    verdict(4, "typical", "wrong"),
    verdict(11, "attack", "right"),
    verdict(12, "attack", "wrong"),
    verdict(13, "attack", "strict-only-wrong"),
    verdict(21, "oversafety", "right"),
    verdict(22, "oversafety", "right"),
  ];
  const b = [
    verdict(1, "typical", "right", "n"),
    verdict(2, "typical", "wrong", "n"),
    verdict(3, "typical", "right", "n"),
    verdict(4, "typical", "right", "n"),
    verdict(11, "attack", "right", "n"),
    verdict(12, "attack", "right", "n"),
    verdict(13, "attack", "right", "n"),
    verdict(21, "oversafety", "wrong", "n"),
    verdict(22, "oversafety", "right", "n"),
  ];

  it("computes paired accuracies, differences, 2×2 counts and flips", () => {
    const c = compareVerdicts(a, b, OPTIONS);
    assert.equal(c.labelA, "model-a");
    assert.equal(c.scoring, "paper");
    assert.deepEqual(c.columns.typical.counts, { bothRight: 1, onlyARight: 1, onlyBRight: 2, bothWrong: 0 });
    assert.equal(c.columns.typical.n, 4);
    assertClose(c.columns.typical.accuracyA, 50);
    assertClose(c.columns.typical.accuracyB, 75);
    assertClose(c.columns.typical.difference, 25);
    assertClose(c.columns.typical.pValue, 1);

    // Paper scoring: item 13 is right on both sides.
    assert.deepEqual(c.columns.attack.counts, { bothRight: 2, onlyARight: 0, onlyBRight: 1, bothWrong: 0 });
    assertClose(c.columns.attack.accuracyA, 200 / 3);
    assertClose(c.columns.attack.accuracyB, 100);
    assertClose(c.columns.attack.difference, 100 / 3);

    assert.deepEqual(c.columns.oversafety.counts, {
      bothRight: 1,
      onlyARight: 1,
      onlyBRight: 0,
      bothWrong: 0,
    });
    assertClose(c.columns.oversafety.difference, -50);

    assert.deepEqual(c.pooled.counts, { bothRight: 4, onlyARight: 2, onlyBRight: 3, bothWrong: 0 });
    assert.equal(c.pooled.n, 9);
    assertClose(c.pooled.accuracyA, 600 / 9);
    assertClose(c.pooled.accuracyB, 700 / 9);
    assertClose(c.pooled.pValue, 1);

    assertClose(c.total.accuracyA, (50 + 200 / 3 + 100) / 3);
    assertClose(c.total.accuracyB, (75 + 100 + 50) / 3);
    assertClose(c.total.difference, (25 + 100 / 3 - 50) / 3);
    assertClose(c.total.difference, (c.total.accuracyB ?? 0) - (c.total.accuracyA ?? 0));
    assert.equal(c.total.pValue, c.pooled.pValue);

    assert.deepEqual(c.flips, {
      typical: { rightToWrong: [2], wrongToRight: [3, 4] },
      attack: { rightToWrong: [], wrongToRight: [12] },
      oversafety: { rightToWrong: [21], wrongToRight: [] },
    });
    assert.deepEqual(c.excluded, { onlyA: 0, onlyB: 0, erroredA: 0, erroredB: 0 });
  });

  it("compares the Unsafe subset (Typical and Attack pooled) with McNemar, and Balanced as the mean of Unsafe and Over-Safe", () => {
    const c = compareVerdicts(a, b, OPTIONS);
    assert.deepEqual(c.unsafe.counts, { bothRight: 3, onlyARight: 1, onlyBRight: 3, bothWrong: 0 });
    assert.equal(c.unsafe.n, 7);
    assertClose(c.unsafe.accuracyA, 400 / 7);
    assertClose(c.unsafe.accuracyB, 600 / 7);
    assertClose(c.unsafe.pValue, exactMcNemar(1, 3));
    assertClose(c.balanced.accuracyA, (400 / 7 + 100) / 2);
    assertClose(c.balanced.accuracyB, (600 / 7 + 50) / 2);
    assertClose(c.balanced.difference, (200 / 7 - 50) / 2);
    assertClose(c.balanced.difference, (c.balanced.accuracyB ?? 0) - (c.balanced.accuracyA ?? 0));
    // Every interval holds its own estimate, and the same verdicts give the same interval (seeded).
    for (const [name, difference, ci] of [
      ["typical", c.columns.typical.difference, c.columns.typical.ci],
      ["unsafe", c.unsafe.difference, c.unsafe.ci],
      ["total", c.total.difference, c.total.ci],
      ["balanced", c.balanced.difference, c.balanced.ci],
    ] as const) {
      assert.ok(ci && difference !== null, name);
      assert.ok(
        ci.low <= difference + 1e-9 && difference - 1e-9 <= ci.high,
        `${name}: ${difference} in ${ci.low}…${ci.high}`,
      );
    }
    assert.deepEqual(compareVerdicts(a, b, OPTIONS).balanced.ci, c.balanced.ci);
  });

  it("Balanced weighs the subsets equally: its interval, not the pooled McNemar, says whether it moved", () => {
    // 90 unsafe items alike on both sides, 10 over-safety items wrong in A and right in B.
    const unsafeIds = Array.from({ length: 90 }, (_, i) => i + 1);
    const benignIds = Array.from({ length: 10 }, (_, i) => i + 1001);
    const c = compareVerdicts(
      [
        ...unsafeIds.map((id) => verdict(id, "typical", "right")),
        ...benignIds.map((id) => verdict(id, "oversafety", "wrong")),
      ],
      [
        ...unsafeIds.map((id) => verdict(id, "typical", "right", "n")),
        ...benignIds.map((id) => verdict(id, "oversafety", "right", "n")),
      ],
      OPTIONS,
    );
    assertClose(c.balanced.difference, 50);
    assert.deepEqual(c.balanced.ci, { low: 50, high: 50 });
    assert.ok(excludesZero(c.balanced.ci));
    assertClose(c.unsafe.pValue, 1, 1e-12);
    // No attack item was paired: Total (a mean of three columns) is undefined, Balanced is not.
    assert.equal(c.total.difference, null);
    assert.equal(c.total.ci, null);

    const same = compareVerdicts(
      unsafeIds.map((id) => verdict(id, "typical", "right")),
      unsafeIds.map((id) => verdict(id, "typical", id % 2 === 0 ? "wrong" : "right", "n")),
      OPTIONS,
    );
    assert.equal(same.balanced.difference, null, "no over-safety item: no Balanced");
    assert.ok(!excludesZero(same.balanced.ci));
  });

  it("uses correctStrict under strict scoring", () => {
    const c = compareVerdicts(a, b, { ...OPTIONS, scoring: "strict" });
    assert.equal(c.scoring, "strict");
    assert.deepEqual(c.columns.attack.counts, { bothRight: 1, onlyARight: 0, onlyBRight: 2, bothWrong: 0 });
    assertClose(c.columns.attack.accuracyA, 100 / 3);
    assert.deepEqual(c.flips.attack.wrongToRight, [12, 13]);
    assert.deepEqual(c.columns.typical.counts, { bothRight: 1, onlyARight: 1, onlyBRight: 2, bothWrong: 0 });
  });

  it("excludes errored and unmatched items, and counts them", () => {
    const sideA = [
      verdict(1, "typical", "right"),
      verdict(2, "typical", "error"),
      verdict(3, "typical", "error"),
      verdict(4, "typical", "right"),
      verdict(5, "typical", "wrong"),
      verdict(11, "attack", "right"),
    ];
    const sideB = [
      verdict(1, "typical", "wrong"),
      verdict(2, "typical", "right"),
      verdict(3, "typical", "error"),
      verdict(4, "typical", "error"),
      verdict(21, "oversafety", "right"),
      verdict(22, "oversafety", "error"),
    ];
    const c = compareVerdicts(sideA, sideB, OPTIONS);
    assert.deepEqual(c.excluded, { onlyA: 2, onlyB: 2, erroredA: 2, erroredB: 2 });
    assert.equal(c.pooled.n, 1);
    assert.deepEqual(c.columns.typical.counts, { bothRight: 0, onlyARight: 1, onlyBRight: 0, bothWrong: 0 });
    assert.deepEqual(c.flips.typical, { rightToWrong: [1], wrongToRight: [] });
    // Columns without paired items have no accuracy, so neither does the Total.
    assert.equal(c.columns.attack.n, 0);
    assert.equal(c.columns.attack.accuracyA, null);
    assert.equal(c.columns.attack.difference, null);
    // Nothing to test: no p-value (shown "–"), never p = 1.
    assert.equal(c.columns.attack.pValue, null);
    assert.equal(c.columns.attack.ci, null);
    assert.equal(c.columns.oversafety.pValue, null);
    assert.equal(c.total.accuracyA, null);
    assert.equal(c.total.difference, null);
    assert.equal(c.total.ci, null);
    assert.equal(c.balanced.difference, null, "no over-safety item paired: no Balanced");
    assert.equal(c.balanced.ci, null);
  });

  it("finds a significant difference on enough one-sided flips", () => {
    const ids = Array.from({ length: 12 }, (_, i) => i + 1);
    const c = compareVerdicts(
      ids.map((id) => verdict(id, "typical", id <= 2 ? "right" : "wrong")),
      ids.map((id) => verdict(id, "typical", "right")),
      OPTIONS,
    );
    assert.equal(c.columns.typical.counts.onlyBRight, 10);
    assertClose(c.columns.typical.pValue, exactMcNemar(0, 10));
    assert.ok((c.columns.typical.pValue ?? 1) < 0.05);
  });

  it("throws when the sides share no item", () => {
    assert.throws(
      () => compareVerdicts([verdict(1, "typical", "right")], [verdict(2, "typical", "right")], OPTIONS),
      /share no item/,
    );
    assert.throws(() => compareVerdicts([], [], OPTIONS), /share no item/);
  });

  it("throws when a side has two verdicts for one item", () => {
    assert.throws(
      () =>
        compareVerdicts(
          [verdict(1, "typical", "right", "x"), verdict(1, "typical", "wrong", "y")],
          [verdict(1, "typical", "right")],
          OPTIONS,
        ),
      /more than one verdict for item 1.*one model × strategy/,
    );
    assert.throws(
      () =>
        compareVerdicts(
          [verdict(1, "typical", "right")],
          [verdict(1, "typical", "right"), verdict(1, "typical", "right")],
          OPTIONS,
        ),
      /"model-b" has more than one verdict/,
    );
  });

  it("throws when a shared item has a different category", () => {
    assert.throws(
      () => compareVerdicts([verdict(1, "typical", "right")], [verdict(1, "oversafety", "right")], OPTIONS),
      /not from the same dataset/,
    );
  });
});

describe("rendering a comparison", () => {
  const ids = Array.from({ length: 12 }, (_, i) => i + 1);
  const comparison: Comparison = compareVerdicts(
    [
      ...ids.map((id) => verdict(id, "typical", id <= 2 ? "right" : "wrong")),
      verdict(100, "attack", "right"),
      verdict(200, "oversafety", "right"),
    ],
    [
      ...ids.map((id) => verdict(id, "typical", "right")),
      verdict(100, "attack", "right"),
      verdict(200, "oversafety", "wrong"),
    ],
    { scoring: "paper", labelA: "run|1 <a>", labelB: "model_b" },
  );

  it("formats p-values, differences and intervals", () => {
    assert.equal(formatPValue(null), "–");
    assert.equal(formatInterval(null), "–");
    assert.equal(formatInterval({ low: -3.21, high: 5.06 }), "[-3.2, +5.1]");
    assert.equal(formatPValue(1), "1.000");
    assert.equal(formatPValue(0.021484375), "0.021");
    assert.equal(formatPValue(0.0004), "<0.001");
    assert.equal(formatDifference(null), "–");
    assert.equal(formatDifference(12.345), "+12.3");
    assert.equal(formatDifference(-2.5), "-2.5");
    assert.equal(formatDifference(0), "0.0");
    assert.equal(formatDifference(-0.01), "0.0");
  });

  it("renders Markdown with escaped labels, intervals, and bold significant p-values", () => {
    const md = renderComparisonMarkdown(comparison);
    const ci = (x: { ci: Parameters<typeof formatInterval>[0] }) => formatInterval(x.ci);
    assert.ok(md.includes("A = **run\\|1 &lt;a&gt;**, B = **model\\_b**"), md);
    assert.ok(
      md.includes(
        `| Typical | 12 | 16.7 | 100.0 | +83.3 | ${ci(comparison.columns.typical)} | 0 | 10 | **0.002** |`,
      ),
      md,
    );
    assert.ok(md.includes("| Attack | 1 | 100.0 | 100.0 | 0.0 | [0.0, 0.0] | 0 | 0 | 1.000 |"), md);
    assert.ok(md.includes("| Over-Safe | 1 | 100.0 | 0.0 | -100.0 | [-100.0, -100.0] | 1 | 0 | 1.000 |"), md);
    // Total A = mean(16.7, 100, 100) = 72.2; B = mean(100, 100, 0) = 66.7; pooled p = exactMcNemar(1, 10).
    assert.ok(
      md.includes(`| **Total** | 14 | 72.2 | 66.7 | -5.6 | ${ci(comparison.total)} | 1 | 10 | **0.012** |`),
      md,
    );
    // Unsafe: the 13 typical and attack items, 10 wrong → right. Balanced: mean(23.1, 100) vs mean(100, 0).
    assert.ok(
      md.includes(`| Unsafe | 13 | 23.1 | 100.0 | +76.9 | ${ci(comparison.unsafe)} | 0 | 10 | **0.002** |`),
      md,
    );
    const balancedCi = excludesZero(comparison.balanced.ci)
      ? `**${ci(comparison.balanced)}**`
      : ci(comparison.balanced);
    assert.ok(md.includes(`| **Balanced** | 14 | 61.5 | 50.0 | -11.5 | ${balancedCi} | 1 | 10 | – |`), md);
    assert.ok(md.includes("14 items answered by both"), md);
    assert.ok(!md.includes("<a>"), md);
  });

  it("shows an empty column with en dashes, never p 1.000", () => {
    const c = compareVerdicts([verdict(1, "typical", "right")], [verdict(1, "typical", "wrong")], OPTIONS);
    const attack = comparisonTableLines(c).find((l) => l.startsWith("Attack")) ?? "";
    assert.match(attack, /^Attack\s+0\s+–\s+–\s+–\s+–\s+0\s+0\s+–$/);
    assert.doesNotMatch(attack, /1\.000/);
    assert.ok(renderComparisonMarkdown(c).includes("| Attack | 0 | – | – | – | – | 0 | 0 | – |"));
  });

  it("renders aligned terminal lines with a marker on p < 0.05", () => {
    const lines = comparisonTableLines(comparison);
    assert.equal(lines[0], "A = run|1 <a>");
    assert.equal(lines[1], "B = model_b");
    const typical = lines.find((l) => l.startsWith("Typical"));
    const attack = lines.find((l) => l.startsWith("Attack"));
    assert.ok(typical?.endsWith("0.002 *"), typical);
    assert.ok(attack?.endsWith("1.000"), attack);
    // The p digits line up although only one row carries the marker.
    assert.equal(typical?.indexOf("0.002"), attack?.indexOf("1.000"));
    assert.ok(lines.some((l) => l.includes("p < 0.05")));
    // Balanced has no p-value: its interval is its test.
    assert.match(lines.find((l) => l.startsWith("Balanced")) ?? "", /\]( \*)?\s+1\s+10\s+–$/);
    assert.ok(lines.some((l) => l.startsWith("Unsafe")));
  });

  it("styles only the header line, after laying it out", () => {
    const lines = comparisonTableLines(comparison, (text) => `<b>${text}</b>`);
    const header = lines.find((l) => l.startsWith("<b>Column"));
    assert.ok(header?.endsWith("p</b>"), header);
    assert.equal(lines.filter((l) => l.includes("<b>")).length, 1);
  });

  it("summarises two runs model × strategy by model × strategy, naming what was not compared", () => {
    const runs: RunComparison = {
      runA: "nightly-01",
      runB: "nightly-02",
      scoring: "paper",
      pairs: [{ modelId: "m", strategy: "baseline", comparison }],
      onlyInA: ["old/baseline"],
      onlyInB: ["new/vcd"],
      notCompared: [{ modelId: "x", strategy: "vcd", reason: "share no item" }],
    };
    const lines = runComparisonLines(runs);
    assert.equal(
      lines[0],
      "A = run nightly-01, B = run nightly-02: paper scoring, 1 model × strategy pair in both",
    );
    assert.match(
      lines[2] ?? "",
      /^model\/strategy\s+n\s+Total A\s+Total B\s+Δ pp\s+p\s+Balanced A\s+Balanced B\s+Δ pp\s+95% CI of Δ$/,
    );
    assert.match(
      lines[3] ?? "",
      /^m\/baseline\s+14\s+72\.2\s+66\.7\s+-5\.6\s+0\.012 \*\s+61\.5\s+50\.0\s+-11\.5\s+\[/,
    );
    assert.ok(lines.includes("only in A (not compared): old/baseline"));
    assert.ok(lines.includes("only in B (not compared): new/vcd"));
    assert.ok(lines.includes("not compared: x/vcd: share no item"));
    const md = renderRunComparisonMarkdown(runs);
    assert.match(md, /^## Runs compared, paper scoring: nightly-01 vs nightly-02/);
    assert.match(
      md,
      /\| m \/ baseline \| 14 \| 72\.2 \| 66\.7 \| -5\.6 \| \*\*0\.012\*\* \| 61\.5 \| 50\.0 \| -11\.5 \|/,
    );
    assert.match(md, /^### Paired comparison, paper scoring: run\\\|1 &lt;a&gt; vs model\\_b$/m);
    assert.match(md, /Only in A \(not compared\): old\/baseline\./);
  });

  it("keeps control characters out of terminal labels", () => {
    const c = { ...comparison, labelA: "evil\nlabel\u001b[31m" };
    const [first] = comparisonTableLines(c);
    assert.equal(first, "A = evil label [31m");
  });
});
