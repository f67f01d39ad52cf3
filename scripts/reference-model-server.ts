/**
 * Runs the reference model server in its own process, so a benchmark measures the pipeline and the
 * server on separate event loops.
 *
 * Usage: `npx tsx scripts/reference-model-server.ts [--port 8787] [--latency-ms 50]`
 * Prints the base URL on stdout (one line, to be captured by the caller) and stops on SIGINT/SIGTERM.
 */
import { parseArgs } from "node:util";
import {
  NO_LOGPROBS_SUFFIX,
  REFERENCE_BASELINES,
  startReferenceModelServer,
} from "../src/local/reference-model-server.ts";

function nonNegativeInteger(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) {
    throw new Error(`--${flag} must be a non-negative integer, got "${value}"`);
  }
  return parsed;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      "latency-ms": { type: "string" },
    },
    strict: true,
  });
  const server = await startReferenceModelServer({
    port: nonNegativeInteger("port", values.port, 0),
    latencyMs: nonNegativeInteger("latency-ms", values["latency-ms"], 0),
  });
  process.stdout.write(`${server.baseURL}\n`);
  process.stderr.write(
    `reference models: ${REFERENCE_BASELINES.map((b) => b.model).join(", ")}, random:<int>; ` +
      `append ${NO_LOGPROBS_SUFFIX} to any of them for an endpoint that ignores logprobs\n`,
  );

  const stop = (signal: NodeJS.Signals): void => {
    process.stderr.write(`${signal}: stopping reference server (${JSON.stringify(server.stats())})\n`);
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`reference server did not close cleanly: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
