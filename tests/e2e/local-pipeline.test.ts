/**
 * End to end: the real local pipeline — embedded S3/DynamoDB, the ASL file executed with the deployed
 * handler modules, the reference baselines behind the real `openai` SDK — on the generated sample.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { DeleteObjectCommand, GetObjectCommand, ListObjectsV2Command } from "@aws-sdk/client-s3";
import { createDocumentClient } from "../../src/adapters/aws-clients.ts";
import { DynamoRunStore } from "../../src/adapters/run-store.ts";
import { DynamoVerdictStore } from "../../src/adapters/verdict-store.ts";
import type { Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import { runShardKey } from "../../src/deployment/storage-layout.ts";
import { LOCAL_RESOURCES } from "../../src/local/embedded-aws.ts";
import { startReferenceModelServer } from "../../src/local/reference-model-server.ts";
import {
  closeLocalSession,
  type LocalRunResult,
  openLocalSession,
  type RunEvent,
  runLocal,
} from "../../src/local/runner.ts";
import { officialScore, readResponses } from "../fixtures/official-scorer.ts";
import { teeStdout } from "../fixtures/stdout.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
// Handlers read this once when loaded: INFO so the secrets test has real log lines to search.
process.env.POWERTOOLS_LOG_LEVEL = "INFO";

const RUNNABLE = 36; // the small sample: 40 records, 4 without an image
const BASELINES = 3;
const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-e2e-"));
const reportsDir = path.join(home, "reports");

after(async () => {
  await closeLocalSession();
  await rm(home, { recursive: true, force: true });
});

const verdictsOf = async (runId: string) =>
  new DynamoVerdictStore(createDocumentClient(), LOCAL_RESOURCES.verdictsTable).listRun(runId);
const readReport = async (result: LocalRunResult): Promise<Report> =>
  JSON.parse(await readFile(path.join(result.reportDir ?? "", "report.json"), "utf8")) as Report;

describe("local pipeline, reference baselines on the generated sample", () => {
  let first: LocalRunResult;
  let report: Report;

  before(async () => {
    first = await runLocal({ home, reportsDir, input: { runId: "e2e-baselines", shardSize: 7 } });
    assert.equal(first.execution.status, "SUCCEEDED", `${first.execution.error}: ${first.execution.cause}`);
    report = await readReport(first);
  });

  it("reports the exact numbers of the degenerate baselines", () => {
    const row = (id: string) => first.output?.headline.find((h) => h.modelId === id);
    assert.deepEqual(
      [
        row("always-no")?.typical,
        row("always-no")?.attack,
        row("always-no")?.oversafety,
        row("always-no")?.total,
      ],
      [100, 100, 0, 66.7],
    );
    assert.deepEqual(
      [
        row("always-yes")?.typical,
        row("always-yes")?.attack,
        row("always-yes")?.oversafety,
        row("always-yes")?.total,
      ],
      [0, 0, 100, 33.3],
    );
    // The balanced score does not reward either degenerate answerer.
    assert.equal(row("always-no")?.balanced, 50);
    assert.equal(row("always-yes")?.balanced, 50);
    for (const r of report.rows) assert.equal(r.kind, "baseline", `${r.modelId} is labelled a baseline`);
  });

  it("writes exactly one verdict per runnable item × model, and made exactly that many calls", async () => {
    const verdicts = await verdictsOf("e2e-baselines");
    assert.equal(verdicts.length, RUNNABLE * BASELINES);
    assert.equal(new Set(verdicts.map((v) => v.verdictKey)).size, verdicts.length);
    assert.equal(first.baselineCalls, RUNNABLE * BASELINES);
    for (const r of report.rows)
      assert.deepEqual(r.counts, {
        planned: RUNNABLE,
        answered: RUNNABLE,
        errored: 0,
        missing: 0,
        skipped: 4,
        cached: 0,
        retries: 0,
        reattempted: 0,
        truncated: 0,
        invalidUsage: 0,
        imageDownscaled: 0,
      });
  });

  it("reports the records without an image as skipped, with the reason", async () => {
    assert.deepEqual(
      report.run.dataset.skipped.map((s) => [s.id, s.reason]),
      [2301, 2333, 2369, 2370].map((id) => [id, "have no image"]),
    );
    assert.equal(report.run.dataset.records, 40);
    assert.equal(report.run.dataset.runnable, RUNNABLE);
    const markdown = await readFile(path.join(first.reportDir ?? "", "report.md"), "utf8");
    assert.match(markdown, /4 records have no image: ids 2301, 2333, 2369–2370/);
    assert.match(markdown, /generated sample, not the real benchmark/);
  });

  it("exports responses that the official scorer scores to the report's paper columns", async () => {
    for (const row of report.rows) {
      const file = path.join(first.reportDir ?? "", "responses", `${row.modelId}.${row.strategy}.jsonl`);
      const lines = await readResponses(file);
      assert.equal(lines.length, RUNNABLE);
      const official = officialScore(lines);
      assert.equal(official.typical, row.paper.typical.accuracy, `${row.modelId} typical`);
      assert.equal(official.attack, row.paper.attack.accuracy, `${row.modelId} attack`);
      assert.equal(official.oversafety, row.paper.oversafety.accuracy, `${row.modelId} over-safety`);
    }
  });

  it("carries each item's thumbnail, made once at upload, into the run and the HTML report", async () => {
    const session = await openLocalSession(home);
    const shard = await session.store.getText(runShardKey("e2e-baselines", 0));
    const items = shard
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { thumbnail?: string });
    assert.ok(items.length > 0);
    for (const item of items) {
      assert.match(item.thumbnail ?? "", /^data:image\/(webp|jpeg|png);base64,/);
      assert.ok((item.thumbnail ?? "").length <= 8192);
    }
    const html = await readFile(path.join(first.reportDir ?? "", "report.html"), "utf8");
    assert.ok(html.includes(items[0]?.thumbnail ?? "missing"), "the report shows the uploaded thumbnail");
  });

  it("marks the run SUCCEEDED with its headline in the runs table", async () => {
    const run = await new DynamoRunStore(createDocumentClient(), LOCAL_RESOURCES.runsTable).get(
      "e2e-baselines",
    );
    assert.equal(run?.status, "SUCCEEDED");
    assert.equal(run?.plannedVerdicts, RUNNABLE * BASELINES);
    assert.equal(run?.headline?.length, BASELINES);
  });

  it("re-running the same run id makes zero model calls and gives the same report", async () => {
    const again = await runLocal({ home, reportsDir, input: { runId: "e2e-baselines", shardSize: 7 } });
    assert.equal(again.execution.status, "SUCCEEDED");
    assert.equal(again.baselineCalls, 0);
    assert.deepEqual(again.output?.headline, first.output?.headline);
    assert.equal((await verdictsOf("e2e-baselines")).length, RUNNABLE * BASELINES);
  });
});

describe("local pipeline, failures", () => {
  it("a failed shard fails the run, keeps every verdict written, and a resume pays only for the rest", async () => {
    const runId = "e2e-failure";
    const session = await openLocalSession(home);
    const lastShard = Math.ceil(RUNNABLE / 4) - 1;
    const onEvent = (event: RunEvent) => {
      // Sabotage after planning: the last shard's object disappears before the map reaches it.
      if (event.type === "planned") {
        void session.s3.send(
          new DeleteObjectCommand({ Bucket: LOCAL_RESOURCES.bucket, Key: runShardKey(runId, lastShard) }),
        );
      }
    };
    const failed = await runLocal({
      home,
      reportsDir,
      // No response cache: the earlier run in this home answered the same questions, and this test counts
      // what a resume pays.
      input: { runId, shardSize: 4, mapConcurrency: 1, cache: false },
      onEvent,
    });
    assert.equal(failed.execution.status, "FAILED");
    assert.equal(failed.execution.error, "States.ExceedToleratedFailureThreshold");
    assert.match(failed.execution.cause ?? "", /shards\/00008\.jsonl does not exist/);

    const run = await new DynamoRunStore(createDocumentClient(), LOCAL_RESOURCES.runsTable).get(runId);
    assert.equal(run?.status, "FAILED");
    assert.equal(run?.error, "States.ExceedToleratedFailureThreshold");
    const kept = await verdictsOf(runId);
    const lastShardItems = RUNNABLE - 4 * lastShard;
    assert.equal(kept.length, (RUNNABLE - lastShardItems) * BASELINES);

    const resumed = await runLocal({
      home,
      reportsDir,
      input: { runId, shardSize: 4, mapConcurrency: 1, cache: false },
    });
    assert.equal(
      resumed.execution.status,
      "SUCCEEDED",
      `${resumed.execution.error}: ${resumed.execution.cause}`,
    );
    assert.equal(resumed.baselineCalls, lastShardItems * BASELINES);
    const all = await verdictsOf(runId);
    assert.equal(all.length, RUNNABLE * BASELINES);
    assert.equal(new Set(all.map((v) => v.verdictKey)).size, all.length);
  });

  it("invalid input fails in the first state, naming the field", async () => {
    const result = await runLocal({
      home,
      reportsDir,
      input: { runId: "e2e-invalid", shardSize: 0, colour: "blue" },
    });
    assert.equal(result.execution.status, "FAILED");
    assert.equal(result.execution.error, "InvalidExecutionInput");
    assert.match(result.execution.cause ?? "", /shardSize/);
    assert.match(result.execution.cause ?? "", /colour/);
    assert.equal(result.baselineCalls, 0);
  });
});

describe("local pipeline, secrets", () => {
  it("an API key never appears in state payloads, logs, verdicts, run records or reports", async () => {
    const secret = "sk-mmsafe-test-9f8e7d6c5b4a";
    process.env.MMSAFE_E2E_KEY = secret;
    const server = await startReferenceModelServer();
    // Capture everything the handlers log (Powertools writes JSON lines to stdout).
    const stdout = teeStdout();
    let result: LocalRunResult;
    try {
      result = await runLocal({
        home,
        reportsDir,
        models: [
          {
            id: "keyed",
            baseURL: server.baseURL,
            model: "always-no",
            apiKeyEnv: "MMSAFE_E2E_KEY",
            kind: "model",
            maxConcurrency: 4,
            maxTokens: 16,
            temperature: 0,
            timeoutMs: 60_000,
          },
        ],
        input: { runId: "e2e-secret", limit: 5 },
      });
    } finally {
      stdout.restore();
      await server.close();
    }
    assert.equal(
      result.execution.status,
      "SUCCEEDED",
      `${result.execution.error}: ${result.execution.cause}`,
    );
    assert.equal(result.output?.headline[0]?.answered, 5);
    assert.match(stdout.text(), /"message":"shard evaluated"/, "the handlers' logs were captured");

    const places: [string, string][] = [
      ["execution output", JSON.stringify(result.execution.output)],
      ["logs", stdout.text()],
      ["verdicts", JSON.stringify(await verdictsOf("e2e-secret"))],
      [
        "run record",
        JSON.stringify(
          await new DynamoRunStore(createDocumentClient(), LOCAL_RESOURCES.runsTable).get("e2e-secret"),
        ),
      ],
    ];
    // Every object the run wrote: run shards, manifest, map results, reports.
    const session = await openLocalSession(home);
    for (const prefix of ["runs/e2e-secret/", "reports/e2e-secret/", "config/"]) {
      const listed = await session.s3.send(
        new ListObjectsV2Command({ Bucket: LOCAL_RESOURCES.bucket, Prefix: prefix }),
      );
      assert.ok((listed.Contents ?? []).length > 0, `objects under ${prefix}`);
      for (const object of listed.Contents ?? []) {
        const body = await session.s3.send(
          new GetObjectCommand({ Bucket: LOCAL_RESOURCES.bucket, Key: object.Key }),
        );
        places.push([`s3://${object.Key}`, (await body.Body?.transformToString()) ?? ""]);
      }
    }
    assert.ok(
      stdout.text().includes("MMSAFE_E2E_KEY") || places.some(([, text]) => text.includes("MMSAFE_E2E_KEY")),
      "the key's variable name is recorded",
    );
    for (const [where, text] of places) assert.ok(!text.includes(secret), `the API key leaked into ${where}`);
  });
});
