/**
 * Runs the reference model server in its own process, so a benchmark measures the pipeline and the
 * server on separate event loops.
 *
 * Usage: `npx tsx scripts/reference-model-server.ts [--port 8787] [--latency-ms 50]
 *   [--faults 429=0.1,500=0.05,timeout=0.02,garbage=0.02,drop=0.01,empty=0,filter=0] [--fault-seed 7]
 *   [--retry-after 1] [--retry-after-ms 200|none] [--max-hang-ms 300000]`
 *
 * `--faults` injects scripted, reproducible faults (see `FaultPlan` in src/local/reference-model-server.ts):
 * each valid completion request gets at most one, drawn from the seed, the question and its attempt number.
 * `--retry-after` / `--retry-after-ms` set the headers of a 429 (`none` leaves `retry-after-ms` out);
 * `--max-hang-ms` caps how long a `timeout` fault hangs before dropping the connection.
 *
 * Answers that are untrusted rather than failed are chosen per model by a suffix of its name (see
 * `MODEL_SUFFIXES`): `always-yes+echokey` echoes the request's bearer token (verbatim and masked),
 * `always-no+huge` answers with 2 MiB whose decision is at the very end, `random+badusage` reports invalid
 * token counts; `+nologprobs` ignores `logprobs`. They combine: `always-no+huge+badusage`.
 *
 * The same models answer the Bedrock Converse API at `POST /model/{modelId}/converse` on the same port (give
 * a `BedrockRuntimeClient` the base URL without `/v1` as its `endpoint`), with Bedrock's exceptions for
 * faults and for the Converse-only suffixes `+denied`, `+needsprofile` and `+noimage`.
 *
 * Prints the base URL on stdout (one line, to be captured by the caller) and stops on SIGINT/SIGTERM.
 */
import { parseArgs } from "node:util";
import {
  type FaultPlan,
  MODEL_SUFFIXES,
  NO_LOGPROBS_SUFFIX,
  parseFaultRates,
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

function integer(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed)) throw new Error(`--${flag} must be an integer, got "${value}"`);
  return parsed;
}

const FAULT_FLAGS = ["fault-seed", "retry-after", "retry-after-ms", "max-hang-ms"] as const;

/** The fault plan the flags describe; undefined without `--faults` (the other fault flags then refused). */
function faultPlan(
  values: Partial<Record<"faults" | (typeof FAULT_FLAGS)[number], string>>,
): FaultPlan | undefined {
  if (values.faults === undefined) {
    const stray = FAULT_FLAGS.find((flag) => values[flag] !== undefined);
    if (stray !== undefined) throw new Error(`--${stray} needs --faults`);
    return undefined;
  }
  const retryAfterMs = values["retry-after-ms"];
  return {
    rates: parseFaultRates(values.faults),
    seed: integer("fault-seed", values["fault-seed"]) ?? 0,
    ...(values["retry-after"] === undefined
      ? {}
      : { retryAfterSeconds: nonNegativeInteger("retry-after", values["retry-after"], 1) }),
    ...(retryAfterMs === undefined
      ? {}
      : {
          retryAfterMs:
            retryAfterMs === "none" ? null : nonNegativeInteger("retry-after-ms", retryAfterMs, 0),
        }),
    ...(values["max-hang-ms"] === undefined
      ? {}
      : { maxHangMs: nonNegativeInteger("max-hang-ms", values["max-hang-ms"], 0) }),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: "string" },
      "latency-ms": { type: "string" },
      faults: { type: "string" },
      "fault-seed": { type: "string" },
      "retry-after": { type: "string" },
      "retry-after-ms": { type: "string" },
      "max-hang-ms": { type: "string" },
    },
    strict: true,
  });
  const faults = faultPlan(values);
  const server = await startReferenceModelServer({
    port: nonNegativeInteger("port", values.port, 0),
    latencyMs: nonNegativeInteger("latency-ms", values["latency-ms"], 0),
    ...(faults === undefined ? {} : { faults }),
  });
  process.stdout.write(`${server.baseURL}\n`);
  if (faults !== undefined) process.stderr.write(`injecting faults: ${JSON.stringify(faults)}\n`);
  process.stderr.write(
    `reference models: ${REFERENCE_BASELINES.map((b) => b.model).join(", ")}, random:<int>; ` +
      `append ${NO_LOGPROBS_SUFFIX} to any of them for an endpoint that ignores logprobs, ` +
      `or ${MODEL_SUFFIXES.filter((s) => s !== NO_LOGPROBS_SUFFIX).join(", ")} for untrusted answers (key echo, 2 MiB, bad usage) ` +
      `and Bedrock refusals (access denied, inference profile needed, no image support)\n`,
  );
  process.stderr.write(`Bedrock Converse endpoint: ${server.origin} (POST /model/{modelId}/converse)\n`);

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
