/**
 * End to end, locally: what a team running mmsafe on a schedule relies on — the run's announcement on the
 * event bus (headline, report, regression flag against the schedule's previous run), the failure
 * announcement, and API keys read from Secrets Manager that never leak.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { createDocumentClient } from "../../src/adapters/aws-clients.ts";
import { DynamoVerdictStore } from "../../src/adapters/verdict-store.ts";
import type { ModelConfig } from "../../src/core/schemas.ts";
import { RUN_EVENTS } from "../../src/deployment/observability.ts";
import { LOCAL_RESOURCES } from "../../src/local/embedded-aws.ts";
import { type ReferenceServer, startReferenceModelServer } from "../../src/local/reference-model-server.ts";
import { closeLocalSession, type LocalRunResult, runLocal } from "../../src/local/runner.ts";
import type { AggregateOutput } from "../../src/pipeline/aggregate.ts";
import { referenceModel } from "../fixtures/reference-models.ts";
import { teeStdout } from "../fixtures/stdout.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
// Handlers read this once when loaded: INFO so the leak check has real log lines to search.
process.env.POWERTOOLS_LOG_LEVEL = "INFO";

const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-e2e-notify-"));
const reportsDir = path.join(home, "reports");
let server: ReferenceServer;

before(async () => {
  server = await startReferenceModelServer();
});
after(async () => {
  await closeLocalSession();
  await server?.close();
  await rm(home, { recursive: true, force: true });
});

const model = (reference: string, extra: Partial<ModelConfig> = {}): ModelConfig =>
  referenceModel(server, "prod", reference, { maxTokens: 16, ...extra });

async function run(runId: string, models: ModelConfig[], input: Record<string, string | number> = {}) {
  const result = await runLocal({ home, reportsDir, models, input: { runId, ...input } });
  return result;
}

const completedEvent = (result: LocalRunResult) => {
  const event = result.events.find((e) => e.detailType === RUN_EVENTS.completed);
  assert.ok(event, `a completed event in ${JSON.stringify(result.events)}`);
  assert.equal(event.source, RUN_EVENTS.source);
  assert.equal(event.eventBusName, LOCAL_RESOURCES.eventBus);
  return event.detail as unknown as AggregateOutput;
};

describe("run announcements and regressions of a schedule", () => {
  let first: LocalRunResult;
  let second: LocalRunResult;

  before(async () => {
    // The same model id, first answering at random, then always Yes: a real drop in Total and Balanced.
    first = await run("nightly-1", [model("random")], { schedule: "nightly" });
    second = await run("nightly-2", [model("always-yes")], { schedule: "nightly" });
    for (const r of [first, second])
      assert.equal(r.execution.status, "SUCCEEDED", `${r.execution.error}: ${r.execution.cause}`);
  });

  it("announces a completed run with its headline, report and summary; the output is the event detail", () => {
    const detail = completedEvent(first);
    assert.deepEqual(detail, first.execution.output, "the execution output is what was announced");
    assert.equal(detail.schedule, "nightly");
    assert.equal(detail.headline[0]?.total, 57.6);
    assert.match(detail.report.markdown, /^s3:\/\/mmsafe-local\/reports\/nightly-1\/report\.md$/);
    assert.deepEqual(detail.regression, {
      schedule: "nightly",
      previousRunId: null,
      detected: false,
      findings: [],
    });
    assert.match(detail.summary, /^mmsafe run nightly-1 \(schedule nightly\) SUCCEEDED\n/);
    assert.match(detail.summary, /prod \/ baseline: Total 57\.6 .*Balanced 60\.2/);
  });

  it("flags a drop beyond the confidence interval against the schedule's previous run", () => {
    const detail = completedEvent(second);
    assert.equal(detail.regression.previousRunId, "nightly-1");
    assert.equal(detail.regression.detected, true);
    assert.deepEqual(
      detail.regression.findings.map((f) => [f.metric, f.previous, f.current]),
      [
        ["total", 57.6, 33.3],
        ["balanced", 60.2, 50],
      ],
    );
    assert.match(detail.summary, /SUCCEEDED — REGRESSION/);
    assert.match(
      detail.summary,
      /total 57\.6 → 33\.3 \(−24\.3 points, more than the 95% CI half-width 0\.0\)/,
    );
  });

  it("never compares runs without a schedule", async () => {
    const adhoc = await run("adhoc-1", [model("always-yes")]);
    const detail = completedEvent(adhoc);
    assert.deepEqual(detail.regression, {
      schedule: null,
      previousRunId: null,
      detected: false,
      findings: [],
    });
  });

  it("records every announcement in events.jsonl under the local home", async () => {
    const lines = (await readFile(path.join(home, "events.jsonl"), "utf8")).trim().split("\n");
    const runIds = lines.map((l) => (JSON.parse(l) as { detail: { runId: string } }).detail.runId);
    assert.deepEqual(runIds.slice(0, 2), ["nightly-1", "nightly-2"]);
  });

  it("announces a failed run with its error and cause", async () => {
    const failed = await run("bad-input", [model("always-yes")], { shardSize: 0 });
    assert.equal(failed.execution.status, "FAILED");
    const event = failed.events.find((e) => e.detailType === RUN_EVENTS.failed);
    assert.ok(event, JSON.stringify(failed.events));
    const detail = event.detail as { runId: string; status: string; error: string; cause: string };
    assert.equal(detail.status, "FAILED");
    assert.equal(detail.error, "InvalidExecutionInput");
    assert.match(detail.cause, /shardSize/);
  });
});

describe("API keys from Secrets Manager", () => {
  it("are read once through the cache and never appear in logs, verdicts, reports or events", async () => {
    const key = "sk-mmsafe-secret-7a6b5c4d3e2f";
    const secrets = mockClient(SecretsManagerClient);
    secrets
      .on(GetSecretValueCommand)
      .resolves({ Name: "mmsafe/prod", SecretString: JSON.stringify({ apiKey: key }) });
    const stdout = teeStdout();
    let result: LocalRunResult;
    try {
      result = await run("secret-1", [model("always-no", { apiKeySecret: "mmsafe/prod" })], {
        shardSize: 4,
        limit: 12,
      });
    } finally {
      stdout.restore();
      secrets.restore();
    }
    assert.equal(
      result.execution.status,
      "SUCCEEDED",
      `${result.execution.error}: ${result.execution.cause}`,
    );
    assert.equal(result.output?.headline[0]?.answered, 12);
    const calls = secrets.commandCalls(GetSecretValueCommand);
    assert.equal(calls.length, 1, "3 shards, one secret read (cached)");
    assert.equal(calls[0]?.args[0].input.SecretId, "mmsafe/prod");

    const verdicts = await new DynamoVerdictStore(
      createDocumentClient(),
      LOCAL_RESOURCES.verdictsTable,
    ).listRun("secret-1");
    const places: [string, string][] = [
      ["logs", stdout.text()],
      ["verdicts", JSON.stringify(verdicts)],
      ["events", JSON.stringify(result.events)],
      ["execution output", JSON.stringify(result.execution.output)],
      ["report.json", await readFile(path.join(result.reportDir ?? "", "report.json"), "utf8")],
      ["report.md", await readFile(path.join(result.reportDir ?? "", "report.md"), "utf8")],
    ];
    assert.match(stdout.text(), /"message":"shard evaluated"/, "the handlers' logs were captured");
    for (const [where, text] of places) assert.ok(!text.includes(key), `the API key leaked into ${where}`);
  });
});
