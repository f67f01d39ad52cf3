import type { Context } from "aws-lambda";
import { createHandlerRuntime } from "../../src/adapters/handler-runtime.ts";
import { plan } from "../../src/pipeline/plan.ts";

const runtime = createHandlerRuntime();

/** Plan task: validates the execution input, records the run, writes the shard manifest. */
export async function handler(event: unknown, context: Context) {
  const started = performance.now();
  runtime.logger.addContext(context);
  try {
    const output = await plan(event, runtime);
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
