/**
 * Throughput benchmark (issue 12): mmsafe against the floor, on the full-size generated dataset (1,453
 * runnable items, photo-like images in the real data's formats and sizes).
 *
 * Every measured process runs on its own, one at a time, against the reference model server in a process
 * of its own (started fresh per run, so its counters describe that run):
 *
 * - floor: the same calls made by a bare `openai` SDK loop (scripts/bench/floor.ts), `--concurrency`
 *   calls at once per model, the messages built by mmsafe's own prompt code;
 * - first: `mmsafe run` on a new home: dataset import and verification, upload, thumbnails, then the run;
 * - second: `mmsafe run` again on that home (a new run id), so only the run itself.
 *
 * For each: wall time (spawn to exit), the ideal ceil(items / concurrency) × latency, the ratio to both,
 * CPU time per verdict and peak RSS of the whole process tree (the CLI and its children, the embedded
 * S3/DynamoDB process among them; see scripts/bench/process-tree.ts), and what the endpoint saw. The
 * targets of the issue are shown beside each figure; missing one never fails the benchmark (exit 0).
 *
 * Usage: npm run bench -- [--latency 200,50] [--models 1,4] [--runs first,second] [--quick]
 *   [--concurrency 16] [--seed 0] [--dataset <dir>] [--dir .mmsafe/bench] [--json <file>]
 *
 * --dataset: any dataset in the official layout (the real data, say) instead of the generated sample.
 * Without --latency/--models it measures the issue's table: 1 model at 200 and 50 ms, 4 models at 200 ms.
 * With either, every combination of the two lists. --quick: 1 model at 50 ms only.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { z } from "zod";
import { startEndpoint } from "./bench/endpoint.ts";
import { writeFloorPlan } from "./bench/floor-plan.ts";
import type { FloorOutcome } from "./bench/floor-protocol.ts";
import { type MeasuredProcess, runMeasured } from "./bench/measure.ts";
import {
  checkTargets,
  counterpart,
  idealMs,
  megabytes,
  type RunKind,
  type RunResult,
  renderMarkdown,
  runLabel,
  verdictsOf,
} from "./bench/results.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const USAGE = `Usage: npm run bench -- [options]

  --latency <ms,...>   endpoint latencies (default: the issue's table, see below)
  --models <n,...>     models evaluated at once, each with --concurrency call slots
  --runs <list>        first and/or second (default first,second; the floor always runs)
  --quick              1 model at 50 ms only
  --concurrency <n>    call slots per model (default 16)
  --seed <n>           seed of the generated full-size sample (default 0)
  --dataset <dir>      another dataset in the official layout instead of the generated sample
  --dir <dir>          work folder: sample, homes, models files (default .mmsafe/bench)
  --json <file>        where to write the results (default <dir>/results.json)

Without --latency/--models: 1 model at 200 and 50 ms, 4 models at 200 ms. With either, every combination.
`;

/** Sent with every call, by mmsafe (models file) and the floor alike. */
const CALL_SETTINGS = { maxTokens: 16, temperature: 0, timeoutMs: 60_000 } as const;

/** Reference-server models for 1, 2, 3… models at once: the fixed baselines, then seeded random ones. */
function modelNames(count: number): string[] {
  const fixed = ["always-no", "always-yes", "random"];
  return Array.from({ length: count }, (_, i) => fixed[i] ?? `random:${i}`);
}

interface Setup {
  latencyMs: number;
  models: number;
}

interface Options {
  setups: Setup[];
  runs: RunKind[];
  concurrency: number;
  seed: number;
  dir: string;
  json: string;
  /** A dataset folder to use instead of the generated full-size sample. */
  dataset: string | undefined;
}

/** A flag the benchmark cannot use; printed without a stack trace. */
class BenchUsageError extends Error {
  override readonly name = "BenchUsageError";
}

function list(flag: string, value: string, min: number, max: number): number[] {
  const values = value.split(",").map((part) => Number(part.trim()));
  for (const v of values) {
    if (!Number.isInteger(v) || v < min || v > max)
      throw new BenchUsageError(`--${flag}: each value must be an integer in ${min}..${max}, got "${value}"`);
  }
  return values;
}

function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      latency: { type: "string" },
      models: { type: "string" },
      runs: { type: "string", default: "first,second" },
      quick: { type: "boolean", default: false },
      concurrency: { type: "string", default: "16" },
      seed: { type: "string", default: "0" },
      dir: { type: "string", default: ".mmsafe/bench" },
      dataset: { type: "string" },
      json: { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  let setups: Setup[];
  if (values.quick) setups = [{ latencyMs: 50, models: 1 }];
  else if (values.latency === undefined && values.models === undefined) {
    // The issue's table.
    setups = [
      { latencyMs: 200, models: 1 },
      { latencyMs: 50, models: 1 },
      { latencyMs: 200, models: 4 },
    ];
  } else {
    const latencies = list("latency", values.latency ?? "200,50", 0, 60_000);
    const models = list("models", values.models ?? "1", 1, 16);
    setups = models.flatMap((m) => latencies.map((latencyMs) => ({ latencyMs, models: m })));
  }
  const runs = values.runs.split(",").map((r) => r.trim());
  for (const run of runs) {
    if (run !== "first" && run !== "second")
      throw new BenchUsageError(`--runs: first and/or second, got "${run}"`);
  }
  const [concurrency = 16] = list("concurrency", values.concurrency, 1, 256);
  const [seed = 0] = list("seed", values.seed, 0, 2 ** 31);
  const dir = path.resolve(values.dir);
  return {
    setups,
    runs: ["floor", ...(runs as RunKind[])],
    concurrency,
    seed,
    dir,
    json: path.resolve(values.json ?? path.join(dir, "results.json")),
    dataset: values.dataset === undefined ? undefined : path.resolve(values.dataset),
  };
}

/** The stamp beside a generated sample: which generator made it, and how long that took. */
const stampSchema = z.object({
  generator: z.string(),
  seed: z.number(),
  generation: z.object({ wallMs: z.number(), cpuMs: z.number(), peakRssMb: z.number() }).nullable(),
});

/** The floor's line of output ({@link FloorOutcome}). */
const floorOutcomeSchema = z.object({
  calls: z.number(),
  errors: z.number(),
  firstError: z.string().nullable(),
  loopMs: z.number(),
}) satisfies z.ZodType<FloorOutcome>;

/** What the dataset folder holds, and how long generating it took (when this invocation generated it). */
interface DatasetInfo {
  dir: string;
  /** The sample's seed; null for a dataset given with --dataset. */
  seed: number | null;
  images: number;
  bytes: number;
  generation: { wallMs: number; cpuMs: number; peakRssMb: number } | null;
}

/**
 * The full-size sample for the seed, generated by `mmsafe dataset sample --full` when missing or made by
 * another version of the generator (a stamp beside it records a hash of src/benchmarks/mmsafeaware/sample.ts).
 */
async function ensureDataset(dir: string, seed: number): Promise<DatasetInfo> {
  const datasetDir = path.join(dir, `dataset-full-seed${seed}`);
  const stampFile = `${datasetDir}.json`;
  const generator = createHash("sha256")
    .update(await readFile(path.join(REPO_ROOT, "src", "benchmarks", "mmsafeaware", "sample.ts")))
    .digest("hex");
  const stamp = await readFile(stampFile, "utf8").then(
    (text) => stampSchema.safeParse(JSON.parse(text)).data ?? null,
    () => null,
  );
  let generation: DatasetInfo["generation"] = null;
  const present = await stat(path.join(datasetDir, "data", "prompt.txt")).then(
    () => true,
    () => false,
  );
  if (!present || stamp?.generator !== generator) {
    await rm(datasetDir, { recursive: true, force: true });
    process.stderr.write(`generating the full-size sample (seed ${seed}) in ${datasetDir}…\n`);
    const run = await runMeasured(
      process.execPath,
      ["bin/mmsafe.js", "dataset", "sample", "--full", "--seed", String(seed), datasetDir],
      { cwd: REPO_ROOT },
    );
    if (run.exitCode !== 0) throw new Error(`mmsafe dataset sample failed: ${run.stderrTail}`);
    generation = {
      wallMs: Math.round(run.wallMs),
      cpuMs: Math.round(run.cpuMs),
      peakRssMb: Math.round(megabytes(run.tree.peakTreeRssBytes)),
    };
    await writeFile(stampFile, `${JSON.stringify({ generator, seed, generation }, null, 2)}\n`);
  } else generation = stamp?.generation ?? null;
  return { dir: datasetDir, seed, ...(await imageStats(datasetDir)), generation };
}

async function imageStats(datasetDir: string): Promise<{ images: number; bytes: number }> {
  const files = await imageFiles(datasetDir);
  const sizes = await Promise.all(files.map(async (file) => (await stat(file)).size));
  return { images: files.length, bytes: sizes.reduce((a, b) => a + b, 0) };
}

/** The image files of a dataset in the official layout (the stray `test` files left out). */
async function imageFiles(datasetDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const folder of ["images", "images2"]) {
    const dir = path.join(datasetDir, "data", folder);
    for (const name of await readdir(dir)) if (/^\d+\.[a-z]+$/.test(name)) out.push(path.join(dir, name));
  }
  return out;
}

/** One measured run against a fresh endpoint; `command` gets the endpoint's base URL. */
async function measure(
  kind: RunKind,
  setup: Setup,
  options: Options,
  items: number,
  command: (baseURL: string) => Promise<string[]>,
): Promise<{ result: RunResult; process: MeasuredProcess }> {
  const endpoint = await startEndpoint(REPO_ROOT, setup.latencyMs);
  try {
    const args = await command(endpoint.baseURL);
    const loadBefore = os.loadavg()[0] ?? 0;
    const run = await runMeasured(process.execPath, args, { cwd: REPO_ROOT });
    const loadAfter = os.loadavg()[0] ?? 0;
    const result: RunResult = {
      kind,
      latencyMs: setup.latencyMs,
      models: setup.models,
      concurrency: options.concurrency,
      items,
      exitCode: run.exitCode,
      wallMs: run.wallMs,
      cpuMs: run.cpuMs,
      cpuSource: run.cpuSource,
      cpuReapedMs: run.reapedCpuMs,
      cpuSampledMs: run.tree.sampledCpuMs,
      peakTreeRssBytes: run.tree.peakTreeRssBytes,
      maxProcesses: run.tree.maxProcesses,
      processes: run.tree.processes,
      endpoint: await endpoint.observe(),
      loadAverage: { before: loadBefore, after: loadAfter },
    };
    return { result, process: run };
  } finally {
    await endpoint.stop();
  }
}

/** Models file for mmsafe: the same models, call slots and call settings as the floor. */
async function writeModelsFile(
  file: string,
  baseURL: string,
  setup: Setup,
  concurrency: number,
): Promise<void> {
  const models = modelNames(setup.models).map((model) => ({
    id: model.replace(/[^A-Za-z0-9._-]/g, "-"),
    baseURL,
    model,
    maxConcurrency: concurrency,
    ...CALL_SETTINGS,
  }));
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify({ models }, null, 2)}\n`);
}

/** One line per run while the benchmark goes: the figures, per-process CPU and memory, what the endpoint saw. */
function summaryLine(result: RunResult, results: readonly RunResult[], run: MeasuredProcess): string {
  const ideal = idealMs(result.items, result.concurrency, result.latencyMs);
  const floor = counterpart(results, result, "floor");
  const parts = [
    `${runLabel(result)}: wall ${(result.wallMs / 1000).toFixed(2)} s`,
    `ideal ${(ideal / 1000).toFixed(2)} s (×${(result.wallMs / ideal).toFixed(3)})`,
  ];
  if (floor !== undefined && result.kind !== "floor") {
    parts.push(`×${(result.wallMs / floor.wallMs).toFixed(3)} floor`);
  }
  const byLabel = new Map<string, { cpuMs: number; rssMb: number; count: number }>();
  for (const p of result.processes) {
    const entry = byLabel.get(p.label) ?? { cpuMs: 0, rssMb: 0, count: 0 };
    entry.cpuMs += p.cpuMs;
    entry.rssMb = Math.max(entry.rssMb, megabytes(p.peakRssBytes));
    entry.count++;
    byLabel.set(p.label, entry);
  }
  const perProcess = [...byLabel]
    .map(
      ([label, e]) =>
        `${label}${e.count > 1 ? ` ×${e.count}` : ""} ${Math.round(e.cpuMs)} ms/${Math.round(e.rssMb)} MB`,
    )
    .join(", ");
  parts.push(
    `CPU ${(result.cpuMs / verdictsOf(result)).toFixed(2)} ms/verdict (${Math.round(result.cpuMs)} ms ${result.cpuSource}; ${perProcess})`,
    `peak RSS ${megabytes(result.peakTreeRssBytes).toFixed(0)} MB over ${result.maxProcesses} process(es)`,
    `endpoint ${result.endpoint.requests} calls, max in flight ${result.endpoint.maxInFlight ?? "n/a"}, ${Math.round(result.endpoint.cpuMs)} ms CPU`,
  );
  if (floor !== undefined && result.kind !== "floor") {
    parts.push(
      floor.endpoint.questionsDigest === result.endpoint.questionsDigest
        ? "same questions as the floor"
        : "DIFFERENT questions from the floor",
    );
  }
  if (result.endpoint.requests !== verdictsOf(result)) {
    parts.push(`WARNING: ${verdictsOf(result)} calls expected`);
  }
  if (result.exitCode !== 0) parts.push(`FAILED (exit ${result.exitCode}): ${run.stderrTail.trim()}`);
  return parts.join("; ");
}

/** The commit measured, and whether the working tree had changes (read-only git commands). */
function gitCommit(): { commit: string; dirty: boolean } | null {
  try {
    const commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: REPO_ROOT, encoding: "utf8" }).trim();
    const status = execFileSync("git", ["status", "--porcelain"], { cwd: REPO_ROOT, encoding: "utf8" });
    return { commit, dirty: status.trim() !== "" };
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseOptions(argv);
  await mkdir(options.dir, { recursive: true });
  const dataset: DatasetInfo =
    options.dataset === undefined
      ? await ensureDataset(options.dir, options.seed)
      : { dir: options.dataset, seed: null, ...(await imageStats(options.dataset)), generation: null };
  const planFile = path.join(options.dir, "floor-plan.json");
  const items = await writeFloorPlan(dataset.dir, planFile);
  process.stderr.write(
    `dataset: ${dataset.images} images, ${megabytes(dataset.bytes).toFixed(1)} MB, ${items} runnable items` +
      (dataset.generation === null
        ? "\n"
        : `; generated in ${(dataset.generation.wallMs / 1000).toFixed(1)} s (${(dataset.generation.cpuMs / 1000).toFixed(1)} s CPU, peak RSS ${dataset.generation.peakRssMb} MB)\n`),
  );
  // Node's own TypeScript support runs the floor without a loader (flagged before Node 22.18).
  const stripTypes = process.features.typescript === false ? ["--experimental-strip-types"] : [];

  const results: RunResult[] = [];
  for (const setup of options.setups) {
    const names = modelNames(setup.models);
    const slug = `${setup.latencyMs}ms-${setup.models}x${options.concurrency}`;
    const home = path.join(options.dir, "homes", slug);
    const modelsFile = path.join(options.dir, "models", `${slug}.json`);
    for (const kind of options.runs) {
      if (kind === "first") await rm(home, { recursive: true, force: true });
      if (kind === "second" && !options.runs.includes("first")) {
        // A second run needs a home that has the dataset: fill it with a short, unmeasured run.
        await rm(home, { recursive: true, force: true });
        await measure("first", setup, options, items, async (baseURL) => {
          await writeModelsFile(modelsFile, baseURL, setup, options.concurrency);
          return mmsafeRun(home, dataset.dir, modelsFile, ["--limit", "16"]);
        });
      }
      const { result, process: run } = await measure(kind, setup, options, items, async (baseURL) => {
        if (kind === "floor") {
          return [
            ...stripTypes,
            "scripts/bench/floor.ts",
            ...["--plan", planFile, "--base-url", baseURL, "--models", names.join(",")],
            ...["--concurrency", String(options.concurrency)],
            ...[
              "--max-tokens",
              String(CALL_SETTINGS.maxTokens),
              "--temperature",
              String(CALL_SETTINGS.temperature),
            ],
            ...["--timeout-ms", String(CALL_SETTINGS.timeoutMs)],
          ];
        }
        await writeModelsFile(modelsFile, baseURL, setup, options.concurrency);
        return mmsafeRun(home, dataset.dir, modelsFile, []);
      });
      if (kind === "floor" && result.exitCode === 0) {
        const outcome = floorOutcomeSchema.parse(JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}"));
        result.loopMs = outcome.loopMs;
        if (outcome.errors > 0) {
          process.stderr.write(`floor: ${outcome.errors} calls failed, the first: ${outcome.firstError}\n`);
        }
      }
      results.push(result);
      process.stderr.write(`${summaryLine(result, results, run)}\n`);
    }
  }

  const table = renderMarkdown(results);
  process.stdout.write(`\n${table}\n`);
  const report = {
    generatedAt: new Date().toISOString(),
    command: `npm run bench${argv.length > 0 ? ` -- ${argv.join(" ")}` : ""}`,
    machine: {
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? null,
      memoryMb: Math.round(megabytes(os.totalmem())),
    },
    git: gitCommit(),
    dataset,
    callSettings: CALL_SETTINGS,
    results,
    checks: checkTargets(results),
    table,
  };
  await mkdir(path.dirname(options.json), { recursive: true });
  await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
  process.stderr.write(`\nresults: ${options.json}\n`);
}

/** `mmsafe run` as a user would type it, reports kept inside the home. */
function mmsafeRun(home: string, datasetDir: string, modelsFile: string, extra: readonly string[]): string[] {
  return [
    "bin/mmsafe.js",
    "run",
    ...["--home", home, "--dataset", datasetDir, "--models", modelsFile],
    ...["--reports", path.join(home, "reports"), "--no-cache", "--quiet"],
    ...extra,
  ];
}

main().catch((error: unknown) => {
  // node:util's parseArgs reports unknown or malformed flags as errors with an ERR_PARSE_ARGS_* code.
  const usage =
    error instanceof BenchUsageError ||
    (error instanceof Error && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS"));
  if (usage && error instanceof Error) {
    process.stderr.write(`benchmark: ${error.message} (see --help)\n`);
    process.exit(2);
  }
  process.stderr.write(
    `benchmark: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
