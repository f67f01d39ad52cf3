/**
 * The AWS commands (`deploy`, `start`, `runs`, `report`): CloudFormation and Step Functions answer with
 * recorded responses (aws-sdk-client-mock); DynamoDB and S3 are the embedded local servers, holding real runs
 * made by the local pipeline, so verdict counting, run listing and report download run against real endpoints.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { after, before, beforeEach, describe, it } from "node:test";
import {
  CloudFormationClient,
  CloudFormationServiceException,
  DescribeStacksCommand,
} from "@aws-sdk/client-cloudformation";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { S3Client } from "@aws-sdk/client-s3";
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  SFNClient,
  StartExecutionCommand,
} from "@aws-sdk/client-sfn";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { Command } from "commander";
import { createDocumentClient } from "../../src/adapters/aws-clients.ts";
import { DynamoRunStore, type RunRecord } from "../../src/adapters/run-store.ts";
import { readStackOutputs, StackOutputsError } from "../../src/adapters/stack-outputs.ts";
import { DynamoVerdictStore } from "../../src/adapters/verdict-store.ts";
import {
  cdkDeployCommand,
  countVerdicts,
  deployStack,
  downloadReport,
  executionNameFor,
  findSecretLike,
  formatDuration,
  listRuns,
  POLL_INTERVAL_MS,
  type RunJson,
  type RunSummary,
  registerAwsCommands,
  runsTable,
  type Spawner,
  startRun,
} from "../../src/cli/aws-commands.ts";
import { UsageError } from "../../src/cli/main.ts";
import { formatPercent } from "../../src/core/text.ts";
import { LOCAL_RESOURCES } from "../../src/local/embedded-aws.ts";
import {
  closeLocalSession,
  type LocalRunResult,
  openLocalSession,
  runLocal,
} from "../../src/local/runner.ts";
import {
  DEPLOYED_OUTPUTS,
  describeExecution,
  describeStacks,
  executionArn,
  REGION,
  STATE_MACHINE_ARN,
  startExecution,
} from "../fixtures/aws-responses.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const STACK = "MmsafeTest";
/** The stack's outputs, naming the embedded servers' bucket and tables. */
const LOCAL_OUTPUTS = {
  ...DEPLOYED_OUTPUTS,
  BucketName: LOCAL_RESOURCES.bucket,
  RunsTableName: LOCAL_RESOURCES.runsTable,
  VerdictsTableName: LOCAL_RESOURCES.verdictsTable,
};
const BASELINES = 3;
const LIMIT = 8;

const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-aws-cmd-"));
const reportsDir = path.join(home, "reports");
let sessionOpen = false;
after(async () => {
  if (sessionOpen) await closeLocalSession();
  await rm(home, { recursive: true, force: true });
});

/** A stream that keeps what is written (not a terminal: progress comes as plain lines). */
function capture() {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => text };
}

const cfn = new CloudFormationClient({ region: REGION });
const sfn = new SFNClient({ region: REGION });
const cfnMock = mockClient(cfn);
const sfnMock = mockClient(sfn);
beforeEach(() => {
  cfnMock.reset();
  sfnMock.reset();
});

let dynamo: DynamoDBClient;
let s3: S3Client;
let runA: LocalRunResult;
let runB: LocalRunResult;
let recordA: RunRecord;
const putRun = (record: Record<string, unknown>) =>
  createDocumentClient().send(new PutCommand({ TableName: LOCAL_RESOURCES.runsTable, Item: record }));

before(async () => {
  // Two real runs of the local pipeline (reference baselines on the generated sample).
  runA = await runLocal({ home, reportsDir, input: { runId: "aws-a", limit: LIMIT } });
  sessionOpen = true;
  assert.equal(runA.execution.status, "SUCCEEDED", runA.execution.cause ?? undefined);
  runB = await runLocal({ home, reportsDir, input: { runId: "aws-b", limit: 2 } });
  assert.equal(runB.execution.status, "SUCCEEDED", runB.execution.cause ?? undefined);
  const session = await openLocalSession(home);
  dynamo = session.dynamodb;
  s3 = session.s3;
  const found = await new DynamoRunStore(createDocumentClient(), LOCAL_RESOURCES.runsTable).get("aws-a");
  assert.ok(found);
  recordA = found;
  // A run that failed, recorded as the workflow's MarkRunFailed leaves it, and one still running.
  await putRun({
    ...recordA,
    runId: "aws-broken",
    status: "FAILED",
    startedAt: "2000-01-01T00:00:00.000Z",
    error: "States.TaskFailed",
    cause: '{"Error":"States.TaskFailed","Cause":"shard 3 timed out"}',
    headline: undefined,
    report: undefined,
    finishedAt: undefined,
  });
  await putRun({
    ...recordA,
    runId: "aws-running",
    status: "RUNNING",
    startedAt: "2000-01-02T00:00:00.000Z",
    headline: undefined,
    report: undefined,
    finishedAt: undefined,
  });
});

describe("readStackOutputs", () => {
  it("reads the stack's outputs with DescribeStacks", async () => {
    cfnMock
      .on(DescribeStacksCommand, { StackName: "Mmsafe" })
      .resolves(describeStacks("Mmsafe", DEPLOYED_OUTPUTS));
    assert.deepEqual(await readStackOutputs(cfn, "Mmsafe"), {
      stateMachineArn: STATE_MACHINE_ARN,
      bucketName: DEPLOYED_OUTPUTS.BucketName,
      runsTableName: DEPLOYED_OUTPUTS.RunsTableName,
      verdictsTableName: DEPLOYED_OUTPUTS.VerdictsTableName,
    });
  });

  it("names a stack that does not exist", async () => {
    cfnMock.on(DescribeStacksCommand).rejects(
      new CloudFormationServiceException({
        name: "ValidationError",
        $fault: "client",
        $metadata: { httpStatusCode: 400 },
        message: "Stack with id Nope does not exist",
      }),
    );
    await assert.rejects(readStackOutputs(cfn, "Nope"), (error: unknown) => {
      assert.ok(error instanceof StackOutputsError);
      assert.match(error.message, /stack "Nope" does not exist in this account and region/);
      return true;
    });
  });

  it("names the outputs a stack lacks", async () => {
    const { VerdictsTableName: _v, RunsTableName: _r, ...partial } = DEPLOYED_OUTPUTS;
    cfnMock.on(DescribeStacksCommand).resolves(describeStacks("Other", partial));
    await assert.rejects(
      readStackOutputs(cfn, "Other"),
      /stack "Other" has no output RunsTableName, VerdictsTableName/,
    );
  });

  it("refuses a stack whose creation rolled back", async () => {
    cfnMock.on(DescribeStacksCommand).resolves(describeStacks("Mmsafe", {}, "ROLLBACK_COMPLETE"));
    await assert.rejects(readStackOutputs(cfn, "Mmsafe"), /is ROLLBACK_COMPLETE/);
  });

  it("leaves other errors (credentials, network) as they are", async () => {
    cfnMock
      .on(DescribeStacksCommand)
      .rejects(Object.assign(new Error("Could not load credentials"), { name: "CredentialsProviderError" }));
    await assert.rejects(readStackOutputs(cfn, "Mmsafe"), { name: "CredentialsProviderError" });
  });
});

describe("mmsafe start", () => {
  const deps = (extra: { sleep?: (ms: number) => Promise<void>; now?: () => number } = {}) => {
    const out = capture();
    const err = capture();
    return { out, err, deps: { cfn, sfn, dynamo, out: out.stream, err: err.stream, ...extra } };
  };
  const stackResolves = () =>
    cfnMock.on(DescribeStacksCommand).resolves(describeStacks(STACK, LOCAL_OUTPUTS));

  it("starts the execution, counts verdicts as they land, then prints the headline and report URIs (exit 0)", async () => {
    stackResolves();
    const runId = "aws-live";
    const inputFile = path.join(home, "smoke.json");
    await writeFile(inputFile, JSON.stringify({ limit: LIMIT }));
    const sentInput = JSON.stringify({ limit: LIMIT, runId });
    const output = JSON.stringify(runA.output).replaceAll("reports/aws-a/", `reports/${runId}/`);
    sfnMock.on(StartExecutionCommand).resolves(startExecution(runId));
    sfnMock
      .on(DescribeExecutionCommand)
      .resolvesOnce(describeExecution(runId, sentInput, "RUNNING"))
      .resolvesOnce(describeExecution(runId, sentInput, "RUNNING"))
      .resolvesOnce(describeExecution(runId, sentInput, "RUNNING"))
      .resolves(describeExecution(runId, sentInput, "SUCCEEDED", { output }));

    // While the execution runs: Plan records the run, then the shards write their verdicts.
    const verdicts = (
      await new DynamoVerdictStore(createDocumentClient(), LOCAL_RESOURCES.verdictsTable).listRun("aws-a")
    ).map((v) => ({ ...v, runId }));
    const half = verdicts.length / 2;
    const writeVerdicts = (from: number, to: number) =>
      Promise.all(
        verdicts
          .slice(from, to)
          .map((v) =>
            createDocumentClient().send(
              new PutCommand({ TableName: LOCAL_RESOURCES.verdictsTable, Item: v }),
            ),
          ),
      );
    let clock = Date.UTC(2026, 10, 28, 13, 47, 0);
    const sleeps: number[] = [];
    const steps = [
      () =>
        putRun({
          ...recordA,
          runId,
          executionId: executionArn(runId),
          status: "RUNNING",
          headline: undefined,
          report: undefined,
          finishedAt: undefined,
        }),
      () => writeVerdicts(0, half),
      () => writeVerdicts(half, verdicts.length),
    ];
    const {
      out,
      err,
      deps: d,
    } = deps({
      now: () => clock,
      sleep: async (ms) => {
        sleeps.push(ms);
        clock += 5000; // a slow poll: every poll prints a progress line
        await steps[sleeps.length - 1]?.();
      },
    });

    const code = await startRun({ stack: STACK, input: inputFile, runId }, d);
    assert.equal(code, 0, err.text());

    const [start] = sfnMock.commandCalls(StartExecutionCommand);
    assert.deepEqual(start?.args[0].input, {
      stateMachineArn: STATE_MACHINE_ARN,
      name: runId,
      input: sentInput,
    });
    assert.deepEqual(sleeps, [POLL_INTERVAL_MS, POLL_INTERVAL_MS, POLL_INTERVAL_MS]);
    const total = LIMIT * BASELINES;
    assert.equal(verdicts.length, total);
    assert.match(err.text(), new RegExp(`started run ${runId} on ${STACK} \\(execution ${runId}\\)`));
    assert.match(
      err.text(),
      /eu-west-1\.console\.aws\.amazon\.com\/states\/home\?region=eu-west-1#\/v2\/executions\/details\/arn:aws:states:/,
    );
    const progress = err
      .text()
      .split("\n")
      .filter((l) => l.startsWith("progress:") || l.includes("planned"));
    assert.deepEqual(
      progress.map((l) => l.replace(/ · elapsed [\d.]+ s · [\d.]+\/s · ETA .*$/, "")),
      [
        `run ${runId}: ${total} verdicts planned`,
        `progress: 0/${total} verdicts (0.0%)`,
        `progress: ${half}/${total} verdicts (50.0%)`,
        `progress: ${total}/${total} verdicts (100.0%)`,
      ],
    );
    assert.match(out.text(), new RegExp(`Run ${runId} SUCCEEDED`));
    assert.match(out.text(), /model\s+strategy\s+Typical\s+Attack\s+Over-Safe\s+Total\s+Balanced/);
    assert.match(out.text(), /always-no \(baseline\)\s+baseline/);
    assert.match(
      out.text(),
      new RegExp(
        `report: s3://mmsafe-local/reports/${runId}/report\\.md\\n\\s+s3://mmsafe-local/reports/${runId}/report\\.json`,
      ),
    );
    assert.match(
      out.text(),
      new RegExp(`report\\.json\\n\\s+s3://mmsafe-local/reports/${runId}/report\\.html\\n`),
    );
    assert.match(
      out.text(),
      new RegExp(`responses: s3://mmsafe-local/reports/${runId}/responses/always-yes\\.baseline\\.jsonl`),
    );
    assert.match(
      out.text(),
      new RegExp(
        `download it: npm run mmsafe -- report ${runId} --stack ${STACK} {2}\\(then open it: npm run mmsafe -- open ${runId}\\)`,
      ),
    );
  });

  it("prints the error, the cause (terminal-escaped) and how to resume when the execution fails (exit 1)", async () => {
    stackResolves();
    const runId = "aws-failed";
    const sentInput = JSON.stringify({ runId });
    sfnMock.on(StartExecutionCommand).resolves(startExecution(runId));
    sfnMock
      .on(DescribeExecutionCommand)
      .resolvesOnce(describeExecution(runId, sentInput, "RUNNING"))
      .resolves(
        describeExecution(runId, sentInput, "FAILED", {
          error: "States.TaskFailed",
          cause: '{"errorMessage":"model \u001b[31mgpt-4o\u001b[0m rejected the request"}',
        }),
      );
    const { out, err, deps: d } = deps({ sleep: async () => undefined });
    const code = await startRun({ stack: STACK, runId }, d);
    assert.equal(code, 1);
    assert.equal(sfnMock.commandCalls(StartExecutionCommand)[0]?.args[0].input.input, sentInput);
    assert.match(err.text(), /run aws-failed FAILED: States\.TaskFailed\n/);
    assert.match(err.text(), /model \?\[31mgpt-4o\?\[0m rejected the request/);
    assert.ok(!err.text().includes("\u001b"), "no escape sequence reaches the terminal");
    assert.match(
      err.text(),
      /resume with the same run id[^\n]*\n {2}\$ npm run mmsafe -- start --stack MmsafeTest --run-id aws-failed\n/,
    );
    assert.doesNotMatch(err.text(), /progress:/, "Plan never recorded the run: no total, no progress");
    assert.equal(out.text(), "");
  });

  it("exits 2 when the workflow rejects the input (InvalidExecutionInput)", async () => {
    stackResolves();
    sfnMock.on(StartExecutionCommand).resolves(startExecution("aws-bad"));
    sfnMock.on(DescribeExecutionCommand).resolves(
      describeExecution("aws-bad", "{}", "FAILED", {
        error: "InvalidExecutionInput",
        cause: "dataset nope: s3 object datasets/nope/dataset.json does not exist",
      }),
    );
    const { err, deps: d } = deps({ sleep: async () => undefined });
    assert.equal(await startRun({ stack: STACK, runId: "aws-bad" }, d), 2);
    assert.match(err.text(), /InvalidExecutionInput\ndataset nope/);
  });

  it("resumes a run whose execution name is taken under a new name, keeping the run id", async () => {
    stackResolves();
    sfnMock
      .on(StartExecutionCommand)
      .rejectsOnce(
        new ExecutionAlreadyExists({
          $metadata: { httpStatusCode: 400 },
          message: `Execution Already Exists: '${executionArn("aws-a")}'`,
        }),
      )
      .resolves(startExecution("aws-a-20261128T134700Z"));
    sfnMock.on(DescribeExecutionCommand).resolves(
      describeExecution("aws-a-20261128T134700Z", "{}", "SUCCEEDED", {
        output: JSON.stringify(runA.output),
      }),
    );
    const { out, deps: d } = deps({ now: () => Date.UTC(2026, 10, 28, 13, 47, 0) });
    assert.equal(await startRun({ stack: STACK, runId: "aws-a" }, d), 0);
    const names = sfnMock.commandCalls(StartExecutionCommand).map((c) => c.args[0].input.name);
    assert.deepEqual(names, ["aws-a", "aws-a-20261128T134700Z"]);
    assert.equal(
      sfnMock.commandCalls(StartExecutionCommand)[1]?.args[0].input.input,
      JSON.stringify({ runId: "aws-a" }),
    );
    assert.match(out.text(), /Run aws-a SUCCEEDED/);
  });

  it("exits 3 for a run that finished with error verdicts, with a line per affected model and the resume command", async () => {
    stackResolves();
    sfnMock.on(StartExecutionCommand).resolves(startExecution("aws-e"));
    const completion = {
      outcome: "with_errors",
      errored: 2,
      missing: 0,
      affected: [
        {
          modelId: "m1",
          strategy: "baseline",
          planned: 10,
          answered: 8,
          errored: 2,
          missing: 0,
          kinds: { connection: 2 },
          sample: "Connection error.",
        },
      ],
    };
    sfnMock.on(DescribeExecutionCommand).resolves(
      describeExecution("aws-e", "{}", "SUCCEEDED", {
        output: JSON.stringify({ ...runA.output, completion }),
      }),
    );
    const { out, deps: d } = deps();
    assert.equal(await startRun({ stack: STACK, runId: "aws-e" }, d), 3);
    assert.match(
      out.text(),
      /m1 \/ baseline: 2 of 10 without an answer \(connection 2\): Connection error\./,
    );
    assert.match(out.text(), new RegExp(`\\$ npm run mmsafe -- start --stack ${STACK} --run-id aws-e`));
  });

  it("generates a run id when none is given, and maps ':' out of the execution name", async () => {
    assert.equal(executionNameFor("nightly:01"), "nightly-01");
    assert.equal(executionNameFor("x".repeat(64), new Date(0)).length, 80);
    stackResolves();
    sfnMock.on(StartExecutionCommand).resolves(startExecution("run-x"));
    sfnMock.on(DescribeExecutionCommand).resolves(describeExecution("run-x", "{}", "ABORTED"));
    const { err, deps: d } = deps();
    assert.equal(await startRun({ stack: STACK }, d), 1);
    const sent = sfnMock.commandCalls(StartExecutionCommand)[0]?.args[0].input;
    assert.match(sent?.name ?? "", /^run-\d{8}-\d{6}-[0-9a-f]{4}$/);
    assert.equal(sent?.input, JSON.stringify({ runId: sent?.name }));
    assert.match(err.text(), /ABORTED\n/);
  });

  describe("refuses bad input before starting anything (exit 2)", () => {
    const rejectsInput = async (content: string, pattern: RegExp, runId?: string) => {
      const file = path.join(home, "input.json");
      await writeFile(file, content);
      const { deps: d } = deps();
      await assert.rejects(startRun({ stack: STACK, input: file, runId }, d), (error: unknown) => {
        assert.ok(error instanceof UsageError, String(error));
        assert.match(error.message, pattern);
        return true;
      });
      assert.equal(sfnMock.calls().length, 0);
      assert.equal(cfnMock.calls().length, 0);
    };

    it("an input file that is not JSON", () => rejectsInput("{limit: 5}", /input\.json: not JSON/));
    it("JSON that is not an object", () => rejectsInput("[1, 2]", /must be a JSON object/));
    it("an input the workflow would reject", () =>
      rejectsInput(
        '{"limit": 0, "colour": "blue"}',
        /execution input|limit[\s\S]*colour|colour[\s\S]*limit/,
      ));
    it("a run id that differs from the input's", () =>
      rejectsInput('{"runId": "a"}', /--run-id b differs from the runId a/, "b"));

    it("anything that looks like an API key, without echoing it", async () => {
      const key = "sk-proj-AbCdEfGh1234567890XyZ";
      await rejectsInput(
        JSON.stringify({
          models: [{ id: "m", baseURL: "https://api.openai.com/v1", model: `gpt-4o ${key}` }],
        }),
        /models\.0\.model looks like an API key/,
      );
      await rejectsInput(
        JSON.stringify({ models: [{ id: "m", apiKey: "x" }] }),
        /models\.0\.apiKey looks like/,
      );
      const file = path.join(home, "input.json");
      for (const content of [JSON.stringify({ note: key }), `{note: "${key}"}`]) {
        // Valid JSON or not (a parser's message may quote the text), the key is never printed.
        await writeFile(file, content);
        const error = await startRun({ stack: STACK, input: file }, deps().deps).catch((e: unknown) => e);
        assert.ok(error instanceof UsageError);
        assert.match(error.message, /looks like an API key/);
        assert.ok(!error.message.includes("AbCdEf"), error.message);
      }
    });

    it("secret detection: keys, AWS key ids; not model ids or secret names", () => {
      assert.equal(findSecretLike({ a: ["x", "sk-ant-api03-abcdefghijklmnop"] }), "a.1");
      assert.equal(findSecretLike({ b: "AKIAIOSFODNN7EXAMPLE" }), "b");
      assert.equal(
        findSecretLike({
          models: [{ id: "gpt-4o-task-1", apiKeySecret: "mmsafe/openai", apiKeyEnv: "OPENAI_API_KEY" }],
        }),
        null,
      );
      assert.equal(findSecretLike({ runId: "risk-assessment-01" }), null);
    });
  });

  it("counts a run's verdicts with Select COUNT queries", async () => {
    assert.deepEqual(await countVerdicts(dynamo, LOCAL_RESOURCES.verdictsTable, "aws-a"), {
      done: LIMIT * BASELINES,
      errors: 0,
    });
    assert.deepEqual(await countVerdicts(dynamo, LOCAL_RESOURCES.verdictsTable, "no-such-run"), {
      done: 0,
      errors: 0,
    });
  });
});

describe("mmsafe runs", () => {
  it("shows a plug-in run's rates by key in a column of their own, and your own dataset's provenance", () => {
    const base = {
      status: "SUCCEEDED",
      startedAt: "2026-12-01T10:00:00.000Z",
      finishedAt: "2026-12-01T10:00:09.000Z",
      plannedVerdicts: 171,
      error: undefined,
      owner: undefined,
    };
    const own: RunSummary = {
      ...base,
      runId: "own-1",
      dataset: "custom",
      provenance: { kind: "own", file: "data.jsonl", sha256: "a".repeat(64), images: 40 },
      headline: [
        {
          modelId: "refuse:30",
          strategy: "baseline",
          total: null,
          balanced: null,
          rates: { harmful: 39.3, "benign\u001b[31m": null },
        },
      ],
    };
    const mmsa: RunSummary = {
      ...base,
      runId: "mmsa-1",
      dataset: "mmsafeaware-sample",
      provenance: { kind: "sample", size: "small", seed: 0 },
      headline: [{ modelId: "random", strategy: "baseline", total: 57.6, balanced: 60.2 }],
    };
    const [header, , ownRow, mmsaRow] = runsTable([own, mmsa]).split("\n");
    assert.match(header ?? "", /\sTotal\s+Balanced\s+rates$/);
    assert.match(
      ownRow ?? "",
      /custom \(your own\)\s+refuse:30\/baseline\s+–\s+–\s+harmful 39\.3, benign\S* –$/,
    );
    assert.ok(!(ownRow ?? "").includes("\u001b"), "keys from your data are made terminal-safe");
    assert.match(mmsaRow ?? "", /random\/baseline\s+57\.6\s+60\.2$/);
    // Without a plug-in run the table is as it was: no rates column.
    assert.match(runsTable([mmsa]).split("\n")[0] ?? "", /Balanced$/);
  });

  it("lists runs newest first with status, duration, verdicts, the dataset and its provenance, and each row's Total and Balanced", async () => {
    const out = capture();
    assert.equal(
      await listRuns({ runsTable: LOCAL_RESOURCES.runsTable, limit: 50 }, { dynamo, out: out.stream }),
      0,
    );
    const lines = out.text().split("\n");
    assert.match(
      lines[0] ?? "",
      /^run\s+status\s+started \(UTC\)\s+duration\s+verdicts\s+dataset\s+model\/strategy\s+Total\s+Balanced$/,
    );
    const at = (runId: string) => lines.findIndex((l) => l.startsWith(`${runId} `));
    assert.ok(at("aws-b") > 0 && at("aws-b") < at("aws-a"), "aws-b started after aws-a");
    assert.ok(at("aws-a") < at("aws-running") && at("aws-running") < at("aws-broken"), out.text());

    // aws-a: one line per model × strategy of its headline; the run's cells on the first only.
    const rows = lines.slice(at("aws-a"), at("aws-a") + BASELINES);
    const headline = runA.output?.headline ?? [];
    assert.equal(headline.length, BASELINES);
    assert.match(
      rows[0] ?? "",
      new RegExp(
        `^aws-a\\s+SUCCEEDED\\s+${recordA.startedAt.slice(0, 10)} [\\d:]{8}\\s+[\\d.]+ (ms|s)\\s+${LIMIT * BASELINES}\\s+${recordA.dataset} \\(generated sample\\)\\s`,
      ),
    );
    for (const [i, h] of headline.entries()) {
      const row = rows[i] ?? "";
      assert.match(
        row,
        new RegExp(
          `${h.modelId}/${h.strategy}\\s+${formatPercent(h.total)}\\s+${formatPercent(h.balanced)}$`,
        ),
        row,
      );
      if (i > 0) assert.match(row, /^\s+always|^\s+random/);
    }
    assert.match(
      lines[at("aws-broken")] ?? "",
      /FAILED\s+2000-01-01 00:00:00\s+–\s+\d+\s+\S+ \(generated sample\)\s+error: States\.TaskFailed/,
    );
    assert.match(lines[at("aws-running")] ?? "", /RUNNING\s+2000-01-02 00:00:00\s+running/);
  });

  it("locally, a RUNNING run is shown INTERRUPTED unless the process serving the home works on it", async () => {
    const owner = { pid: 4242, host: os.hostname() };
    const running = {
      ...recordA,
      status: "RUNNING",
      headline: undefined,
      report: undefined,
      finishedAt: undefined,
    };
    await putRun({ ...running, runId: "aws-owned", owner, startedAt: "2000-01-03T00:00:00.000Z" });
    await putRun({
      ...running,
      runId: "aws-ownerless",
      owner: undefined,
      startedAt: "2000-01-04T00:00:00.000Z",
    });
    const listed = async (localHolder: { pid: number; host: string } | null) => {
      const out = capture();
      await listRuns(
        { runsTable: LOCAL_RESOURCES.runsTable, limit: 50, localHolder },
        { dynamo, out: out.stream },
      );
      const lines = out.text().split("\n");
      return (runId: string) => lines.find((l) => l.startsWith(`${runId} `)) ?? "";
    };
    // This process holds the home: nobody else can be working on a run, whatever its record says.
    const alone = await listed(null);
    assert.match(
      alone("aws-owned"),
      /INTERRUPTED\s+2000-01-03 00:00:00\s+–\s+\d+\s+.+\)\s+error: its process \(pid 4242\) is gone/,
    );
    assert.match(
      alone("aws-ownerless"),
      /INTERRUPTED\s+2000-01-04 00:00:00\s+–\s+\d+\s+.+\)\s+error: no process works on it/,
    );
    assert.match(alone("aws-broken"), /FAILED/, "only RUNNING runs are checked");
    // A live run's process serves the home: its run is RUNNING, any other is not.
    const live = await listed(owner);
    assert.match(live("aws-owned"), /RUNNING\s+2000-01-03 00:00:00\s+running/);
    assert.match(live("aws-running"), /INTERRUPTED/);
    assert.match((await listed({ pid: 4242, host: "elsewhere" }))("aws-owned"), /INTERRUPTED/);
  });

  it("marks a RUNNING run INTERRUPTED, never one that ended; a resume re-opens it as RUNNING", async () => {
    const runs = new DynamoRunStore(createDocumentClient(), LOCAL_RESOURCES.runsTable);
    await putRun({ ...recordA, runId: "aws-stopped", status: "RUNNING" });
    assert.equal(await runs.recordOwner("aws-stopped", { pid: 1, host: "h" }), true);
    assert.equal(await runs.markInterrupted("aws-stopped", "2001-01-01T00:00:00.000Z", "SIGINT"), true);
    const stopped = await runs.get("aws-stopped");
    assert.deepEqual(
      [stopped?.status, stopped?.error, stopped?.cause, stopped?.owner],
      ["INTERRUPTED", "Interrupted", "SIGINT", { pid: 1, host: "h" }],
    );
    assert.equal(await runs.markInterrupted("aws-stopped", "2001-01-01T00:00:00.000Z", "SIGINT"), false);
    assert.equal(await runs.markInterrupted("aws-a", "2001-01-01T00:00:00.000Z", "SIGINT"), false);
    assert.equal((await runs.get("aws-a"))?.status, "SUCCEEDED");
    assert.equal(await runs.markInterrupted("no-such-run", "2001-01-01T00:00:00.000Z", "SIGINT"), false);
    assert.equal(
      await runs.recordOwner("aws-a", { pid: 1, host: "h" }),
      false,
      "only a RUNNING run gets an owner",
    );
    if (!stopped) return;
    const resumed = await runs.startOrResume({
      ...stopped,
      status: "RUNNING",
      owner: undefined,
      error: undefined,
      cause: undefined,
    });
    assert.equal(resumed.attempts, stopped.attempts + 1);
    const again = await runs.get("aws-stopped");
    assert.deepEqual([again?.status, again?.error, again?.owner], ["RUNNING", undefined, undefined]);
  });

  it("labels each dataset by provenance: official, modified copy, generated sample, ? when not recorded", async () => {
    const official = { kind: "official", tree: "472df95", files: 1458 };
    const modified = {
      kind: "modified",
      tree: "472df95",
      files: 1458,
      changed: 1,
      missing: 0,
      added: 0,
      examples: [],
    };
    await putRun({ ...recordA, runId: "aws-official", dataset: "mmsafeaware", datasetProvenance: official });
    await putRun({ ...recordA, runId: "aws-modified", dataset: "mine", datasetProvenance: modified });
    await putRun({ ...recordA, runId: "aws-old", dataset: "mmsafeaware", datasetProvenance: undefined });
    const out = capture();
    await listRuns({ runsTable: LOCAL_RESOURCES.runsTable, limit: 50 }, { dynamo, out: out.stream });
    const line = (runId: string) =>
      out
        .text()
        .split("\n")
        .find((l) => l.startsWith(`${runId} `)) ?? "";
    assert.match(line("aws-official"), /\smmsafeaware \(official\)\s/);
    assert.match(line("aws-modified"), /\smine \(modified copy\)\s/);
    assert.match(line("aws-old"), /\smmsafeaware \(\?\)\s/);

    const json = capture();
    assert.equal(
      await listRuns(
        { runsTable: LOCAL_RESOURCES.runsTable, limit: 50, json: true },
        { dynamo, out: json.stream },
      ),
      0,
    );
    const document = JSON.parse(json.text()) as { runsTable: string; total: number; runs: RunJson[] };
    assert.equal(document.runsTable, LOCAL_RESOURCES.runsTable);
    const byId = new Map(document.runs.map((r) => [r.runId, r]));
    assert.deepEqual(byId.get("aws-official")?.dataset, {
      name: "mmsafeaware",
      provenance: official,
      label: "official",
    });
    assert.deepEqual(byId.get("aws-old")?.dataset, { name: "mmsafeaware", provenance: null, label: "?" });
    const a = byId.get("aws-a");
    assert.equal(a?.status, "SUCCEEDED");
    assert.equal(a?.dataset.label, "generated sample");
    assert.deepEqual(
      a?.headline.map((h) => [h.modelId, h.total]),
      (runA.output?.headline ?? []).map((h) => [h.modelId, h.total]),
    );
    assert.ok((a?.durationMs ?? -1) >= 0);
    assert.equal(document.total, document.runs.length);
    const one = capture();
    await listRuns(
      { runsTable: LOCAL_RESOURCES.runsTable, limit: 1, json: true },
      { dynamo, out: one.stream },
    );
    const limited = JSON.parse(one.text()) as { total: number; runs: RunJson[] };
    assert.equal(limited.runs.length, 1);
    assert.equal(limited.total, document.total);
  });

  it("shows at most --limit runs and says how many are left out", async () => {
    const out = capture();
    await listRuns({ runsTable: LOCAL_RESOURCES.runsTable, limit: 1 }, { dynamo, out: out.stream });
    assert.doesNotMatch(out.text(), /^aws-a |^aws-broken /m);
    assert.match(out.text(), /older runs not shown; --limit \d+ shows all/);
  });

  it("formats durations", () => {
    assert.deepEqual([850, 12_340, 245_000, 3_720_000].map(formatDuration), [
      "850 ms",
      "12.3 s",
      "4 m 05 s",
      "1 h 02 m",
    ]);
  });
});

describe("mmsafe report", () => {
  const download = (runId: string, outDir: string) => {
    const out = capture();
    const err = capture();
    const result = downloadReport(
      {
        runId,
        outDir,
        bucket: LOCAL_RESOURCES.bucket,
        runsTable: LOCAL_RESOURCES.runsTable,
        resumeHint: `npm run mmsafe -- run --run-id ${runId}`,
      },
      { s3, dynamo, out: out.stream, err: err.stream },
    );
    return { result, out, err };
  };

  it("downloads report.md, report.json, report.html and the responses into <out>/<runId>/ and prints the paths", async () => {
    const outDir = path.join(home, "downloaded");
    const { result, out } = download("aws-a", outDir);
    assert.equal(await result, 0);
    const dir = path.join(outDir, "aws-a");
    assert.deepEqual((await readdir(dir)).sort(), ["report.html", "report.json", "report.md", "responses"]);
    const responses = (await readdir(path.join(dir, "responses"))).sort();
    assert.deepEqual(responses, [
      "always-no.baseline.jsonl",
      "always-yes.baseline.jsonl",
      "random.baseline.jsonl",
    ]);
    for (const file of [
      "report.json",
      "report.md",
      "report.html",
      ...responses.map((r) => `responses/${r}`),
    ]) {
      // The same bytes as the copy the local run made.
      assert.equal(
        await readFile(path.join(dir, file), "utf8"),
        await readFile(path.join(runA.reportDir ?? "", file), "utf8"),
        file,
      );
      assert.ok(out.text().includes(`  ${path.join(dir, file)}\n`), `prints ${file}`);
    }
    assert.match(
      out.text(),
      /^run aws-a: 6 files from s3:\/\/mmsafe-local\/reports\/aws-a\/\n {2}.*report\.md\n {2}.*report\.json\n {2}.*report\.html\n/,
    );
    assert.match(
      out.text(),
      new RegExp(`open the page: npm run mmsafe -- open aws-a --reports ${outDir}\n$`),
    );
  });

  it("prints the error of a run that failed (exit 1)", async () => {
    const { result, err } = download("aws-broken", path.join(home, "downloaded"));
    assert.equal(await result, 1);
    assert.match(
      err.text(),
      /run aws-broken FAILED, so it has no report: States\.TaskFailed\n.*shard 3 timed out/,
    );
    assert.match(err.text(), /resume with: npm run mmsafe -- run --run-id aws-broken/);
  });

  it("a run that does not exist, is still running, or an invalid id: a usage error (exit 2)", async () => {
    const outDir = path.join(home, "downloaded");
    await assert.rejects(download("nope", outDir).result, {
      name: "UsageError",
      message: /no run "nope" in mmsafe-runs/,
    });
    await assert.rejects(download("aws-running", outDir).result, {
      name: "UsageError",
      message: /still RUNNING/,
    });
    await assert.rejects(download("../etc", outDir).result, { name: "UsageError", message: /not a run id/ });
  });
});

describe("mmsafe deploy", () => {
  const fakeSpawn = (code: number) => {
    const calls: { command: string; args: readonly string[]; cwd: string; env: NodeJS.ProcessEnv }[] = [];
    const spawner: Spawner = async (command, args, options) => {
      calls.push({ command, args, ...options });
      return code;
    };
    return { calls, spawner };
  };

  it("runs cdk deploy of the stack, IAM widening still asking for approval", async () => {
    const { calls, spawner } = fakeSpawn(0);
    const err = capture();
    assert.equal(
      await deployStack({ stack: "Mmsafe" }, { spawn: spawner, err: err.stream, env: { PATH: "/bin" } }),
      0,
    );
    assert.equal(calls.length, 1);
    const [call] = calls;
    assert.equal(call?.command, "npx");
    assert.deepEqual(call?.args, [
      "cdk",
      "deploy",
      "Mmsafe",
      "--require-approval",
      "broadening",
      "--no-notices",
    ]);
    assert.deepEqual(call?.env, { PATH: "/bin", CDK_DISABLE_VERSION_CHECK: "1" });
    assert.ok(call && (await readdir(call.cwd)).includes("cdk.json"), "runs in the project folder");
    assert.match(err.text(), /^\$ npx cdk deploy Mmsafe --require-approval broadening --no-notices\n/);
    assert.match(err.text(), /\$ npm run mmsafe -- start --stack Mmsafe\n/);
  });

  it("maps a failed deployment to exit 1, and an unknown stack name to a usage error", async () => {
    assert.equal(
      await deployStack({ stack: "Mmsafe" }, { spawn: fakeSpawn(3).spawner, err: capture().stream }),
      1,
    );
    const failing: Spawner = async () => {
      throw Object.assign(new Error("spawn npx ENOENT"), { code: "ENOENT" });
    };
    const err = capture();
    assert.equal(await deployStack({ stack: "Mmsafe" }, { spawn: failing, err: err.stream }), 1);
    assert.match(err.text(), /could not run npx: spawn npx ENOENT/);
    await assert.rejects(
      deployStack({ stack: "my stack" }, { spawn: failing, err: capture().stream }),
      UsageError,
    );
  });

  it("passes the arguments after -- to cdk (an explicit --require-approval replaces the default)", async () => {
    assert.deepEqual(cdkDeployCommand({ stack: "Dev", cdkArgs: ["--require-approval", "never"] }).args, [
      "cdk",
      "deploy",
      "Dev",
      "--no-notices",
      "--require-approval",
      "never",
    ]);
    const { calls, spawner } = fakeSpawn(0);
    const program = new Command("mmsafe").exitOverride();
    registerAwsCommands(program, { spawn: spawner });
    const stderrWrite = process.stderr.write;
    process.stderr.write = () => true; // the command line it echoes
    try {
      await program.parseAsync(["node", "mmsafe", "deploy", "--stack", "Dev", "--", "--profile", "research"]);
    } finally {
      process.stderr.write = stderrWrite;
    }
    assert.equal(process.exitCode, 0);
    process.exitCode = undefined;
    assert.deepEqual(calls[0]?.args, [
      "cdk",
      "deploy",
      "Dev",
      "--require-approval",
      "broadening",
      "--no-notices",
      "--profile",
      "research",
    ]);
  });
});

describe("the mmsafe command (spawned)", () => {
  const mmsafe = (args: string[]) => {
    const result = spawnSync(process.execPath, ["bin/mmsafe.js", ...args], {
      encoding: "utf8",
      timeout: 60_000,
    });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };

  it("documents each command with examples", () => {
    for (const command of ["deploy", "start", "runs", "report"]) {
      const { code, stdout } = mmsafe([command, "--help"]);
      assert.equal(code, 0);
      assert.match(stdout, /Examples:\n {2}\$ npm run mmsafe -- /, command);
    }
  });

  it("exits 2 without --stack (or --local), and on an input file that is not JSON", async () => {
    const start = mmsafe(["start"]);
    assert.equal(start.code, 2);
    assert.match(start.stderr, /required option '--stack <name>' not specified/);
    const runs = mmsafe(["runs"]);
    assert.equal(runs.code, 2);
    assert.match(runs.stderr, /give --stack NAME/);
    const file = path.join(home, "broken.json");
    await writeFile(file, "{");
    const bad = mmsafe(["start", "--stack", STACK, "--input", file]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /broken\.json: not JSON/);
  });

  it("lists and downloads local runs with --local", async () => {
    // The embedded servers keep their data under <home>; a process of their own can open it once this one closes.
    await closeLocalSession();
    sessionOpen = false;
    const runs = mmsafe(["runs", "--local", "--home", home]);
    assert.equal(runs.code, 0, runs.stderr);
    assert.match(runs.stdout, /^aws-b\s+SUCCEEDED/m);
    assert.match(runs.stdout, /^aws-a\s+SUCCEEDED/m);
    const json = mmsafe(["runs", "--local", "--home", home, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    // One JSON document and nothing else on stdout.
    const listed = JSON.parse(json.stdout) as { runs: RunJson[] };
    assert.ok(listed.runs.some((r) => r.runId === "aws-b" && r.dataset.label === "generated sample"));

    // The reader goes away (`| head -1`): mmsafe ends quietly, with no EPIPE stack trace.
    const child = spawn(process.execPath, ["bin/mmsafe.js", "runs", "--local", "--home", home], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    assert.equal(await new Promise((resolve) => child.once("exit", resolve)), 0);
    assert.doesNotMatch(stderr, /EPIPE|\n\s+at /);

    const outDir = path.join(home, "spawned");
    const report = mmsafe(["report", "aws-b", "--local", "--home", home, "--out", outDir]);
    assert.equal(report.code, 0, report.stderr);
    assert.ok((await readdir(path.join(outDir, "aws-b"))).includes("report.json"));
    // The page came too: `open` finds it where `report` put it (it failed with exit 2 before).
    const open = mmsafe(["open", "aws-b", "--reports", outDir, "--print"]);
    assert.equal(open.code, 0, open.stderr);
    assert.equal(open.stdout, `${path.join(outDir, "aws-b", "report.html")}\n`);
    const missing = mmsafe(["report", "nope", "--local", "--home", home]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no run "nope"/);
  });
});
