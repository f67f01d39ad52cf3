/**
 * `mmsafe compare`: pairs the verdicts of two (run, model, strategy) sides kept by the local servers and
 * compares them item by item (benchmarks/mmsafeaware/compare.ts); or two whole runs, each model × strategy present in both.
 * Runs of a plug-in benchmark (MOSSBench, VLGuard, your own dataset) are compared over the columns their
 * benchmark declares (core/compare-columns.ts), each side read by its run's scorer.
 */
import { createDocumentClient } from "../adapters/aws-clients.ts";
import type { ObjectStore } from "../adapters/object-store.ts";
import { DynamoRunStore, type RunRecord } from "../adapters/run-store.ts";
import { DynamoVerdictStore } from "../adapters/verdict-store.ts";
import { CUSTOM_BENCHMARK } from "../benchmarks/custom/config.ts";
import type { BenchmarkDefinition } from "../benchmarks/definition.ts";
import {
  type Comparison,
  compareVerdicts,
  type RunComparison,
  type Scoring,
} from "../benchmarks/mmsafeaware/compare.ts";
import type { PluginBenchmark } from "../benchmarks/names.ts";
import { CustomConfigMissingError, pluginFor } from "../benchmarks/registry.ts";
import type { ItemReading } from "../core/column-metrics.ts";
import {
  ColumnsCompareError,
  type ColumnsComparison,
  type ColumnsRunComparison,
  compareColumns,
  type SideItem,
} from "../core/compare-columns.ts";
import type { BenchmarkVerdict, DatasetItem, ModelConfig, Strategy, Verdict } from "../core/schemas.ts";
import { runShardKey } from "../deployment/storage-layout.ts";
import { scorerOf } from "../pipeline/aggregate-benchmark.ts";
import { parseMmsafeawareShard, readDatasetManifest } from "../pipeline/dataset-io.ts";
import { readRunCustomConfig } from "../pipeline/run-plugins.ts";
import type { ColumnFlipItem } from "../report/compare-columns-html.ts";
import type { ComparisonItem } from "../report/compare-html.ts";
import { LOCAL_RESOURCES } from "./embedded-aws.ts";
import { openLocalSession } from "./runner.ts";

/** One side of a comparison: `RUN`, `RUN/MODEL` or `RUN/MODEL/STRATEGY`. */
export interface SideSpec {
  runId: string;
  modelId?: string | undefined;
  strategy?: string | undefined;
}

/** A side spec the runs cannot resolve, with what would work instead. */
export class CompareInputError extends Error {
  override readonly name = "CompareInputError";
}

/** Parses a side: `RUN`, `RUN/MODEL` or `RUN/MODEL/STRATEGY`. */
export function parseSideSpec(text: string): SideSpec {
  const [runId, modelId, strategy, ...rest] = text.split("/");
  if (!runId || rest.length > 0 || modelId === "" || strategy === "") {
    throw new CompareInputError(`"${text}": expected RUN, RUN/MODEL or RUN/MODEL/STRATEGY`);
  }
  return { runId, modelId, strategy };
}

/** Picks the named value, or the only one there is (preferring real models over baselines). */
function pick<T extends string>(
  what: string,
  spec: string,
  named: string | undefined,
  options: T[],
  preferred: T[],
): T {
  if (named !== undefined) {
    const found = options.find((o) => o === named);
    if (!found)
      throw new CompareInputError(
        `${spec}: no ${what} "${named}" in this run (it has ${options.join(", ")})`,
      );
    return found;
  }
  const candidates = preferred.length > 0 ? preferred : options;
  const [only, ...others] = candidates;
  if (only === undefined || others.length > 0) {
    throw new CompareInputError(`${spec}: the run has several ${what}s (${options.join(", ")}); name one`);
  }
  return only;
}

function resolveSide(spec: SideSpec, run: RunRecord): { modelId: string; strategy: Strategy; label: string } {
  const text = [spec.runId, spec.modelId, spec.strategy].filter(Boolean).join("/");
  const modelIds = run.models.map((m) => m.id);
  const realModels = run.models.filter((m) => m.kind === "model").map((m) => m.id);
  const modelId = pick("model", text, spec.modelId, modelIds, realModels);
  const strategy = pick("strategy", text, spec.strategy, run.strategies, []);
  return { modelId, strategy, label: `${spec.runId}/${modelId}/${strategy}` };
}

/**
 * Compares side A with side B on the items both answered. The runs must be on the same dataset (same
 * checksum); the embedded servers under `home` must hold them (runs made with `mmsafe run`).
 */
export async function compareLocal(
  home: string,
  a: SideSpec,
  b: SideSpec,
  scoring: Scoring,
): Promise<Comparison> {
  return (await compareSides(home, a, b, scoring, false)).comparison;
}

/**
 * {@link compareLocal}, plus what a page shows of each flipped item: its sentence (from run A's shards)
 * and both sides' responses.
 */
export async function compareLocalWithItems(
  home: string,
  a: SideSpec,
  b: SideSpec,
  scoring: Scoring,
): Promise<{ comparison: Comparison; items: ComparisonItem[] }> {
  return compareSides(home, a, b, scoring, true);
}

/** The runs and verdict store of a home, with each run's verdicts read once. */
async function openRuns(home: string) {
  const session = await openLocalSession(home);
  const client = createDocumentClient();
  const runs = new DynamoRunStore(client, LOCAL_RESOURCES.runsTable);
  const verdicts = new DynamoVerdictStore(client, LOCAL_RESOURCES.verdictsTable);
  const runVerdicts = new Map<string, Promise<Verdict[]>>();
  const record = async (runId: string): Promise<RunRecord> => {
    const run = await runs.get(runId);
    if (!run)
      throw new CompareInputError(
        `no run "${runId}" under ${home} (list them with: npm run mmsafe -- runs --local)`,
      );
    return run;
  };
  return {
    store: session.store,
    verdicts,
    /** A run of any benchmark. */
    record,
    /** An MMSafeAware run. */
    run: async (runId: string): Promise<RunRecord> => {
      const run = await record(runId);
      if (run.benchmark !== undefined && run.benchmark !== "mmsafeaware")
        throw new CompareInputError(
          `run ${runId} evaluated ${run.benchmark}, not MMSafeAware: its benchmark's columns are compared by compareBenchmarkLocal`,
        );
      return run;
    },
    /** The verdicts of one model × strategy of a run (two sides of one run read its verdicts once). */
    verdictsOf: async (runId: string, modelId: string, strategy: string): Promise<Verdict[]> => {
      let all = runVerdicts.get(runId);
      if (!all) {
        all = verdicts.listRun(runId);
        runVerdicts.set(runId, all);
      }
      return (await all).filter((v) => v.modelId === modelId && v.strategy === strategy);
    },
  };
}

function sameDataset(a: RunRecord, b: RunRecord): void {
  if (a.datasetChecksum !== b.datasetChecksum) {
    throw new CompareInputError(
      `runs ${a.runId} and ${b.runId} evaluated different datasets (checksums ${a.datasetChecksum.slice(0, 12)}… and ${b.datasetChecksum.slice(0, 12)}…)`,
    );
  }
}

/** Compares two verdict sets; a problem with what was asked (no shared item, …) is a {@link CompareInputError}. */
function compareAsked(va: Verdict[], vb: Verdict[], scoring: Scoring, labelA: string, labelB: string) {
  try {
    return compareVerdicts(va, vb, { scoring, labelA, labelB });
  } catch (error: unknown) {
    // No shared items, or sides from different datasets: a problem with what was asked, not a crash.
    throw new CompareInputError(error instanceof Error ? error.message : String(error), { cause: error });
  }
}

async function compareSides(
  home: string,
  a: SideSpec,
  b: SideSpec,
  scoring: Scoring,
  withItems: boolean,
): Promise<{ comparison: Comparison; items: ComparisonItem[] }> {
  const runs = await openRuns(home);
  const runA = await runs.run(a.runId);
  const runB = await runs.run(b.runId);
  sameDataset(runA, runB);
  const sideA = resolveSide(a, runA);
  const sideB = resolveSide(b, runB);
  if (sideA.label === sideB.label) throw new CompareInputError(`both sides are ${sideA.label}`);
  const [va, vb] = await Promise.all([
    runs.verdictsOf(a.runId, sideA.modelId, sideA.strategy),
    runs.verdictsOf(b.runId, sideB.modelId, sideB.strategy),
  ]);
  const comparison = compareAsked(va, vb, scoring, sideA.label, sideB.label);
  if (!withItems) return { comparison, items: [] };
  return { comparison, items: await flippedItems(runs.store, runA, comparison, va, vb) };
}

/** A whole-run comparison, with each compared pair's flipped items (for its page). */
export interface RunComparisonWithItems {
  comparison: RunComparison;
  /** Per pair of `comparison.pairs`, in the same order. */
  items: ComparisonItem[][];
}

/**
 * Compares two runs of the same dataset: each model × strategy present in both, paired item by item. Pairs
 * of one run only are listed, not compared; a pair with no item in common is listed with the reason.
 *
 * @throws CompareInputError when a run is unknown, the runs evaluated different datasets, they are the same
 *   run, or no model × strategy of one is in the other (or none could be compared).
 */
export async function compareRunsLocal(
  home: string,
  runIdA: string,
  runIdB: string,
  scoring: Scoring,
  options: { withItems?: boolean } = {},
): Promise<RunComparisonWithItems> {
  if (runIdA === runIdB)
    throw new CompareInputError(
      `both sides are run ${runIdA}: name the models or strategies to compare (RUN/MODEL or RUN/MODEL/STRATEGY)`,
    );
  const runs = await openRuns(home);
  const runA = await runs.run(runIdA);
  const runB = await runs.run(runIdB);
  sameDataset(runA, runB);
  const pairsOf = (run: RunRecord) =>
    run.models.flatMap((m) => run.strategies.map((strategy) => ({ modelId: m.id, strategy })));
  const key = (p: { modelId: string; strategy: string }) => `${p.modelId}/${p.strategy}`;
  const inA = pairsOf(runA);
  const inB = pairsOf(runB);
  const keysA = new Set(inA.map(key));
  const keysB = new Set(inB.map(key));
  const both = inA.filter((p) => keysB.has(key(p)));
  const result: RunComparison = {
    runA: runIdA,
    runB: runIdB,
    scoring,
    pairs: [],
    onlyInA: inA.filter((p) => !keysB.has(key(p))).map(key),
    onlyInB: inB.filter((p) => !keysA.has(key(p))).map(key),
    notCompared: [],
  };
  if (both.length === 0)
    throw new CompareInputError(
      `runs ${runIdA} (${inA.map(key).join(", ")}) and ${runIdB} (${inB.map(key).join(", ")}) have no model × strategy in common`,
    );
  const items: ComparisonItem[][] = [];
  for (const pair of both) {
    const [va, vb] = await Promise.all([
      runs.verdictsOf(runIdA, pair.modelId, pair.strategy),
      runs.verdictsOf(runIdB, pair.modelId, pair.strategy),
    ]);
    let comparison: Comparison;
    try {
      comparison = compareAsked(va, vb, scoring, `${runIdA}/${key(pair)}`, `${runIdB}/${key(pair)}`);
    } catch (error: unknown) {
      if (!(error instanceof CompareInputError)) throw error;
      result.notCompared.push({ ...pair, reason: error.message });
      continue;
    }
    result.pairs.push({ ...pair, comparison });
    items.push(options.withItems ? await flippedItems(runs.store, runA, comparison, va, vb) : []);
  }
  if (result.pairs.length === 0)
    throw new CompareInputError(
      `no model × strategy could be compared: ${result.notCompared.map((n) => `${key(n)}: ${n.reason}`).join("; ")}`,
    );
  return { comparison: result, items };
}

/** What a comparison page shows of each flipped item: its sentence (from run A's shards), both responses. */
async function flippedItems(
  store: ObjectStore,
  runA: RunRecord,
  comparison: Comparison,
  va: readonly Verdict[],
  vb: readonly Verdict[],
): Promise<ComparisonItem[]> {
  const flipped = new Set(
    Object.values(comparison.flips).flatMap((f) => [...f.rightToWrong, ...f.wrongToRight]),
  );
  const sentences = await flippedSentences(store, runA.runId, runA.shards, flipped);
  const responseOf = (side: readonly Verdict[]) => new Map(side.map((v) => [v.itemId, v.response]));
  const [responsesA, responsesB] = [responseOf(va), responseOf(vb)];
  return [...flipped]
    .sort((x, y) => x - y)
    .map((id) => {
      const item = sentences.get(id);
      return {
        id,
        sentence: item?.sentence ?? "",
        category: item?.category ?? "",
        answerA: responsesA.get(id) ?? null,
        answerB: responsesB.get(id) ?? null,
      };
    });
}

/** The dataset items of these ids, read from a run's shards (an absent or unreadable shard is skipped). */
async function flippedSentences(
  store: ObjectStore,
  runId: string,
  shards: number,
  ids: ReadonlySet<number>,
): Promise<Map<number, DatasetItem>> {
  const found = new Map<number, DatasetItem>();
  if (ids.size === 0) return found;
  for (let index = 0; index < shards && found.size < ids.size; index++) {
    const key = runShardKey(runId, index);
    const text = await store.getTextIfExists(key).catch(() => null);
    if (text === null) continue;
    let items: DatasetItem[];
    try {
      items = parseMmsafeawareShard(text, key);
    } catch {
      continue;
    }
    for (const item of items) if (ids.has(item.id)) found.set(item.id, item);
  }
  return found;
}

/**
 * The plug-in benchmark two runs evaluated, or null when both are MMSafeAware runs (compared by
 * {@link compareLocal} and {@link compareRunsLocal}).
 *
 * @throws CompareInputError when a run is unknown, or the runs evaluated different benchmarks
 */
export async function pluginBenchmarkOf(
  home: string,
  runIdA: string,
  runIdB: string,
): Promise<PluginBenchmark | null> {
  const runs = await openRuns(home);
  const [runA, runB] = [await runs.record(runIdA), await runs.record(runIdB)];
  const of = (run: RunRecord) => run.benchmark ?? "mmsafeaware";
  if (of(runA) !== of(runB))
    throw new CompareInputError(
      `run ${runIdA} evaluated ${of(runA)} and run ${runIdB} ${of(runB)}: only runs of the same benchmark can be compared`,
    );
  const benchmark = runA.benchmark;
  return benchmark === undefined || benchmark === "mmsafeaware" ? null : benchmark;
}

/** One run of a plug-in benchmark as compare reads it: its definition, scorer and verdicts. */
interface ScoredRun {
  run: RunRecord;
  definition: BenchmarkDefinition;
  /** The scorer's id, and the judge it reads when it is one. */
  scorer: string;
  judge: ModelConfig | null;
  readingOf: (v: BenchmarkVerdict) => ItemReading;
  verdicts: BenchmarkVerdict[];
}

async function scoredRun(
  runs: Awaited<ReturnType<typeof openRuns>>,
  run: RunRecord,
  benchmark: PluginBenchmark,
): Promise<ScoredRun> {
  const { store } = runs;
  // Your own dataset: as the run was planned (as Aggregate reads it, the dataset's manifest otherwise).
  const custom =
    benchmark === CUSTOM_BENCHMARK
      ? ((await readRunCustomConfig(store, run.runId)) ??
        (await readDatasetManifest(store, run.dataset).catch(() => null))?.custom ??
        null)
      : null;
  let plugin: ReturnType<typeof pluginFor>;
  try {
    plugin = pluginFor(benchmark, custom);
  } catch (error: unknown) {
    if (error instanceof CustomConfigMissingError)
      throw new CompareInputError(`run ${run.runId}: ${error.message}`, { cause: error });
    throw error;
  }
  if (!runs.verdicts.listBenchmarkRun)
    throw new Error("this verdict store cannot list a plug-in benchmark's verdicts");
  const stored = await runs.verdicts.listBenchmarkRun(run.runId);
  const scorer = scorerOf(plugin, run.judge, stored.judgements, run.scorer);
  return {
    run,
    definition: plugin.definition,
    scorer: scorer.id,
    judge: run.judge && plugin.judge ? run.judge : null,
    readingOf: scorer.readingOf,
    verdicts: stored.verdicts,
  };
}

/** Rates read by different scorers (or judges) measure different things: refuse to pair them. */
function sameScorer(a: ScoredRun, b: ScoredRun): void {
  const describe = (s: ScoredRun) => (s.judge ? `${s.scorer} (judge ${s.judge.id})` : s.scorer);
  if (a.scorer !== b.scorer || a.judge?.id !== b.judge?.id)
    throw new CompareInputError(
      `run ${a.run.runId} is scored by ${describe(a)} and run ${b.run.runId} by ${describe(b)}: rates by different scorers are not comparable (rejudge one run with the other's judge, or compare runs of one scorer)`,
    );
  const keys = (d: BenchmarkDefinition) => d.columns.map((c) => c.key).join(", ");
  if (keys(a.definition) !== keys(b.definition))
    throw new CompareInputError(
      `runs ${a.run.runId} (columns ${keys(a.definition)}) and ${b.run.runId} (columns ${keys(b.definition)}) do not declare the same columns`,
    );
}

/** One side's items for the core: each verdict's record id, column, and its reading (null for an error). */
const sideItems = (side: ScoredRun, modelId: string, strategy: string): SideItem[] =>
  side.verdicts
    .filter((v) => v.modelId === modelId && v.strategy === strategy)
    .map((v) => ({
      id: v.recordId,
      column: v.category,
      expected: v.expected,
      reading: v.status === "answered" ? side.readingOf(v) : null,
    }));

/** The answers of a comparison's flipped items (listed on its page). */
function flipAnswers(
  comparison: ColumnsComparison,
  a: ScoredRun,
  b: ScoredRun,
  sides: { a: { modelId: string; strategy: string }; b: { modelId: string; strategy: string } },
): ColumnFlipItem[] {
  const answers = (side: ScoredRun, of: { modelId: string; strategy: string }) =>
    new Map(
      side.verdicts
        .filter((v) => v.modelId === of.modelId && v.strategy === of.strategy)
        .map((v) => [v.recordId, v.response]),
    );
  const [answersA, answersB] = [answers(a, sides.a), answers(b, sides.b)];
  return comparison.columns.flatMap((column) =>
    (["onlyA", "onlyB"] as const).flatMap((direction) =>
      column.flips[direction].map((id) => ({
        id,
        column: column.key,
        direction,
        answerA: answersA.get(id) ?? null,
        answerB: answersB.get(id) ?? null,
      })),
    ),
  );
}

/** A plug-in comparison, with each pair's flipped items' answers (for its page). */
export interface ColumnsComparisonWithItems {
  comparison: ColumnsRunComparison;
  /** Per pair of `comparison.pairs`, in the same order. */
  items: ColumnFlipItem[][];
}

/**
 * Compares two sides of a plug-in benchmark over its columns and aggregates: two whole runs (each model ×
 * strategy present in both, as for MMSafeAware), or two `RUN/MODEL[/STRATEGY]` sides. Each side is read by
 * its run's scorer (the judge when the run has one, else the run's scorer or the benchmark's default).
 *
 * @throws CompareInputError when a run is unknown, the runs evaluated different benchmarks or datasets,
 *   their scorers (or judges) differ, a side cannot be resolved, or nothing could be compared
 */
export async function compareBenchmarkLocal(
  home: string,
  benchmark: PluginBenchmark,
  a: SideSpec,
  b: SideSpec,
): Promise<ColumnsComparisonWithItems> {
  const wholeRuns = [a, b].every((side) => side.modelId === undefined && side.strategy === undefined);
  if (wholeRuns && a.runId === b.runId)
    throw new CompareInputError(
      `both sides are run ${a.runId}: name the models or strategies to compare (RUN/MODEL or RUN/MODEL/STRATEGY)`,
    );
  const runs = await openRuns(home);
  const runA = await runs.record(a.runId);
  const runB = await runs.record(b.runId);
  sameDataset(runA, runB);
  const scoredA = await scoredRun(runs, runA, benchmark);
  const scoredB = runB.runId === runA.runId ? scoredA : await scoredRun(runs, runB, benchmark);
  sameScorer(scoredA, scoredB);
  const { definition } = scoredA;
  const key = (p: { modelId: string; strategy: string }) => `${p.modelId}/${p.strategy}`;
  const compareOne = (
    sideA: { modelId: string; strategy: string },
    sideB: { modelId: string; strategy: string },
    labelA: string,
    labelB: string,
  ): ColumnsComparison => {
    try {
      return compareColumns({
        definition,
        scorer: scoredA.scorer,
        labelA,
        labelB,
        a: sideItems(scoredA, sideA.modelId, sideA.strategy),
        b: sideItems(scoredB, sideB.modelId, sideB.strategy),
      });
    } catch (error: unknown) {
      if (error instanceof ColumnsCompareError) throw new CompareInputError(error.message, { cause: error });
      throw error;
    }
  };
  const result: ColumnsRunComparison = {
    benchmark: { name: definition.name, title: definition.title },
    runA: a.runId,
    runB: b.runId,
    scorer: scoredA.scorer,
    pairs: [],
    onlyInA: [],
    onlyInB: [],
    notCompared: [],
  };
  const items: ColumnFlipItem[][] = [];
  if (!wholeRuns) {
    const sideA = resolveSide(a, runA);
    const sideB = resolveSide(b, runB);
    if (sideA.label === sideB.label) throw new CompareInputError(`both sides are ${sideA.label}`);
    const comparison = compareOne(sideA, sideB, sideA.label, sideB.label);
    if (comparison.paired === 0 && nothingShared(comparison))
      throw new CompareInputError(`"${sideA.label}" and "${sideB.label}" share no item: nothing to compare`);
    result.runA = sideA.label;
    result.runB = sideB.label;
    result.pairs.push({ modelId: null, strategy: null, comparison });
    items.push(flipAnswers(comparison, scoredA, scoredB, { a: sideA, b: sideB }));
    return { comparison: result, items };
  }
  const pairsOf = (run: RunRecord) =>
    run.models.flatMap((m) => run.strategies.map((strategy) => ({ modelId: m.id, strategy })));
  const inA = pairsOf(runA);
  const inB = pairsOf(runB);
  const keysA = new Set(inA.map(key));
  const keysB = new Set(inB.map(key));
  const both = inA.filter((p) => keysB.has(key(p)));
  result.onlyInA = inA.filter((p) => !keysB.has(key(p))).map(key);
  result.onlyInB = inB.filter((p) => !keysA.has(key(p))).map(key);
  if (both.length === 0)
    throw new CompareInputError(
      `runs ${a.runId} (${inA.map(key).join(", ")}) and ${b.runId} (${inB.map(key).join(", ")}) have no model × strategy in common`,
    );
  for (const pair of both) {
    let comparison: ColumnsComparison;
    try {
      comparison = compareOne(pair, pair, `${a.runId}/${key(pair)}`, `${b.runId}/${key(pair)}`);
    } catch (error: unknown) {
      if (!(error instanceof CompareInputError)) throw error;
      result.notCompared.push({ ...pair, reason: error.message });
      continue;
    }
    if (comparison.paired === 0 && nothingShared(comparison)) {
      result.notCompared.push({ ...pair, reason: "the runs share no item of it" });
      continue;
    }
    result.pairs.push({ ...pair, comparison });
    items.push(flipAnswers(comparison, scoredA, scoredB, { a: pair, b: pair }));
  }
  if (result.pairs.length === 0)
    throw new CompareInputError(
      `no model × strategy could be compared: ${result.notCompared.map((n) => `${key(n)}: ${n.reason}`).join("; ")}`,
    );
  return { comparison: result, items };
}

/** No item is on both sides (every item excluded was on one side only). */
const nothingShared = (c: ColumnsComparison): boolean =>
  c.excluded.erroredA + c.excluded.erroredB + c.excluded.unscoredA + c.excluded.unscoredB === 0;
