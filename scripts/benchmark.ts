/**
 * Throughput benchmark: the full-size generated dataset (1,453 runnable pairs in the official layout)
 * against the reference model server running in its own process with a fixed latency, one model at a fixed
 * concurrency. The endpoint, not mmsafe, should be the bottleneck: the ideal wall time is
 * ceil(items / concurrency) × latency.
 *
 * Usage: npm run bench -- [--latency-ms 200] [--concurrency 16] [--runs 1]
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { writeSampleDataset } from "../src/dataset/sample.ts";
import { closeLocalSession, runLocal } from "../src/local/runner.ts";

const { values } = parseArgs({
  options: {
    "latency-ms": { type: "string", default: "200" },
    concurrency: { type: "string", default: "16" },
    runs: { type: "string", default: "1" },
    home: { type: "string", default: ".mmsafe/bench" },
  },
});
const latencyMs = Number(values["latency-ms"]);
const concurrency = Number(values.concurrency);
const home = path.resolve(values.home ?? ".mmsafe/bench");
const datasetDir = path.join(home, "dataset-full");

if (!existsSync(path.join(datasetDir, "data", "prompt.txt")))
  await writeSampleDataset(datasetDir, { size: "full" });
await rm(path.join(home, "aws"), { recursive: true, force: true });

// The model endpoint runs in its own process, as a real endpoint would.
const server = spawn(
  process.execPath,
  ["--import", "tsx", "scripts/reference-model-server.ts", "--latency-ms", String(latencyMs)],
  {
    stdio: ["ignore", "pipe", "inherit"],
  },
);
const baseURL = await new Promise<string>((resolve, reject) => {
  server.once("error", reject);
  createInterface({ input: server.stdout }).once("line", resolve);
});

let peakRss = 0;
let peakHeap = 0;
const sampler = setInterval(() => {
  const memory = process.memoryUsage();
  peakRss = Math.max(peakRss, memory.rss);
  peakHeap = Math.max(peakHeap, memory.heapTotal);
}, 50);

try {
  const model = {
    id: "always-no",
    baseURL,
    model: "always-no",
    kind: "baseline" as const,
    maxConcurrency: concurrency,
    maxTokens: 16,
    temperature: 0,
    timeoutMs: 30_000,
  };
  // Warm-up: uploads the dataset once (not part of an evaluation's time) and loads every module.
  await runLocal({
    home,
    datasetDir,
    models: [model],
    input: { limit: 16, cache: false },
    reportsDir: path.join(home, "reports"),
  });
  for (let run = 1; run <= Number(values.runs); run++) {
    peakRss = 0;
    peakHeap = 0;
    const result = await runLocal({
      home,
      datasetDir,
      models: [model],
      // Every run asks the endpoint: the benchmark measures the pipeline against it, not the cache.
      input: { cache: false },
      reportsDir: path.join(home, "reports"),
    });
    const items = result.output?.headline[0]?.answered ?? 0;
    const ideal = Math.ceil(items / concurrency) * latencyMs;
    console.log(
      JSON.stringify({
        run,
        status: result.execution.status,
        items,
        concurrency,
        latencyMs,
        wallSeconds: +(result.durationMs / 1000).toFixed(2),
        idealSeconds: +(ideal / 1000).toFixed(2),
        overheadPercent: +((100 * (result.durationMs - ideal)) / ideal).toFixed(1),
        itemsPerSecond: +((items * 1000) / result.durationMs).toFixed(1),
        peakRssMb: Math.round(peakRss / 1024 / 1024),
        peakHeapMb: Math.round(peakHeap / 1024 / 1024),
        phasesMs: result.phases,
      }),
    );
  }
} finally {
  clearInterval(sampler);
  await closeLocalSession();
  server.kill("SIGTERM");
}
