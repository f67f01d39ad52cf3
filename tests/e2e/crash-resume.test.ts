/**
 * Crash and resume, as a user meets it: the local runner (`mmsafe run`, a real process) is killed with SIGKILL
 * in the middle of a run, then the same command is run again with the same `--run-id` and `--home`. The run
 * must complete with exactly one verdict per item × model × strategy, and no question that already had a
 * verdict may be asked again.
 *
 * The models are the reference baselines served by a server in this test process, so it counts every
 * question it is asked (`byPrompt`, keyed by `promptKey(model, [prompt text, image bytes])`) across both
 * runner processes. A verdict is mapped to its question by recomputing that key from the dataset item.
 *
 * Requests in flight at the kill were paid but have no verdict: the resume may ask those again (or answer
 * them from the response cache). So the test does not expect "requests during the resume = missing
 * verdicts" blindly; it checks, per question, that
 *   - a question whose verdict existed after the kill was asked 0 times during the resume,
 *   - a question asked during the resume was asked once, and had no verdict after the kill,
 *   - every verdict written by the resume either made exactly one call or says it came from the cache,
 * which together give: calls during the resume = verdicts missing after the kill − answers from the cache.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { DynamoVerdictStore } from "../../src/adapters/verdict-store.ts";
import { readOfficialDataset } from "../../src/benchmarks/mmsafeaware/layout.ts";
import { benchmarkPromptText } from "../../src/benchmarks/mmsafeaware/prompt-file.ts";
import type { Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import type { Verdict } from "../../src/core/schemas.ts";
import { verdictKey } from "../../src/deployment/storage-layout.ts";
import { type EmbeddedAws, LOCAL_RESOURCES, startEmbeddedAws } from "../../src/local/embedded-aws.ts";
import {
  promptKey,
  type ReferenceServer,
  startReferenceModelServer,
} from "../../src/local/reference-model-server.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const RUNNABLE = 36; // the generated sample: 40 records, 4 without an image
const MODELS = [
  { id: "ref-random", model: "random" },
  { id: "ref-always-no", model: "always-no" },
] as const;
const TOTAL = RUNNABLE * MODELS.length; // one strategy: baseline
const LATENCY_MS = 150;
const CONCURRENCY = 2;
const RUN_ID = "crash-1";

const work = await mkdtemp(path.join(os.tmpdir(), "mmsafe-crash-"));
const home = path.join(work, "home");
const reports = path.join(work, "reports");
const modelsFile = path.join(work, "models.json");
let server: ReferenceServer;
const started: ChildProcess[] = [];

/** Pids of embedded-servers processes serving this test's home (there must be none once a runner is gone). */
function serversOf(dir: string): number[] {
  const ps = spawnSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return ps.stdout
    .split("\n")
    .filter((line) => line.includes("aws-servers-process.mjs") && line.includes(path.join(dir, "aws")))
    .map((line) => Number.parseInt(line.trim(), 10));
}

async function waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

/** `mmsafe run` as a user types it; the same command starts and resumes the run. */
function mmsafeRun() {
  const child = spawn(
    process.execPath,
    [
      "bin/mmsafe.js",
      "run",
      "--home",
      home,
      "--reports",
      reports,
      "--run-id",
      RUN_ID,
      "--models",
      modelsFile,
      "--quiet",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  started.push(child);
  const output = { stdout: "", stderr: "" };
  child.stdout.on("data", (chunk: Buffer) => {
    output.stdout += chunk.toString("utf8");
  });
  child.stderr.on("data", (chunk: Buffer) => {
    output.stderr += chunk.toString("utf8");
  });
  let done = false;
  // "exit", not "close": the embedded servers inherit stderr, so "close" would also wait for them.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      done = true;
      resolve({ code, signal });
    }),
  );
  return { child, output, exited, hasExited: () => done };
}

async function withVerdicts<T>(fn: (store: DynamoVerdictStore) => Promise<T>): Promise<T> {
  const aws: EmbeddedAws = await startEmbeddedAws(path.join(home, "aws"));
  const client = new DynamoDBClient({
    endpoint: aws.dynamodbEndpoint,
    region: LOCAL_RESOURCES.region,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  try {
    return await fn(
      new DynamoVerdictStore(DynamoDBDocumentClient.from(client), LOCAL_RESOURCES.verdictsTable),
    );
  } finally {
    client.destroy();
    await aws.close();
  }
}

before(async () => {
  server = await startReferenceModelServer({ latencyMs: LATENCY_MS });
  await writeFile(
    modelsFile,
    JSON.stringify({
      models: MODELS.map((m) => ({
        id: m.id,
        baseURL: server.baseURL,
        model: m.model,
        kind: "baseline",
        maxConcurrency: CONCURRENCY,
        maxTokens: 16,
        timeoutMs: 30_000,
      })),
    }),
  );
});

after(async () => {
  // Only if a check failed half-way: nothing of this test may outlive it.
  for (const child of started)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const pid of serversOf(home)) process.kill(pid, "SIGKILL");
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

describe("crash and resume of the local runner", () => {
  it("SIGKILL mid-run, then the same command: one verdict per item × model, no verdict's question asked again", {
    timeout: 240_000,
  }, async () => {
    // 1. Start the run and kill it (SIGKILL: no handler, no cleanup) once ~30% of the questions were asked.
    const t0 = performance.now();
    const crashed = mmsafeRun();
    const killAt = Math.ceil(TOTAL * 0.3);
    await waitFor(
      `${killAt} model requests`,
      () => server.stats().requests >= killAt || crashed.hasExited(),
      180_000,
    );
    assert.equal(crashed.hasExited(), false, `the run ended before the kill:\n${crashed.output.stderr}`);
    crashed.child.kill("SIGKILL");
    const requestsAtKill = server.stats().requests;
    const killedAfterMs = performance.now() - t0;
    assert.equal((await crashed.exited).signal, "SIGKILL");
    assert.ok(requestsAtKill < TOTAL, `killed too late: ${requestsAtKill} of ${TOTAL} requests made`);

    // 2. Its embedded-servers process notices and exits by itself: no orphan holds the ports or LevelDB.
    const t1 = performance.now();
    // Bounded by the servers' own stop timeout (15 s, aws-servers-process.mjs), not by how busy the machine is.
    await waitFor(
      "the embedded servers of the killed run to exit",
      () => serversOf(home).length === 0,
      30_000,
    );
    const orphanExitMs = performance.now() - t1;
    const afterKill = server.stats();

    // 3. What the killed run left: verdicts it had written (durable in dynalite's LevelDB).
    const atKill = await withVerdicts((store) => store.listRun(RUN_ID));
    assert.ok(atKill.length > 0, "the run was killed before writing any verdict");
    assert.ok(atKill.length < TOTAL, "the run had written every verdict before the kill");

    // 4. Resume: the very same command.
    const t2 = performance.now();
    const resumed = mmsafeRun();
    const { code } = await resumed.exited;
    const resumeMs = performance.now() - t2;
    assert.equal(code, 0, resumed.output.stderr);
    assert.match(resumed.output.stdout, new RegExp(`Run ${RUN_ID}`));
    assert.deepEqual(serversOf(home), [], "the resumed run left its embedded servers running");
    const afterResume = server.stats();

    // 5. Exactly one verdict per runnable item × model × strategy; the ones from before the kill untouched.
    const all = await withVerdicts((store) => store.listRun(RUN_ID));
    assert.equal(all.length, TOTAL);
    assert.equal(new Set(all.map((v) => v.verdictKey)).size, TOTAL);
    for (const m of MODELS) {
      const ofModel = all.filter((v) => v.modelId === m.id);
      assert.equal(new Set(ofModel.map((v) => v.itemId)).size, RUNNABLE, m.id);
    }
    assert.ok(all.every((v) => v.strategy === "baseline"));
    const byKey = new Map(all.map((v) => [v.verdictKey, v]));
    for (const v of atKill) assert.deepEqual(byKey.get(v.verdictKey), v, `${v.verdictKey} was rewritten`);

    // 6. Each verdict's question, as the server keys it: the baseline prompt text and the image bytes.
    const dataset = await readOfficialDataset(path.join(home, "datasets", "sample"));
    assert.equal(dataset.items.length, RUNNABLE);
    const questionOf = new Map<string, string>(); // `${modelId}/${itemId}` → promptKey
    for (const item of dataset.items) {
      const image = await readFile(item.imagePath);
      const text = benchmarkPromptText(item.instruction, item.sentence);
      for (const m of MODELS) questionOf.set(`${m.id}/${item.id}`, promptKey(m.model, [text, image]));
    }
    const question = (v: Verdict) => {
      const key = questionOf.get(`${v.modelId}/${v.itemId}`);
      assert.ok(key, `no dataset item for verdict ${v.verdictKey}`);
      return key;
    };
    // The mapping is right: the questions are distinct and are exactly those the server was asked.
    assert.equal(new Set(questionOf.values()).size, TOTAL);
    assert.deepEqual(new Set(Object.keys(afterResume.byPrompt)), new Set(questionOf.values()));

    // 7. Zero repeated calls for questions that already had a verdict; none asked twice by the resume.
    const askedInResume = (key: string) => (afterResume.byPrompt[key] ?? 0) - (afterKill.byPrompt[key] ?? 0);
    for (const v of atKill)
      assert.equal(askedInResume(question(v)), 0, `${v.verdictKey} had a verdict but was asked again`);
    const hadVerdict = new Set(atKill.map(question));
    for (const key of Object.keys(afterResume.byPrompt)) {
      const n = askedInResume(key);
      assert.ok(n <= 1, `question ${key} was asked ${n} times by the resume`);
      if (n > 0) assert.ok(!hadVerdict.has(key), `question ${key} had a verdict and was asked again`);
    }
    const written = all.filter((v) => !atKill.some((k) => k.verdictKey === v.verdictKey));
    for (const v of written) {
      const n = askedInResume(question(v));
      assert.equal(n, v.cached ? 0 : 1, `${v.verdictKey} (cached: ${v.cached}) was asked ${n} times`);
    }
    const callsInResume = afterResume.requests - afterKill.requests;
    const fromCache = written.filter((v) => v.cached).length;
    assert.equal(callsInResume, TOTAL - atKill.length - fromCache);

    // 8. The report is there and reconciles: every planned item answered or errored, none missing.
    const report = JSON.parse(await readFile(path.join(reports, RUN_ID, "report.json"), "utf8")) as Report;
    assert.deepEqual(report.rows.map((r) => r.modelId).sort(), MODELS.map((m) => m.id).sort());
    for (const row of report.rows) {
      assert.equal(row.counts.planned, RUNNABLE, row.modelId);
      assert.equal(row.counts.answered + row.counts.errored, RUNNABLE, row.modelId);
      assert.equal(row.counts.missing, 0, row.modelId);
    }

    console.log(
      `crash-resume: killed after ${(killedAfterMs / 1000).toFixed(1)} s with ${requestsAtKill}/${TOTAL} requests made ` +
        `and ${atKill.length}/${TOTAL} verdicts written; embedded servers exited ${orphanExitMs.toFixed(0)} ms after the kill; ` +
        `resume took ${(resumeMs / 1000).toFixed(1)} s, made ${callsInResume} calls ` +
        `(${TOTAL - atKill.length} verdicts missing, ${fromCache} answered from the cache)`,
    );
  });

  it("verdicts acknowledged before the embedded servers die survive even a SIGKILL of the servers", async () => {
    const dir = path.join(work, "durability");
    const open = async () => {
      const aws = await startEmbeddedAws(dir);
      const client = DynamoDBDocumentClient.from(
        new DynamoDBClient({
          endpoint: aws.dynamodbEndpoint,
          region: LOCAL_RESOURCES.region,
          credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
        }),
      );
      return { aws, client };
    };
    const { aws, client } = await open();
    const verdict = (i: number): Verdict => ({
      runId: "durable",
      verdictKey: verdictKey("m", "baseline", i),
      modelId: "m",
      strategy: "baseline",
      itemId: i,
      category: "typical",
      attackType: null,
      domain: null,
      scenario: null,
      expected: "no",
      status: "answered",
      response: "No.",
      scoredResponse: "No.",
      strictAnswer: "no",
      correctPaper: true,
      correctStrict: true,
      finishReason: "stop",
      error: null,
      latencyMs: 1,
      promptTokens: 1,
      completionTokens: 1,
      attempts: 1,
      runAttempts: 1,
      cached: false,
      truncated: false,
      responseLength: 3,
      vcd: null,
      imageSent: null,
      createdAt: new Date(0).toISOString(),
    });
    const store = new DynamoVerdictStore(client, LOCAL_RESOURCES.verdictsTable);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => store.put(verdict(i), null)));
    assert.ok(results.every(Boolean));
    // No close, no flush: the servers' process is killed outright right after the last acknowledgement.
    process.kill(aws.pid, "SIGKILL");
    await aws.close();
    client.destroy();

    const again = await open();
    try {
      const kept = await new DynamoVerdictStore(again.client, LOCAL_RESOURCES.verdictsTable).listRun(
        "durable",
      );
      assert.equal(kept.length, 200);
    } finally {
      again.client.destroy();
      await again.aws.close();
    }
  });
});
