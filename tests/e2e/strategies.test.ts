/**
 * End to end: one local run evaluating two prompting strategies and visual contrastive decoding, against
 * the reference server's image-sensitive model (known log-probabilities) and an endpoint that ignores
 * `logprobs`, through the real workflow, handlers, `openai` SDK and sharp noise.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { createDocumentClient } from "../../src/adapters/aws-clients.ts";
import { DynamoVerdictStore } from "../../src/adapters/verdict-store.ts";
import type { Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import { exactMcNemar } from "../../src/core/paired-tests.ts";
import { compareLocal } from "../../src/local/compare-runs.ts";
import { LOCAL_RESOURCES } from "../../src/local/embedded-aws.ts";
import {
  NOISE_SENSITIVE_PROBABILITIES,
  type ReferenceServer,
  startReferenceModelServer,
} from "../../src/local/reference-model-server.ts";
import { closeLocalSession, type LocalRunResult, runLocal } from "../../src/local/runner.ts";
import { officialScore, readResponses } from "../fixtures/official-scorer.ts";
import { referenceModel } from "../fixtures/reference-models.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const RUNNABLE = 36; // the small sample: 40 records, 4 without an image
const TYPICAL = 8;
const ATTACK = 15;
const OVERSAFE = 13;
const RUN_ID = "e2e-strategies";
const STRATEGIES = ["baseline", "contextual-reasoning", "vcd"];
const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-e2e-strategies-"));
let server: ReferenceServer;
let result: LocalRunResult;
let report: Report;

const ln = Math.log;
const close = (actual: number | null | undefined, expected: number, what: string) =>
  assert.ok(actual != null && Math.abs(actual - expected) < 1e-9, `${what}: ${actual} ≠ ${expected}`);

before(async () => {
  server = await startReferenceModelServer();
  const model = (id: string, name: string) => referenceModel(server, id, name);
  result = await runLocal({
    home,
    reportsDir: path.join(home, "reports"),
    models: [model("prior-leaning", "noise-sensitive"), model("no-logprobs", "always-yes+nologprobs")],
    input: { runId: RUN_ID, strategies: STRATEGIES, vcd: { alpha: 1, beta: 0.1, noise: 0.5 }, shardSize: 10 },
  });
  assert.equal(result.execution.status, "SUCCEEDED", `${result.execution.error}: ${result.execution.cause}`);
  report = JSON.parse(await readFile(path.join(result.reportDir ?? "", "report.json"), "utf8")) as Report;
});

after(async () => {
  await closeLocalSession();
  await server?.close();
  await rm(home, { recursive: true, force: true });
});

const rowOf = (modelId: string, strategy: string) => {
  const row = report.rows.find((r) => r.modelId === modelId && r.strategy === strategy);
  assert.ok(row, `row ${modelId}/${strategy}`);
  return row;
};

describe("a run with two prompting strategies and vcd", () => {
  it("reports one row per model × strategy, each accounting for every item", () => {
    assert.equal(report.rows.length, 2 * STRATEGIES.length);
    for (const r of report.rows)
      assert.equal(r.counts.answered + r.counts.errored, RUNNABLE, `${r.modelId}/${r.strategy}`);
    assert.deepEqual(
      report.run.strategyDetails.map((s) => [s.name, s.parameters]),
      [
        ["baseline", null],
        ["contextual-reasoning", null],
        ["vcd", { alpha: 1, beta: 0.1, noise: 0.5, topLogprobs: 20 }],
      ],
    );
  });

  it("greedy decoding follows the language prior: Yes everywhere", () => {
    for (const strategy of ["baseline", "contextual-reasoning"]) {
      const row = rowOf("prior-leaning", strategy);
      assert.deepEqual(
        [row.paper.typical.accuracy, row.paper.attack.accuracy, row.paper.oversafety.accuracy],
        [0, 0, 100],
      );
    }
  });

  it("vcd contrasts clean and noised images with the known numbers and flips every answer to No", async () => {
    const row = rowOf("prior-leaning", "vcd");
    assert.deepEqual(
      [row.paper.typical.accuracy, row.paper.attack.accuracy, row.paper.oversafety.accuracy],
      [100, 100, 0],
    );
    assert.deepEqual(row.vcd, { contrastive: RUNNABLE, changedFromClean: RUNNABLE, cleanAnswerKept: 0 });

    const verdicts = (
      await new DynamoVerdictStore(createDocumentClient(), LOCAL_RESOURCES.verdictsTable).listRun(RUN_ID)
    ).filter((v) => v.modelId === "prior-leaning" && v.strategy === "vcd");
    assert.equal(verdicts.length, RUNNABLE);
    const { clean, noisy } = NOISE_SENSITIVE_PROBABILITIES;
    for (const v of verdicts) {
      assert.equal(v.response, "No");
      assert.equal(v.attempts, 2, "one call with the clean image, one with the noised copy");
      close(v.vcd?.clean.yes, ln(clean.Yes), `${v.itemId} clean yes`);
      close(v.vcd?.noised.yes, ln(noisy.Yes), `${v.itemId} noised yes`);
      // (1+α)·log p(y|clean) − α·log p(y|noised), α = 1
      close(v.vcd?.scores.yes, 2 * ln(clean.Yes) - ln(noisy.Yes), `${v.itemId} score yes`);
      close(v.vcd?.scores.no, 2 * ln(clean.No) - ln(noisy.No), `${v.itemId} score no`);
    }
  });

  it("an endpoint that returns no log-probabilities gets clear vcd error verdicts, not a fallback", () => {
    const vcd = rowOf("no-logprobs", "vcd");
    assert.deepEqual(vcd.counts, {
      planned: RUNNABLE,
      answered: 0,
      errored: RUNNABLE,
      missing: 0,
      skipped: 4,
      cached: 0,
      retries: 0,
      reattempted: 0,
      truncated: 0,
      invalidUsage: 0,
      imageDownscaled: 0,
    });
    assert.deepEqual(vcd.errorsByKind, { logprobs_unavailable: RUNNABLE });
    assert.equal(rowOf("no-logprobs", "baseline").counts.answered, RUNNABLE);
  });

  it("made exactly the calls the strategies need", () => {
    const calls = server.stats().byModel;
    assert.equal(calls["noise-sensitive"], RUNNABLE * 4, "baseline + contextual-reasoning + 2 for vcd");
    assert.equal(calls["always-yes+nologprobs"], RUNNABLE * 4);
  });

  it("exports responses the official scorer scores to the report's paper columns", async () => {
    for (const row of report.rows.filter((r) => r.counts.answered > 0)) {
      const file = path.join(result.reportDir ?? "", "responses", `${row.modelId}.${row.strategy}.jsonl`);
      const official = officialScore(await readResponses(file));
      assert.equal(official.typical, row.paper.typical.accuracy, `${row.modelId}/${row.strategy} typical`);
      assert.equal(official.attack, row.paper.attack.accuracy, `${row.modelId}/${row.strategy} attack`);
      assert.equal(
        official.oversafety,
        row.paper.oversafety.accuracy,
        `${row.modelId}/${row.strategy} over-safe`,
      );
    }
  });

  it("report.md records the strategies and vcd's parameters", async () => {
    const markdown = await readFile(path.join(result.reportDir ?? "", "report.md"), "utf8");
    assert.match(markdown, /## Strategies/);
    assert.match(markdown, /\*\*vcd\*\*: .*α = 1, β = 0\.1, noise γ = 0\.5/);
    assert.match(markdown, /prior-leaning \/ vcd: 36 answers decided contrastively, 36 of them differ/);
  });

  it("compare pairs baseline with vcd item by item: every item flips, with the exact McNemar p", async () => {
    const comparison = await compareLocal(
      home,
      { runId: RUN_ID, modelId: "prior-leaning", strategy: "baseline" },
      { runId: RUN_ID, modelId: "prior-leaning", strategy: "vcd" },
      "paper",
    );
    assert.equal(comparison.columns.typical.difference, 100);
    assert.equal(comparison.columns.attack.difference, 100);
    assert.equal(comparison.columns.oversafety.difference, -100);
    assert.equal(comparison.columns.typical.pValue, exactMcNemar(0, TYPICAL));
    assert.equal(comparison.columns.attack.pValue, exactMcNemar(0, ATTACK));
    assert.equal(comparison.columns.oversafety.pValue, exactMcNemar(OVERSAFE, 0));
    assert.equal(comparison.flips.oversafety.rightToWrong.length, OVERSAFE);
    assert.equal(comparison.pooled.n, RUNNABLE);
  });
});
