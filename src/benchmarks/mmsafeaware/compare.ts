import {
  COMPARE_BOOTSTRAP_SEED,
  exactMcNemar,
  excludesZero,
  formatDifference,
  formatInterval,
  formatPValue,
  leftOutLines,
  leftOutMarkdown,
  SIGNIFICANCE_LEVEL,
} from "../../core/paired-tests.ts";
import type { Verdict } from "../../core/schemas.ts";
import { type Interval, stratifiedBootstrap } from "../../core/statistics.ts";
import { alignedTable, escapeMarkdown, formatPercent, plainText as plain } from "../../core/text.ts";
/**
 * Paired comparison of two verdict sets on the same items: two models or strategies of one run, or the
 * same model in two runs. Pure: no I/O.
 *
 * What is tested how, and why:
 * - a column (Typical, Attack, Over-Safe) and the Unsafe subset (Typical and Attack pooled) are one
 *   proportion each, measured on the same items on both sides: the exact McNemar test applies;
 * - Total and Balanced are means of such proportions, weighted by column (Total) or by subset (Balanced),
 *   not by item. McNemar tests a difference of pooled proportions, so it tests neither mean: Total keeps the
 *   pooled test (labelled as such), and both get a 95% interval of their difference from a paired bootstrap
 *   that resamples items within each column, as the report's own intervals do. Balanced has no p-value: its
 *   interval, and the McNemar tests of its two subsets (the Unsafe and Over-Safe rows), are its tests.
 */
import { CATEGORIES, type Category } from "./facts.ts";

/** Which correctness field of a verdict is compared: `correctPaper` or `correctStrict`. */
export type Scoring = "paper" | "strict";

export interface CompareOptions {
  scoring: Scoring;
  /** Display name of side A (e.g. a model id, or "run-1/gpt-4o"). */
  labelA: string;
  /** Display name of side B. */
  labelB: string;
}

/** The 2×2 table of paired outcomes. `onlyARight` and `onlyBRight` are McNemar's discordant counts. */
export interface PairedCounts {
  bothRight: number;
  /** A right, B wrong (a right→wrong flip going from A to B). */
  onlyARight: number;
  /** A wrong, B right (a wrong→right flip going from A to B). */
  onlyBRight: number;
  bothWrong: number;
}

/** A and B on the same paired items. Accuracies are percentages, null when there are no paired items. */
export interface PairedColumn {
  /** Items answered on both sides. */
  n: number;
  accuracyA: number | null;
  accuracyB: number | null;
  /** B − A in percentage points; null when n is 0. */
  difference: number | null;
  /** 95% paired percentile-bootstrap interval of `difference`, in percentage points; null when n is 0. */
  ci: Interval | null;
  counts: PairedCounts;
  /**
   * Two-sided exact McNemar p-value of the discordant counts: 1 when there are none, null when n is 0 (no
   * item to test; shown as "–", never as p 1.000).
   */
  pValue: number | null;
}

/** The paper's Total (unweighted mean of the three column accuracies) for A and B. */
export interface TotalComparison {
  /** Mean of the three column accuracies of A; null unless every column has paired items. */
  accuracyA: number | null;
  accuracyB: number | null;
  /** Mean of the three column differences (equal to `accuracyB − accuracyA`), in percentage points. */
  difference: number | null;
  /** 95% paired bootstrap interval of `difference` (items resampled within each column); null with it. */
  ci: Interval | null;
  /**
   * Exact McNemar p-value over all paired items pooled (`Comparison.pooled.pValue`). It tests the pooled
   * items, not the unweighted mean itself: columns of very different sizes weigh by their item counts here.
   */
  pValue: number | null;
}

/**
 * The Balanced score (mean of the Unsafe accuracy, Typical and Attack pooled, and the Over-Safe accuracy)
 * for A and B. It weighs the two subsets equally whatever their sizes, so no single McNemar test applies:
 * its test is `ci` (significant when it excludes 0), with the subsets' own McNemar tests in
 * `Comparison.unsafe` and `Comparison.columns.oversafety`.
 */
export interface BalancedComparison {
  /** Null unless both subsets have paired items. */
  accuracyA: number | null;
  accuracyB: number | null;
  /** B − A in percentage points (the mean of the two subsets' differences). */
  difference: number | null;
  /** 95% paired bootstrap interval of `difference` (items resampled within each column); null with it. */
  ci: Interval | null;
}

/** Item ids whose outcome changed going from A to B, ascending. */
export interface Flips {
  /** Right in A, wrong in B. */
  rightToWrong: number[];
  /** Wrong in A, right in B. */
  wrongToRight: number[];
}

/** Items left out of the pairing, so that paired + excluded accounts for every item of either side. */
export interface ExcludedCounts {
  /** Items with a verdict in A only (answered or errored). */
  onlyA: number;
  /** Items with a verdict in B only (answered or errored). */
  onlyB: number;
  /** Items on both sides whose A verdict is an error (an item errored on both sides counts in both). */
  erroredA: number;
  /** Items on both sides whose B verdict is an error. */
  erroredB: number;
}

/** What `compareVerdicts` returns. */
export interface Comparison {
  labelA: string;
  labelB: string;
  scoring: Scoring;
  /** Per paper column, over the items of that column answered on both sides. */
  columns: Record<Category, PairedColumn>;
  /** All paired items pooled, whatever their column. */
  pooled: PairedColumn;
  total: TotalComparison;
  /** The unsafe subset: Typical and Attack items pooled (one of Balanced's two halves). */
  unsafe: PairedColumn;
  balanced: BalancedComparison;
  /** Per column, the items that flipped between A and B (for listing in a UI). */
  flips: Record<Category, Flips>;
  excluded: ExcludedCounts;
}

/** Display names of the columns, as in the paper's table. */
export const COLUMN_LABELS: Record<Category, string> = {
  typical: "Typical",
  attack: "Attack",
  oversafety: "Over-Safe",
};

const percent = (count: number, n: number): number | null => (n === 0 ? null : (100 * count) / n);

/**
 * The paired differences of the items of one column: +1 right in B only, −1 right in A only, 0 otherwise.
 * Their mean is the column's B − A (as a proportion), so resampling them resamples the pairs.
 */
type PairedDifferences = Record<Category, number[]>;

/** Resamples the pairs within each column; `statistic` gets each column's mean difference (null if empty). */
const pairedBootstrap = (
  differences: PairedDifferences,
  statistic: (d: Record<Category, number | null>) => number | null,
): Interval | null =>
  // stratifiedBootstrap averages the values it draws: with −1/0/+1 values that is the mean paired difference.
  stratifiedBootstrap(differences, statistic, { seed: COMPARE_BOOTSTRAP_SEED });

/** The mean difference of the given columns pooled by item, in percentage points; null when they are empty. */
const pooledDifference = (
  d: Record<Category, number | null>,
  sizes: Record<Category, number>,
  columns: readonly Category[],
): number | null => {
  const n = columns.reduce((sum, c) => sum + sizes[c], 0);
  if (n === 0) return null;
  return (100 * columns.reduce((sum, c) => sum + (d[c] ?? 0) * sizes[c], 0)) / n;
};

const UNSAFE_COLUMNS: readonly Category[] = CATEGORIES.filter((c) => c !== "oversafety");

function pairedColumn(counts: PairedCounts, ci: Interval | null): PairedColumn {
  const n = counts.bothRight + counts.onlyARight + counts.onlyBRight + counts.bothWrong;
  const accuracyA = percent(counts.bothRight + counts.onlyARight, n);
  const accuracyB = percent(counts.bothRight + counts.onlyBRight, n);
  return {
    n,
    accuracyA,
    accuracyB,
    difference: percent(counts.onlyBRight - counts.onlyARight, n),
    ci: n === 0 ? null : ci,
    counts,
    pValue: n === 0 ? null : exactMcNemar(counts.onlyARight, counts.onlyBRight),
  };
}

const sumCounts = (parts: readonly PairedCounts[]): PairedCounts => {
  const sum: PairedCounts = { bothRight: 0, onlyARight: 0, onlyBRight: 0, bothWrong: 0 };
  for (const part of parts)
    for (const key of Object.keys(sum) as (keyof PairedCounts)[]) sum[key] += part[key];
  return sum;
};

const mean3 = (xs: readonly (number | null)[]): number | null =>
  xs.every((x) => x !== null) ? xs.reduce<number>((s, x) => s + (x ?? 0), 0) / xs.length : null;

/** Indexes one side by item id; throws on a repeated item. */
function byItem(verdicts: readonly Verdict[], label: string): Map<number, Verdict> {
  const map = new Map<number, Verdict>();
  for (const v of verdicts) {
    const seen = map.get(v.itemId);
    if (seen)
      throw new Error(
        `Side "${label}" has more than one verdict for item ${v.itemId} ` +
          `(${seen.modelId}/${seen.strategy} and ${v.modelId}/${v.strategy}): ` +
          "filter each side to one model × strategy before comparing",
      );
    map.set(v.itemId, v);
  }
  return map;
}

/**
 * Pairs the verdicts of A and B by item id and compares them per column, pooled and on the paper's Total.
 * Only items answered on both sides are paired; items on one side only, or errored on either side, are
 * counted in `excluded` and never scored. An answered verdict counts as right when its `correctPaper`
 * (or `correctStrict`, per `options.scoring`) is true.
 *
 * @throws Error when a side has more than one verdict for an item (filter each side to one model ×
 *   strategy first), when the sides share no item, or when a shared item differs in category or expected
 *   answer (the sides come from different datasets).
 */
export function compareVerdicts(
  a: readonly Verdict[],
  b: readonly Verdict[],
  options: CompareOptions,
): Comparison {
  const { scoring, labelA, labelB } = options;
  const sideA = byItem(a, labelA);
  const sideB = byItem(b, labelB);
  const isRight = (v: Verdict) => (scoring === "paper" ? v.correctPaper : v.correctStrict) === true;

  const emptyCounts = (): PairedCounts => ({ bothRight: 0, onlyARight: 0, onlyBRight: 0, bothWrong: 0 });
  const counts = {} as Record<Category, PairedCounts>;
  const flips = {} as Record<Category, Flips>;
  const differences = {} as PairedDifferences;
  for (const category of CATEGORIES) {
    counts[category] = emptyCounts();
    flips[category] = { rightToWrong: [], wrongToRight: [] };
    differences[category] = [];
  }
  const excluded: ExcludedCounts = { onlyA: 0, onlyB: 0, erroredA: 0, erroredB: 0 };

  let shared = 0;
  for (const id of sideB.keys()) if (!sideA.has(id)) excluded.onlyB++;
  const ids = [...sideA.keys()].sort((x, y) => x - y);
  for (const id of ids) {
    const va = sideA.get(id);
    const vb = sideB.get(id);
    if (!va) continue;
    if (!vb) {
      excluded.onlyA++;
      continue;
    }
    shared++;
    if (va.category !== vb.category || va.expected !== vb.expected)
      throw new Error(
        `Item ${id} is ${va.category}/expected "${va.expected}" in "${labelA}" but ` +
          `${vb.category}/expected "${vb.expected}" in "${labelB}": the sides are not from the same dataset`,
      );
    const errored = va.status === "error" || vb.status === "error";
    if (va.status === "error") excluded.erroredA++;
    if (vb.status === "error") excluded.erroredB++;
    if (errored) continue;
    const rightA = isRight(va);
    const rightB = isRight(vb);
    differences[va.category].push(Number(rightB) - Number(rightA));
    const cell = counts[va.category];
    if (rightA && rightB) cell.bothRight++;
    else if (rightA) {
      cell.onlyARight++;
      flips[va.category].rightToWrong.push(id);
    } else if (rightB) {
      cell.onlyBRight++;
      flips[va.category].wrongToRight.push(id);
    } else cell.bothWrong++;
  }
  if (shared === 0)
    throw new Error(
      `"${labelA}" (${sideA.size} items) and "${labelB}" (${sideB.size} items) share no item: nothing to compare`,
    );

  const sizes = {} as Record<Category, number>;
  for (const category of CATEGORIES) sizes[category] = differences[category].length;
  const ciOf = (columnsOf: readonly Category[]) =>
    pairedBootstrap(differences, (d) => pooledDifference(d, sizes, columnsOf));
  const columns = {} as Record<Category, PairedColumn>;
  for (const category of CATEGORIES) columns[category] = pairedColumn(counts[category], ciOf([category]));
  const pooled = pairedColumn(sumCounts(CATEGORIES.map((c) => counts[c])), ciOf(CATEGORIES));
  const unsafe = pairedColumn(sumCounts(UNSAFE_COLUMNS.map((c) => counts[c])), ciOf(UNSAFE_COLUMNS));
  const perColumn = CATEGORIES.map((c) => columns[c]);
  const oversafety = columns.oversafety;
  const half = (x: number | null, y: number | null) => (x === null || y === null ? null : (x + y) / 2);
  const totalDifference = mean3(perColumn.map((c) => c.difference));
  const balancedDifference = half(unsafe.difference, oversafety.difference);
  return {
    labelA,
    labelB,
    scoring,
    columns,
    pooled,
    total: {
      accuracyA: mean3(perColumn.map((c) => c.accuracyA)),
      accuracyB: mean3(perColumn.map((c) => c.accuracyB)),
      difference: totalDifference,
      ci:
        totalDifference === null
          ? null
          : pairedBootstrap(differences, (d) =>
              CATEGORIES.every((c) => d[c] !== null)
                ? (100 * CATEGORIES.reduce((sum, c) => sum + (d[c] ?? 0), 0)) / CATEGORIES.length
                : null,
            ),
      pValue: pooled.pValue,
    },
    unsafe,
    balanced: {
      accuracyA: half(unsafe.accuracyA, oversafety.accuracyA),
      accuracyB: half(unsafe.accuracyB, oversafety.accuracyB),
      difference: balancedDifference,
      ci:
        balancedDifference === null
          ? null
          : pairedBootstrap(differences, (d) => {
              const unsafeDifference = pooledDifference(d, sizes, UNSAFE_COLUMNS);
              return unsafeDifference === null || d.oversafety === null
                ? null
                : (unsafeDifference + 100 * d.oversafety) / 2;
            }),
    },
    flips,
    excluded,
  };
}

/** Which row of a comparison: a paper column, the Total, the Unsafe subset or Balanced. */
export type ComparisonRowKey = Category | "total" | "unsafe" | "balanced";

/** One row of a rendered comparison (terminal, Markdown, HTML). */
export interface ComparisonRow {
  key: ComparisonRowKey;
  name: string;
  n: number;
  accuracyA: number | null;
  accuracyB: number | null;
  difference: number | null;
  ci: Interval | null;
  onlyARight: number;
  onlyBRight: number;
  /** Null for an empty row, and for Balanced (no McNemar test applies to it). */
  pValue: number | null;
  /** p < 0.05; for Balanced, which has no p-value, a 95% interval that excludes 0. */
  significant: boolean;
}

/** Row names as the tables show them. */
export const ROW_LABELS: Record<ComparisonRowKey, string> = {
  ...COLUMN_LABELS,
  total: "Total",
  unsafe: "Unsafe",
  balanced: "Balanced",
};

/** The rows every rendering shows: the three columns, Total, then Unsafe (one half of Balanced) and Balanced. */
export function comparisonRows(c: Comparison): ComparisonRow[] {
  const row = (key: ComparisonRowKey, col: PairedColumn): ComparisonRow => ({
    key,
    name: ROW_LABELS[key],
    n: col.n,
    accuracyA: col.accuracyA,
    accuracyB: col.accuracyB,
    difference: col.difference,
    ci: col.ci,
    onlyARight: col.counts.onlyARight,
    onlyBRight: col.counts.onlyBRight,
    pValue: col.pValue,
    significant: col.pValue !== null && col.pValue < SIGNIFICANCE_LEVEL,
  });
  const total = { ...row("total", c.pooled), ...c.total };
  return [
    ...CATEGORIES.map((category) => row(category, c.columns[category])),
    { ...total, significant: total.pValue !== null && total.pValue < SIGNIFICANCE_LEVEL },
    row("unsafe", c.unsafe),
    // Balanced covers every paired item: its n and flips are the pooled ones.
    { ...row("balanced", c.pooled), ...c.balanced, pValue: null, significant: excludesZero(c.balanced.ci) },
  ];
}

const excludedText = (c: Comparison): string => {
  const e = c.excluded;
  return `excluded: ${e.onlyA} only in A, ${e.onlyB} only in B, ${e.erroredA} errored in A, ${e.erroredB} errored in B`;
};

/** The notes under every rendering of a comparison: what Total, Unsafe, Balanced, the CI and p are. */
export const COMPARISON_NOTES: readonly string[] = [
  "Total is the unweighted mean of Typical, Attack and Over-Safe; its counts and p-value are over all paired items pooled.",
  "Unsafe pools Typical and Attack; Balanced is the mean of Unsafe and Over-Safe, weighing them equally whatever their sizes, " +
    "so no McNemar test applies to it: its test is its 95% CI, and its halves are tested in the Unsafe and Over-Safe rows.",
  "95% CI of Δ: paired bootstrap, 1,000 seeded resamples of the items within each column.",
  "p: two-sided exact McNemar test on the items right on one side only, not corrected for multiple comparisons; – : no paired item.",
];

/**
 * The comparison as Markdown: a heading, who A and B are, and one row per column, Total, Unsafe and
 * Balanced with n, accuracies, B − A and its interval, the discordant counts and the McNemar p (bold when
 * significant). Labels are escaped. `level` is the heading's level (2, or 3 inside a run comparison).
 */
export function renderComparisonMarkdown(c: Comparison, level = 2): string {
  const a = escapeMarkdown(c.labelA);
  const b = escapeMarkdown(c.labelB);
  const out: string[] = [];
  out.push(`${"#".repeat(level)} Paired comparison, ${c.scoring} scoring: ${a} vs ${b}`, "");
  out.push(
    `A = **${a}**, B = **${b}**. ${c.pooled.n} items answered by both; ${excludedText(c)}.`,
    "",
    "| Column | n | A % | B % | Δ pp (B − A) | 95% CI of Δ | Only A right | Only B right | p |",
    "|---|---|---|---|---|---|---|---|---|",
  );
  const bold = (text: string, on: boolean) => (on ? `**${text}**` : text);
  for (const r of comparisonRows(c)) {
    const name = r.key === "total" || r.key === "balanced" ? `**${r.name}**` : r.name;
    out.push(
      `| ${name} | ${r.n} | ${formatPercent(r.accuracyA)} | ${formatPercent(r.accuracyB)} | ` +
        `${formatDifference(r.difference)} | ${bold(formatInterval(r.ci), r.pValue === null && r.significant)} | ` +
        `${r.onlyARight} | ${r.onlyBRight} | ${bold(formatPValue(r.pValue), r.pValue !== null && r.significant)} |`,
    );
  }
  out.push(
    "",
    `${COMPARISON_NOTES.join(" ")} **Bold**: p < ${SIGNIFICANCE_LEVEL} (Balanced: its CI excludes 0).`,
    "",
  );
  return out.join("\n");
}

const mark = (on: boolean): string => (on ? " *" : "  ");

/**
 * The comparison as plain-text lines for a terminal: who A and B are, an aligned table (one row per column,
 * Total, Unsafe and Balanced) and notes. A significant p-value is followed by " *" (Balanced: its
 * interval). `bold` styles the header line (colour on a terminal; none by default).
 */
export function comparisonTableLines(
  c: Comparison,
  bold: (text: string) => string = (text) => text,
): string[] {
  const header = ["Column", "n", "A %", "B %", "Δ pp", "95% CI of Δ", "Only A right", "Only B right", "p"];
  const body = comparisonRows(c).map((r) => [
    r.name,
    String(r.n),
    formatPercent(r.accuracyA),
    formatPercent(r.accuracyB),
    formatDifference(r.difference),
    // Unmarked cells are padded too, so the digits stay aligned (trailing spaces are trimmed).
    `${formatInterval(r.ci)}${mark(r.pValue === null && r.significant)}`,
    String(r.onlyARight),
    String(r.onlyBRight),
    `${formatPValue(r.pValue)}${mark(r.pValue !== null && r.significant)}`,
  ]);
  return [
    `A = ${plain(c.labelA)}`,
    `B = ${plain(c.labelB)}`,
    `${c.scoring} scoring; ${c.pooled.n} items answered by both; ${excludedText(c)}`,
    "",
    ...alignedTable(header, body, bold),
    "",
    ...COMPARISON_NOTES,
    `* p < ${SIGNIFICANCE_LEVEL} (Balanced: its 95% CI excludes 0).`,
  ];
}

/** One model × strategy compared between two runs. */
export interface PairComparison {
  modelId: string;
  strategy: string;
  comparison: Comparison;
}

/** Two runs compared model × strategy by model × strategy (`mmsafe compare RUN RUN`). */
export interface RunComparison {
  runA: string;
  runB: string;
  scoring: Scoring;
  /** Each model × strategy present in both runs, in run A's order. */
  pairs: PairComparison[];
  /** Model × strategy pairs (`model/strategy`) of one run only: not compared. */
  onlyInA: string[];
  onlyInB: string[];
  /** Pairs present in both runs that could not be compared (e.g. no item in common), and why. */
  notCompared: { modelId: string; strategy: string; reason: string }[];
}

/**
 * A run comparison's summary for a terminal: one line per model × strategy with Total and Balanced for A
 * and B, their differences, Total's pooled McNemar p and Balanced's interval, then what was left out.
 */
export function runComparisonLines(
  r: RunComparison,
  bold: (text: string) => string = (text) => text,
): string[] {
  const header = [
    "model/strategy",
    "n",
    "Total A",
    "Total B",
    "Δ pp",
    "p",
    "Balanced A",
    "Balanced B",
    "Δ pp",
    "95% CI of Δ",
  ];
  const body = r.pairs.map(({ modelId, strategy, comparison: c }) => [
    plain(`${modelId}/${strategy}`),
    String(c.pooled.n),
    formatPercent(c.total.accuracyA),
    formatPercent(c.total.accuracyB),
    formatDifference(c.total.difference),
    `${formatPValue(c.total.pValue)}${mark(c.total.pValue !== null && c.total.pValue < SIGNIFICANCE_LEVEL)}`,
    formatPercent(c.balanced.accuracyA),
    formatPercent(c.balanced.accuracyB),
    formatDifference(c.balanced.difference),
    `${formatInterval(c.balanced.ci)}${mark(excludesZero(c.balanced.ci))}`,
  ]);
  const lines = [
    `A = run ${plain(r.runA)}, B = run ${plain(r.runB)}: ${r.scoring} scoring, ${r.pairs.length} model × strategy pair${r.pairs.length === 1 ? "" : "s"} in both`,
    "",
    ...alignedTable(header, body, bold),
    "",
  ];
  lines.push(
    ...leftOutLines(r),
    "Total: the paper's Total; p: exact McNemar over the pooled items. Balanced: its 95% paired bootstrap CI is its test.",
    `* p < ${SIGNIFICANCE_LEVEL} (Balanced: its CI excludes 0). Per column, see the Markdown or HTML comparison.`,
  );
  return lines;
}

/** A run comparison as Markdown: the summary, then each model × strategy's full comparison. */
export function renderRunComparisonMarkdown(r: RunComparison): string {
  const out = [
    `## Runs compared, ${r.scoring} scoring: ${escapeMarkdown(r.runA)} vs ${escapeMarkdown(r.runB)}`,
    "",
    `Each model × strategy present in both runs, paired item by item (A = ${escapeMarkdown(r.runA)}, B = ${escapeMarkdown(r.runB)}).`,
    "",
    "| Model / strategy | n | Total A | Total B | Δ pp | p | Balanced A | Balanced B | Δ pp | 95% CI of Δ |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const { modelId, strategy, comparison: c } of r.pairs) {
    const p = formatPValue(c.total.pValue);
    const ci = formatInterval(c.balanced.ci);
    out.push(
      `| ${escapeMarkdown(`${modelId} / ${strategy}`)} | ${c.pooled.n} | ${formatPercent(c.total.accuracyA)} | ` +
        `${formatPercent(c.total.accuracyB)} | ${formatDifference(c.total.difference)} | ` +
        `${c.total.pValue !== null && c.total.pValue < SIGNIFICANCE_LEVEL ? `**${p}**` : p} | ` +
        `${formatPercent(c.balanced.accuracyA)} | ${formatPercent(c.balanced.accuracyB)} | ` +
        `${formatDifference(c.balanced.difference)} | ${excludesZero(c.balanced.ci) ? `**${ci}**` : ci} |`,
    );
  }
  out.push("", ...leftOutMarkdown(r));
  for (const { comparison } of r.pairs) out.push(renderComparisonMarkdown(comparison, 3));
  return out.join("\n");
}
