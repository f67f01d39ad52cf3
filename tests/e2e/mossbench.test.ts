/**
 * End to end: MOSSBench through the real local pipeline (embedded S3/DynamoDB, the ASL file executed with
 * the deployed handlers, the real `openai` SDK) on the generated 300 + 244 item sample, scored by the
 * reference judges; then a rejudge that asks only the judge, and a judge whose endpoint is down.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createDocumentClient } from "../../src/adapters/aws-clients.ts";
import { DynamoVerdictStore } from "../../src/adapters/verdict-store.ts";
import { MOSSBENCH_JUDGE_PROMPT_SHA256 } from "../../src/benchmarks/mossbench/judge.ts";
import type { RunResultJson } from "../../src/cli/main.ts";
import type { BenchmarkVerdict, JudgeVerdict, ModelConfig } from "../../src/core/schemas.ts";
import { judgeVerdictKey } from "../../src/deployment/storage-layout.ts";
import { LOCAL_RESOURCES } from "../../src/local/embedded-aws.ts";
import {
  COMPLY_ANSWER,
  JUDGE_STRICT_MIN_CHARS,
  REFUSE_ANSWER,
  type ReferenceServer,
  referenceJudgeReply,
  startReferenceModelServer,
} from "../../src/local/reference-model-server.ts";
import {
  closeLocalSession,
  type LocalRunResult,
  openLocalSession,
  runLocal,
} from "../../src/local/runner.ts";
import { type BenchmarkReport, parseBenchmarkReport } from "../../src/report/benchmark-report.ts";
import { spawnMmsafe } from "../fixtures/local-cli.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

/** MOSSBench's columns and the items each holds in the full sample. */
const COLUMNS = { type1: 100, type2: 100, type3: 100, contrast: 244 } as const;
const ITEMS = 544;
const EVALUATED = ["always-refuse", "always-comply", "always-yes"] as const;
const ALL_ANSWERS = ITEMS * EVALUATED.length;

const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-e2e-mossbench-"));
const reportsDir = path.join(home, "reports");
// The models' endpoint, started here so that its per-model counters say who was asked.
const server: ReferenceServer = await startReferenceModelServer({ latencyMs: 0 });

after(async () => {
  await closeLocalSession();
  await server.close();
  await rm(home, { recursive: true, force: true });
});

/** A reference model on this test's server (free-text baselines and judges alike). */
const reference = (id: string, model: string, overrides: Partial<ModelConfig> = {}): ModelConfig =>
  ({
    id,
    baseURL: server.baseURL,
    model,
    kind: "baseline",
    maxConcurrency: 16,
    maxTokens: id.startsWith("judge") ? 256 : 64,
    temperature: 0,
    timeoutMs: 30_000,
    ...overrides,
  }) as ModelConfig;

const MODELS: ModelConfig[] = [
  ...EVALUATED.map((id) => reference(id, id)),
  reference("judge", "judge"),
  reference("judge-strict", "judge-strict"),
];

const readReport = async (result: LocalRunResult): Promise<BenchmarkReport> =>
  parseBenchmarkReport(JSON.parse(await readFile(path.join(result.reportDir ?? "", "report.json"), "utf8")));

const stored = (runId: string): Promise<{ verdicts: BenchmarkVerdict[]; judgements: JudgeVerdict[] }> =>
  new DynamoVerdictStore(createDocumentClient(), LOCAL_RESOURCES.verdictsTable).listBenchmarkRun(runId);

const rowOf = (report: BenchmarkReport, modelId: string) => {
  const row = report.rows.find((r) => r.modelId === modelId);
  assert.ok(row, `the report has a row for ${modelId}`);
  return row;
};

const succeeded = (result: LocalRunResult) =>
  assert.equal(
    result.execution.status,
    "SUCCEEDED",
    `${result.execution.error ?? ""}: ${result.execution.cause ?? ""}`,
  );

/** Requests the server received per model since `before` (a stats snapshot's byModel). */
const requestsSince = (before: Record<string, number>): Record<string, number> => {
  const now = server.stats().byModel;
  return Object.fromEntries(
    [...new Set([...Object.keys(now), ...Object.keys(before)])].map((m) => [
      m,
      (now[m] ?? 0) - (before[m] ?? 0),
    ]),
  );
};

/** A TCP port on 127.0.0.1 nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  assert.ok(address !== null && typeof address === "object");
  return address.port;
}

describe("MOSSBench on the full generated sample, judged by the reference judges", () => {
  let first: LocalRunResult;
  let report: BenchmarkReport;
  let firstStored: Awaited<ReturnType<typeof stored>>;

  before(async () => {
    // The premise of the rejudge below: "Yes." reads as compliance to judge, as a refusal to judge-strict.
    assert.match(referenceJudgeReply("judge", "Yes."), /^Score: 0$/m);
    assert.match(referenceJudgeReply("judge-strict", "Yes."), /^Score: 1$/m);
    assert.ok(Array.from(COMPLY_ANSWER).length >= JUDGE_STRICT_MIN_CHARS);
    first = await runLocal({
      home,
      reportsDir,
      models: MODELS,
      baselineLatencyMs: 0,
      input: { benchmark: "mossbench", runId: "moss-1", judge: "judge", models: [...EVALUATED] },
    });
    succeeded(first);
    report = await readReport(first);
    firstStored = await stored("moss-1");
  });

  it("runs the sample's 544 items for the three models, scored by the official judge protocol", () => {
    assert.equal(first.datasetName, "mossbench-sample");
    assert.equal(first.provenance.kind, "sample");
    assert.equal(first.output?.status, "SUCCEEDED");
    assert.equal(report.run.plannedItems, ITEMS);
    assert.deepEqual(
      report.run.models.map((m) => m.id),
      [...EVALUATED],
    );
    assert.equal(report.run.scorer.id, "judge");
    assert.equal(report.run.scorer.official, true);
    assert.equal(report.run.judge?.modelId, "judge");
    assert.equal(report.run.judge?.endpoint, server.baseURL);
    assert.equal(report.run.judge?.promptSha256, MOSSBENCH_JUDGE_PROMPT_SHA256);
    assert.equal(report.completion.outcome, "complete");
  });

  it("reports the exact refusal rates of the baselines, each column with its n and an interval", () => {
    const expected: Record<(typeof EVALUATED)[number], number> = {
      "always-refuse": 100,
      "always-comply": 0,
      "always-yes": 0,
    };
    for (const [modelId, rate] of Object.entries(expected)) {
      const row = rowOf(report, modelId);
      assert.equal(row.counts.answered, ITEMS, `${modelId} answered every item`);
      assert.equal(row.counts.errored, 0);
      for (const [column, n] of Object.entries(COLUMNS)) {
        const c = row.columns[column];
        assert.ok(c, `${modelId} has column ${column}`);
        assert.equal(c.n, n, `${modelId} ${column} n`);
        assert.equal(c.unscored, 0, `${modelId} ${column} unscored`);
        assert.equal(c.rate, rate, `${modelId} ${column} rate`);
        assert.ok(c.ci, `${modelId} ${column} has an interval`);
        assert.ok(c.ci.low <= rate && rate <= c.ci.high, `${modelId} ${column} interval holds the rate`);
      }
      assert.equal(row.aggregates.all?.n, 300);
      assert.equal(row.aggregates.all?.rate, rate);
      const headline = first.output?.benchmarkHeadline?.find((h) => h.modelId === modelId);
      assert.equal(headline?.rates.all, rate, `${modelId} headline ALL`);
    }
  });

  it("stores the answers and one reading of judge per answer, each parsed by the official regex", () => {
    const { verdicts, judgements } = firstStored;
    assert.equal(verdicts.length, ALL_ANSWERS);
    assert.ok(verdicts.every((v) => v.status === "answered"));
    const answerOf = Object.fromEntries(EVALUATED.map((m) => [m, new Set<string | null>()]));
    for (const v of verdicts) answerOf[v.modelId]?.add(v.response);
    assert.deepEqual([...(answerOf["always-refuse"] ?? [])], [REFUSE_ANSWER]);
    assert.deepEqual([...(answerOf["always-comply"] ?? [])], [COMPLY_ANSWER]);
    assert.deepEqual([...(answerOf["always-yes"] ?? [])], ["Yes."]);

    assert.equal(judgements.length, ALL_ANSWERS);
    for (const j of judgements) {
      assert.equal(j.judge.modelId, "judge");
      assert.equal(j.judge.promptSha256, MOSSBENCH_JUDGE_PROMPT_SHA256);
      assert.equal(j.status, "answered");
      assert.equal(j.rule, "regex", `${j.verdictKey} parsed by the regex`);
      assert.equal(j.verdictKey, judgeVerdictKey("judge", j.modelId, j.strategy, j.itemId));
      assert.equal(j.score, j.modelId === "always-refuse" ? 1 : 0, j.verdictKey);
    }
    assert.equal(new Set(judgements.map((j) => j.verdictKey)).size, ALL_ANSWERS);
  });

  describe("rejudged with judge-strict", () => {
    let rejudge: LocalRunResult;
    let rejudged: BenchmarkReport;
    let asked: Record<string, number>;
    let after2: Awaited<ReturnType<typeof stored>>;

    before(async () => {
      const byModelBefore = server.stats().byModel;
      rejudge = await runLocal({
        home,
        reportsDir,
        models: MODELS,
        baselineLatencyMs: 0,
        input: { runId: "moss-1", judgeOnly: true, judge: "judge-strict" },
      });
      asked = requestsSince(byModelBefore);
      succeeded(rejudge);
      rejudged = await readReport(rejudge);
      after2 = await stored("moss-1");
    });

    it("reports the new judge", () => {
      assert.equal(rejudged.run.scorer.id, "judge");
      assert.equal(rejudged.run.judge?.modelId, "judge-strict");
      assert.equal(rejudged.run.judge?.promptSha256, MOSSBENCH_JUDGE_PROMPT_SHA256);
      assert.equal(rejudged.completion.outcome, "complete");
    });

    it("reads always-yes's short answers as refusals; the other rates stay", () => {
      const expected = { "always-refuse": 100, "always-comply": 0, "always-yes": 100 };
      for (const [modelId, rate] of Object.entries(expected)) {
        const row = rowOf(rejudged, modelId);
        for (const [column, n] of Object.entries(COLUMNS)) {
          const c = row.columns[column];
          assert.equal(c?.n, n, `${modelId} ${column} n`);
          assert.equal(c?.unscored, 0, `${modelId} ${column} unscored`);
          assert.equal(c?.rate, rate, `${modelId} ${column} rate`);
          assert.ok(c?.ci, `${modelId} ${column} has an interval`);
        }
        assert.equal(row.aggregates.all?.rate, rate);
      }
    });

    it("asks only the judge: the evaluated models get no request", () => {
      for (const modelId of EVALUATED) assert.equal(asked[modelId] ?? 0, 0, `${modelId} was not asked`);
      assert.equal(asked.judge ?? 0, 0, "the first judge was not asked again");
      const strict = after2.judgements.filter((j) => j.judge.modelId === "judge-strict");
      // Every reading the cache did not answer is one request to judge-strict.
      assert.equal(asked["judge-strict"], strict.filter((j) => !j.cached).length);
      assert.ok((asked["judge-strict"] ?? 0) > 0);
    });

    it("leaves the answers and the first judge's readings as they were, beside the new readings", () => {
      const createdAt = (list: readonly { verdictKey: string; createdAt: string }[]) =>
        new Map(list.map((v) => [v.verdictKey, v.createdAt]));
      assert.equal(after2.verdicts.length, ALL_ANSWERS);
      assert.deepEqual(createdAt(after2.verdicts), createdAt(firstStored.verdicts));

      const firstJudge = after2.judgements.filter((j) => j.judge.modelId === "judge");
      assert.equal(firstJudge.length, ALL_ANSWERS);
      assert.deepEqual(createdAt(firstJudge), createdAt(firstStored.judgements));

      const strict = after2.judgements.filter((j) => j.judge.modelId === "judge-strict");
      assert.equal(strict.length, ALL_ANSWERS);
      assert.equal(after2.judgements.length, 2 * ALL_ANSWERS);
      for (const j of strict) {
        assert.equal(j.status, "answered");
        assert.equal(j.rule, "regex");
        assert.equal(j.verdictKey, judgeVerdictKey("judge-strict", j.modelId, j.strategy, j.itemId));
        assert.equal(j.score, j.modelId === "always-comply" ? 0 : 1, j.verdictKey);
      }
    });
  });
});

describe("a judge at an address where nothing listens", () => {
  it("stops the run at the start check, naming the judge and what to fix", async () => {
    const port = await closedPort();
    const result = await runLocal({
      home,
      reportsDir,
      models: [
        reference("always-comply", "always-comply"),
        reference("judge-x", "judge", { baseURL: `http://127.0.0.1:${port}/v1`, timeoutMs: 1_000 }),
      ],
      baselineLatencyMs: 0,
      input: {
        benchmark: "mossbench",
        runId: "moss-nojudge",
        judge: "judge-x",
        models: ["always-comply"],
        limit: 8,
      },
    });
    assert.equal(result.execution.status, "FAILED");
    assert.equal(result.execution.error, "ModelUnavailable");
    assert.match(result.execution.cause ?? "", /judge-x.*cannot connect to http:\/\/127\.0\.0\.1:\d+\/v1/);
  });
});

describe("a judge whose endpoint fails every request (500)", () => {
  const LIMIT = 40;
  const evaluated = ["always-refuse", "always-comply"];
  // The usual timeout on both servers: a loaded machine's slow reply is neither retried (the resume counts the
  // judge's requests exactly) nor turned into a timeout where the fault under test is the server's 500.
  const judgeOn = (baseURL: string) => reference("judge-x", "judge", { baseURL, timeoutMs: 30_000 });
  const input = {
    benchmark: "mossbench",
    runId: "moss-down",
    judge: "judge-x",
    models: evaluated,
    limit: LIMIT,
    // Answers and judge replies asked again, not taken from the first describe's cache.
    cache: false,
  };
  let down: LocalRunResult;
  let downReport: BenchmarkReport;
  let downStored: Awaited<ReturnType<typeof stored>>;

  // A server error is a fault the start check lets through (the endpoint exists): the run goes on, and every
  // reading fails.
  let failing: ReferenceServer;
  after(() => failing.close());

  before(async () => {
    failing = await startReferenceModelServer({ latencyMs: 0, faults: { rates: { "500": 1 } } });
    down = await runLocal({
      home,
      reportsDir,
      models: [...evaluated.map((id) => reference(id, id)), judgeOn(failing.baseURL)],
      baselineLatencyMs: 0,
      input,
    });
    succeeded(down);
    downReport = await readReport(down);
    downStored = await stored("moss-down");
  });

  it("stores every answer, and an error reading of the judge for each", () => {
    assert.equal(downStored.verdicts.length, LIMIT * evaluated.length);
    assert.ok(downStored.verdicts.every((v) => v.status === "answered"));
    assert.equal(downStored.judgements.length, LIMIT * evaluated.length);
    for (const j of downStored.judgements) {
      assert.equal(j.status, "error", j.verdictKey);
      assert.equal(j.score, null);
      assert.ok(j.error, `${j.verdictKey} says why`);
    }
  });

  it("leaves every answer unscored, with no rate", () => {
    for (const modelId of evaluated) {
      const row = rowOf(downReport, modelId);
      const columns = Object.values(row.columns);
      assert.equal(
        columns.reduce((s, c) => s + c.unscored, 0),
        LIMIT,
        `${modelId}: every answer unscored`,
      );
      assert.ok(columns.some((c) => c.unscored > 0));
      for (const c of columns) {
        assert.equal(c.n, 0);
        assert.equal(c.rate, null);
        assert.equal(c.ci, null);
      }
      assert.equal(row.aggregates.all?.rate, null);
    }
  });

  it("says the run finished with errors: every answer lacks the judge's reading", () => {
    assert.equal(downReport.completion.outcome, "with_errors");
    // The answers are answers: what is missing is the judge's reading of them.
    assert.equal(downReport.completion.errored, 0);
    assert.equal(downReport.completion.unjudged, LIMIT * evaluated.length);
    assert.equal(down.output?.completion?.outcome, "with_errors");
    assert.match(down.output?.summary ?? "", /FINISHED WITH ERRORS/);
    assert.match(
      down.output?.summary ?? "",
      /answers have no judge reading; rates are over the scored items only/,
    );
    for (const modelId of evaluated) {
      const affected = downReport.completion.affected.find((a) => a.modelId === modelId);
      assert.equal(affected?.unjudged, LIMIT, `${modelId}: every answer counted`);
      assert.equal(affected?.errored, 0);
      const kinds = Object.keys(affected?.kinds ?? {});
      assert.ok(kinds.length > 0);
      for (const kind of kinds)
        assert.match(kind, /^judge: judge error: (server_error|endpoint_unavailable)$/);
    }
  });

  // Resumed as a user resumes a run: `mmsafe run` again, in a process of its own. In this process the judge's
  // circuit breaker, opened by the failures above, stays open for its cool-down (it is kept per model id for
  // the life of the process), so an in-process resume within that time would not ask the judge at all.
  describe("resumed with the judge reachable (mmsafe run again, same run id)", () => {
    let resumed: RunResultJson;
    let resumedReport: BenchmarkReport;
    let asked: Record<string, number>;
    let resumedStored: Awaited<ReturnType<typeof stored>>;

    before(async () => {
      // The child serves the home now; this process reads it again afterwards.
      await closeLocalSession();
      const modelsFile = path.join(home, "models-judge-up.json");
      await writeFile(
        modelsFile,
        JSON.stringify({ models: [...evaluated.map((id) => reference(id, id)), judgeOn(server.baseURL)] }),
      );
      const byModelBefore = server.stats().byModel;
      const child = spawnMmsafe([
        "run",
        "--benchmark",
        "mossbench",
        "--home",
        home,
        "--reports",
        reportsDir,
        "--run-id",
        "moss-down",
        "--judge",
        "judge-x",
        "--models",
        modelsFile,
        "--limit",
        String(LIMIT),
        "--no-cache",
        "--quiet",
        "--json",
      ]);
      const code = await child.exited;
      asked = requestsSince(byModelBefore);
      assert.equal(code, 0, child.output.stderr);
      resumed = JSON.parse(child.output.stdout) as RunResultJson;
      resumedReport = parseBenchmarkReport(
        JSON.parse(await readFile(path.join(reportsDir, "moss-down", "report.json"), "utf8")),
      );
      await openLocalSession(home);
      resumedStored = await stored("moss-down");
    });

    it("asks the judge again for every error reading, and not the evaluated models", () => {
      for (const modelId of evaluated) assert.equal(asked[modelId] ?? 0, 0, `${modelId} was not asked`);
      assert.equal(asked.judge, LIMIT * evaluated.length);
      assert.equal(resumedStored.judgements.length, LIMIT * evaluated.length);
      for (const j of resumedStored.judgements) {
        assert.equal(j.status, "answered", j.verdictKey);
        assert.equal(j.rule, "regex");
        assert.equal(j.runAttempts, 2, `${j.verdictKey} is the resume's reading`);
      }
    });

    it("scores every item", () => {
      assert.equal(resumed.status, "SUCCEEDED");
      assert.equal(resumed.exitCode, 0);
      assert.equal(resumed.completion?.outcome, "complete");
      assert.equal(resumedReport.run.judge?.endpoint, server.baseURL);
      const expected: Record<string, number> = { "always-refuse": 100, "always-comply": 0 };
      for (const modelId of evaluated) {
        const row = rowOf(resumedReport, modelId);
        const columns = Object.values(row.columns);
        assert.equal(
          columns.reduce((s, c) => s + c.n, 0),
          LIMIT,
        );
        for (const c of columns) {
          assert.equal(c.unscored, 0);
          if (c.n > 0) assert.equal(c.rate, expected[modelId]);
        }
      }
      assert.equal(resumedReport.completion.outcome, "complete");
    });
  });
});
