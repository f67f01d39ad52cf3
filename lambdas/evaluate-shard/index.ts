import { Metrics } from "@aws-lambda-powertools/metrics";
import type { Context } from "aws-lambda";
import { z } from "zod";
import { createHandlerRuntime } from "../../src/adapters/handler-runtime.ts";
import { CachingModelClient } from "../../src/adapters/response-cache.ts";
import { VerdictMetrics } from "../../src/adapters/verdict-metrics.ts";
import { describeZodError, type StoredVerdict } from "../../src/core/schemas.ts";
import { METRICS } from "../../src/deployment/observability.ts";
import { HANDLER_ENV } from "../../src/deployment/storage-layout.ts";
import { ShardIncompleteError } from "../../src/pipeline/errors.ts";
import {
  checkModels,
  evaluateShard,
  type NoiseImage,
  processWideGates,
} from "../../src/pipeline/evaluate-shard.ts";
import { RunBudgets } from "../../src/pipeline/run-budgets.ts";
import type { ModelWarning } from "../../src/providers/model-client.ts";
import { EnvOrSecretsKeySource } from "../../src/providers/openai/api-keys.ts";
import { OpenAIModelClient } from "../../src/providers/openai/client.ts";
import { ProviderModelClient } from "../../src/providers/router.ts";

const runtime = createHandlerRuntime();
/**
 * MMSAFE_LOG_ERROR_VERDICTS: "true" (the default, on Lambda) logs a structured WARN line per error
 * verdict; the local runner sets "false" because its progress display sums the errors up per model.
 */
const handlerLogging = z
  .object({ [HANDLER_ENV.logErrorVerdicts]: z.enum(["true", "false"]).default("true") })
  .safeParse(process.env);
if (!handlerLogging.success)
  throw new Error(describeZodError(handlerLogging.error, "the handler's environment"));
const logErrorVerdicts = handlerLogging.data[HANDLER_ENV.logErrorVerdicts] === "true";

// What an endpoint sent that could not be used as is (e.g. invalid token counts): a WARN line on Lambda;
// locally the report counts them.
const onModelWarning: ModelWarning | undefined = logErrorVerdicts
  ? (message, details) => runtime.logger.warn(message, details)
  : undefined;
// OpenAI-compatible keys: the model's apiKeyEnv variable if set, else its Secrets Manager secret (read once,
// cached). Bedrock: the function's role (the standard AWS credentials chain), its SDK loaded on first use.
// Answers go through the response cache under cache/ (skipped per shard when the event says cache: false).
const models = new CachingModelClient(
  new ProviderModelClient({
    openai: new OpenAIModelClient(
      new EnvOrSecretsKeySource(process.env),
      undefined,
      undefined,
      onModelWarning,
    ),
    bedrock: async () => {
      const { BedrockModelClient } = await import("../../src/providers/bedrock/client.ts");
      return new BedrockModelClient(onModelWarning ? { onWarning: onModelWarning } : {});
    },
  }),
  runtime.store,
  {
    onWarning: (message, details) => runtime.logger.warn(message, details),
  },
);
const gatesFor = processWideGates();
// Each model's limits hold for the run across every shard's container (see src/pipeline/run-budgets.ts).
const budgets = new RunBudgets(runtime.budgetStore, {
  onStoreError: (error) =>
    runtime.logger.warn("model budget store failed; calls wait and it is retried", {
      error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
    }),
});

/** Just enough of the event to label log lines before it is validated. */
const eventLabels = z.object({
  runId: z.string().catch("unknown"),
  shard: z.object({ index: z.number() }).catch({ index: -1 }),
  models: z.array(z.object({ id: z.string() })).catch([]),
});

/**
 * EvaluateShard task: one verdict per item × model × strategy of the shard that has none yet (or an error
 * verdict, on a resume). With `checkModels: true` (the CheckModels task), one question per model first.
 */
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
  // One Metrics buffer per invocation: the local runner runs shards concurrently in this module, and a
  // shared buffer would be published (and emptied) by whichever shard ends first, leaving the others to
  // publish nothing (Powertools' "No application metrics to publish" warning). On Lambda it costs nothing.
  const recorder = new VerdictMetrics(
    new Metrics({ namespace: METRICS.namespace, serviceName: METRICS.service }),
  );
  const check = typeof event === "object" && event !== null && "checkModels" in event;
  try {
    const deps = {
      ...runtime,
      models,
      gatesFor,
      budgets,
      // Loaded on first use (the vcd strategy only): sharp adds to every cold start otherwise.
      noiseImage: async (...args: Parameters<NoiseImage>) =>
        (await import("../../src/adapters/image-noise.ts")).addDiffusionNoise(...args),
      remainingMs: () => context.getRemainingTimeInMillis(),
      onVerdict: (verdict: StoredVerdict) => {
        recorder.record(verdict);
        if (verdict.status === "error" && logErrorVerdicts)
          logger.warn("error verdict", {
            model: verdict.modelId,
            strategy: verdict.strategy,
            itemId: verdict.itemId,
            errorKind: verdict.error?.kind,
            attempts: verdict.attempts,
          });
      },
    };
    if (check) {
      const checked = await checkModels(event, deps);
      logger.info("models checked", { ...checked });
      return checked;
    }
    const summary = await evaluateShard(event, deps);
    logger.info("shard evaluated", { ...summary });
    return summary;
  } catch (error: unknown) {
    if (error instanceof ShardIncompleteError) {
      // Expected near the deadline: the workflow's retry resumes the shard. Locally (no WARN lines) a shard has
      // no deadline, so only a halted run stops one early, and the runner says so itself.
      if (logErrorVerdicts)
        logger.warn("shard stopped early; the retry resumes it", { message: error.message });
      throw error;
    }
    logger.error(
      check ? "model check failed" : "shard failed",
      error instanceof Error ? error : new Error(String(error)),
    );
    throw error;
  } finally {
    // Cache writes finish before the container may be frozen (and are counted in the run's usage).
    await models.flush();
    // Slots go back before the container may be frozen, so other shards can take them.
    await budgets.settle();
    recorder.flush();
    await runtime.recordUsage("evaluateShard", labels.runId, started);
  }
}
