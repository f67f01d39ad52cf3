import { Metrics } from "@aws-lambda-powertools/metrics";
import type { Context } from "aws-lambda";
import { z } from "zod";
import { EnvOrSecretsKeySource } from "../../src/adapters/api-keys.ts";
import { createHandlerRuntime } from "../../src/adapters/handler-runtime.ts";
import { addDiffusionNoise } from "../../src/adapters/image-noise.ts";
import { OpenAIModelClient } from "../../src/adapters/openai-model.ts";
import { CachingModelClient } from "../../src/adapters/response-cache.ts";
import { VerdictMetrics } from "../../src/adapters/verdict-metrics.ts";
import { METRICS } from "../../src/core/observability.ts";
import { evaluateShard, processWideGates } from "../../src/pipeline/evaluate-shard.ts";

const runtime = createHandlerRuntime();
// Keys: the model's apiKeyEnv variable if set, else its Secrets Manager secret (read once, cached).
// Answers go through the response cache under cache/ (skipped per shard when the event says cache: false).
const models = new CachingModelClient(
  new OpenAIModelClient(new EnvOrSecretsKeySource(process.env)),
  runtime.store,
  {
    onWarning: (message, details) => runtime.logger.warn(message, details),
  },
);
const gatesFor = processWideGates();
const metrics = new Metrics({ namespace: METRICS.namespace, serviceName: METRICS.service });

/** Just enough of the event to label log lines before it is validated. */
const eventLabels = z.object({
  runId: z.string().catch("unknown"),
  shard: z.object({ index: z.number() }).catch({ index: -1 }),
  models: z.array(z.object({ id: z.string() })).catch([]),
});

/** EvaluateShard task: one verdict per item × model × strategy of the shard that has none yet. */
export async function handler(event: unknown, context: Context) {
  const started = performance.now();
  const labels = eventLabels.parse(event ?? {});
  // A child logger per invocation: the local runner runs shards concurrently in one process.
  const logger = runtime.logger.createChild({
    persistentKeys: {
      runId: labels.runId,
      shard: labels.shard.index,
      models: labels.models.map((m) => m.id),
    },
  });
  logger.addContext(context);
  const recorder = new VerdictMetrics(metrics);
  try {
    const summary = await evaluateShard(event, {
      ...runtime,
      models,
      gatesFor,
      noiseImage: addDiffusionNoise,
      remainingMs: () => context.getRemainingTimeInMillis(),
      onVerdict: (verdict) => {
        recorder.record(verdict);
        if (verdict.status === "error")
          logger.warn("error verdict", {
            model: verdict.modelId,
            strategy: verdict.strategy,
            itemId: verdict.itemId,
            errorKind: verdict.error?.kind,
            attempts: verdict.attempts,
          });
      },
    });
    logger.info("shard evaluated", { ...summary });
    return summary;
  } catch (error: unknown) {
    logger.error("shard failed", error instanceof Error ? error : new Error(String(error)));
    throw error;
  } finally {
    // Cache writes finish before the container may be frozen (and are counted in the run's usage).
    await models.flush();
    recorder.flush();
    await runtime.recordUsage("evaluateShard", labels.runId, started);
  }
}
