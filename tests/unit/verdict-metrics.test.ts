import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { VerdictMetrics } from "../../src/adapters/verdict-metrics.ts";
import { buildVerdict } from "../../src/core/verdicts.ts";
import { METRICS } from "../../src/deployment/observability.ts";
import { datasetItem } from "../fixtures/dataset-item.ts";

/** Runs `fn` and returns the embedded-metric-format documents it printed. */
function captureEmf(fn: () => void): Record<string, unknown>[] {
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  try {
    fn();
  } finally {
    process.stdout.write = write;
  }
  return lines
    .flatMap((l) => l.split("\n"))
    .filter((l) => l.includes('"_aws"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("verdict metrics (embedded metric format)", () => {
  it("publishes counts, latency and tokens per service, and verdicts/errors per model", () => {
    const metrics = new Metrics({ namespace: METRICS.namespace, serviceName: METRICS.service });
    const recorder = new VerdictMetrics(metrics);
    const now = new Date(0);
    const answer = {
      kind: "answer",
      text: "No.",
      finishReason: "stop",
      latencyMs: 120,
      promptTokens: 90,
      completionTokens: 2,
      attempts: 1,
    } as const;
    const error = {
      kind: "error",
      errorKind: "timeout",
      message: "timed out",
      latencyMs: 60_000,
      attempts: 4,
    } as const;
    recorder.record(buildVerdict("r", "m1", "baseline", datasetItem(1000), answer, now));
    recorder.record(buildVerdict("r", "m1", "baseline", datasetItem(1001), error, now));
    recorder.record(buildVerdict("r", "m2", "baseline", datasetItem(1000), answer, now));
    const docs = captureEmf(() => recorder.flush());

    const aggregate = docs.find(
      (d) =>
        Array.isArray(d[METRICS.verdicts]) || (d[METRICS.verdicts] !== undefined && d.model === undefined),
    );
    assert.ok(aggregate, JSON.stringify(docs));
    assert.equal(aggregate.service, METRICS.service);
    const sum = (v: unknown) => (Array.isArray(v) ? v.reduce((a: number, b: number) => a + b, 0) : Number(v));
    assert.equal(sum(aggregate[METRICS.verdicts]), 3);
    assert.equal(sum(aggregate[METRICS.modelErrors]), 1);
    assert.deepEqual(aggregate[METRICS.modelLatency], [120, 120]);
    assert.equal(sum(aggregate[METRICS.promptTokens]), 180);

    const perModel = (id: string, metric: string) =>
      docs.find((d) => d.model === id && d[metric] !== undefined)?.[metric];
    assert.equal(perModel("m1", METRICS.verdicts), 2);
    assert.equal(perModel("m1", METRICS.modelErrors), 1);
    assert.equal(perModel("m2", METRICS.modelErrors), 0);
    const namespaces = docs.flatMap((d) =>
      ((d._aws as { CloudWatchMetrics: { Namespace: string }[] }).CloudWatchMetrics ?? []).map(
        (m) => m.Namespace,
      ),
    );
    assert.ok(namespaces.every((n) => n === METRICS.namespace));
  });
});
