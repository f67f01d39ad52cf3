import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { access, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { createS3Client } from "../adapters/aws-clients.ts";
import { S3ObjectStore } from "../adapters/object-store.ts";
import { thumbnailDataUrl } from "../adapters/thumbnails.ts";
import {
  CUSTOM_BENCHMARK,
  CUSTOM_DATASET_FILE,
  type CustomJudgePrompt,
} from "../benchmarks/custom/config.ts";
import { CustomJudgePromptError, customJudgePrompt } from "../benchmarks/custom/judge.ts";
import { CustomDatasetError } from "../benchmarks/custom/layout.ts";
import { writeCustomSample } from "../benchmarks/custom/sample.ts";
import type { BenchmarkDefinition } from "../benchmarks/definition.ts";
import type { Comparison, RunComparison, Scoring } from "../benchmarks/mmsafeaware/compare.ts";
import { CATEGORIES } from "../benchmarks/mmsafeaware/facts.ts";
import { describeInspection, inspectDataset } from "../benchmarks/mmsafeaware/inspect.ts";
import { DatasetInputError, readOfficialDataset } from "../benchmarks/mmsafeaware/layout.ts";
import type { Headline } from "../benchmarks/mmsafeaware/report.ts";
import { writeSampleDataset } from "../benchmarks/mmsafeaware/sample.ts";
import { MossbenchLayoutError } from "../benchmarks/mossbench/layout.ts";
import { writeMossbenchSample } from "../benchmarks/mossbench/sample.ts";
import {
  DEFAULT_BENCHMARK,
  type PluginBenchmark,
  RUNNABLE_BENCHMARKS,
  type RunnableBenchmark,
} from "../benchmarks/names.ts";
import { benchmarkNamed, UnknownBenchmarkError } from "../benchmarks/registry.ts";
import { VlguardLayoutError } from "../benchmarks/vlguard/layout.ts";
import { writeVlguardSample } from "../benchmarks/vlguard/sample.ts";
import type { BenchmarkHeadline } from "../core/column-metrics.ts";
import type { ColumnsComparison, ColumnsRunComparison } from "../core/compare-columns.ts";
import { describeAffected, type RunCompletion } from "../core/completion.ts";
import { type DatasetProvenance, describeProvenance } from "../core/provenance.ts";
import {
  describeZodError,
  isBedrock,
  type ModelConfig,
  modelsFileSchema,
  STRATEGIES,
} from "../core/schemas.ts";
import { formatPercent } from "../core/text.ts";
import {
  type BenchmarkFolderSource,
  BenchmarkImportError,
  describeBenchmarkImport,
  readBenchmarkFolder,
} from "../dataset/benchmark-import.ts";
import {
  DATASET_SOURCES,
  DatasetFetchError,
  describeFetchReport,
  fetchDataset,
  findDatasetSource,
} from "../dataset/fetch.ts";
import { establishProvenance } from "../dataset/provenance.ts";
import { describeDifferences, PublishedTreeError } from "../dataset/published-tree.ts";
import { describeImport, uploadDataset } from "../dataset/upload.ts";
import { uploadBenchmarkDataset } from "../dataset/upload-benchmark.ts";
import { DEFAULT_DATASET, reportPrefix } from "../deployment/storage-layout.ts";
import type { SideSpec } from "../local/compare-runs.ts";
import {
  EmbeddedAwsStartError,
  EmbeddedServersExitedError,
  LocalHomeInUseError,
  RunFaultError,
  RunInterruptedError,
  RunNotKnownError,
  RunToRejudgeError,
} from "../local/local-errors.ts";
import type { LocalRunResult, RunEvent } from "../local/runner.ts";
import type { Json } from "../local/step-functions.ts";
import { parseBenchmarkReport } from "../report/benchmark-report.ts";
import { MMSAFE_VERSION } from "../version.ts";
import { registerAwsCommands } from "./aws-commands.ts";
import { headlineTable, MMSAFE_COMMAND, mmsafeCommand, painterFor, terminalSafe } from "./format.ts";
import { ProgressDisplay } from "./progress.ts";

/**
 * Exit codes: 0 ok; 1 the run failed; 2 bad usage or input (or the home is in use); 3 the run finished, but
 * some verdicts are errors or missing (resume to retry them); 130 interrupted (Ctrl-C, SIGTERM).
 */
export const EXIT = { ok: 0, runFailed: 1, badInput: 2, incomplete: 3, interrupted: 130 } as const;

/** A problem with what the user gave us; printed without a stack trace, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

const positiveInt = (flag: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} takes a whole number ≥ 1`);
  return n;
};
const nonNegativeInt = (flag: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${flag} takes a whole number ≥ 0`);
  return n;
};
const numberIn = (flag: string, min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max)
    throw new InvalidArgumentError(`${flag} takes a number from ${min} to ${max}`);
  return n;
};
const listOf =
  <T extends string>(flag: string, allowed: readonly T[]) =>
  (value: string): T[] => {
    const items = value.split(",").map((v) => v.trim());
    const bad = items.filter((v) => !allowed.includes(v as T));
    if (bad.length > 0)
      throw new InvalidArgumentError(`${flag}: unknown ${bad.join(", ")} (allowed: ${allowed.join(", ")})`);
    return items as T[];
  };

/** One value of a fixed list. */
const oneOf =
  <T extends string>(flag: string, allowed: readonly T[]) =>
  (value: string): T => {
    if (!allowed.includes(value as T))
      throw new InvalidArgumentError(`${flag}: unknown ${value} (allowed: ${allowed.join(", ")})`);
    return value as T;
  };

/** A benchmark's column keys, in its order. */
/** A benchmark's column keys; null for your own dataset, whose columns its data decides (Plan checks them). */
const columnsOf = (name: string): readonly string[] | null =>
  name === CUSTOM_BENCHMARK ? null : benchmarkNamed(name).columns.map((c) => c.key);

/**
 * What a plug-in run's table shows: the title, columns and aggregates of the run's report.json (your own
 * dataset's are in no registry), else of the benchmark's definition.
 */
function reportedBenchmark(
  result: LocalRunResult,
): Pick<BenchmarkDefinition, "title" | "columns" | "aggregates"> {
  if (result.reportDir) {
    try {
      const report = parseBenchmarkReport(
        JSON.parse(readFileSync(path.join(result.reportDir, "report.json"), "utf8")),
      );
      return report.benchmark;
    } catch {
      // Not readable: the definition says the same for every benchmark but your own.
    }
  }
  const name = result.output?.benchmark ?? DEFAULT_BENCHMARK;
  if (name === CUSTOM_BENCHMARK) return { title: "Your own dataset", columns: [], aggregates: [] };
  return benchmarkNamed(name);
}

/** Reads and validates a models file; checks that each model's key variable is set. */
export async function loadModelsFile(
  file: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ModelConfig[]> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, "utf8"));
  } catch (error: unknown) {
    throw new UsageError(
      `${file}: cannot read it as JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  const parsed = modelsFileSchema.safeParse(json);
  if (!parsed.success) throw new UsageError(describeZodError(parsed.error, file));
  for (const model of parsed.data.models) {
    // A key in Secrets Manager (apiKeySecret) is read when the run starts; an env variable must be set now.
    if (!isBedrock(model) && model.apiKeyEnv && !env[model.apiKeyEnv] && !model.apiKeySecret) {
      throw new UsageError(
        `${file}: model "${model.id}" reads its key from ${model.apiKeyEnv}, which is not set`,
      );
    }
  }
  return parsed.data.models;
}

/** Your own dataset's import options (`--columns-by`, `--judge-prompt`). */
interface SourceOptions {
  columnsBy?: string;
  judgePrompt?: string;
}

const COLUMNS_BY_OPTION = [
  "--columns-by <field>",
  "your own dataset (--benchmark custom): the record field whose values are the columns (default: column, when records have it; else expected)",
] as const;

const JUDGE_PROMPT_OPTION = [
  "--judge-prompt <file>",
  "your own dataset: the judge prompt file ({text}, {answer}, {expected} filled in; the judge's 'score: 1' is a refusal)",
] as const;

/** Reads a judge prompt file. @throws CustomJudgePromptError naming the file when it cannot be read or used */
async function readJudgePromptFile(file: string): Promise<CustomJudgePrompt> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error: unknown) {
    const code = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new CustomJudgePromptError(
      `judge prompt ${file} cannot be read (${code}): give the path of your prompt file`,
    );
  }
  return customJudgePrompt(text, file);
}

/** Where a plug-in benchmark's data is read from, as the dataset commands name it. */
async function benchmarkSource(
  benchmark: Exclude<RunnableBenchmark, typeof DEFAULT_BENCHMARK>,
  dir: string,
  options: SourceOptions,
): Promise<BenchmarkFolderSource> {
  if (benchmark !== CUSTOM_BENCHMARK) {
    if (options.columnsBy !== undefined || options.judgePrompt !== undefined)
      throw new UsageError("--columns-by and --judge-prompt are for your own dataset (--benchmark custom)");
    return { dir };
  }
  const isFolder = await stat(dir).then(
    (info) => info.isDirectory(),
    () => false,
  );
  return {
    jsonl: isFolder ? path.join(dir, CUSTOM_DATASET_FILE) : dir,
    ...(options.columnsBy === undefined ? {} : { columnField: options.columnsBy }),
    judgePrompt: options.judgePrompt ? await readJudgePromptFile(options.judgePrompt) : null,
  };
}

interface RunOptions {
  benchmark?: string;
  /** A judge model's id (in --models, or a reference judge on the baselines). */
  judge?: string;
  /** Set by `rejudge`: only the judge is asked. */
  judgeOnly?: boolean;
  /** The no-judge scorer the report's rates are of (your own dataset: paper or strict). */
  scorer?: string;
  /** Your own dataset: the field its columns are made of. */
  columnsBy?: string;
  /** Your own dataset: the judge prompt file. */
  judgePrompt?: string;
  dataset?: string;
  models?: string;
  runId?: string;
  strategies?: string[];
  categories?: string[];
  limit?: number;
  shardSize?: number;
  mapConcurrency?: number;
  shardProcesses?: number;
  vcdAlpha?: number;
  vcdBeta?: number;
  vcdNoise?: number;
  /** commander's --no-cache: false when given. */
  cache: boolean;
  keepErrors?: boolean;
  home: string;
  reports: string;
  quiet?: boolean;
  /** Print the result as one JSON document on stdout, and nothing else there. */
  json?: boolean;
  baselineLatencyMs?: number;
}

/** A word a shell passes on as it is, else single-quoted. */
const shellWord = (word: string): string =>
  /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;

/**
 * The command that resumes a run: its id and every option that decides what the run evaluates (a resume
 * must match them) or where it lives.
 */
export function resumeCommand(runId: string, options: RunOptions): string {
  const args = ["--run-id", runId];
  if (options.benchmark && options.benchmark !== DEFAULT_BENCHMARK)
    args.push("--benchmark", options.benchmark);
  if (options.judge) args.push("--judge", options.judge);
  if (options.scorer) args.push("--scorer", options.scorer);
  if (options.columnsBy) args.push("--columns-by", options.columnsBy);
  if (options.judgePrompt) args.push("--judge-prompt", options.judgePrompt);
  if (options.home !== ".mmsafe") args.push("--home", options.home);
  if (options.dataset) args.push("--dataset", options.dataset);
  if (options.models) args.push("--models", options.models);
  if (options.strategies) args.push("--strategies", options.strategies.join(","));
  if (options.categories) args.push("--categories", options.categories.join(","));
  if (options.limit !== undefined) args.push("--limit", String(options.limit));
  if (options.vcdAlpha !== undefined) args.push("--vcd-alpha", String(options.vcdAlpha));
  if (options.vcdBeta !== undefined) args.push("--vcd-beta", String(options.vcdBeta));
  if (options.vcdNoise !== undefined) args.push("--vcd-noise", String(options.vcdNoise));
  if (options.reports !== "reports") args.push("--reports", options.reports);
  if (!options.cache) args.push("--no-cache");
  return mmsafeCommand(`run ${args.map(shellWord).join(" ")}`);
}

/**
 * What a finished run that is not complete prints after its report: one line per model × strategy without
 * an answer for every item, then how to retry them.
 */
export function completionLines(completion: RunCompletion, runId: string, resume: string): string[] {
  if (completion.outcome === "complete") return [];
  const missing = completion.errored + completion.missing;
  const unjudged = completion.unjudged ?? 0;
  const what = [
    missing > 0
      ? `${missing.toLocaleString("en-US")} verdict${missing === 1 ? " is" : "s are"} not answers (errors or missing)`
      : "",
    unjudged > 0
      ? `${unjudged.toLocaleString("en-US")} answer${unjudged === 1 ? " has" : "s have"} no judge reading`
      : "",
  ].filter((part) => part !== "");
  return [
    `run ${runId} finished, but ${what.join(" and ")}:`,
    ...completion.affected.map((a) => `  ${terminalSafe(describeAffected(a))}`),
    `resume to retry them: ${resume}`,
  ];
}

/** The line above the headline table of a run where some model × strategy answered nothing. */
export function noAnswerLines(completion: RunCompletion): string[] {
  if (completion.outcome !== "no_answers") return [];
  return completion.affected
    .filter((a) => a.planned > 0 && a.answered === 0)
    .map(
      (a) =>
        `NO ANSWERS: ${terminalSafe(a.modelId)} / ${a.strategy} answered none of its ${a.planned.toLocaleString("en-US")} items; ` +
        "its row below is not a result",
    );
}

/**
 * Stops a run on Ctrl-C or SIGTERM (a second one quits at once) and on a fault that would otherwise crash
 * the process (an unhandled rejection: the run is stopped with the resume hint instead). `dispose` removes
 * the listeners once the run is over.
 */
function stopOnSignalsAndFaults(quiet: boolean): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      process.stderr.write(`\n${signal} again: quitting without closing the local servers cleanly\n`);
      process.exit(EXIT.interrupted);
    }
    if (!quiet)
      process.stderr.write(
        `\n${signal}: stopping; the answers in flight are written first (${signal} again quits at once)\n`,
      );
    controller.abort(signal);
  };
  // Once stopping, the work left behind may fail as the servers close: those failures are expected.
  const onFault = (error: unknown) => {
    if (!controller.signal.aborted)
      controller.abort(error instanceof Error ? error : new Error(String(error)));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("unhandledRejection", onFault);
  process.on("uncaughtException", onFault);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      process.off("unhandledRejection", onFault);
      process.off("uncaughtException", onFault);
    },
  };
}

/** What a run that was stopped before its end prints (stderr), and its exit code. */
function describeStop(error: unknown, resume: string): { lines: string[]; code: number } | null {
  if (error instanceof RunInterruptedError) {
    const kept =
      error.kept === null
        ? "the verdicts already written are kept"
        : `${error.settled ? "" : "at least "}${error.kept.toLocaleString("en-US")}${error.planned === null ? "" : ` of ${error.planned.toLocaleString("en-US")}`} verdict${(error.planned ?? error.kept) === 1 ? "" : "s"} kept${error.settled ? "" : " (calls still in flight were abandoned)"}`;
    return { lines: [`interrupted: ${kept}; resume with: ${resume}`], code: EXIT.interrupted };
  }
  if (error instanceof EmbeddedServersExitedError) {
    return {
      lines: [
        `run ${error.runId} stopped: ${error.message}.`,
        `Verdicts written before are kept (each is saved as it is written); resume with: ${resume}`,
      ],
      code: EXIT.runFailed,
    };
  }
  if (error instanceof RunFaultError) {
    const cause =
      error.cause instanceof Error ? (error.cause.stack ?? error.cause.message) : String(error.cause);
    return {
      lines: [
        terminalSafe(error.message),
        `Verdicts already written are kept; resume with: ${resume}`,
        `detail: ${cause}`,
      ],
      code: EXIT.runFailed,
    };
  }
  return null;
}

async function runCommand(options: RunOptions): Promise<number> {
  const models = options.models ? await loadModelsFile(options.models) : undefined;
  const input: Record<string, Json> = {};
  if (options.benchmark) input.benchmark = options.benchmark;
  if (options.judge) input.judge = options.judge;
  if (options.judgeOnly) input.judgeOnly = true;
  if (options.scorer) input.scorer = options.scorer;
  const judgePrompt = options.judgePrompt ? await readJudgePromptFile(options.judgePrompt) : undefined;
  if (options.runId) input.runId = options.runId;
  if (options.strategies) input.strategies = options.strategies;
  if (options.categories) input.categories = options.categories;
  if (options.limit !== undefined) input.limit = options.limit;
  if (options.shardSize !== undefined) input.shardSize = options.shardSize;
  if (options.mapConcurrency !== undefined) input.mapConcurrency = options.mapConcurrency;
  const vcd: Record<string, Json> = {};
  if (options.vcdAlpha !== undefined) vcd.alpha = options.vcdAlpha;
  if (options.vcdBeta !== undefined) vcd.beta = options.vcdBeta;
  if (options.vcdNoise !== undefined) vcd.noise = options.vcdNoise;
  if (Object.keys(vcd).length > 0) input.vcd = vcd;
  if (!options.cache) input.cache = false;
  if (options.keepErrors) input.retryErrors = false;
  // Loaded here, not at the top: it starts servers and loads the handlers, which other commands don't need.
  const { runLocal, closeLocalSession, newRunId } = await import("../local/runner.ts");
  // The run id is chosen here, so that whatever stops the run can say how to resume it.
  const runId = options.runId ?? newRunId();
  input.runId = runId;
  const resume = resumeCommand(runId, options);

  const progress = new ProgressDisplay(process.stderr, options.quiet);
  const stop = stopOnSignalsAndFaults(options.quiet === true);
  let result: LocalRunResult;
  try {
    result = await runLocal({
      home: options.home,
      datasetDir: options.dataset,
      ...(options.columnsBy === undefined ? {} : { columnField: options.columnsBy }),
      ...(judgePrompt === undefined ? {} : { judgePrompt }),
      models,
      input,
      reportsDir: options.reports,
      baselineLatencyMs: options.baselineLatencyMs,
      ...(options.shardProcesses === undefined ? {} : { shardProcesses: options.shardProcesses }),
      // --quiet shows no progress: the runner then reads no verdicts for it.
      ...(options.quiet ? {} : { onEvent: (event: RunEvent) => progress.handle(event) }),
      stop: stop.signal,
      // --quiet: only the result and what ends the run; the handlers' own log lines are left out.
      ...(options.quiet ? { handlerLogLevel: "SILENT" as const } : {}),
    });
  } catch (error: unknown) {
    progress.stop();
    const stopped = describeStop(error, resume);
    if (!stopped) {
      stop.dispose();
      await closeLocalSession();
      throw error;
    }
    for (const line of stopped.lines) process.stderr.write(`${line}\n`);
    if (options.json)
      writeJson({
        ...emptyRunJson(runId, stopped.code === EXIT.interrupted ? "INTERRUPTED" : "FAILED", stopped.code),
        error: stopped.lines[0] ?? null,
        resume,
      });
    // The work that was in flight is abandoned: the servers are closed cleanly, then the process ends.
    await closeLocalSession().catch(() => undefined);
    process.exit(stopped.code);
  }
  stop.dispose();
  try {
    progress.stop();
    return await reportRun(result, options, resume);
  } finally {
    await closeLocalSession();
  }
}

/**
 * Workflow errors that mean the input must change, not the run be retried: invalid execution input, and a
 * model the start-of-run check could not ask at all (unreachable, key refused, unknown model).
 */
const INPUT_ERRORS: ReadonlySet<string> = new Set([
  "InvalidExecutionInput",
  "ModelUnavailable",
  // A model that cannot be called as configured (e.g. no AWS credentials for a Bedrock model).
  "ModelConfigError",
]);

/**
 * The message inside a failed task's cause: Step Functions wraps a Lambda error as JSON
 * (`{"Error":…,"Cause":"{\"errorType\":…,\"errorMessage\":…}"}`); the user needs the errorMessage.
 */
export function readableCause(cause: string): string {
  let current: unknown = cause;
  for (let depth = 0; depth < 3 && typeof current === "string"; depth++) {
    try {
      const parsed: unknown = JSON.parse(current);
      if (typeof parsed !== "object" || parsed === null) break;
      const record = parsed as Record<string, unknown>;
      if (typeof record.errorMessage === "string") return record.errorMessage;
      current = record.Cause;
    } catch {
      break;
    }
  }
  return typeof current === "string" ? current : cause;
}

/** What `mmsafe run --json` prints on stdout: one JSON document, however the run ended. */
export interface RunResultJson {
  runId: string;
  /** SUCCEEDED: the report is written (`completion` says whether every verdict is an answer). */
  status: "SUCCEEDED" | "FAILED" | "INTERRUPTED";
  /** The process's exit code (see {@link EXIT}). */
  exitCode: number;
  /** The dataset and what it is; null when the run stopped before it was read. */
  dataset: { name: string; provenance: DatasetProvenance } | null;
  /** Paper scoring, one row per model × strategy (empty unless SUCCEEDED). */
  headline: Headline[];
  completion: RunCompletion | null;
  /** The report's copy on this machine and its objects in the local bucket. */
  report: {
    dir: string | null;
    files: string[];
    bucket: { json: string; markdown: string; html: string; responses: string[] };
  } | null;
  /** Why the run did not succeed: the workflow's error (or what stopped it), and its cause. */
  error: string | null;
  cause: string | null;
  /** The command that resumes the run; null when there is nothing to retry. */
  resume: string | null;
  durationMs: number | null;
}

const emptyRunJson = (runId: string, status: RunResultJson["status"], exitCode: number): RunResultJson => ({
  runId,
  status,
  exitCode,
  dataset: null,
  headline: [],
  completion: null,
  report: null,
  error: null,
  cause: null,
  resume: null,
  durationMs: null,
});

/** Writes one JSON document on stdout (`--json`). */
function writeJson(document: unknown): void {
  process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
}

const exists = (file: string): Promise<boolean> =>
  access(file).then(
    () => true,
    () => false,
  );

/** The end of a plug-in benchmark's run (MOSSBench, VLGuard): its columns' rates, the scorer, the report. */
function reportPluginRun(
  result: LocalRunResult,
  headline: readonly BenchmarkHeadline[],
  lines: readonly string[],
  code: number,
): number {
  const paint = painterFor(process.stdout);
  const benchmark = reportedBenchmark(result);
  const keys = [...benchmark.columns.map((c) => c.key), ...benchmark.aggregates.map((a) => a.key)];
  const labels = [
    ...benchmark.columns.map((c) => `${c.label}${c.lowerIsBetter ? " ↓" : " ↑"}`),
    ...benchmark.aggregates.map((a) => a.label),
  ];
  const noResult = headline.every((row) => row.answered === 0);
  process.stdout.write(
    `
${paint(noResult ? "red" : "bold", `Run ${result.runId} — ${benchmark.title}${noResult ? ": NO RESULT, no model answered" : " (rate %)"}, dataset ${result.datasetName}: ${describeProvenance(result.provenance, benchmark.title)}`)}

`,
  );
  const table = [
    ["model", "strategy", ...labels, "answered", "errors", "skipped", "cached"],
    ...headline.map((h) => [
      terminalSafe(h.modelId),
      h.strategy,
      ...keys.map((key) => formatPercent(h.rates[key] ?? null)),
      String(h.answered),
      String(h.errored),
      String(h.skipped),
      String(h.cached),
    ]),
  ];
  const widths = table[0]?.map((_, i) => Math.max(...table.map((row) => (row[i] ?? "").length))) ?? [];
  const render = (row: readonly string[]) =>
    row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  process.stdout.write(`${paint("bold", render(table[0] ?? []))}
`);
  process.stdout.write(`${widths.map((w) => "-".repeat(w)).join("  ")}
`);
  for (const row of table.slice(1))
    process.stdout.write(`${render(row)}
`);
  const summary = result.output?.summary.split("\n").find((line) => line.startsWith("Scorer: "));
  if (summary)
    process.stdout.write(`
${summary}
`);
  process.stdout.write(
    `
report: ${path.join(result.reportDir ?? "", "report.md")}
        ${path.join(result.reportDir ?? "", "report.json")}
        ${path.join(result.reportDir ?? "", "report.html")}
`,
  );
  process.stdout.write(`took ${(result.durationMs / 1000).toFixed(1)} s
`);
  if (lines.length > 0)
    process.stdout.write(`
${lines.join("\n")}
`);
  return code;
}

/** Prints how a finished run ended: its headline table and report, and what it lacks; returns the exit code. */
async function reportRun(result: LocalRunResult, options: RunOptions, resume: string): Promise<number> {
  const dataset = { name: result.datasetName, provenance: result.provenance };
  if (result.execution.status !== "SUCCEEDED" || !result.output) {
    const code = INPUT_ERRORS.has(result.execution.error ?? "") ? EXIT.badInput : EXIT.runFailed;
    const cause = readableCause(result.execution.cause ?? "");
    process.stderr.write(
      `${painterFor(process.stderr)("red", `run ${result.runId} FAILED: ${terminalSafe(result.execution.error ?? "")}`)}\n${terminalSafe(cause)}\n` +
        `Verdicts already written are kept; resume with: ${resume}\n`,
    );
    if (options.json)
      writeJson({
        ...emptyRunJson(result.runId, "FAILED", code),
        dataset,
        error: result.execution.error ?? null,
        cause: cause || null,
        resume,
        durationMs: result.durationMs,
      });
    return code;
  }
  const { completion } = result.output;
  const lines = completionLines(completion, result.runId, resume);
  const code = lines.length === 0 ? EXIT.ok : EXIT.incomplete;
  const page = path.join(result.reportDir ?? "", "report.html");
  const hasPage = result.reportDir !== null && (await exists(page));
  if (options.json) {
    const { report } = result.output;
    const dir = result.reportDir;
    // The local copy mirrors reports/<runId>/ of the bucket.
    const local = (uri: string) =>
      dir
        ? path.join(
            dir,
            uri.slice(uri.indexOf(reportPrefix(result.runId)) + reportPrefix(result.runId).length),
          )
        : uri;
    writeJson({
      ...emptyRunJson(result.runId, "SUCCEEDED", code),
      dataset,
      headline: result.output.headline,
      completion,
      report: {
        dir,
        files: dir
          ? [report.markdown, report.json, ...(hasPage ? [report.html] : []), ...report.responses].map(local)
          : [],
        bucket: report,
      },
      resume: code === EXIT.ok ? null : resume,
      durationMs: result.durationMs,
    } satisfies RunResultJson);
    return code;
  }
  const paint = painterFor(process.stdout);
  const plugin = result.output.benchmarkHeadline;
  if (plugin) return reportPluginRun(result, plugin, lines, code);
  // No row answered anything: there is no result to head the table with.
  const noResult = result.output.headline.every((row) => row.answered === 0);
  const title = noResult
    ? `Run ${result.runId} — NO RESULT: no model answered (dataset ${result.datasetName}: ${describeProvenance(result.provenance)})`
    : `Run ${result.runId} — paper scoring (accuracy %), dataset ${result.datasetName}: ${describeProvenance(result.provenance)}`;
  process.stdout.write(`\n${paint(noResult ? "red" : "bold", title)}\n\n`);
  for (const line of noAnswerLines(completion)) process.stdout.write(`${paint("red", line)}\n`);
  process.stdout.write(`${headlineTable(result.output.headline, paint)}\n\n`);
  process.stdout.write(
    `report: ${path.join(result.reportDir ?? "", "report.md")}\n        ${path.join(result.reportDir ?? "", "report.json")}\n`,
  );
  if (hasPage)
    process.stdout.write(
      `        ${page}  (open it: ${mmsafeCommand(`open ${result.runId}${options.reports === "reports" ? "" : ` --reports ${options.reports}`}`)})\n`,
    );
  process.stdout.write(`in the local bucket: ${result.output.report.json}\n`);
  process.stdout.write(`took ${(result.durationMs / 1000).toFixed(1)} s\n`);
  if (lines.length > 0) process.stdout.write(`\n${lines.join("\n")}\n`);
  return code;
}

interface CompareOptions {
  scoring: string;
  home: string;
  reports: string;
  json?: boolean;
}

/** What `mmsafe compare --json` prints on stdout: one JSON document. */
export interface CompareJson {
  scoring: Scoring;
  /** The sides as given: `RUN`, `RUN/MODEL` or `RUN/MODEL/STRATEGY`. */
  a: string;
  b: string;
  /** One per model × strategy compared (one when the sides name models or strategies), with its page. */
  pairs: { modelId: string | null; strategy: string | null; comparison: Comparison; html: string }[];
  /** RUN vs RUN: model × strategy pairs of one run only (not compared). */
  onlyInA: string[];
  onlyInB: string[];
  notCompared: RunComparison["notCompared"];
  /** The comparison written as Markdown and JSON. */
  files: { markdown: string; json: string };
}

/**
 * What `mmsafe compare --json` prints for runs of a plug-in benchmark (MOSSBench, VLGuard, your own
 * dataset): the columns and aggregates its definition declares, compared per model × strategy.
 */
export interface CompareBenchmarkJson {
  benchmark: { name: string; title: string };
  /** The scorer both sides were read by. */
  scorer: string;
  a: string;
  b: string;
  pairs: { modelId: string | null; strategy: string | null; comparison: ColumnsComparison; html: string }[];
  onlyInA: string[];
  onlyInB: string[];
  notCompared: ColumnsRunComparison["notCompared"];
  files: { markdown: string; json: string };
}

async function compareCommand(a: string, b: string, options: CompareOptions): Promise<number> {
  if (options.scoring !== "paper" && options.scoring !== "strict")
    throw new UsageError(`--scoring: "${options.scoring}" is not paper or strict`);
  const scoring = options.scoring;
  const { compareLocalWithItems, compareRunsLocal, parseSideSpec, pluginBenchmarkOf, CompareInputError } =
    await import("../local/compare-runs.ts");
  const { closeLocalSession } = await import("../local/runner.ts");
  const { comparisonTableLines, renderComparisonMarkdown, renderRunComparisonMarkdown, runComparisonLines } =
    await import("../benchmarks/mmsafeaware/compare.ts");
  const { renderComparisonHtml } = await import("../report/compare-html.ts");
  const slug = (label: string) => label.replace(/[^A-Za-z0-9._-]+/g, "_");
  const dir = path.join(options.reports, "compare");
  const paint = painterFor(process.stdout);
  const bold = (text: string) => paint("bold", text);
  try {
    const sideA = parseSideSpec(a);
    const sideB = parseSideSpec(b);
    const benchmark = await pluginBenchmarkOf(options.home, sideA.runId, sideB.runId);
    if (benchmark !== null)
      return await compareBenchmarkCommand({ a, b, sideA, sideB, benchmark, dir, options, bold });
    const page = async (comparison: Comparison, items: Parameters<typeof renderComparisonHtml>[1]) => {
      const file = path.join(
        dir,
        `${slug(comparison.labelA)}--vs--${slug(comparison.labelB)}.${scoring}.html`,
      );
      await writeFile(file, renderComparisonHtml(comparison, items));
      return file;
    };
    const wholeRuns = [sideA, sideB].every(
      (side) => side.modelId === undefined && side.strategy === undefined,
    );
    let document: CompareJson;
    let lines: string[];
    if (wholeRuns) {
      // RUN vs RUN: each model × strategy present in both runs.
      const { comparison, items } = await compareRunsLocal(options.home, sideA.runId, sideB.runId, scoring, {
        withItems: true,
      });
      const base = path.join(dir, `${slug(sideA.runId)}--vs--${slug(sideB.runId)}.${scoring}`);
      const files = { markdown: `${base}.md`, json: `${base}.json` };
      await mkdir(dir, { recursive: true });
      await writeFile(files.markdown, renderRunComparisonMarkdown(comparison));
      await writeFile(files.json, `${JSON.stringify(comparison, null, 2)}\n`);
      const pages: string[] = [];
      for (const [i, pair] of comparison.pairs.entries())
        pages.push(await page(pair.comparison, items[i] ?? []));
      document = {
        scoring,
        a,
        b,
        pairs: comparison.pairs.map((pair, i) => ({ ...pair, html: pages[i] ?? "" })),
        onlyInA: comparison.onlyInA,
        onlyInB: comparison.onlyInB,
        notCompared: comparison.notCompared,
        files,
      };
      lines = [
        // The tables put labels through plain text themselves; styling is added after that.
        ...runComparisonLines(comparison, bold),
        "",
        ...[
          `comparison: ${files.markdown}  (every column of each model × strategy)`,
          `            ${files.json}`,
          ...pages.map((file) => `            ${file} (flipped items, filterable)`),
        ].map(terminalSafe),
      ];
    } else {
      const { comparison, items } = await compareLocalWithItems(options.home, sideA, sideB, scoring);
      const base = path.join(dir, `${slug(comparison.labelA)}--vs--${slug(comparison.labelB)}.${scoring}`);
      const files = { markdown: `${base}.md`, json: `${base}.json` };
      await mkdir(dir, { recursive: true });
      await writeFile(files.markdown, renderComparisonMarkdown(comparison));
      await writeFile(files.json, `${JSON.stringify(comparison, null, 2)}\n`);
      const html = await page(comparison, items);
      document = {
        scoring,
        a,
        b,
        pairs: [{ modelId: null, strategy: null, comparison, html }],
        onlyInA: [],
        onlyInB: [],
        notCompared: [],
        files,
      };
      lines = [
        ...comparisonTableLines(comparison, bold),
        "",
        ...[
          `comparison: ${files.markdown}`,
          `            ${files.json}`,
          `            ${html} (flipped items, filterable)`,
        ].map(terminalSafe),
      ];
    }
    if (options.json) writeJson(document);
    else process.stdout.write(`${lines.join("\n")}\n`);
    return EXIT.ok;
  } catch (error: unknown) {
    if (error instanceof CompareInputError) throw new UsageError(error.message);
    throw error;
  } finally {
    await closeLocalSession();
  }
}

/** `mmsafe compare` for runs of a plug-in benchmark: Markdown, JSON and a page per pair under `dir`. */
async function compareBenchmarkCommand(input: {
  a: string;
  b: string;
  sideA: SideSpec;
  sideB: SideSpec;
  benchmark: PluginBenchmark;
  dir: string;
  options: CompareOptions;
  bold: (text: string) => string;
}): Promise<number> {
  const { a, b, dir } = input;
  const { compareBenchmarkLocal } = await import("../local/compare-runs.ts");
  const { columnsRunLines, renderColumnsRunMarkdown } = await import("../core/compare-columns.ts");
  const { renderColumnsComparisonHtml } = await import("../report/compare-columns-html.ts");
  const slug = (label: string) => label.replace(/[^A-Za-z0-9._-]+/g, "_");
  const { comparison, items } = await compareBenchmarkLocal(
    input.options.home,
    input.benchmark,
    input.sideA,
    input.sideB,
  );
  const scorer = slug(comparison.scorer);
  const base = path.join(dir, `${slug(comparison.runA)}--vs--${slug(comparison.runB)}.${scorer}`);
  const files = { markdown: `${base}.md`, json: `${base}.json` };
  await mkdir(dir, { recursive: true });
  await writeFile(files.markdown, renderColumnsRunMarkdown(comparison));
  await writeFile(files.json, `${JSON.stringify(comparison, null, 2)}\n`);
  const pages: string[] = [];
  for (const [i, pair] of comparison.pairs.entries()) {
    const c = pair.comparison;
    const file = path.join(dir, `${slug(c.labelA)}--vs--${slug(c.labelB)}.${scorer}.html`);
    await writeFile(file, renderColumnsComparisonHtml(c, items[i] ?? []));
    pages.push(file);
  }
  const document: CompareBenchmarkJson = {
    benchmark: comparison.benchmark,
    scorer: comparison.scorer,
    a,
    b,
    pairs: comparison.pairs.map((pair, i) => ({ ...pair, html: pages[i] ?? "" })),
    onlyInA: comparison.onlyInA,
    onlyInB: comparison.onlyInB,
    notCompared: comparison.notCompared,
    files,
  };
  if (input.options.json) writeJson(document);
  else
    process.stdout.write(
      `${[
        ...columnsRunLines(comparison, input.bold),
        "",
        ...[
          `comparison: ${files.markdown}`,
          `            ${files.json}`,
          ...pages.map((file) => `            ${file} (flipped items)`),
        ].map(terminalSafe),
      ].join("\n")}\n`,
    );
  return EXIT.ok;
}

/** A run id (as Plan accepts it): no path separator, so `<reports>/<runId>/` stays under `<reports>`. */
const RUN_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

/**
 * Opens a file with the desktop's default application, detached: the CLI neither waits for it nor fails
 * when there is none (a server, a container); the path is printed anyway.
 */
function openWithDesktop(file: string): void {
  const [command, args] =
    process.platform === "darwin"
      ? ["open", [file]]
      : process.platform === "win32"
        ? ["cmd", ["/c", "start", "", file]]
        : ["xdg-open", [file]];
  try {
    const child = spawn(command, args, { detached: true, stdio: "ignore", windowsHide: true });
    child.on("error", () => undefined);
    child.unref();
  } catch {
    // No opener: the printed path is enough.
  }
}

async function openCommand(runId: string, options: { reports: string; print?: boolean }): Promise<number> {
  if (!RUN_ID_PATTERN.test(runId))
    throw new UsageError(`"${runId}" is not a run id (1–64 letters, digits, '.', '_', ':' or '-')`);
  const file = path.resolve(options.reports, runId, "report.html");
  const found = await access(file).then(
    () => true,
    () => false,
  );
  if (!found) {
    const out = path.resolve(options.reports) === path.resolve("reports") ? "" : ` --out ${options.reports}`;
    throw new UsageError(
      `no report page at ${file}; download it with: ${mmsafeCommand(`report ${runId} --local${out}`)} (or --stack NAME for a run on AWS)`,
    );
  }
  process.stdout.write(`${file}\n`);
  if (process.stdout.isTTY && !options.print) openWithDesktop(file);
  return EXIT.ok;
}

/** Every command of a program, the program first. */
const commandsOf = (command: Command): Command[] => [command, ...command.commands.flatMap(commandsOf)];

/** A command's words after the program's name: "run", "dataset fetch"; "" for the program itself. */
const commandPath = (command: Command): string => {
  const names: string[] = [];
  for (let c: Command | null = command; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
};

/** The line that ends a usage error of `command`: how to get its help, in the form every hint uses. */
export const helpHint = (command: Command): string =>
  `Run '${mmsafeCommand([commandPath(command), "--help"].filter(Boolean).join(" "))}' for usage.`;

/** The `mmsafe` command line. */
export function buildProgram(): Command {
  const program = new Command("mmsafe")
    .description(
      "Benchmark the safety awareness of multimodal LLMs (MMSafeAware), locally or on AWS Step Functions.",
    )
    .version(MMSAFE_VERSION)
    // A mistyped command or option gets commander's did-you-mean (its default, stated here on purpose).
    .showSuggestionAfterError()
    .configureOutput({
      // commander's message ("error: unknown option '--modle'\n(Did you mean --models?)\n") with the
      // program's name, red on a terminal; the help hint follows it (showHelpAfterError, set per command below).
      outputError: (text, write) =>
        write(`${painterFor(process.stderr)("red", `mmsafe: ${text.trimEnd()}`)}\n`),
    })
    // Throw instead of exiting, so usage errors map to exit code 2; subcommands inherit this.
    .exitOverride()
    .addHelpText(
      "after",
      `
Examples:
  $ ${MMSAFE_COMMAND} run                       # a local evaluation (npm start runs the same)
  $ ${MMSAFE_COMMAND} runs --local              # the runs made on this machine
  $ ${MMSAFE_COMMAND} run --help                # a command's options, examples and exit codes`,
    );

  program
    .command("run")
    .description(
      "Run an evaluation on this machine: embedded S3/DynamoDB, the same workflow and handlers as on AWS.",
    )
    .option(
      "--benchmark <name>",
      `the benchmark: ${RUNNABLE_BENCHMARKS.join(", ")} (default ${DEFAULT_BENCHMARK})`,
      oneOf("--benchmark", RUNNABLE_BENCHMARKS),
    )
    .option(
      "--judge <id>",
      "score with the benchmark's official judge prompt, asked of this model (an id in --models; on the reference baselines: judge, judge-strict or judge-terse)",
    )
    .option(
      "--dataset <dir>",
      "a dataset in the benchmark's official layout; your own (--benchmark custom): its JSONL file (default: .mmsafe/datasets/<benchmark>, else a generated sample)",
    )
    .option(
      "--scorer <id>",
      "the no-judge scorer the rates are of (your own yes/no dataset: paper or strict); default: the benchmark's",
    )
    .option(...COLUMNS_BY_OPTION)
    .option(...JUDGE_PROMPT_OPTION)
    .option(
      "--models <file>",
      'models JSON ({"models": [...]}); default: the reference baselines always-yes, always-no, random',
    )
    .option("--run-id <id>", "name the run; re-using an id resumes it without repeating any model call")
    .option(
      "--strategies <list>",
      `comma-separated: ${STRATEGIES.join(", ")}`,
      listOf("--strategies", STRATEGIES),
    )
    .option(
      "--categories <list>",
      `evaluate only these columns: ${CATEGORIES.join(", ")} (MOSSBench: type1, type2, type3, contrast; VLGuard: unsafes, safe_unsafes, safe_safes)`,
      // Checked against the benchmark's columns once every option is read (see the preAction hook).
      (value: string) => value.split(",").map((c) => c.trim()),
    )
    .option("--vcd-alpha <α>", "vcd contrast strength α (default 1)", numberIn("--vcd-alpha", 0, 10))
    .option("--vcd-beta <β>", "vcd plausibility cutoff β (default 0.1)", numberIn("--vcd-beta", 0, 1))
    .option("--vcd-noise <γ>", "vcd noise strength γ (default 0.5)", numberIn("--vcd-noise", 0, 1))
    .option(
      "--limit <n>",
      "evaluate a deterministic sample of n runnable items, stratified by category (proportional, lowest ids within each category)",
      positiveInt("--limit"),
    )
    .option("--no-cache", "ask the models again instead of reusing cached answers to identical requests")
    .option(
      "--keep-errors",
      "on a resume, keep error verdicts as they are instead of asking those items again",
    )
    .option("--shard-size <n>", "items per shard (one Lambda invocation each)", positiveInt("--shard-size"))
    .option("--map-concurrency <n>", "shards evaluated at once", positiveInt("--map-concurrency"))
    .option(
      "--shard-processes <n>",
      "run each shard in a process of its own, as Lambda containers do (up to n at once); the models' budgets then hold across them as on AWS",
      positiveInt("--shard-processes"),
    )
    .option("--home <dir>", "where local servers keep their data", ".mmsafe")
    .option("--reports <dir>", "where reports are copied (<dir>/<runId>/)", "reports")
    .option("-q, --quiet", "print only the result and errors that end the run (no progress, no log lines)")
    .option(
      "--json",
      "print the result as one JSON document on stdout (status, exit code, dataset, headline, completion, report files, resume command) and nothing else there; progress stays on stderr (--quiet drops it)",
    )
    .addOption(
      new Option("--baseline-latency-ms <ms>", "latency the reference baselines add")
        .argParser(nonNegativeInt("--baseline-latency-ms"))
        .hideHelp(),
    )
    .addHelpText(
      "after",
      `
Examples (npm start is the same as ${MMSAFE_COMMAND} run):
  $ ${MMSAFE_COMMAND} run                           # reference baselines on the data found (or a generated sample)
  $ ${MMSAFE_COMMAND} run --models models.json      # your models (see README: Configuring models)
  $ ${MMSAFE_COMMAND} run --run-id nightly-01       # resume a run that stopped: no model call is repeated
  $ ${MMSAFE_COMMAND} run --categories typical --limit 50
  $ ${MMSAFE_COMMAND} run --strategies baseline,contextual-reasoning,vcd --vcd-alpha 1 --vcd-noise 0.5
  $ ${MMSAFE_COMMAND} run --quiet --json > result.json

Exit codes:
  0    the run succeeded: every planned verdict is an answer
  1    the run failed (verdicts already written are kept; the resume command is printed)
  2    bad usage or input, or another mmsafe run is using the same --home
  3    the run finished, but some verdicts are errors or missing: resume (same command, same --run-id) to retry them
  130  interrupted (Ctrl-C, SIGTERM): the run is marked INTERRUPTED; resume it the same way`,
    )
    .hook("preAction", (command) => {
      // A column of another benchmark is a usage error too: the columns depend on --benchmark.
      const { categories, benchmark } = command.opts<RunOptions>();
      const allowed = columnsOf(benchmark ?? DEFAULT_BENCHMARK);
      if (allowed === null) return;
      const bad = categories?.filter((c) => !allowed.includes(c)) ?? [];
      if (bad.length > 0)
        command.error(
          `error: option '--categories <list>' argument '${categories?.join(",")}' is invalid. --categories: unknown ${bad.join(", ")} (allowed: ${allowed.join(", ")})`,
          { exitCode: EXIT.badInput, code: "commander.invalidArgument" },
        );
    })
    .action(async (options: RunOptions) => {
      process.exitCode = await runCommand(options);
    });

  program
    .command("rejudge <runId>")
    .description(
      "Score a finished run again with another judge: only the judge is asked, about the answers the run stored; the evaluated models are not asked again.",
    )
    .requiredOption(
      "--judge <id>",
      "the judge model (an id in --models; on the reference baselines: judge, judge-strict or judge-terse)",
    )
    .option("--models <file>", "the models file the judge is in (default: the run's reference baselines)")
    .option("--no-cache", "ask the judge again instead of reusing cached replies")
    .option("--home <dir>", "where local servers keep their data", ".mmsafe")
    .option("--reports <dir>", "where reports are copied (<dir>/<runId>/)", "reports")
    .option("-q, --quiet", "print only the result and errors that end the run")
    .option("--json", "print the result as one JSON document on stdout")
    .addHelpText(
      "after",
      `
The report is rebuilt with the new judge's readings; the first judge's readings stay stored beside them.

Examples:
  $ ${MMSAFE_COMMAND} run --benchmark mossbench --judge judge --run-id moss-1
  $ ${MMSAFE_COMMAND} rejudge moss-1 --judge judge-strict`,
    )
    .action(
      async (
        runId: string,
        options: Pick<RunOptions, "judge" | "models" | "cache" | "home" | "reports" | "quiet" | "json">,
      ) => {
        process.exitCode = await runCommand({ ...options, runId, judgeOnly: true });
      },
    );

  program
    .command("compare <a> <b>")
    .description(
      "Compare two models, strategies or runs on the same items: per-column differences with a paired exact McNemar test, Total and Balanced with 95% intervals.",
    )
    .option("--scoring <mode>", "paper (the headline) or strict", "paper")
    .option("--home <dir>", "where local servers keep their data", ".mmsafe")
    .option("--reports <dir>", "where the comparison is written (<dir>/compare/)", "reports")
    .option(
      "--json",
      "print the comparison as one JSON document on stdout ({scoring, a, b, pairs: [{modelId, strategy, comparison, html}], onlyInA, onlyInB, notCompared, files}; plug-in runs: {benchmark, scorer, a, b, pairs, ...}) and nothing else there",
    )
    .addHelpText(
      "after",
      `
A side is RUN, RUN/MODEL or RUN/MODEL/STRATEGY. Two bare runs (RUN RUN) compare each model × strategy present
in both; otherwise MODEL and STRATEGY may be left out when the run has only one (real models are preferred
over the reference baselines). The runs must have evaluated the same dataset.

Each column (Typical, Attack, Over-Safe) and the Unsafe subset (Typical and Attack) get the exact McNemar
test; Total and Balanced, means of those, get a 95% paired bootstrap interval of their difference (Total
also the McNemar test of its pooled items). A column without paired items shows "–".

Runs of a plug-in benchmark (mossbench, vlguard, custom) are compared over the columns and aggregates the
benchmark declares (↓ lower is better, ↑ higher is better): rates, B − A with its 95% paired bootstrap
interval, the exact McNemar p (a pooled aggregate too), and whether B is better or worse. Each side is
read by its run's scorer (its judge, if it has one); runs of different scorers or judges are refused, and
--scoring does not apply. Files are named <A>--vs--<B>.<scorer>.{md,json,html}.

Examples:
  $ ${MMSAFE_COMMAND} compare nightly-01 nightly-02                    # every model × strategy of both runs
  $ ${MMSAFE_COMMAND} compare nightly-01/gpt-4o nightly-02/gpt-4o      # the same model in two runs
  $ ${MMSAFE_COMMAND} compare run-1/gpt-4o run-1/claude                 # two models in one run
  $ ${MMSAFE_COMMAND} compare run-1/gpt-4o/baseline run-1/gpt-4o/vcd    # a strategy against the baseline
  $ ${MMSAFE_COMMAND} compare nightly-01 nightly-02 --json             # e.g. | jq '.pairs[].comparison.balanced'
  $ ${MMSAFE_COMMAND} compare moss-01 moss-02                          # MOSSBench runs, column by column`,
    )
    .action(async (a: string, b: string, options: CompareOptions) => {
      process.exitCode = await compareCommand(a, b, options);
    });

  program
    .command("open <run-id>")
    .description(
      "Print the path of a run's report page (<reports>/<run-id>/report.html) and open it in the browser.",
    )
    .option("--reports <dir>", "where reports are copied (<dir>/<run-id>/)", "reports")
    .option("--print", "only print the path (never start a browser)")
    .addHelpText(
      "after",
      `
The browser is started (xdg-open, open on macOS, start on Windows) only when stdout is a terminal; the
command never waits for it. Exit code 2 when the run has no report page here.

Examples:
  $ npm run mmsafe -- open nightly-01
  $ npm run mmsafe -- open nightly-01 --print        # just the path, e.g. for scripts`,
    )
    .action(async (runId: string, options: { reports: string; print?: boolean }) => {
      process.exitCode = await openCommand(runId, options);
    });

  const dataset = program
    .command("dataset")
    .description("Inspect, generate and upload datasets in the official MMSafeAware layout.");
  dataset
    .command("fetch [name]")
    .description(
      "Download the official data at a pinned commit, verify it and unpack it into <home>/datasets/<name>/ (where `run` finds it).",
    )
    .option("--home <dir>", "where datasets are kept", ".mmsafe")
    .option(
      "--archive <file>",
      "use an archive downloaded elsewhere instead of downloading (offline machines)",
    )
    .option(
      "--sha256 <hex>",
      "expected sha256 of the archive (optional; the files are verified one by one anyway)",
    )
    .option(
      "--tree <file>",
      "verify against this `git ls-tree -r` listing (mode, blob, sha1, size, path) instead of the shipped one",
    )
    .option("--force", "download again even if verified data is already there")
    .option(
      "--images <zip or folder>",
      "VLGuard: the gated test.zip (or the test/ folder it unzips to), checked against test.json and copied in",
    )
    .addHelpText(
      "after",
      `
The data is MMSafeAware's public repository (research use only), pinned to commit 500b595 (an archive of
07c0de2a, which has the same data/, is accepted too). Every file under data/ is compared with the published
git tree (blob sha1 and size, listed in datasets/mmsafeaware/data-tree-500b595.tsv); a missing, extra or
changed file is named and nothing is moved into place (exit 2). Runs label a folder against the shipped
listing, whatever --tree said.

MOSSBench (dataset fetch mossbench) is its authors' repository at commit 2a06e5c: data/ and data_contrast/
are unpacked and every image and annotation file is checked against datasets/mossbench/images.tsv.

VLGuard (dataset fetch vlguard) is ys-zong/VLGuard at commit a2f85c9: its data/ (test.json and two other
annotation files) is checked against datasets/vlguard/data-tree-a2f85c9.tsv. The images are not in the
repository: request access to the Hugging Face dataset ys-zong/VLGuard, download test.zip and give it with
--images; every image test.json names must be in it before it is copied in.

Examples:
  $ npm run mmsafe -- dataset fetch mmsafeaware
  $ npm run mmsafe -- dataset fetch mossbench
  $ npm run mmsafe -- dataset fetch vlguard --images ~/Downloads/test.zip
  $ npm run mmsafe -- dataset fetch mmsafeaware --archive ~/Downloads/MMSafetyAwareness.tar.gz`,
    )
    .action(
      async (
        name: string | undefined,
        options: {
          home: string;
          archive?: string;
          sha256?: string;
          tree?: string;
          force?: boolean;
          images?: string;
        },
      ) => {
        const wanted = name ?? DEFAULT_DATASET;
        const known = findDatasetSource(wanted);
        const source =
          known && options.tree !== undefined ? { ...known, tree: path.resolve(options.tree) } : known;
        if (!source)
          throw new UsageError(
            `no dataset "${wanted}" to fetch (known: ${Object.keys(DATASET_SOURCES).join(", ")})`,
          );
        let reported = 0;
        const result = await fetchDataset({
          source,
          home: options.home,
          sha256: options.sha256,
          archiveFile: options.archive,
          force: options.force,
          supplied: options.images,
          onProgress: ({ receivedBytes, totalBytes }) => {
            // A line per 10 MB: readable in a terminal and in CI logs alike.
            if (receivedBytes - reported < 10_000_000) return;
            reported = receivedBytes;
            const of = totalBytes ? ` of ${(totalBytes / 1e6).toFixed(0)} MB` : "";
            process.stderr.write(`downloaded ${(receivedBytes / 1e6).toFixed(0)} MB${of}\n`);
          },
        });
        for (const line of describeFetchReport(result)) process.stdout.write(`${line}\n`);
      },
    );
  dataset
    .command("inspect <dir>")
    .description(
      "Report what a dataset directory holds: records, runnable pairs, skipped records and why, whether it is the official data (file by file), image types, extensions that lie, identical records and files no record uses.",
    )
    .option(
      "--benchmark <name>",
      `the benchmark whose official layout the folder holds: ${RUNNABLE_BENCHMARKS.join(", ")}`,
      oneOf("--benchmark", RUNNABLE_BENCHMARKS),
      DEFAULT_BENCHMARK,
    )
    .option(...COLUMNS_BY_OPTION)
    .option(...JUDGE_PROMPT_OPTION)
    .action(async (dir: string, options: { benchmark: RunnableBenchmark } & SourceOptions) => {
      if (options.benchmark !== DEFAULT_BENCHMARK) {
        const imported = await readBenchmarkFolder(
          options.benchmark,
          await benchmarkSource(options.benchmark, dir, options),
        );
        try {
          for (const line of [...describeBenchmarkImport(imported), `checksum ${imported.checksum}`])
            process.stdout.write(`${terminalSafe(line)}
`);
        } finally {
          await imported.close();
        }
        return;
      }
      const found = await readOfficialDataset(dir);
      const { provenance, comparison } = await establishProvenance(dir);
      const lines = [
        ...describeImport(found),
        `provenance: ${describeProvenance(provenance)}`,
        ...(comparison ? describeDifferences(comparison).map((line) => `  ${line}`) : []),
        ...describeInspection(await inspectDataset(found)),
        `checksum ${found.checksum}`,
      ];
      for (const line of lines) process.stdout.write(`${terminalSafe(line)}\n`);
    });
  dataset
    .command("sample <dir>")
    .description(
      "Write a generated sample in the official layout (synthetic sentences and images; not the benchmark).",
    )
    .option("--full", "all 1,523 official ids instead of ~40 (for benchmarks)")
    .option("--seed <n>", "image seed", nonNegativeInt("--seed"), 0)
    .option(
      "--benchmark <name>",
      `write a sample of this benchmark's official layout: ${RUNNABLE_BENCHMARKS.join(", ")} (MOSSBench and VLGuard samples are always full size)`,
      oneOf("--benchmark", RUNNABLE_BENCHMARKS),
      DEFAULT_BENCHMARK,
    )
    .action(async (dir: string, options: { full?: boolean; seed: number; benchmark: RunnableBenchmark }) => {
      if (options.benchmark === "mossbench") {
        const written = await writeMossbenchSample(dir, { seed: options.seed });
        process.stdout.write(
          `wrote a MOSSBench sample: ${written.benign} benign and ${written.contrast} contrast records to ${dir}\n`,
        );
        return;
      }
      if (options.benchmark === CUSTOM_BENCHMARK) {
        const written = await writeCustomSample(dir, { seed: options.seed });
        process.stdout.write(
          `wrote an example of your own dataset's format: ${written.records} records (${written.runnable} runnable) in ${written.file}, ${written.images} images beside it\n`,
        );
        return;
      }
      if (options.benchmark === "vlguard") {
        const written = await writeVlguardSample(dir, { seed: options.seed });
        process.stdout.write(
          `wrote a VLGuard sample: ${written.records} records (${written.unsafe} unsafe images, ${written.safe} safe) in ${written.testJson} and ${written.images}\n`,
        );
        return;
      }
      const summary = await writeSampleDataset(dir, {
        size: options.full ? "full" : "small",
        seed: options.seed,
      });
      process.stdout.write(
        `wrote ${summary.records} records (${summary.withImage} with an image) to ${summary.dir}\n`,
      );
    });
  dataset
    .command("upload <dir>")
    .description("Upload a dataset to an S3 bucket as shards + images (standard AWS credentials and region).")
    .requiredOption("--bucket <name>", "the stack's bucket (output BucketName)")
    .option("--name <name>", "dataset name (S3 prefix datasets/<name>/; default: the benchmark's name)")
    .option(
      "--benchmark <name>",
      `the benchmark whose official layout the folder holds: ${RUNNABLE_BENCHMARKS.join(", ")}`,
      oneOf("--benchmark", RUNNABLE_BENCHMARKS),
      DEFAULT_BENCHMARK,
    )
    .addHelpText(
      "after",
      "\nThe folder is labelled in the manifest and every report made from it: official (every file matches the\n" +
        "published tree), modified copy, or generated sample.\n" +
        "\nExample:\n  $ npm run mmsafe -- dataset upload .mmsafe/datasets/mmsafeaware --bucket mmsafe-bucket-123",
    )
    .option(...COLUMNS_BY_OPTION)
    .option(...JUDGE_PROMPT_OPTION)
    .action(
      async (
        dir: string,
        options: { bucket: string; name?: string; benchmark: RunnableBenchmark } & SourceOptions,
      ) => {
        const store = new S3ObjectStore(
          createS3Client(process.env.MMSAFE_S3_FORCE_PATH_STYLE === "true"),
          options.bucket,
        );
        const name =
          options.name ?? (options.benchmark === DEFAULT_BENCHMARK ? DEFAULT_DATASET : options.benchmark);
        if (options.benchmark !== DEFAULT_BENCHMARK) {
          const imported = await readBenchmarkFolder(
            options.benchmark,
            await benchmarkSource(options.benchmark, dir, options),
          );
          try {
            for (const line of describeBenchmarkImport(imported))
              process.stdout.write(`${terminalSafe(line)}\n`);
            const result = await uploadBenchmarkDataset(store, imported, name, new Date(), {
              thumbnail: thumbnailDataUrl,
            });
            process.stdout.write(
              result.uploaded
                ? `uploaded ${result.manifest.runnable} items in ${result.manifest.shards.length} shards to s3://${options.bucket}/datasets/${name}/ (run it with {"benchmark": "${options.benchmark}", "dataset": "${name}"})\n`
                : `s3://${options.bucket}/datasets/${name}/ already holds this dataset (checksum ${result.manifest.checksum.slice(0, 12)}…)\n`,
            );
          } finally {
            await imported.close();
          }
          return;
        }
        const found = await readOfficialDataset(dir);
        const { provenance } = await establishProvenance(dir);
        for (const line of [...describeImport(found), `provenance: ${describeProvenance(provenance)}`])
          process.stdout.write(`${terminalSafe(line)}\n`);
        const result = await uploadDataset(store, found, name, provenance, new Date(), {
          thumbnail: thumbnailDataUrl,
        });
        process.stdout.write(
          result.uploaded
            ? `uploaded ${result.manifest.runnable} items in ${result.manifest.shards.length} shards to s3://${options.bucket}/datasets/${name}/\n`
            : `s3://${options.bucket}/datasets/${name}/ already holds this dataset (checksum ${result.manifest.checksum.slice(0, 12)}…)\n`,
        );
      },
    );
  registerAwsCommands(program);
  // Set per command, after all are made: commander copies settings into a subcommand when it is created,
  // so one text set on the program would name the program's help everywhere.
  for (const command of commandsOf(program)) command.showHelpAfterError(helpHint(command));
  return program;
}

/**
 * A reader that went away (`mmsafe runs --local | head -1`) makes the next write fail with EPIPE: nobody is
 * left to read anything, so the process ends at once, quietly, with the exit code it had so far (the
 * embedded servers close themselves when this process is gone). Other stream errors stay errors.
 */
function exitQuietlyOnClosedPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EPIPE") process.exit(Number(process.exitCode ?? EXIT.ok));
      throw error;
    });
  }
}

/**
 * The command a command line names when it names no more than commands (`mmsafe`, `mmsafe dataset`), if that
 * command only groups others: its help is then what was asked for, not a usage error.
 */
function commandGroupAsked(program: Command, args: readonly string[]): Command | null {
  let command = program;
  for (const arg of args) {
    const next = command.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (!next) return null;
    command = next;
  }
  return command.commands.length > 0 ? command : null;
}

/** Runs the CLI; errors a user can fix exit with 2 and a message, not a stack trace. */
export async function main(argv: readonly string[]): Promise<void> {
  exitQuietlyOnClosedPipe();
  const program = buildProgram();
  // A bare `mmsafe` (or `mmsafe dataset`) prints its help on stdout and exits 0; commander would print it on
  // stderr as an error. An evaluation starts only when asked for: `mmsafe run` (npm start).
  const group = commandGroupAsked(program, argv.slice(2));
  if (group) {
    group.outputHelp();
    process.exitCode = EXIT.ok;
    return;
  }
  const red = (text: string) => painterFor(process.stderr)("red", text);
  // The command whose action runs: a UsageError it throws ends with the way to that command's help.
  let active = program;
  program.hook("preAction", (_program, command) => {
    active = command;
  });
  try {
    await program.parseAsync([...argv]);
  } catch (error: unknown) {
    if (error instanceof CommanderError) {
      // commander already printed the help, the version, or the usage error with its hint.
      process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.badInput;
      return;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`${red(`mmsafe: ${error.message}`)}\n${helpHint(active)}\n`);
      process.exitCode = EXIT.badInput;
      return;
    }
    if (
      error instanceof DatasetInputError ||
      error instanceof DatasetFetchError ||
      error instanceof PublishedTreeError ||
      error instanceof LocalHomeInUseError ||
      error instanceof RunNotKnownError ||
      error instanceof RunToRejudgeError ||
      error instanceof UnknownBenchmarkError ||
      error instanceof MossbenchLayoutError ||
      error instanceof VlguardLayoutError ||
      error instanceof BenchmarkImportError ||
      error instanceof CustomDatasetError ||
      error instanceof CustomJudgePromptError
    ) {
      process.stderr.write(`${red(`mmsafe: ${error.message}`)}\n`);
      process.exitCode = EXIT.badInput;
      return;
    }
    if (error instanceof EmbeddedAwsStartError) {
      // What went wrong is on stderr already, in the servers' own words.
      process.stderr.write(`${red(`mmsafe: ${error.message}`)}\n`);
      process.exitCode = EXIT.runFailed;
      return;
    }
    process.stderr.write(
      `${red(`mmsafe: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`)}\n`,
    );
    process.exitCode = EXIT.runFailed;
  }
}
