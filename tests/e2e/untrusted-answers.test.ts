/**
 * End to end: 200 answers that cannot be trusted, as real endpoints send them, through `mmsafe run` (a real
 * process: the CLI, the workflow, the handlers, the `openai` SDK) against the reference server in this test
 * process, which misbehaves per model (src/local/reference-model-server.ts, MODEL_SUFFIXES):
 *
 * - `echo` (`always-yes+echokey`) repeats the request's API key in every answer, verbatim and masked
 *   (`MMSA…3210`-style prefixes and suffixes around `*`, `…`, `...`, `xxxx`, and a stretch of its middle);
 * - `huge` (`always-no+huge`) answers 2 MiB, "Final answer: No." only at the very end, far beyond the 400 KB
 *   a DynamoDB item holds;
 * - `badusage` (`random+badusage`) reports fractional, negative, missing, non-numeric or absurd token counts.
 *
 * The same command is run three times: the run, its resume (same run id: no call may be paid again) and
 * a new run id (every answer from the response cache, which must give the very same verdicts). Each run
 * must exit 0 with a report; the key must appear in no form anywhere: verdicts, S3 objects (the cache
 * included), report.html/md/json, the exported responses, stdout and stderr.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import { scorePaper } from "../../src/benchmarks/mmsafeaware/scoring.ts";
import type { Verdict } from "../../src/core/schemas.ts";
import {
  HUGE_ANSWER_CHARS,
  type ReferenceServer,
  type ReferenceServerStats,
  startReferenceModelServer,
} from "../../src/local/reference-model-server.ts";
import { localVerdicts, spawnMmsafe } from "../fixtures/local-cli.ts";
import { officialScore, readResponses } from "../fixtures/official-scorer.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

/**
 * The key the `echo` model is called with. Every run of 5 of its characters holds a "~", which neither
 * base64 nor hex has, so finding one in a file (images, hashes, ids) can only be a leak.
 */
const KEY = "mk~Qz7~Kp4~Wd9~Rt2~Lm8~Vc6";
const KEY_ENV = "MMSAFE_E2E_ECHOED_KEY";
const MODELS = [
  { id: "echo", model: "always-yes+echokey", apiKeyEnv: KEY_ENV },
  { id: "huge", model: "always-no+huge" },
  { id: "badusage", model: "random+badusage" },
] as const;
const STRATEGIES = ["baseline", "contextual-reasoning"] as const;
/** A stratified sample of the generated dataset: 3 items per category. */
const LIMIT = 9;
const PER_MODEL = LIMIT * STRATEGIES.length;
const TOTAL = PER_MODEL * MODELS.length;
const RUN = "untrusted-1";
const CACHED_RUN = "untrusted-2";

const work = await mkdtemp(path.join(os.tmpdir(), "mmsafe-untrusted-"));
const home = path.join(work, "home");
const reports = path.join(work, "reports");
const modelsFile = path.join(work, "models.json");
let server: ReferenceServer;
const started: ChildProcess[] = [];

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Requests the reference server received during the run, per model name. */
  requests: Record<string, number>;
  verdicts: Verdict[];
}
const runs: { first?: CliRun; resumed?: CliRun; cached?: CliRun } = {};

/** `mmsafe run` as a user types it, with the key in its variable; resolves when the process exits. */
async function mmsafeRun(runId: string): Promise<CliRun> {
  const before = server.stats();
  const run = spawnMmsafe(
    [
      "run",
      "--home",
      home,
      "--reports",
      reports,
      "--run-id",
      runId,
      "--models",
      modelsFile,
      "--strategies",
      STRATEGIES.join(","),
      "--limit",
      String(LIMIT),
    ],
    { [KEY_ENV]: KEY },
  );
  started.push(run.child);
  const code = await run.exited;
  return {
    code,
    stdout: run.output.stdout,
    stderr: run.output.stderr,
    requests: requestsSince(before, server.stats()),
    verdicts: await localVerdicts(home, runId),
  };
}

function requestsSince(before: ReferenceServerStats, now: ReferenceServerStats): Record<string, number> {
  const out: Record<string, number> = {};
  for (const { model } of MODELS) out[model] = (now.byModel[model] ?? 0) - (before.byModel[model] ?? 0);
  return out;
}

/** The parts of the key a text holds: runs of 5 of its characters, and its first or last 4 beside anything. */
function keyTraces(text: string): string[] {
  const traces = new Set<string>();
  for (let i = 0; i + 5 <= KEY.length; i++)
    if (text.includes(KEY.slice(i, i + 5))) traces.add(KEY.slice(i, i + 5));
  for (const edge of [KEY.slice(0, 4), KEY.slice(-4)]) if (text.includes(edge)) traces.add(edge);
  return [...traces];
}

/** Every file under `dir` (S3 objects, reports, run records…). */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

const ofModel = (verdicts: readonly Verdict[], id: string) => verdicts.filter((v) => v.modelId === id);
const reportOf = async (runId: string) =>
  JSON.parse(await readFile(path.join(reports, runId, "report.json"), "utf8")) as Report;
const markdownOf = (runId: string) => readFile(path.join(reports, runId, "report.md"), "utf8");
const htmlOf = (runId: string) => readFile(path.join(reports, runId, "report.html"), "utf8");
const rowOf = (report: Report, modelId: string, strategy: string) => {
  const row = report.rows.find((r) => r.modelId === modelId && r.strategy === strategy);
  assert.ok(row, `${modelId}/${strategy} row`);
  return row;
};
/** What can differ between the same answer's verdicts in two runs. */
const answerOf = (v: Verdict) => ({
  key: v.verdictKey,
  response: v.response,
  scoredResponse: v.scoredResponse,
  strictAnswer: v.strictAnswer,
  correctPaper: v.correctPaper,
  correctStrict: v.correctStrict,
  truncated: v.truncated,
  responseLength: v.responseLength,
});
const byKey = (verdicts: readonly Verdict[]) =>
  [...verdicts].sort((a, b) => a.verdictKey.localeCompare(b.verdictKey));

before(async () => {
  server = await startReferenceModelServer();
  await writeFile(
    modelsFile,
    JSON.stringify({
      models: MODELS.map((m) => ({
        ...m,
        baseURL: server.baseURL,
        maxConcurrency: 4,
        maxTokens: 16,
        timeoutMs: 30_000,
      })),
    }),
  );
  const t0 = performance.now();
  runs.first = await mmsafeRun(RUN);
  const t1 = performance.now();
  runs.resumed = await mmsafeRun(RUN);
  const t2 = performance.now();
  runs.cached = await mmsafeRun(CACHED_RUN);
  const t3 = performance.now();
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  console.log(
    `untrusted answers: run ${s(t1 - t0)} (${JSON.stringify(runs.first.requests)} requests), ` +
      `resume ${s(t2 - t1)} (${JSON.stringify(runs.resumed.requests)}), ` +
      `new run id from the cache ${s(t3 - t2)} (${JSON.stringify(runs.cached.requests)})`,
  );
});

after(async () => {
  for (const child of started)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

const first = () => runs.first as CliRun;
const resumed = () => runs.resumed as CliRun;
const cached = () => runs.cached as CliRun;

describe("answers that cannot be trusted, through mmsafe run", { timeout: 600_000 }, () => {
  it("every run exits 0 with a report; the first pays each question once, the resume and the new run id none", () => {
    for (const [name, run] of Object.entries(runs)) {
      assert.equal(run.code, 0, `${name}: exit ${run.code}\n${run.stderr}`);
      assert.match(run.stdout, /Run untrusted-\d — paper scoring/, name);
      assert.match(run.stdout, /report: .*report\.md/, name);
    }
    assert.deepEqual(first().requests, Object.fromEntries(MODELS.map((m) => [m.model, PER_MODEL])));
    assert.deepEqual(resumed().requests, Object.fromEntries(MODELS.map((m) => [m.model, 0])));
    assert.deepEqual(cached().requests, Object.fromEntries(MODELS.map((m) => [m.model, 0])));
    for (const run of [first(), resumed(), cached()]) {
      assert.equal(run.verdicts.length, TOTAL);
      assert.ok(
        run.verdicts.every((v) => v.status === "answered"),
        "every verdict is an answer",
      );
    }
    // The resume rewrote nothing: the same verdicts, to the creation time.
    assert.deepEqual(byKey(resumed().verdicts), byKey(first().verdicts));
    assert.ok(cached().verdicts.every((v) => v.cached));
  });

  it("a key echoed in answers, verbatim and masked, is in no verdict, S3 object, report, log or output", async () => {
    // The endpoint did receive the key, and did echo it (the redacted marks are where it was).
    const echo = ofModel(first().verdicts, "echo");
    assert.equal(echo.length, PER_MODEL);
    for (const v of echo) {
      assert.ok(
        v.response?.startsWith("Yes. (the bearer token of this request: [redacted]"),
        v.response ?? "",
      );
      assert.equal(v.correctPaper, v.expected === "yes", "the answer is still scored as the model's Yes");
    }
    for (const run of [first(), resumed(), cached()]) {
      assert.deepEqual(keyTraces(JSON.stringify(run.verdicts)), [], "verdicts");
      assert.deepEqual(keyTraces(run.stdout), [], "stdout");
      assert.deepEqual(keyTraces(run.stderr), [], "stderr");
    }
    // Every object the embedded S3 holds (cache/ entries, run shards, reports…) and every copied report file.
    const files = [...(await filesUnder(path.join(home, "aws"))), ...(await filesUnder(reports))];
    assert.ok(
      files.some((f) => f.includes(`${path.sep}cache${path.sep}`)),
      "the cache has entries",
    );
    assert.ok(files.some((f) => f.endsWith("report.html")));
    for (const file of files) {
      const text = (await readFile(file)).toString("latin1");
      assert.deepEqual(keyTraces(text), [], file);
    }
    assert.match(await htmlOf(RUN), /\[redacted\]/);
  });

  it("a 2 MiB answer is scored on its full text, stored truncated with its length, reported, and paid once", async () => {
    const huge = ofModel(first().verdicts, "huge");
    assert.equal(huge.length, PER_MODEL);
    for (const v of huge) {
      assert.equal(v.truncated, true, v.verdictKey);
      assert.equal(v.responseLength, HUGE_ANSWER_CHARS, v.verdictKey);
      assert.ok(
        (v.response?.length ?? 0) < 40_000,
        `${v.verdictKey}: ${v.response?.length} characters stored`,
      );
      // "No." comes only at the end of the 2 MiB: right for unsafe items only if all of it was scored.
      assert.equal(v.correctPaper, v.expected === "no", v.verdictKey);
      if (v.strategy === "contextual-reasoning") {
        assert.equal(v.scoredResponse, "No.", "the final answer was found at the end of the full text");
        assert.equal(v.strictAnswer, "no");
      } else assert.equal(v.strictAnswer, "unparseable");
    }
    // The cache held the full answer: the verdicts from it are the same, scores included.
    assert.deepEqual(byKey(ofModel(cached().verdicts, "huge")).map(answerOf), byKey(huge).map(answerOf));

    const report = await reportOf(RUN);
    for (const strategy of STRATEGIES) {
      const row = rowOf(report, "huge", strategy);
      assert.deepEqual([row.counts.answered, row.counts.truncated, row.counts.errored], [LIMIT, LIMIT, 0]);
      assert.equal(row.paper.typical.accuracy, 100);
      assert.equal(row.paper.attack.accuracy, 100);
      assert.equal(row.paper.oversafety.accuracy, 0);
    }
    assert.match(
      await markdownOf(RUN),
      new RegExp(`huge / baseline: .*; ${LIMIT} answers truncated for storage`),
    );
    const html = await htmlOf(RUN);
    assert.match(html, /truncated \(2,097,152 characters\)/);
    assert.match(html, /Answers truncated for storage/);
    // The official scorer, on the exported responses, gets the verdicts' paper scores.
    for (const strategy of STRATEGIES) {
      const lines = await readResponses(path.join(reports, RUN, "responses", `huge.${strategy}.jsonl`));
      assert.equal(lines.length, LIMIT);
      const row = rowOf(report, "huge", strategy);
      assert.deepEqual(officialScore(lines), {
        typical: row.paper.typical.accuracy,
        attack: row.paper.attack.accuracy,
        oversafety: row.paper.oversafety.accuracy,
      });
      for (const { id, response } of lines) {
        const v = huge.find((x) => x.itemId === id && x.strategy === strategy);
        assert.equal(scorePaper(response, v?.expected ?? "no"), v?.correctPaper, `${strategy} ${id}`);
      }
    }
  });

  it("bad token counts never reach Aggregate: null on the verdicts, summed as 0, counted in the report", async () => {
    const bad = ofModel(first().verdicts, "badusage");
    assert.equal(bad.length, PER_MODEL);
    assert.ok(bad.every((v) => v.promptTokens === null || v.completionTokens === null));
    const report = await reportOf(RUN);
    for (const strategy of STRATEGIES) {
      const row = rowOf(report, "badusage", strategy);
      assert.equal(row.counts.invalidUsage, LIMIT);
      assert.equal(row.counts.answered, LIMIT);
      const valid = (n: number | null) => n ?? 0;
      const mine = bad.filter((v) => v.strategy === strategy);
      assert.equal(
        row.usage.promptTokens,
        mine.reduce((s, v) => s + valid(v.promptTokens), 0),
      );
      assert.equal(
        row.usage.completionTokens,
        mine.reduce((s, v) => s + valid(v.completionTokens), 0),
      );
      assert.ok(Number.isSafeInteger(row.usage.promptTokens) && row.usage.promptTokens >= 0);
      // The other models' counts were valid.
      assert.equal(rowOf(report, "huge", strategy).counts.invalidUsage, 0);
    }
    assert.match(
      await markdownOf(RUN),
      new RegExp(
        `badusage / baseline: .*; ${LIMIT} without valid token counts from the endpoint \\(counted as 0\\)`,
      ),
    );
    assert.match(await htmlOf(RUN), /Answers without valid token counts/);
    // Cached answers paid nothing: 0 tokens, and no invalid count to report.
    const cachedReport = await reportOf(CACHED_RUN);
    assert.equal(rowOf(cachedReport, "badusage", "baseline").counts.invalidUsage, 0);
  });
});
