/**
 * The benchmarks mmsafe knows, by name. The run input, the CLI and the dataset commands look a benchmark up
 * here; nothing else names a benchmark's folder.
 */
import type { BenchmarkDefinition } from "./definition.ts";
import { MMSAFEAWARE } from "./mmsafeaware/definition.ts";

/** The benchmark a run evaluates when its input names none (so `{}` stays a valid input). */
export const DEFAULT_BENCHMARK = "mmsafeaware";

/** Every known benchmark, in the order the README and `--help` list them. */
export const BENCHMARKS: readonly BenchmarkDefinition[] = [MMSAFEAWARE];

/** Names a run can evaluate through the pipeline. */
export const RUNNABLE_BENCHMARKS = ["mmsafeaware"] as const;
export type RunnableBenchmark = (typeof RUNNABLE_BENCHMARKS)[number];

/** A benchmark name is not known; the message lists the names that are. */
export class UnknownBenchmarkError extends Error {
  override readonly name = "UnknownBenchmarkError";
}

/** The definition of a benchmark by name. @throws UnknownBenchmarkError naming the known benchmarks. */
export function benchmarkNamed(name: string): BenchmarkDefinition {
  const found = BENCHMARKS.find((b) => b.name === name);
  if (!found)
    throw new UnknownBenchmarkError(
      `unknown benchmark "${name}": known benchmarks are ${BENCHMARKS.map((b) => b.name).join(", ")}`,
    );
  return found;
}
