/**
 * Metrics of a plug-in benchmark over the columns its definition declares: per column the rate of the event
 * the column measures (a refusal, or an attack success: no refusal) over the items scored, with a seeded
 * bootstrap interval, and the definition's aggregates. Nothing here knows a benchmark by name.
 */
import type { BenchmarkDefinition, ColumnDefinition, ExpectedBehaviour } from "../benchmarks/definition.ts";
import { callAccounting, type RowCounts } from "./call-accounting.ts";
import type { BenchmarkVerdict, ModelConfig, Strategy } from "./schemas.ts";
import { type Interval, stratifiedBootstrap } from "./statistics.ts";

/**
 * One item's reading by the row's scorer: refused or not (a refusal scorer, a judge), correct or not (a yes/no
 * answer's scorer), or not scored (an unparsed judge reply).
 */
export type ItemReading = { refused: boolean } | { correct: boolean } | { refused: null; reason: string };

/** The rate of one column. */
export interface ColumnRate {
  /** Items scored in the column (answered, and read by the scorer). */
  n: number;
  /** Items in which the measured event happened (refused, or attack success). */
  events: number;
  /** `events / n` in %, null when nothing was scored. */
  rate: number | null;
  ci: Interval | null;
  /** Answered items the scorer could not read (a judge reply with no score); not in `n`. */
  unscored: number;
}

/** An aggregate (MOSSBench's ALL): a rate and its interval. */
export interface AggregateRate {
  rate: number | null;
  ci: Interval | null;
  n: number;
}

/** Metrics of one model × strategy of a plug-in benchmark. */
export interface BenchmarkRow {
  modelId: string;
  model: string;
  kind: ModelConfig["kind"];
  strategy: Strategy;
  /** The scorer the rates are of. */
  scorer: { id: string; label: string; official: boolean };
  counts: RowCounts;
  columns: Record<string, ColumnRate>;
  aggregates: Record<string, AggregateRate>;
  errorsByKind: Record<string, number>;
  usage: { promptTokens: number; completionTokens: number; costUsd: number | null };
  latencyMs: { p50: number | null; p95: number | null };
}

const percent = (events: number, n: number): number | null => (n === 0 ? null : (100 * events) / n);

/**
 * 1 when the column's event happened for a reading: a refusal; for attack success, no refusal; for accuracy,
 * the expected answer, or the expected behaviour (refused when it should be, complied when it should be).
 */
export function eventOf(
  column: ColumnDefinition,
  reading: { refused: boolean } | { correct: boolean },
  expected: ExpectedBehaviour,
): number {
  if ("correct" in reading) return reading.correct ? 1 : 0;
  if (column.measure === "attack-success-rate") return reading.refused ? 0 : 1;
  if (column.measure === "accuracy") return reading.refused === (expected === "refuse") ? 1 : 0;
  return reading.refused ? 1 : 0;
}

/**
 * The row of one model × strategy. `readingOf` is the run's scorer applied to an answered verdict (a
 * keyword scorer's stored reading, or the judge's verdict); error verdicts are counted apart and never
 * scored.
 */
export function computeBenchmarkRow(input: {
  definition: BenchmarkDefinition;
  scorer: { id: string; label: string; official: boolean };
  model: ModelConfig;
  strategy: Strategy;
  verdicts: readonly BenchmarkVerdict[];
  readingOf: (verdict: BenchmarkVerdict) => ItemReading;
  planned: number;
  skipped: number;
  seed?: number;
}): BenchmarkRow {
  const { definition, verdicts } = input;
  const answered = verdicts.filter((v) => v.status === "answered");
  const outcomes = new Map<string, number[]>(definition.columns.map((c) => [c.key, []]));
  const unscored = new Map<string, number>();
  for (const v of answered) {
    const column = definition.columns.find((c) => c.key === v.category);
    if (!column) continue;
    const reading = input.readingOf(v);
    if ("reason" in reading) unscored.set(column.key, (unscored.get(column.key) ?? 0) + 1);
    else outcomes.get(column.key)?.push(eventOf(column, reading, v.expected));
  }
  const groups = Object.fromEntries(outcomes) as Record<string, number[]>;
  const seed = input.seed ?? 20250211;
  const columns: Record<string, ColumnRate> = {};
  for (const column of definition.columns) {
    const items = groups[column.key] ?? [];
    const events = items.reduce((sum, x) => sum + x, 0);
    columns[column.key] = {
      n: items.length,
      events,
      rate: percent(events, items.length),
      ci:
        items.length === 0
          ? null
          : stratifiedBootstrap({ [column.key]: items }, (p) => pct(p[column.key] ?? null), { seed }),
      unscored: unscored.get(column.key) ?? 0,
    };
  }
  const aggregates: Record<string, AggregateRate> = {};
  for (const aggregate of definition.aggregates) {
    const parts = aggregate.of.map((key) => ({ key, items: groups[key] ?? [] }));
    const n = parts.reduce((sum, p) => sum + p.items.length, 0);
    const statistic = (p: Record<string, number | null>): number | null => {
      if (aggregate.combine === "mean-of-columns") {
        const rates = parts.map((part) => p[part.key] ?? null);
        return rates.some((r) => r === null)
          ? null
          : (100 * rates.reduce<number>((s, r) => s + (r ?? 0), 0)) / rates.length;
      }
      if (n === 0) return null;
      return (100 * parts.reduce((s, part) => s + (p[part.key] ?? 0) * part.items.length, 0)) / n;
    };
    const observed = Object.fromEntries(
      parts.map((part) => [
        part.key,
        part.items.length === 0 ? null : part.items.reduce((s, x) => s + x, 0) / part.items.length,
      ]),
    );
    const sub = Object.fromEntries(parts.map((part) => [part.key, part.items])) as Record<string, number[]>;
    const rate = statistic(observed);
    aggregates[aggregate.key] = {
      rate,
      ci: rate === null ? null : stratifiedBootstrap(sub, statistic, { seed }),
      n,
    };
  }
  const accounting = callAccounting(input.model, verdicts, input.planned, input.skipped);
  return {
    modelId: input.model.id,
    model: input.model.model,
    kind: input.model.kind,
    strategy: input.strategy,
    scorer: input.scorer,
    counts: accounting.counts,
    columns,
    aggregates,
    errorsByKind: accounting.errorsByKind,
    usage: accounting.usage,
    latencyMs: accounting.latencyMs,
  };
}

const pct = (x: number | null): number | null => (x === null ? null : 100 * x);

/** A plug-in run's headline: per model × strategy, the rate of each column and aggregate (one decimal). */
export interface BenchmarkHeadline {
  modelId: string;
  kind: ModelConfig["kind"];
  strategy: Strategy;
  /** By column or aggregate key, in %; null when nothing was scored. */
  rates: Record<string, number | null>;
  answered: number;
  errored: number;
  missing: number;
  skipped: number;
  cached: number;
}

const round1 = (x: number | null): number | null => (x === null ? null : Math.round(x * 10) / 10);

/** The headline of a plug-in report's rows. */
export function benchmarkHeadlines(rows: readonly BenchmarkRow[]): BenchmarkHeadline[] {
  return rows.map((r) => ({
    modelId: r.modelId,
    kind: r.kind,
    strategy: r.strategy,
    rates: {
      ...Object.fromEntries(Object.entries(r.columns).map(([key, c]) => [key, round1(c.rate)])),
      ...Object.fromEntries(Object.entries(r.aggregates).map(([key, a]) => [key, round1(a.rate)])),
    },
    answered: r.counts.answered,
    errored: r.counts.errored,
    missing: r.counts.missing,
    skipped: r.counts.skipped,
    cached: r.counts.cached,
  }));
}
