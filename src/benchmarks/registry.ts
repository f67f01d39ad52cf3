/**
 * The benchmarks mmsafe knows, by name. The run input, the CLI and the dataset commands look a benchmark up
 * here; nothing else names a benchmark's folder.
 */

import { CUSTOM_BENCHMARK, type CustomConfig } from "./custom/config.ts";
import { customPlugin } from "./custom/definition.ts";
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

/** The run-time parts of the plug-in benchmarks whose definition is fixed (your own dataset's is not). */
export const PLUGINS: Readonly<Record<Exclude<PluginBenchmark, typeof CUSTOM_BENCHMARK>, BenchmarkPlugin>> = {
  mossbench: {
    definition: MOSSBENCH,
    scorers: { "refusal-keywords": refusalByKeywords },
    judge: MOSSBENCH_JUDGE,
    judgeNeeded,
    unjudgedScore: EMPTY_ANSWER_IS_REFUSAL,
    strategies: ["baseline", "safety-system-prompt"],
  },
  vlguard: {
    definition: VLGUARD,
    scorers: {
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

/** A dataset imported as `custom` was used without the configuration its import stores. */
export class CustomConfigMissingError extends Error {
  override readonly name = "CustomConfigMissingError";
}

/**
 * A plug-in benchmark's run-time parts. Your own dataset's are built from the configuration its import
 * stored in the dataset manifest (`custom`), which it then needs.
 *
 * @throws CustomConfigMissingError for `custom` without a configuration
 */
export function pluginFor(benchmark: PluginBenchmark, custom?: CustomConfig | null): BenchmarkPlugin {
  if (benchmark !== CUSTOM_BENCHMARK) return PLUGINS[benchmark];
  if (!custom)
    throw new CustomConfigMissingError(
      "this dataset is your own (benchmark custom), and its manifest holds no configuration: upload it again with `dataset upload <file.jsonl> --benchmark custom`",
    );
  return customPlugin(custom);
}
