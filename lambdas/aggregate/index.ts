import type { Context } from "aws-lambda";
import { createHandlerRuntime } from "../../src/adapters/handler-runtime.ts";
import { aggregate } from "../../src/pipeline/aggregate.ts";
import { MMSAFE_VERSION } from "../../src/version.ts";

const runtime = createHandlerRuntime();

/** Aggregate task: metrics and report for the run, then the run is marked SUCCEEDED. */
export async function handler(event: unknown, context: Context) {
  runtime.logger.addContext(context);
  try {
    const output = await aggregate(event, { ...runtime, version: MMSAFE_VERSION });
    runtime.logger.info("report published", { runId: output.runId, report: output.report.json });
    return output;
  } catch (error: unknown) {
    runtime.logger.error("aggregate failed", error instanceof Error ? error : new Error(String(error)));
    throw error;
  }
}
