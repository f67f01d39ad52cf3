/**
 * End to end: a local run against endpoints that misbehave — 10% rate limits (429 with Retry-After), 5%
 * server errors, 2% hangs and 2% garbage bodies, injected by the reference server from a seeded plan —
 * through the real workflow, handlers, retries and `openai` SDK. The run must still succeed, account for
 * every item exactly once, keep the faults out of the accuracies, and score the items it did answer
 * exactly as a fault-free run of the same models does.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createDocumentClient } from "../../src/adapters/aws-clients.ts";
import { DynamoVerdictStore } from "../../src/adapters/verdict-store.ts";
import { computeRow } from "../../src/benchmarks/mmsafeaware/metrics.ts";
import type { Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import type { ModelConfig, Strategy, Verdict } from "../../src/core/schemas.ts";
import { LOCAL_RESOURCES } from "../../src/local/embedded-aws.ts";
import {
  chooseFault,
  FAULT_KINDS,
  type FaultKind,
  type FaultPlan,
  type ReferenceServer,
  type ReferenceServerStats,
  startReferenceModelServer,
} from "../../src/local/reference-model-server.ts";
import { closeLocalSession, type LocalRunResult, runLocal } from "../../src/local/runner.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const RUNNABLE = 36; // the small sample: 40 records, 4 without an image
const STRATEGIES: Strategy[] = ["baseline", "contextual-reasoning"];
const MODEL_NAMES = ["random", "always-no"] as const;
const RATES: FaultPlan["rates"] = { "429": 0.1, "500": 0.05, timeout: 0.02, garbage: 0.02 };
const INJECTED: FaultKind[] = ["429", "500", "timeout", "garbage"];
/** The error kinds the client records for the injected faults, once its attempts are spent. */
const ERROR_KINDS = new Set(["rate_limited", "server_error", "timeout", "malformed_response"]);
/**
 * The client's attempts per call (src/providers/attempts.ts): 4, or 12 when the last one met a 429. Only
 * used to pick a seed, not asserted.
 */
const CLIENT_ATTEMPTS = 4;
const CLIENT_RATE_LIMITED_ATTEMPTS = 12;
const CLEAN_RUN = "e2e-faults-clean";
const FAULTY_RUN = "e2e-faults";

const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-e2e-faults-"));
const reportsDir = path.join(home, "reports");
const servers: ReferenceServer[] = [];

let models: { clean: ModelConfig[]; faulty: ModelConfig[] };
let clean: { result: LocalRunResult; verdicts: Verdict[] };
let faulty: { result: LocalRunResult; verdicts: Verdict[]; report: Report; stats: ReferenceServerStats };
let plan: FaultPlan;

const modelsAt = (baseURL: string, timeoutMs: number): ModelConfig[] =>
  MODEL_NAMES.map((name) => ({
    id: name,
    baseURL,
    model: name,
    kind: "model",
    maxConcurrency: 8,
    maxTokens: 16,
    temperature: 0,
    timeoutMs,
  }));

/**
 * The faulty run's timeout: small, so that a hanging request costs little. The fault-free run's is large: on
 * a loaded machine a healthy answer may take longer than 1.5 s, and the reference must need no retry.
 */
const FAULTY_TIMEOUT_MS = 1500;
const CLEAN_TIMEOUT_MS = 30_000;

const verdictsOf = async (runId: string) =>
  new DynamoVerdictStore(createDocumentClient(), LOCAL_RESOURCES.verdictsTable).listRun(runId);

/** Wall time of the evaluation phase (after upload and planning). */
const evaluationMs = (result: LocalRunResult) =>
  result.phases.evaluated - (result.phases.planned ?? result.phases.datasetReady);

/**
 * The first seed under which the questions asked meet every injected fault on a first attempt (every
 * question gets one, whatever the retry policy) and at least one question fails all the client's attempts,
 * so the run has error verdicts to check. The rates stay as specified; only the draw is chosen.
 */
function pickSeed(keys: readonly string[]): number {
  for (let seed = 0; seed < 10_000; seed++) {
    const firstAttempts = new Set(keys.map((key) => chooseFault({ rates: RATES, seed }, key, 1)));
    // As the client goes: it stops at an answer, or at a fault once it has used its attempts for that fault.
    const exhausted = keys.some((key) => {
      for (let attempt = 1; ; attempt++) {
        const kind = chooseFault({ rates: RATES, seed }, key, attempt);
        if (kind === null) return false;
        if (attempt >= (kind === "429" ? CLIENT_RATE_LIMITED_ATTEMPTS : CLIENT_ATTEMPTS)) return true;
      }
    });
    if (exhausted && INJECTED.every((kind) => firstAttempts.has(kind))) return seed;
  }
  throw new Error("no seed exercises every fault");
}

before(async () => {
  // The fault-free run first: the reference, and the set of questions the faulty run will ask.
  const cleanServer = await startReferenceModelServer();
  servers.push(cleanServer);
  models = { clean: modelsAt(cleanServer.baseURL, CLEAN_TIMEOUT_MS), faulty: [] };
  const cleanResult = await runLocal({
    home,
    reportsDir,
    models: models.clean,
    // No response cache: the faulty run must really ask the faulty server.
    input: { runId: CLEAN_RUN, strategies: STRATEGIES, shardSize: 10, cache: false },
  });
  assert.equal(
    cleanResult.execution.status,
    "SUCCEEDED",
    `${cleanResult.execution.error}: ${cleanResult.execution.cause}`,
  );
  clean = { result: cleanResult, verdicts: await verdictsOf(CLEAN_RUN) };

  const questions = Object.keys(cleanServer.stats().byPrompt);
  assert.equal(questions.length, RUNNABLE * MODEL_NAMES.length * STRATEGIES.length);
  // Retry-After stays small so the client's backoff (which honours it) keeps the test fast.
  plan = { rates: RATES, seed: pickSeed(questions), retryAfterSeconds: 1, retryAfterMs: 50 };
  const faultyServer = await startReferenceModelServer({ faults: plan });
  servers.push(faultyServer);
  models.faulty = modelsAt(faultyServer.baseURL, FAULTY_TIMEOUT_MS);
  const result = await runLocal({
    home,
    reportsDir,
    models: models.faulty,
    input: { runId: FAULTY_RUN, strategies: STRATEGIES, shardSize: 10, cache: false },
  });
  assert.equal(result.execution.status, "SUCCEEDED", `${result.execution.error}: ${result.execution.cause}`);
  faulty = {
    result,
    verdicts: await verdictsOf(FAULTY_RUN),
    report: JSON.parse(await readFile(path.join(result.reportDir ?? "", "report.json"), "utf8")) as Report,
    stats: faultyServer.stats(),
  };

  const answered = faulty.verdicts.filter((v) => v.status === "answered").length;
  const retries = faulty.verdicts.reduce((sum, v) => sum + v.attempts - 1, 0);
  const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(
    [
      `fault plan: ${JSON.stringify(plan)}`,
      `items planned: ${faulty.verdicts.length} (${RUNNABLE} items × ${MODEL_NAMES.length} models × ${STRATEGIES.length} strategies), answered: ${answered}, errored: ${faulty.verdicts.length - answered}`,
      `requests: ${faulty.stats.requests}, retries made: ${retries}`,
      `faults by kind: ${JSON.stringify(faulty.stats.faults)}`,
      `error verdicts by kind: ${JSON.stringify(errorsByKind(faulty.verdicts))}`,
      `wall time: faulty run ${seconds(result.durationMs)} (evaluation ${seconds(evaluationMs(result))}), ` +
        `fault-free run ${seconds(cleanResult.durationMs)} including starting the local stack (evaluation ${seconds(evaluationMs(cleanResult))})`,
    ].join("\n"),
  );
});

after(async () => {
  await closeLocalSession();
  for (const server of servers) await server.close();
  await rm(home, { recursive: true, force: true });
});

function errorsByKind(verdicts: readonly Verdict[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of verdicts)
    if (v.status === "error") out[v.error?.kind ?? "?"] = (out[v.error?.kind ?? "?"] ?? 0) + 1;
  return out;
}

const sum = (values: Iterable<number>) => [...values].reduce((a, b) => a + b, 0);

describe("a local run against endpoints injecting 429s, 500s, hangs and garbage", () => {
  it("succeeds with exactly one verdict per item × model × strategy, every item accounted for", () => {
    assert.equal(faulty.verdicts.length, RUNNABLE * MODEL_NAMES.length * STRATEGIES.length);
    assert.equal(new Set(faulty.verdicts.map((v) => v.verdictKey)).size, faulty.verdicts.length);
    const items = new Set(clean.verdicts.map((v) => v.itemId));
    assert.equal(items.size, RUNNABLE);
    assert.equal(faulty.report.rows.length, MODEL_NAMES.length * STRATEGIES.length);
    for (const modelId of MODEL_NAMES) {
      for (const strategy of STRATEGIES) {
        const mine = faulty.verdicts.filter((v) => v.modelId === modelId && v.strategy === strategy);
        assert.deepEqual(new Set(mine.map((v) => v.itemId)), items, `${modelId}/${strategy}`);
        const row = faulty.report.rows.find((r) => r.modelId === modelId && r.strategy === strategy);
        assert.ok(row, `${modelId}/${strategy} row`);
        const answered = mine.filter((v) => v.status === "answered").length;
        const { planned, answered: rowAnswered, errored, missing } = row.counts;
        assert.deepEqual(
          { planned, answered: rowAnswered, errored, missing },
          { planned: RUNNABLE, answered, errored: RUNNABLE - answered, missing: 0 },
          `${modelId}/${strategy}`,
        );
      }
    }
  });

  it("really injected every planned fault kind, and the client retried past them", () => {
    const { faults, byPrompt, answeredByPrompt } = faulty.stats;
    for (const kind of FAULT_KINDS) {
      if (INJECTED.includes(kind)) assert.ok(faults[kind] > 0, `no ${kind} fault was injected`);
      else assert.equal(faults[kind], 0, kind);
    }
    const attempts = sum(faulty.verdicts.map((v) => v.attempts));
    assert.ok(attempts > faulty.verdicts.length, "some verdict needed more than one attempt");
    // Every attempt the verdicts record reached the server, and each was either answered or faulted.
    assert.equal(sum(Object.values(byPrompt)), attempts);
    assert.equal(sum(Object.values(faults)) + sum(Object.values(answeredByPrompt)), attempts);
    const answered = faulty.verdicts.filter((v) => v.status === "answered");
    assert.ok(answered.length <= sum(Object.values(answeredByPrompt)));
    // The client stops at its first answer (a slow answer it timed out on aside): one answer per question.
    assert.ok(Object.keys(answeredByPrompt).length >= answered.length);
  });

  it("records error verdicts with the fault's kind and never scores them", () => {
    const errored = faulty.verdicts.filter((v) => v.status === "error");
    assert.ok(
      errored.length > 0,
      `the seed was picked so that some question fails ${CLIENT_ATTEMPTS} attempts in a row (the client's limit)`,
    );
    for (const v of errored) {
      assert.ok(ERROR_KINDS.has(v.error?.kind ?? ""), `${v.verdictKey}: error kind ${v.error?.kind}`);
      assert.equal(v.response, null, v.verdictKey);
      assert.equal(v.correctPaper, null, v.verdictKey);
      assert.equal(v.correctStrict, null, v.verdictKey);
    }
    for (const row of faulty.report.rows) {
      const { typical, attack, oversafety } = row.paper;
      assert.equal(
        typical.n + attack.n + oversafety.n,
        row.counts.answered,
        `${row.modelId}/${row.strategy}`,
      );
      assert.equal(
        sum(Object.values(row.errorsByKind)),
        row.counts.errored,
        `${row.modelId}/${row.strategy}`,
      );
    }
  });

  it("answers exactly what the fault-free run answered, item by item", () => {
    const reference = new Map(clean.verdicts.map((v) => [v.verdictKey, v]));
    assert.ok(clean.verdicts.every((v) => v.status === "answered" && v.attempts === 1));
    for (const v of faulty.verdicts.filter((x) => x.status === "answered")) {
      const r = reference.get(v.verdictKey);
      assert.ok(r, v.verdictKey);
      assert.deepEqual(
        [v.response, v.scoredResponse, v.strictAnswer, v.correctPaper, v.correctStrict],
        [r.response, r.scoredResponse, r.strictAnswer, r.correctPaper, r.correctStrict],
        v.verdictKey,
      );
    }
  });

  it("gives the same metrics as the fault-free run restricted to the answered items", () => {
    for (const [index, name] of MODEL_NAMES.entries()) {
      for (const strategy of STRATEGIES) {
        const row = faulty.report.rows.find((r) => r.modelId === name && r.strategy === strategy);
        assert.ok(row);
        const answeredItems = new Set(
          faulty.verdicts
            .filter((v) => v.modelId === name && v.strategy === strategy && v.status === "answered")
            .map((v) => v.itemId),
        );
        const restricted = clean.verdicts.filter(
          (v) => v.modelId === name && v.strategy === strategy && answeredItems.has(v.itemId),
        );
        const model = models.clean[index];
        assert.ok(model);
        const expected = computeRow(model, strategy, restricted, RUNNABLE);
        assert.deepEqual(row.paper, expected.paper, `${name}/${strategy} paper`);
        assert.deepEqual(row.strict, expected.strict, `${name}/${strategy} strict`);
        assert.deepEqual(
          row.paperDetail.byAttackType,
          expected.paperDetail.byAttackType,
          `${name}/${strategy}`,
        );
      }
    }
  });
});
