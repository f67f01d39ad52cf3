import type { Context } from "aws-lambda";
import { renderCharts } from "../../src/adapters/chart-render.ts";
import { createHandlerRuntime } from "../../src/adapters/handler-runtime.ts";
import { thumbnailDataUrl } from "../../src/adapters/thumbnails.ts";
import { aggregate } from "../../src/pipeline/aggregate.ts";
import { MMSAFE_VERSION } from "../../src/version.ts";

const runtime = createHandlerRuntime();

/** Aggregate task: metrics and report for the run, then the run is marked SUCCEEDED. */
export async function handler(event: unknown, context: Context) {
  const started = performance.now();
  runtime.logger.addContext(context);
  try {
    const output = await aggregate(event, {
      ...runtime,
      version: MMSAFE_VERSION,
      // report.html: charts rendered to SVG and image thumbnails, both at report time.
      renderCharts,
      thumbnail: (bytes) => thumbnailDataUrl(bytes),
      // This invocation's usage up to the cost estimate; recorded on the run record afterwards.
      usageSoFar: () => ({ durationMs: performance.now() - started, aws: runtime.meter.snapshot() }),
    });
    await runtime.recordUsage("aggregate", output.runId, started);
    runtime.logger.info("report published", { runId: output.runId, report: output.report.json });
    return output;
  } catch (error: unknown) {
    runtime.logger.error("aggregate failed", error instanceof Error ? error : new Error(String(error)));
    throw error;
  }
}
