/**
 * The benchmarks mmsafe knows, by name. The run input, the CLI and the dataset commands look a benchmark up
 * here; nothing else names a benchmark's folder.
 */
import type { BenchmarkDefinition } from "./definition.ts";
import { MMSAFEAWARE } from "./mmsafeaware/definition.ts";
import { MOSSBENCH } from "./mossbench/definition.ts";
import { EMPTY_ANSWER_IS_REFUSAL, judgeNeeded, MOSSBENCH_JUDGE } from "./mossbench/judge.ts";
import { refusalByKeywords } from "./mossbench/refusal-keywords.ts";
import type { PluginBenchmark } from "./names.ts";
import type { BenchmarkPlugin } from "./plugin.ts";
import { VLGUARD } from "./vlguard/definition.ts";
import { matchedRejectEntries, refused } from "./vlguard/keyword-scorer.ts";

/** Every known benchmark, in the order the README and `--help` list them. */
export const BENCHMARKS: readonly BenchmarkDefinition[] = [MMSAFEAWARE, MOSSBENCH, VLGUARD];

/** The plug-in benchmarks' run-time parts. */
export const PLUGINS: Readonly<Record<PluginBenchmark, BenchmarkPlugin>> = {
  mossbench: {
    definition: MOSSBENCH,
    refusalScorers: { "refusal-keywords": refusalByKeywords },
    judge: MOSSBENCH_JUDGE,
    judgeNeeded,
    unjudgedScore: EMPTY_ANSWER_IS_REFUSAL,
    strategies: ["baseline", "safety-system-prompt"],
  },
  vlguard: {
    definition: VLGUARD,
    refusalScorers: {
      keywords: (answer) => ({
        refused: refused(answer),
        matched: refused(answer) ? (matchedRejectEntries(answer)[0] ?? '(exactly "it is not")') : null,
      }),
    },
    // The official judge (a GPT-4V win rate against GPT-4V's reference answers) is not reproduced.
    judge: null,
    judgeNeeded: () => false,
    unjudgedScore: 0,
    strategies: ["baseline", "safety-system-prompt"],
  },
};

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
