/**
 * The plug-in benchmarks' run-time parts for one run. Your own dataset's come from the configuration Plan
 * copies beside the run's shards (`runs/<runId>/custom.json`), so every shard, a resume and a rejudge build the
 * same definition and judge, whatever happens to the dataset later.
 */
import type { ObjectStore } from "../adapters/object-store.ts";
import { CUSTOM_BENCHMARK, type CustomConfig, customConfigSchema } from "../benchmarks/custom/config.ts";
import type { PluginBenchmark } from "../benchmarks/names.ts";
import type { BenchmarkPlugin } from "../benchmarks/plugin.ts";
import { pluginFor } from "../benchmarks/registry.ts";
import { describeZodError } from "../core/schemas.ts";
import { runCustomConfigKey } from "../deployment/storage-layout.ts";

/** A run's plug-ins by benchmark. */
export type RunPlugins = (benchmark: PluginBenchmark) => BenchmarkPlugin;

/** Writes the custom configuration a run of your own dataset is planned with. */
export async function writeRunCustomConfig(
  store: ObjectStore,
  runId: string,
  config: CustomConfig,
): Promise<void> {
  await store.put(runCustomConfigKey(runId), JSON.stringify(config), "application/json");
}

/** Reads it back; null when the run has none (not a run of your own dataset). */
export async function readRunCustomConfig(store: ObjectStore, runId: string): Promise<CustomConfig | null> {
  const key = runCustomConfigKey(runId);
  const text = await store.getTextIfExists(key);
  if (text === null) return null;
  const parsed = customConfigSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new Error(describeZodError(parsed.error, key));
  return parsed.data;
}

/**
 * The plug-ins of a run whose items are of `benchmarks`: the configuration is read only when one is `custom`.
 * @throws CustomConfigMissingError when a custom item's run has no configuration
 */
export async function runPlugins(
  store: ObjectStore,
  runId: string,
  benchmarks: Iterable<string>,
): Promise<RunPlugins> {
  const custom = [...benchmarks].includes(CUSTOM_BENCHMARK) ? await readRunCustomConfig(store, runId) : null;
  const built = new Map<PluginBenchmark, BenchmarkPlugin>();
  return (benchmark) => {
    let plugin = built.get(benchmark);
    if (!plugin) {
      plugin = pluginFor(benchmark, custom);
      built.set(benchmark, plugin);
    }
    return plugin;
  };
}
