import { createHash } from "node:crypto";
import pLimit from "p-limit";
import { z } from "zod";
import type { ObjectStore } from "../adapters/object-store.ts";
import type { RunRecord, RunStore } from "../adapters/run-store.ts";
import { CUSTOM_BENCHMARK, type CustomConfig } from "../benchmarks/custom/config.ts";
import { CATEGORIES } from "../benchmarks/mmsafeaware/facts.ts";
import { DEFAULT_BENCHMARK, type RunnableBenchmark } from "../benchmarks/names.ts";
import type { BenchmarkPlugin } from "../benchmarks/plugin.ts";
import { pluginFor } from "../benchmarks/registry.ts";
import { countInOrder, stratifiedSample } from "../core/sampling.ts";
import {
  describeZodError,
  type ExecutionInput,
  executionInputSchema,
  isBedrock,
  type ModelConfig,
  modelEndpoint,
  modelsFileSchema,
  type PlanOutput,
  type ShardRef,
} from "../core/schemas.ts";
import { DEFAULT_VCD_OPTIONS } from "../core/strategies.ts";
import { defaultMapConcurrency } from "../deployment/map-concurrency.ts";
import { zeroCounters } from "../deployment/run-usage.ts";
import {
  MODELS_CONFIG_KEY,
  runManifestKey,
  runMapResultsPrefix,
  runShardKey,
} from "../deployment/storage-layout.ts";
import { parseShard, readDatasetManifest, toJsonl } from "./dataset-io.ts";
import { InvalidExecutionInputError, NoModelsConfiguredError } from "./errors.ts";
import { readRunCustomConfig, writeRunCustomConfig } from "./run-plugins.ts";

/** The Plan task's payload (built by the state machine from the execution input and context). */
export const planEventSchema = z.object({
  input: z.unknown(),
  executionName: z.string(),
  executionId: z.string(),
});

export interface PlanDeps {
  store: ObjectStore;
  runs: RunStore;
  now: () => Date;
  /**
   * The Bedrock models this deployment may call (config/deploy.json `bedrock.models`, which its IAM grants
   * follow); undefined when nothing restricts them (a local run, with the user's own credentials).
   */
  allowedBedrockModels?: readonly { id: string; region: string }[];
}

/** Refuses a Bedrock model the deployment's role may not invoke, before anything runs or is paid for. */
function checkBedrockAllowed(
  models: readonly ModelConfig[],
  allowed: PlanDeps["allowedBedrockModels"],
): void {
  if (allowed === undefined) return;
  for (const model of models) {
    if (!isBedrock(model)) continue;
    if (allowed.some((a) => a.id === model.model && a.region === model.region)) continue;
    throw new InvalidExecutionInputError(
      `models: "${model.id}" calls Bedrock model ${model.model} in ${model.region}, which this deployment may not ` +
        `invoke; add { "id": "${model.model}", "region": "${model.region}" } to bedrock.models in config/deploy.json ` +
        `and redeploy (allowed now: ${allowed.map((a) => `${a.region}/${a.id}`).join(", ") || "none"})`,
    );
  }
}

/** Resolves the execution input's models against `config/models.json`. */
async function resolveModels(
  store: ObjectStore,
  requested: readonly (string | ModelConfig)[] | undefined,
): Promise<ModelConfig[]> {
  const text = await store.getTextIfExists(MODELS_CONFIG_KEY);
  let configured: ModelConfig[] = [];
  if (text !== null) {
    const parsed = modelsFileSchema.safeParse(JSON.parse(text));
    if (!parsed.success)
      throw new NoModelsConfiguredError(
        describeZodError(parsed.error, `s3://${store.bucket}/${MODELS_CONFIG_KEY}`),
      );
    configured = parsed.data.models;
  }
  if (!requested) {
    if (configured.length === 0) {
      throw new NoModelsConfiguredError(
        `no models: the input names none and s3://${store.bucket}/${MODELS_CONFIG_KEY} ${text === null ? "does not exist" : "lists none"}; ` +
          'pass "models" in the input or upload a models file',
      );
    }
    return configured;
  }
  const models = requested.map((m) => {
    if (typeof m !== "string") return m;
    const found = configured.find((c) => c.id === m);
    if (!found) {
      const known = configured.map((c) => c.id).join(", ") || "none";
      throw new InvalidExecutionInputError(
        `models: "${m}" is not in s3://${store.bucket}/${MODELS_CONFIG_KEY} (configured: ${known})`,
      );
    }
    return found;
  });
  const ids = models.map((m) => m.id);
  const duplicate = ids.find((id, i) => ids.indexOf(id) !== i);
  if (duplicate) throw new InvalidExecutionInputError(`models: "${duplicate}" is listed twice`);
  return models;
}

/** A plug-in benchmark's run-time parts (your own dataset's from its manifest), or null for MMSafeAware. */
function pluginOf(
  benchmark: RunnableBenchmark,
  custom: CustomConfig | null | undefined,
): BenchmarkPlugin | null {
  return benchmark === DEFAULT_BENCHMARK ? null : pluginFor(benchmark, custom);
}

/** The column keys of a benchmark, in its order (MMSafeAware's categories). */
function columnsOf(plugin: BenchmarkPlugin | null): readonly string[] {
  return plugin === null ? CATEGORIES : plugin.definition.columns.map((c) => c.key);
}

/** Categories, strategies and the scorer the run names must be ones its benchmark has. */
function checkBenchmarkOptions(
  input: ExecutionInput,
  plugin: BenchmarkPlugin | null,
  columns: readonly string[],
): void {
  const unknown = input.categories?.find((c) => !columns.includes(c));
  if (unknown !== undefined)
    throw new InvalidExecutionInputError(
      `categories: "${unknown}" is not a column of ${input.benchmark}; its columns are ${columns.join(", ")}`,
    );
  checkScorer(input, plugin);
  if (plugin === null) return;
  const allowed: readonly string[] = plugin.strategies;
  const refused = input.strategies.find((s) => !allowed.includes(s));
  if (refused !== undefined)
    throw new InvalidExecutionInputError(
      `strategies: ${refused} does not apply to ${input.benchmark} (its items are sent verbatim, with no Yes/No question); use ${allowed.join(" or ")}`,
    );
}

/**
 * A scorer the input names must be one of the benchmark's no-judge scorers (a judge's is chosen by naming the
 * judge); MMSafeAware's report shows both of its scorers, so it takes none.
 */
function checkScorer(input: ExecutionInput, plugin: BenchmarkPlugin | null): void {
  if (input.scorer === undefined) return;
  if (plugin === null)
    throw new InvalidExecutionInputError(
      "scorer: MMSafeAware's report shows both its scorers (paper and strict); name none",
    );
  const ids = plugin.definition.scorers.filter((s) => !s.needsJudge).map((s) => s.id);
  if (!ids.includes(input.scorer))
    throw new InvalidExecutionInputError(
      `scorer: "${input.scorer}" is not a scorer of ${input.benchmark}${plugin.definition.scorers.some((s) => s.needsJudge) ? " (name a judge to score with it)" : ""}; use ${ids.join(" or ")}`,
    );
}

/**
 * The run's judge, at temperature 0 as the benchmarks' judge code asks; null without one.
 * @throws InvalidExecutionInputError for a benchmark with no judge protocol, or a judge that is not configured.
 */
async function resolveJudge(
  store: ObjectStore,
  input: ExecutionInput,
  plugin: BenchmarkPlugin | null,
): Promise<ModelConfig | null> {
  if (input.judge === undefined) return null;
  const protocol = plugin?.judge ?? null;
  if (protocol === null)
    throw new InvalidExecutionInputError(
      input.benchmark === CUSTOM_BENCHMARK
        ? plugin?.definition.scorers.some((s) => s.id === "paper")
          ? "judge: this dataset's items expect yes/no answers, which the paper or strict scorer reads; a judge reads refusals (refuse/comply items)"
          : "judge: this dataset was imported without a judge prompt; upload it again with --judge-prompt <file>"
        : `judge: ${input.benchmark} has no judge protocol mmsafe reproduces; its official scoring needs no judge`,
    );
  const [judge] = await resolveModels(store, [input.judge]).catch((error: unknown) => {
    throw error instanceof InvalidExecutionInputError
      ? new InvalidExecutionInputError(error.message.replace(/^models:/, "judge:"))
      : error;
  });
  if (!judge) throw new InvalidExecutionInputError("judge: no model given");
  return { ...judge, temperature: 0 };
}

/**
 * A rejudge: the run as it was planned (items, models, strategies; its shards are read again, not cut
 * again), with a judge that reads the stored answers. The evaluated models are never asked.
 */
async function rejudgePlan(
  input: ExecutionInput,
  runId: string,
  envelope: z.infer<typeof planEventSchema>,
  deps: PlanDeps,
): Promise<PlanOutput> {
  if (input.runId === undefined || input.judge === undefined)
    throw new InvalidExecutionInputError(
      'judgeOnly: name the run to rejudge ("runId") and the judge ("judge")',
    );
  const run = await deps.runs.get(runId);
  if (run === null) throw new InvalidExecutionInputError(`judgeOnly: there is no run ${runId} to rejudge`);
  const benchmark = run.benchmark ?? DEFAULT_BENCHMARK;
  const custom = benchmark === CUSTOM_BENCHMARK ? await readRunCustomConfig(deps.store, runId) : null;
  const judge = await resolveJudge(deps.store, { ...input, benchmark }, pluginOf(benchmark, custom));
  if (judge === null) throw new InvalidExecutionInputError("judge: no model given");
  checkBedrockAllowed([judge], deps.allowedBedrockModels);
  const now = deps.now().toISOString();
  const { finishedAt: _f, headline: _h, report: _r, error: _e, cause: _c, ...kept } = run;
  await deps.runs.startOrResume({
    ...kept,
    status: "RUNNING",
    executionId: envelope.executionId,
    judge,
    updatedAt: now,
  });
  const manifestKey = runManifestKey(runId);
  return {
    runId,
    bucket: deps.store.bucket,
    manifestKey,
    mapResultsPrefix: runMapResultsPrefix(runId),
    models: run.models,
    strategies: run.strategies,
    vcd: run.vcd ?? DEFAULT_VCD_OPTIONS,
    cache: input.cache,
    retryErrors: input.retryErrors,
    retryErrorsBefore: now,
    judge,
    judgeOnly: true,
    mapConcurrency:
      input.mapConcurrency ??
      defaultMapConcurrency(
        [judge.maxConcurrency],
        // Judge calls a shard makes: one per item, model and strategy.
        Math.ceil(run.plannedItems / Math.max(1, run.shards)) * run.models.length * run.strategies.length,
        run.shards,
      ),
    toleratedFailurePercentage: input.toleratedFailurePercentage,
    planned: run.plannedItems,
    shards: run.shards,
  };
}

/** What decides which verdicts a run must hold. Shard size and concurrency don't, so they may change on resume. */
function configHash(parts: unknown): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

/**
 * Plan: validate the input (filling defaults, so `{}` is valid), record the run, cut the dataset into run
 * shards and write the shard manifest that the Distributed Map reads.
 */
export async function plan(event: unknown, deps: PlanDeps): Promise<PlanOutput> {
  const { store, runs } = deps;
  const envelope = planEventSchema.parse(event);
  const parsedInput = executionInputSchema.safeParse(envelope.input ?? {});
  if (!parsedInput.success)
    throw new InvalidExecutionInputError(describeZodError(parsedInput.error, "execution input"));
  const input = parsedInput.data;
  const runId = input.runId ?? envelope.executionName;
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$/.test(runId)) {
    throw new InvalidExecutionInputError(
      `runId: "${runId}" must be 1–80 letters, digits, '.', '_', ':' or '-'`,
    );
  }

  if (input.judgeOnly) return rejudgePlan(input, runId, envelope, deps);
  const [models, dataset] = await Promise.all([
    resolveModels(store, input.models),
    readDatasetManifest(store, input.dataset),
  ]);
  checkBedrockAllowed(models, deps.allowedBedrockModels);
  if (dataset.benchmark !== input.benchmark)
    throw new InvalidExecutionInputError(
      `benchmark: dataset "${input.dataset}" holds ${dataset.benchmark} items, not ${input.benchmark}; ` +
        `name its benchmark ("benchmark": "${dataset.benchmark}") or a dataset imported as ${input.benchmark}`,
    );

  const plugin = pluginOf(input.benchmark, dataset.custom);
  const columns = columnsOf(plugin);
  checkBenchmarkOptions(input, plugin, columns);
  const judge = await resolveJudge(store, input, plugin);

  const shardTexts = await pLimit(16).map(dataset.shards, (shard) => store.getText(shard.key));
  let items = dataset.shards.flatMap((shard, i) => parseShard(shardTexts[i] ?? "", shard.key));
  if (input.categories) {
    const wanted = new Set(input.categories);
    items = items.filter((item) => wanted.has(item.category));
  }
  // A smoke test keeps every column: proportional per category, lowest ids within each, in id order.
  const eligible =
    input.limit === undefined
      ? undefined
      : countInOrder(
          columns,
          items.map((item) => item.category),
        );
  if (input.limit !== undefined) items = stratifiedSample(items, input.limit, columns);
  if (items.length === 0)
    throw new InvalidExecutionInputError("categories/limit: the filters leave no items to evaluate");

  const shards: ShardRef[] = [];
  for (let start = 0, index = 0; start < items.length; start += input.shardSize, index++) {
    shards.push({
      index,
      key: runShardKey(runId, index),
      items: Math.min(input.shardSize, items.length - start),
    });
  }
  await pLimit(16).map(shards, (shard) =>
    store.put(
      shard.key,
      toJsonl(items.slice(shard.index * input.shardSize, shard.index * input.shardSize + shard.items)),
      "application/x-ndjson",
    ),
  );
  const manifestKey = runManifestKey(runId);
  await store.put(manifestKey, JSON.stringify(shards), "application/json");
  if (dataset.custom) await writeRunCustomConfig(store, runId, dataset.custom);

  const vcd = input.vcd ?? DEFAULT_VCD_OPTIONS;
  const usesVcd = input.strategies.includes("vcd");
  const now = deps.now().toISOString();
  const record: RunRecord = {
    runId,
    status: "RUNNING",
    executionId: envelope.executionId,
    benchmark: input.benchmark,
    dataset: input.dataset,
    datasetChecksum: dataset.checksum,
    datasetProvenance: dataset.provenance,
    configHash: configHash({
      // Only named when not the default, so runs planned before benchmarks were named resume unchanged.
      ...(input.benchmark === DEFAULT_BENCHMARK ? {} : { benchmark: input.benchmark }),
      dataset: input.dataset,
      checksum: dataset.checksum,
      models: models.map((m) => [m.id, modelEndpoint(m), m.model, m.maxTokens, m.temperature]),
      strategies: input.strategies,
      vcd: usesVcd ? vcd : null,
      categories: input.categories ?? null,
      // Named with its selection rule: a run planned when a limit took the first N ids can't resume as a sample.
      limit: input.limit === undefined ? null : { n: input.limit, selection: "stratified-by-category" },
    }),
    models,
    strategies: input.strategies,
    judge: judge ?? undefined,
    scorer: input.scorer,
    vcd: usesVcd ? vcd : undefined,
    schedule: input.schedule,
    categories: input.categories,
    limit: input.limit,
    eligible,
    plannedItems: items.length,
    plannedVerdicts: items.length * models.length * input.strategies.length,
    shards: shards.length,
    startedAt: now,
    updatedAt: now,
    attempts: 1,
    usage: zeroCounters(),
  };
  await runs.startOrResume(record);

  return {
    runId,
    bucket: store.bucket,
    manifestKey,
    mapResultsPrefix: runMapResultsPrefix(runId),
    models,
    strategies: input.strategies,
    vcd,
    cache: input.cache,
    retryErrors: input.retryErrors,
    retryErrorsBefore: now,
    judge,
    judgeOnly: false,
    mapConcurrency:
      input.mapConcurrency ??
      defaultMapConcurrency(
        models.map((m) => m.maxConcurrency),
        // Calls a shard makes to each model: one per item and strategy, two for vcd (clean and noised).
        input.shardSize * input.strategies.reduce((sum, s) => sum + (s === "vcd" ? 2 : 1), 0),
        shards.length,
      ),
    toleratedFailurePercentage: input.toleratedFailurePercentage,
    planned: items.length,
    shards: shards.length,
  };
}
