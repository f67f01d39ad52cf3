import type { Context } from "aws-lambda";
import { createHandlerRuntime } from "../../src/adapters/handler-runtime.ts";
import { describeZodError } from "../../src/core/schemas.ts";
import { bedrockModelListSchema } from "../../src/deployment/deploy-config.ts";
import { HANDLER_ENV } from "../../src/deployment/storage-layout.ts";
import { plan } from "../../src/pipeline/plan.ts";

const runtime = createHandlerRuntime();
/** The Bedrock models this deployment's role may invoke (set by the stack; absent in a local run). */
const allowedBedrockModels = ((text) => {
  if (text === undefined) return undefined;
  const parsed = bedrockModelListSchema.safeParse(JSON.parse(text));
  if (!parsed.success)
    throw new Error(describeZodError(parsed.error, `the handler's environment ${HANDLER_ENV.bedrockModels}`));
  return parsed.data;
})(process.env[HANDLER_ENV.bedrockModels]);

/** Plan task: validates the execution input, records the run, writes the shard manifest. */
export async function handler(event: unknown, context: Context) {
  const started = performance.now();
  runtime.logger.addContext(context);
  try {
    const output = await plan(event, {
      ...runtime,
      ...(allowedBedrockModels ? { allowedBedrockModels } : {}),
    });
    await runtime.recordUsage("plan", output.runId, started);
    runtime.logger.info("run planned", {
      runId: output.runId,
      planned: output.planned,
      shards: output.shards,
      models: output.models.map((m) => m.id),
    });
    return output;
  } catch (error: unknown) {
    runtime.logger.error("plan failed", error instanceof Error ? error : new Error(String(error)));
    throw error;
  }
}
