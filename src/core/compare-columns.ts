/**
 * Paired comparison of two sides of a plug-in benchmark (MOSSBench, VLGuard, your own dataset) over the
 * columns and aggregates its definition declares. Pure: no I/O, and nothing here knows a benchmark by name.
 *
 * Each item's event (a refusal, an attack success, a right answer: see `eventOf` in column-metrics.ts) is
 * read on both sides; only items scored on both sides are paired. A column and a pooled aggregate are one
 * proportion each on the same items, so the exact McNemar test applies; a mean-of-columns aggregate weighs
 * columns, not items, so McNemar tests it not: its test is its paired bootstrap interval (as Balanced in
 * benchmarks/mmsafeaware/compare.ts).
 */
import type {
  AggregateDefinition,
  BenchmarkDefinition,
  ColumnDefinition,
  ColumnMeasure,
  ExpectedBehaviour,
} from "../benchmarks/definition.ts";
import { eventOf, type ItemReading } from "./column-metrics.ts";
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
} from "./paired-tests.ts";
import { type Interval, stratifiedBootstrap } from "./statistics.ts";
import { alignedTable, escapeMarkdown, formatPercent, plainText as plain } from "./text.ts";

/** One item of one side: its column and expected behaviour, and how the side's scorer read its answer. */
export interface SideItem {
  /** The item's record id (stable within the benchmark's dataset). */
  id: string;
  /** The key of the column it counts in. */
  column: string;
  expected: ExpectedBehaviour;
  /** The scorer's reading of the answer; null when the side has no answer (an error verdict). */
  reading: ItemReading | null;
}

/** Items of a column (or aggregate) left out of the pairing, so that paired + excluded covers both sides. */
export interface ExcludedItems {
  /** Items with a verdict on side A only. */
  onlyA: number;
  onlyB: number;
  /** Items on both sides whose A verdict is an error (no answer); an item errored on both counts in both. */
  erroredA: number;
  erroredB: number;
  /** Items on both sides answered on A but not read by A's scorer (a judge reply with no score). */
  unscoredA: number;
  unscoredB: number;
}

/** Item ids whose event changed going from A to B: the first few of each direction, ascending. */
export interface EventFlips {
  /** The event happened in A only (a refusal in A, none in B). */
  onlyA: string[];
  /** The event happened in B only. */
  onlyB: string[];
}

/** How B reads against A given the direction of the rate: better, worse, no change, or nothing to say. */
export type ChangeDirection = "better" | "worse" | "no change";

/** A column or aggregate compared. Rates and differences are in % / percentage points. */
export interface PairedRate {
  key: string;
  label: string;
  /** The column's measure; an aggregate's when all of its columns share one, else null. */
  measure: ColumnMeasure | null;
  /** True where a lower rate is better; null for an aggregate over columns of opposite directions. */
  lowerIsBetter: boolean | null;
  /** Items scored on both sides. */
  n: number;
  rateA: number | null;
  rateB: number | null;
  /** B − A in percentage points; null when there is no paired item. */
  difference: number | null;
  /** 95% paired percentile-bootstrap interval of `difference` (seeded); null with it. */
  ci: Interval | null;
  /** McNemar's discordant counts: b = event in A only, c = event in B only. */
  discordant: { b: number; c: number };
  /**
   * Two-sided exact McNemar p of b and c: 1 when there are none, null when n is 0 and for a mean-of-columns
   * aggregate (McNemar tests pooled items, not a mean of rates).
   */
  pValue: number | null;
  /** p < 0.05 (an aggregate without p: its interval excludes 0). */
  significant: boolean;
  /** Given `lowerIsBetter`; null when n is 0 or the direction is unknown. */
  change: ChangeDirection | null;
  excluded: ExcludedItems;
  /** Aggregates: how they combine their columns; absent for a column. */
  combine?: AggregateDefinition["combine"];
}

/** One column compared, with its flipped items. */
export interface ColumnComparison extends PairedRate {
  /** Items that flipped, the first {@link FLIPS_LISTED} of each direction (counts: `discordant`). */
  flips: EventFlips;
}

/** Two sides of a plug-in benchmark compared column by column. */
export interface ColumnsComparison {
  benchmark: { name: string; title: string };
  labelA: string;
  labelB: string;
  /** The scorer both sides were read by (it must be the same). */
  scorer: string;
  /** In the definition's order. */
  columns: ColumnComparison[];
  aggregates: PairedRate[];
  /** Over every column: items paired, and left out. */
  paired: number;
  excluded: ExcludedItems;
}

/** Flipped item ids listed per column and direction (the counts are always complete). */
export const FLIPS_LISTED = 10;

/** The notes under every rendering of a column comparison. */
export const COLUMN_COMPARISON_NOTES: readonly string[] = [
  "n: items scored on both sides; an item errored, unscored or present on one side only is excluded and counted.",
  "95% CI of Δ: paired bootstrap, 1,000 seeded resamples of the items within each column.",
  "p: two-sided exact McNemar test on the items whose event happened on one side only (b: A only, c: B only), " +
    "not corrected for multiple comparisons; a mean-of-columns aggregate has no p, its test is its CI; – : no paired item.",
  "↓: lower is better, ↑: higher is better; better/worse follow that direction, and are marked significant at p < 0.05.",
];

/** Side items repeat an id, or the sides disagree on an item's column: not one dataset. */
export class ColumnsCompareError extends Error {
  override readonly name = "ColumnsCompareError";
}

const emptyExcluded = (): ExcludedItems => ({
  onlyA: 0,
  onlyB: 0,
  erroredA: 0,
  erroredB: 0,
  unscoredA: 0,
  unscoredB: 0,
});

function byId(items: readonly SideItem[], label: string): Map<string, SideItem> {
  const map = new Map<string, SideItem>();
  for (const item of items) {
    if (map.has(item.id))
      throw new ColumnsCompareError(
        `side "${label}" has more than one verdict for item ${item.id}: filter each side to one model × strategy`,
      );
    map.set(item.id, item);
  }
  return map;
}

/** The event of a side's item: 0/1, "error" without an answer, "unscored" when the scorer could not read it. */
function outcome(column: ColumnDefinition, item: SideItem): 0 | 1 | "error" | "unscored" {
  if (item.reading === null) return "error";
  if ("reason" in item.reading) return "unscored";
  return eventOf(column, item.reading, item.expected) === 1 ? 1 : 0;
}

const percent = (x: number, n: number): number | null => (n === 0 ? null : (100 * x) / n);

function changeOf(
  difference: number | null,
  lowerIsBetter: boolean | null,
  n: number,
): ChangeDirection | null {
  if (difference === null || lowerIsBetter === null || n === 0) return null;
  // Rounded as shown: a difference printed as 0.0 is no change.
  if (Math.abs(difference) < 0.05) return "no change";
  return difference < 0 === lowerIsBetter ? "better" : "worse";
}

/** Per column, what the pairing collects: paired events, −1/0/+1 differences, exclusions, flips. */
interface ColumnPairs {
  definition: ColumnDefinition;
  eventsA: number;
  eventsB: number;
  b: number;
  c: number;
  differences: number[];
  excluded: ExcludedItems;
  flips: EventFlips;
}

function addExcluded(into: ExcludedItems, from: ExcludedItems): void {
  for (const key of Object.keys(into) as (keyof ExcludedItems)[]) into[key] += from[key];
}

/**
 * Compares side A with side B item by item over the definition's columns and aggregates. Items of a column
 * the definition does not declare are ignored.
 *
 * @throws ColumnsCompareError when a side repeats an item, or an item's column or expected behaviour
 *   differs between the sides (they are not of the same dataset)
 */
export function compareColumns(input: {
  definition: BenchmarkDefinition;
  scorer: string;
  labelA: string;
  labelB: string;
  a: readonly SideItem[];
  b: readonly SideItem[];
}): ColumnsComparison {
  const { definition, labelA, labelB } = input;
  const sideA = byId(input.a, labelA);
  const sideB = byId(input.b, labelB);
  const pairs = new Map<string, ColumnPairs>(
    definition.columns.map((column) => [
      column.key,
      {
        definition: column,
        eventsA: 0,
        eventsB: 0,
        b: 0,
        c: 0,
        differences: [],
        excluded: emptyExcluded(),
        flips: { onlyA: [], onlyB: [] },
      },
    ]),
  );
  for (const [id, item] of sideB) {
    const cell = pairsOf(pairs, item);
    if (cell && !sideA.has(id)) cell.excluded.onlyB++;
  }
  const ids = [...sideA.keys()].sort(compareIds);
  for (const id of ids) {
    const a = sideA.get(id);
    if (!a) continue;
    const cell = pairsOf(pairs, a);
    const b = sideB.get(id);
    if (!cell) continue;
    if (!b) {
      cell.excluded.onlyA++;
      continue;
    }
    if (a.column !== b.column || a.expected !== b.expected)
      throw new ColumnsCompareError(
        `item ${id} is ${a.column}/expected "${a.expected}" in "${labelA}" but ${b.column}/expected "${b.expected}" in "${labelB}": the sides are not of the same dataset`,
      );
    const ea = outcome(cell.definition, a);
    const eb = outcome(cell.definition, b);
    if (ea === "error") cell.excluded.erroredA++;
    else if (ea === "unscored") cell.excluded.unscoredA++;
    if (eb === "error") cell.excluded.erroredB++;
    else if (eb === "unscored") cell.excluded.unscoredB++;
    if (typeof ea !== "number" || typeof eb !== "number") continue;
    cell.eventsA += ea;
    cell.eventsB += eb;
    cell.differences.push(eb - ea);
    if (ea === 1 && eb === 0) {
      cell.b++;
      if (cell.flips.onlyA.length < FLIPS_LISTED) cell.flips.onlyA.push(id);
    } else if (ea === 0 && eb === 1) {
      cell.c++;
      if (cell.flips.onlyB.length < FLIPS_LISTED) cell.flips.onlyB.push(id);
    }
  }

  const differences = Object.fromEntries([...pairs].map(([key, cell]) => [key, cell.differences])) as Record<
    string,
    number[]
  >;
  const bootstrap = (
    keys: readonly string[],
    statistic: (d: Record<string, number | null>) => number | null,
  ) =>
    stratifiedBootstrap(
      Object.fromEntries(keys.map((key) => [key, differences[key] ?? []])) as Record<string, number[]>,
      statistic,
      { seed: COMPARE_BOOTSTRAP_SEED },
    );

  const columns: ColumnComparison[] = [];
  for (const cell of pairs.values()) {
    const column = cell.definition;
    const n = cell.differences.length;
    const difference = percent(cell.eventsB - cell.eventsA, n);
    const pValue = n === 0 ? null : exactMcNemar(cell.b, cell.c);
    columns.push({
      key: column.key,
      label: column.label,
      measure: column.measure,
      lowerIsBetter: column.lowerIsBetter,
      n,
      rateA: percent(cell.eventsA, n),
      rateB: percent(cell.eventsB, n),
      difference,
      ci: n === 0 ? null : bootstrap([column.key], (d) => pct(d[column.key] ?? null)),
      discordant: { b: cell.b, c: cell.c },
      pValue,
      significant: pValue !== null && pValue < SIGNIFICANCE_LEVEL,
      change: changeOf(difference, column.lowerIsBetter, n),
      excluded: cell.excluded,
      flips: cell.flips,
    });
  }

  const aggregates = definition.aggregates.map((aggregate) => compareAggregate(aggregate, pairs, bootstrap));
  const excluded = emptyExcluded();
  for (const cell of pairs.values()) addExcluded(excluded, cell.excluded);
  return {
    benchmark: { name: definition.name, title: definition.title },
    labelA,
    labelB,
    scorer: input.scorer,
    columns,
    aggregates,
    paired: columns.reduce((sum, c) => sum + c.n, 0),
    excluded,
  };
}

const pct = (x: number | null): number | null => (x === null ? null : 100 * x);

/** Ids with their numbers in numeric order (`2` before `10`, `contrast:2` before `contrast:10`). */
const compareIds = (x: string, y: string): number => x.localeCompare(y, "en", { numeric: true });

const pairsOf = (pairs: Map<string, ColumnPairs>, item: SideItem): ColumnPairs | undefined =>
  pairs.get(item.column);

function compareAggregate(
  aggregate: AggregateDefinition,
  pairs: Map<string, ColumnPairs>,
  bootstrap: (
    keys: readonly string[],
    statistic: (d: Record<string, number | null>) => number | null,
  ) => Interval | null,
): PairedRate {
  const parts = aggregate.of.flatMap((key) => {
    const cell = pairs.get(key);
    return cell ? [cell] : [];
  });
  const n = parts.reduce((sum, p) => sum + p.differences.length, 0);
  const excluded = emptyExcluded();
  for (const part of parts) addExcluded(excluded, part.excluded);
  const first = parts[0]?.definition;
  const shared = <K extends "measure" | "lowerIsBetter">(field: K): ColumnDefinition[K] | null =>
    first && parts.every((p) => p.definition[field] === first[field]) ? first[field] : null;
  const lowerIsBetter = shared("lowerIsBetter");
  const b = parts.reduce((sum, p) => sum + p.b, 0);
  const c = parts.reduce((sum, p) => sum + p.c, 0);
  const keys = parts.map((p) => p.definition.key);
  const sizes = Object.fromEntries(parts.map((p) => [p.definition.key, p.differences.length]));
  let rateA: number | null;
  let rateB: number | null;
  let statistic: (d: Record<string, number | null>) => number | null;
  if (aggregate.combine === "pooled") {
    rateA = percent(
      parts.reduce((s, p) => s + p.eventsA, 0),
      n,
    );
    rateB = percent(
      parts.reduce((s, p) => s + p.eventsB, 0),
      n,
    );
    statistic = (d) =>
      n === 0 ? null : (100 * keys.reduce((s, key) => s + (d[key] ?? 0) * (sizes[key] ?? 0), 0)) / n;
  } else {
    const mean = (rates: (number | null)[]): number | null =>
      rates.length === 0 || rates.some((r) => r === null)
        ? null
        : rates.reduce<number>((s, r) => s + (r ?? 0), 0) / rates.length;
    rateA = mean(parts.map((p) => percent(p.eventsA, p.differences.length)));
    rateB = mean(parts.map((p) => percent(p.eventsB, p.differences.length)));
    statistic = (d) => {
      const values = keys.map((key) => d[key] ?? null);
      return values.length === 0 || values.some((v) => v === null)
        ? null
        : (100 * values.reduce<number>((s, v) => s + (v ?? 0), 0)) / values.length;
    };
  }
  const difference = rateA === null || rateB === null ? null : rateB - rateA;
  const ci = difference === null ? null : bootstrap(keys, statistic);
  const pValue = aggregate.combine === "pooled" && n > 0 ? exactMcNemar(b, c) : null;
  return {
    key: aggregate.key,
    label: aggregate.label,
    measure: shared("measure"),
    lowerIsBetter,
    n,
    rateA,
    rateB,
    difference,
    ci,
    discordant: { b, c },
    pValue,
    significant:
      aggregate.combine === "pooled" ? pValue !== null && pValue < SIGNIFICANCE_LEVEL : excludesZero(ci),
    change: changeOf(difference, lowerIsBetter, n),
    excluded,
    combine: aggregate.combine,
  };
}

/** "better", "worse (significant)", "no change", or an en dash when there is nothing to say. */
export function changeWords(row: PairedRate): string {
  if (row.change === null) return "–";
  if (row.change === "no change") return "no change";
  return row.significant ? `${row.change} (significant)` : row.change;
}

/** The direction arrow of a row's label: ↓ lower is better, ↑ higher is better, nothing when unknown. */
export const directionArrow = (lowerIsBetter: boolean | null): string =>
  lowerIsBetter === null ? "" : lowerIsBetter ? " ↓" : " ↑";

/** The column and aggregate rows of a comparison, as every rendering lists them. */
export const comparedRows = (c: ColumnsComparison): PairedRate[] => [...c.columns, ...c.aggregates];

/** One model × strategy of two runs compared (both null when the sides named their own). */
export interface ColumnsPairComparison {
  modelId: string | null;
  strategy: string | null;
  comparison: ColumnsComparison;
}

/** Two plug-in runs compared model × strategy by model × strategy (`mmsafe compare RUN RUN`). */
export interface ColumnsRunComparison {
  benchmark: { name: string; title: string };
  runA: string;
  runB: string;
  scorer: string;
  /** Each model × strategy present in both runs, in run A's order (one for RUN/MODEL sides). */
  pairs: ColumnsPairComparison[];
  onlyInA: string[];
  onlyInB: string[];
  notCompared: { modelId: string; strategy: string; reason: string }[];
}

const excludedText = (e: ExcludedItems): string =>
  `excluded: ${e.onlyA} only in A, ${e.onlyB} only in B, ${e.erroredA} errored in A, ${e.erroredB} errored in B, ` +
  `${e.unscoredA} unscored in A, ${e.unscoredB} unscored in B`;

/** The cells of a row, as text (Markdown escapes them, the terminal lays them out). */
function rowCells(row: PairedRate): string[] {
  return [
    `${row.label}${directionArrow(row.lowerIsBetter)}`,
    String(row.n),
    formatPercent(row.rateA),
    formatPercent(row.rateB),
    formatDifference(row.difference),
    formatInterval(row.ci),
    String(row.discordant.b),
    String(row.discordant.c),
    formatPValue(row.pValue),
    changeWords(row),
  ];
}

const ROW_HEADER = [
  "Column",
  "n",
  "A %",
  "B %",
  "Δ pp (B − A)",
  "95% CI of Δ",
  "b",
  "c",
  "McNemar p",
  "Change",
];

/**
 * One side-by-side comparison as Markdown: who A and B are, one row per column and aggregate (label with
 * its direction, n, rates, Δ, its interval, b/c, McNemar p, the change in words; significant cells bold),
 * the flipped items per column, and notes. Labels and ids are escaped.
 */
export function renderColumnsComparisonMarkdown(c: ColumnsComparison, level = 2): string {
  const a = escapeMarkdown(c.labelA);
  const b = escapeMarkdown(c.labelB);
  const out = [
    `${"#".repeat(level)} ${escapeMarkdown(c.benchmark.title)}, paired comparison (scorer ${escapeMarkdown(c.scorer)}): ${a} vs ${b}`,
    "",
    `A = **${a}**, B = **${b}**. ${c.paired} items scored on both; ${excludedText(c.excluded)}.`,
    "",
    `| ${ROW_HEADER.join(" | ")} |`,
    `|${ROW_HEADER.map(() => "---").join("|")}|`,
  ];
  for (const row of comparedRows(c)) {
    // Only the label is text of the definition's; the other cells are numbers and fixed words.
    const cells = rowCells(row).map((cell, i) => (i === 0 ? escapeMarkdown(cell) : cell));
    const isAggregate = row.combine !== undefined;
    if (isAggregate) cells[0] = `**${cells[0]}**`;
    if (row.significant) {
      const at = row.pValue === null ? 5 : 8;
      cells[at] = `**${cells[at]}**`;
    }
    out.push(`| ${cells.join(" | ")} |`);
  }
  out.push("");
  const flipped = c.columns.filter((col) => col.discordant.b + col.discordant.c > 0);
  if (flipped.length > 0) {
    out.push("Flipped items (the event happened on one side only; the first of each direction):", "");
    const ids = (xs: readonly string[], total: number) =>
      xs.length === 0
        ? "none"
        : `${xs.map(escapeMarkdown).join(", ")}${total > xs.length ? ` … (${total})` : ""}`;
    for (const col of flipped)
      out.push(
        `- ${escapeMarkdown(col.label)}: A only: ${ids(col.flips.onlyA, col.discordant.b)}; B only: ${ids(col.flips.onlyB, col.discordant.c)}`,
      );
    out.push("");
  }
  out.push(`${COLUMN_COMPARISON_NOTES.join(" ")} **Bold**: significant at ${SIGNIFICANCE_LEVEL}.`, "");
  return out.join("\n");
}

/** Two runs (or two sides) compared, as Markdown: a summary line per pair, then each pair's table. */
export function renderColumnsRunMarkdown(r: ColumnsRunComparison): string {
  const out = [
    `## ${escapeMarkdown(r.benchmark.title)} compared (scorer ${escapeMarkdown(r.scorer)}): ${escapeMarkdown(r.runA)} vs ${escapeMarkdown(r.runB)}`,
    "",
    ...leftOutMarkdown(r),
  ];
  for (const pair of r.pairs) out.push(renderColumnsComparisonMarkdown(pair.comparison, 3));
  return out.join("\n");
}

/** Terminal lines of a comparison: A and B, an aligned table and the notes; `bold` styles the header. */
export function columnsComparisonLines(
  c: ColumnsComparison,
  bold: (text: string) => string = (text) => text,
): string[] {
  const body = comparedRows(c).map((row) => {
    const cells = rowCells(row).map(plain);
    cells[9] = `${cells[9]}${row.significant ? " *" : ""}`;
    return cells;
  });
  const header = ROW_HEADER.map((h) => (h === "Δ pp (B − A)" ? "Δ pp" : h));
  return [
    `A = ${plain(c.labelA)}`,
    `B = ${plain(c.labelB)}`,
    `${plain(c.benchmark.title)}, scorer ${plain(c.scorer)}; ${c.paired} items scored on both; ${excludedText(c.excluded)}`,
    "",
    // The change in words (the last cell) is text: left-aligned like the label.
    ...alignedTable(header, body, bold, [0, 9]),
  ];
}

/** Terminal lines of a run comparison: each pair's table, what was left out, then the notes once. */
export function columnsRunLines(
  r: ColumnsRunComparison,
  bold: (text: string) => string = (text) => text,
): string[] {
  const lines: string[] = [];
  for (const pair of r.pairs) lines.push(...columnsComparisonLines(pair.comparison, bold), "");
  lines.push(...leftOutLines(r), ...COLUMN_COMPARISON_NOTES, `* significant at ${SIGNIFICANCE_LEVEL}.`);
  return lines;
}
