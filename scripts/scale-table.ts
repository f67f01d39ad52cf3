/**
 * Prints the README's "Scale" table (`scaleTable` in src/deployment/cost.ts): what runs of 1,500, 15,000 and
 * 150,000 verdicts take on AWS and where they stand against the Step Functions limits.
 *
 *   npm run scale-table                                   # the README's assumptions
 *   npm run scale-table -- --latency-ms 2500 --max-concurrency 32 --map-concurrency 4 --requests-per-minute 500
 *
 * Options change every column's model budget and settings; the README's copy is checked against the
 * defaults by tests/unit/cost.test.ts.
 */
import { parseArgs } from "node:util";
import { type ScaleTableOptions, scaleTable } from "../src/deployment/cost.ts";

const OPTIONS = {
  "latency-ms": "modelLatencyMs",
  "max-concurrency": "maxConcurrency",
  "map-concurrency": "mapConcurrency",
  "shard-size": "shardSize",
  "requests-per-minute": "requestsPerMinute",
  "tokens-per-minute": "tokensPerMinute",
} as const satisfies Record<string, keyof ScaleTableOptions>;

function main(): void {
  const { values } = parseArgs({
    options: Object.fromEntries(Object.keys(OPTIONS).map((name) => [name, { type: "string" }])),
    strict: true,
  });
  const options: ScaleTableOptions = {};
  for (const [flag, field] of Object.entries(OPTIONS)) {
    const text = values[flag];
    if (typeof text !== "string") continue;
    const value = Number(text);
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`--${flag} must be a whole number ≥ 1, got ${JSON.stringify(text)}`);
    }
    options[field] = value;
  }
  process.stdout.write(scaleTable(options));
}

try {
  main();
} catch (error: unknown) {
  process.stderr.write(`scale-table: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 2;
}
