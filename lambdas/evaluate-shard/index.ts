import type { Context } from "aws-lambda";
import { createHandlerRuntime } from "../../src/adapters/handler-runtime.ts";
import { addDiffusionNoise } from "../../src/adapters/image-noise.ts";
import { OpenAIModelClient } from "../../src/adapters/openai-model.ts";
import { evaluateShard, processWideGates } from "../../src/pipeline/evaluate-shard.ts";

const runtime = createHandlerRuntime();
const models = new OpenAIModelClient(process.env);
const gatesFor = processWideGates();

/** EvaluateShard task: one verdict per item × model × strategy of the shard that has none yet. */
export async function handler(event: unknown, context: Context) {
  runtime.logger.addContext(context);
  try {
    const summary = await evaluateShard(event, {
      ...runtime,
      models,
      gatesFor,
      noiseImage: addDiffusionNoise,
      remainingMs: () => context.getRemainingTimeInMillis(),
    });
    runtime.logger.info("shard evaluated", { ...summary });
    return summary;
  } catch (error: unknown) {
    runtime.logger.error("shard failed", error instanceof Error ? error : new Error(String(error)));
    throw error;
  }
}
