/**
 * What every comparison of two sides uses, whatever the benchmark: the exact McNemar test on discordant
 * pairs, the significance level, the bootstrap seed, the words for differences and intervals, and what a
 * run comparison left out.
 */
import type { Interval } from "./statistics.ts";
import { escapeMarkdown, plainText } from "./text.ts";

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

/** Seed of the comparison's bootstrap intervals: the same verdicts always give the same interval. */
export const COMPARE_BOOTSTRAP_SEED = 20250211;

/** Whether an interval of a difference excludes 0 (the difference is significant at 5%). */
export const excludesZero = (ci: Interval | null): boolean => ci !== null && (ci.low > 0 || ci.high < 0);

/** "0.021", "<0.001", "1.000", or an en dash when there was nothing to test. */
export function formatPValue(p: number | null): string {
  if (p === null) return "–";
  return p < 0.001 ? "<0.001" : p.toFixed(3);
}

/** A signed difference in percentage points with one decimal ("+10.0", "-2.5"), or an en dash. */
export function formatDifference(x: number | null): string {
  if (x === null) return "–";
  const text = x.toFixed(1);
  return x > 0 && text !== "0.0" ? `+${text}` : text === "-0.0" ? "0.0" : text;
}

/** An interval of a difference, "[-3.2, +5.1]", or an en dash. */
export function formatInterval(ci: Interval | null): string {
  return ci === null ? "–" : `[${formatDifference(ci.low)}, ${formatDifference(ci.high)}]`;
}

/** What a run comparison left out: model × strategy pairs of one run only, and pairs it could not compare. */
export interface LeftOutPairs {
  /** `model/strategy` of run A only. */
  onlyInA: readonly string[];
  onlyInB: readonly string[];
  notCompared: readonly { modelId: string; strategy: string; reason: string }[];
}

/** The left-out pairs as Markdown paragraphs, each followed by a blank line; labels and reasons escaped. */
export function leftOutMarkdown(r: LeftOutPairs): string[] {
  const out: string[] = [];
  const list = (xs: readonly string[]) => xs.map(escapeMarkdown).join(", ");
  if (r.onlyInA.length > 0) out.push(`Only in A (not compared): ${list(r.onlyInA)}.`, "");
  if (r.onlyInB.length > 0) out.push(`Only in B (not compared): ${list(r.onlyInB)}.`, "");
  for (const n of r.notCompared)
    out.push(
      `Not compared: ${escapeMarkdown(`${n.modelId} / ${n.strategy}`)}: ${escapeMarkdown(n.reason)}.`,
      "",
    );
  return out;
}

/** The left-out pairs as terminal lines, control characters blanked. */
export function leftOutLines(r: LeftOutPairs): string[] {
  const lines: string[] = [];
  if (r.onlyInA.length > 0) lines.push(`only in A (not compared): ${plainText(r.onlyInA.join(", "))}`);
  if (r.onlyInB.length > 0) lines.push(`only in B (not compared): ${plainText(r.onlyInB.join(", "))}`);
  for (const n of r.notCompared)
    lines.push(plainText(`not compared: ${n.modelId}/${n.strategy}: ${n.reason}`));
  return lines;
}
