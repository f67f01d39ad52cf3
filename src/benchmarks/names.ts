/**
 * The names of the benchmarks a run can evaluate. Kept apart from the registry (which loads each benchmark's
 * definition and scorers) so that the schemas can name them without importing any benchmark.
 */

/** The benchmark a run evaluates when its input names none (so `{}` stays a valid input). */
export const DEFAULT_BENCHMARK = "mmsafeaware";

/**
 * Benchmarks that are plug-ins: items, verdicts and report built from their definition. `custom` is your own
 * dataset (JSONL and images), whose definition its import derives (see `custom/config.ts`).
 */
export const PLUGIN_BENCHMARKS = ["mossbench", "vlguard", "custom"] as const;
export type PluginBenchmark = (typeof PLUGIN_BENCHMARKS)[number];

/** Every benchmark a run can evaluate. */
export const RUNNABLE_BENCHMARKS = [DEFAULT_BENCHMARK, ...PLUGIN_BENCHMARKS] as const;
export type RunnableBenchmark = (typeof RUNNABLE_BENCHMARKS)[number];
