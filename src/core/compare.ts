/**
 * Paired comparison of two verdict sets on the same items: two models or strategies of one run, or the
 * same model in two runs. Pure: no I/O.
 */
import { CATEGORIES, type Category } from "./benchmark.ts";
import { escapeMarkdown, formatPercent } from "./report.ts";
import type { Verdict } from "./schemas.ts";

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
  counts: PairedCounts;
  /** Two-sided exact McNemar p-value of the discordant counts (1 when there are none). */
  pValue: number;
}

/** The paper's Total (unweighted mean of the three column accuracies) for A and B. */
export interface TotalComparison {
  /** Mean of the three column accuracies of A; null unless every column has paired items. */
  accuracyA: number | null;
  accuracyB: number | null;
  /** Mean of the three column differences (equal to `accuracyB − accuracyA`), in percentage points. */
  difference: number | null;
  /**
   * Exact McNemar p-value over all paired items pooled (`Comparison.pooled.pValue`). It tests the pooled
   * items, not the unweighted mean itself: columns of very different sizes weigh by their item counts here.
   */
  pValue: number;
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

/** p-values below this are marked as significant in the rendered tables. */
export const SIGNIFICANCE_LEVEL = 0.05;

/**
 * Two-sided exact McNemar test: a binomial test of the discordant pairs under Binomial(b + c, ½).
 * `b` = pairs right in A only, `c` = pairs right in B only. Returns min(1, 2·P(X ≤ min(b, c))), and 1 when
 * b + c = 0. Computed in log space, so thousands of discordant pairs stay accurate; a p-value smaller than
 * ~1e-308 underflows to 0.
 */
export function exactMcNemar(b: number, c: number): number {
  for (const [name, x] of [
    ["b", b],
    ["c", c],
  ] as const) {
    if (!Number.isSafeInteger(x) || x < 0)
      throw new RangeError(`exactMcNemar: ${name} must be a non-negative integer, got ${x}`);
  }
  const n = b + c;
  const k = Math.min(b, c);
  if (n === 0 || 2 * k >= n) return 1;
  // log C(n, k) − n·log 2: the largest term of the lower tail (terms grow with i up to n/2).
  let logTerm = -n * Math.LN2;
  for (let i = 1; i <= k; i++) logTerm += Math.log((n - k + i) / i);
  // Σ_{i=0..k} C(n, i) / C(n, k), walking down with C(n, i−1) / C(n, i) = i / (n − i + 1).
  let ratio = 1;
  let sum = 1;
  for (let i = k; i >= 1; i--) {
    ratio *= i / (n - i + 1);
    sum += ratio;
    if (ratio < sum * Number.EPSILON) break;
  }
  return Math.min(1, 2 * Math.exp(logTerm + Math.log(sum)));
}

const percent = (count: number, n: number): number | null => (n === 0 ? null : (100 * count) / n);

function pairedColumn(counts: PairedCounts): PairedColumn {
  const n = counts.bothRight + counts.onlyARight + counts.onlyBRight + counts.bothWrong;
  const accuracyA = percent(counts.bothRight + counts.onlyARight, n);
  const accuracyB = percent(counts.bothRight + counts.onlyBRight, n);
  return {
    n,
    accuracyA,
    accuracyB,
    difference: percent(counts.onlyBRight - counts.onlyARight, n),
    counts,
    pValue: exactMcNemar(counts.onlyARight, counts.onlyBRight),
  };
}

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
  for (const category of CATEGORIES) {
    counts[category] = emptyCounts();
    flips[category] = { rightToWrong: [], wrongToRight: [] };
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

  const columns = {} as Record<Category, PairedColumn>;
  const pooledCounts = emptyCounts();
  for (const category of CATEGORIES) {
    columns[category] = pairedColumn(counts[category]);
    for (const key of Object.keys(pooledCounts) as (keyof PairedCounts)[])
      pooledCounts[key] += counts[category][key];
  }
  const pooled = pairedColumn(pooledCounts);
  const perColumn = CATEGORIES.map((c) => columns[c]);
  return {
    labelA,
    labelB,
    scoring,
    columns,
    pooled,
    total: {
      accuracyA: mean3(perColumn.map((c) => c.accuracyA)),
      accuracyB: mean3(perColumn.map((c) => c.accuracyB)),
      difference: mean3(perColumn.map((c) => c.difference)),
      pValue: pooled.pValue,
    },
    flips,
    excluded,
  };
}

/** "0.021", "<0.001" or "1.000". */
export function formatPValue(p: number): string {
  return p < 0.001 ? "<0.001" : p.toFixed(3);
}

/** A signed difference in percentage points with one decimal ("+10.0", "-2.5"), or an en dash. */
export function formatDifference(x: number | null): string {
  if (x === null) return "–";
  const text = x.toFixed(1);
  return x > 0 && text !== "0.0" ? `+${text}` : text === "-0.0" ? "0.0" : text;
}

interface Row {
  name: string;
  n: number;
  accuracyA: number | null;
  accuracyB: number | null;
  difference: number | null;
  onlyARight: number;
  onlyBRight: number;
  pValue: number;
}

function rows(c: Comparison): Row[] {
  const row = (name: string, col: PairedColumn): Row => ({
    name,
    n: col.n,
    accuracyA: col.accuracyA,
    accuracyB: col.accuracyB,
    difference: col.difference,
    onlyARight: col.counts.onlyARight,
    onlyBRight: col.counts.onlyBRight,
    pValue: col.pValue,
  });
  return [
    ...CATEGORIES.map((category) => row(COLUMN_LABELS[category], c.columns[category])),
    { ...row("Total", c.pooled), ...c.total },
  ];
}

const excludedText = (c: Comparison): string => {
  const e = c.excluded;
  return `excluded: ${e.onlyA} only in A, ${e.onlyB} only in B, ${e.erroredA} errored in A, ${e.erroredB} errored in B`;
};

const TOTAL_NOTE =
  "Total is the unweighted mean of Typical, Attack and Over-Safe; its counts and p-value are over all paired items pooled.";

const P_NOTE = `p: two-sided exact McNemar test on the items right on one side only, not corrected for multiple comparisons`;

/**
 * The comparison as Markdown: a heading, who A and B are, and one row per column plus Total with n,
 * accuracies, B − A, the discordant counts and the McNemar p (bold when p < 0.05). Labels are escaped.
 */
export function renderComparisonMarkdown(c: Comparison): string {
  const a = escapeMarkdown(c.labelA);
  const b = escapeMarkdown(c.labelB);
  const out: string[] = [];
  out.push(`## Paired comparison, ${c.scoring} scoring: ${a} vs ${b}`, "");
  out.push(
    `A = **${a}**, B = **${b}**. ${c.pooled.n} items answered by both; ${excludedText(c)}.`,
    "",
    "| Column | n | A % | B % | Δ pp (B − A) | Only A right | Only B right | p |",
    "|---|---|---|---|---|---|---|---|",
  );
  for (const r of rows(c)) {
    const p = formatPValue(r.pValue);
    const name = r.name === "Total" ? "**Total**" : r.name;
    out.push(
      `| ${name} | ${r.n} | ${formatPercent(r.accuracyA)} | ${formatPercent(r.accuracyB)} | ` +
        `${formatDifference(r.difference)} | ${r.onlyARight} | ${r.onlyBRight} | ` +
        `${r.pValue < SIGNIFICANCE_LEVEL ? `**${p}**` : p} |`,
    );
  }
  out.push("", `${TOTAL_NOTE} ${P_NOTE}; **bold** p < ${SIGNIFICANCE_LEVEL}.`, "");
  return out.join("\n");
}

/** Control characters (newlines, escapes) in a label would break a terminal table. */
const plain = (text: string): string => text.replace(/\p{Cc}/gu, " ");

/**
 * The comparison as plain-text lines for a terminal: who A and B are, an aligned table (one row per
 * column plus Total) and notes. A p-value below 0.05 is followed by " *".
 */
export function comparisonTableLines(c: Comparison): string[] {
  const header = ["Column", "n", "A %", "B %", "Δ pp", "Only A right", "Only B right", "p"];
  const body = rows(c).map((r) => [
    r.name,
    String(r.n),
    formatPercent(r.accuracyA),
    formatPercent(r.accuracyB),
    formatDifference(r.difference),
    String(r.onlyARight),
    String(r.onlyBRight),
    // Pad non-significant values too, so the digits stay aligned (trailing spaces are trimmed).
    `${formatPValue(r.pValue)}${r.pValue < SIGNIFICANCE_LEVEL ? " *" : "  "}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => (cells[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [
    `A = ${plain(c.labelA)}`,
    `B = ${plain(c.labelB)}`,
    `${c.scoring} scoring; ${c.pooled.n} items answered by both; ${excludedText(c)}`,
    "",
    line(header),
    ...body.map(line),
    "",
    TOTAL_NOTE,
    `${P_NOTE}; * p < ${SIGNIFICANCE_LEVEL}.`,
  ];
}
