/**
 * Endpoints that misbehave, as a user meets them: `mmsafe run` is a real process, and the model endpoint
 * (the reference server, in this test process) is taken down, brought back, rate-limited or slowed from
 * outside it. Every run must end truthfully (exit code, what it prints) and be finishable by the same
 * command: error verdicts are retried on resume, and no question that has an answer is asked again.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import { DUPLICATE_PAIRS } from "../../src/benchmarks/mmsafeaware/sample.ts";
import {
  type FaultPlan,
  type ReferenceServer,
  startReferenceModelServer,
} from "../../src/local/reference-model-server.ts";
import { localVerdicts, spawnMmsafe } from "../fixtures/local-cli.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const RUNNABLE = 36; // the generated sample: 40 records, 4 without an image
const FULL_RUNNABLE = 1453;

const work = await mkdtemp(path.join(os.tmpdir(), "mmsafe-endpoints-"));
const servers: ReferenceServer[] = [];
after(async () => {
  for (const server of servers) await server.close().catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

/** A port nothing listens on (it was free a moment ago). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

async function serve(options: { port: number; latencyMs?: number; faults?: FaultPlan }) {
  const server = await startReferenceModelServer(options);
  servers.push(server);
  return server;
}

async function modelsFile(name: string, port: number, model: string, extra: Record<string, unknown> = {}) {
  const file = path.join(work, `${name}.json`);
  await writeFile(
    file,
    JSON.stringify({
      models: [
        {
          id: "m1",
          baseURL: `http://127.0.0.1:${port}/v1`,
          model,
          maxConcurrency: 4,
          maxTokens: 16,
          timeoutMs: 30_000,
          ...extra,
        },
      ],
    }),
  );
  return file;
}

/** `mmsafe run` as a user types it; the same command starts and resumes the run. */
const mmsafeRun = (args: string[]) => spawnMmsafe(["run", "--quiet", ...args]);
const verdictsOf = localVerdicts;

async function waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

/** Questions answered (no fault) more than once: each one was paid twice. */
const answeredTwice = (server: ReferenceServer): string[] =>
  Object.entries(server.stats().answeredByPrompt)
    .filter(([, n]) => n > 1)
    .map(([key]) => key);

describe("endpoint faults, injected from outside the runner", () => {
  it("an endpoint that is down stops the run at once (exit 2); once it is back, the same command finishes it", {
    timeout: 240_000,
  }, async () => {
    const home = path.join(work, "down-home");
    const port = await freePort();
    const file = await modelsFile("down", port, "random");
    const args = [
      "--home",
      home,
      "--reports",
      path.join(work, "reports"),
      "--run-id",
      "down-1",
      "--models",
      file,
    ];

    const down = mmsafeRun(args);
    assert.equal(await down.exited, 2, down.output.stderr);
    assert.match(down.output.stderr, /model "m1": cannot connect to http:\/\/127\.0\.0\.1:\d+\/v1/);
    assert.match(down.output.stderr, /is the server running, and is baseURL right/);
    assert.doesNotMatch(down.output.stderr, /\n\s+at /, "no stack trace");
    // One question was tried (the check's), and its error verdict is kept for the resume to retry.
    const afterDown = await verdictsOf(home, "down-1");
    assert.equal(afterDown.length, 1);
    assert.equal(afterDown[0]?.status, "error");
    assert.equal(afterDown[0]?.error?.kind, "connection");

    const server = await serve({ port });
    const back = mmsafeRun(args);
    assert.equal(await back.exited, 0, back.output.stderr);
    const verdicts = await verdictsOf(home, "down-1");
    assert.equal(verdicts.length, RUNNABLE);
    assert.ok(verdicts.every((v) => v.status === "answered"));
    const retried = verdicts.filter((v) => v.runAttempts > 1);
    assert.deepEqual(
      retried.map((v) => v.verdictKey),
      [afterDown[0]?.verdictKey],
      "the error verdict was retried, nothing else needed a second run",
    );
    // Each question asked exactly once of the endpoint that was up.
    assert.equal(server.stats().requests, RUNNABLE);
    assert.deepEqual(answeredTwice(server), []);
    const report = JSON.parse(
      await readFile(path.join(work, "reports", "down-1", "report.json"), "utf8"),
    ) as Report;
    assert.equal(report.completion.outcome, "complete");
    assert.equal(report.rows[0]?.counts.reattempted, 1);
    const html = await readFile(path.join(work, "reports", "down-1", "report.html"), "utf8");
    assert.match(html, /Verdicts that needed more than one run/);
    assert.doesNotMatch(html, /id="completion"/, "a complete run has no banner");
  });

  it("an endpoint that dies half-way: the breaker stops its calls, the run ends with exit 3 and says so; a resume finishes it", {
    timeout: 300_000,
  }, async () => {
    const home = path.join(work, "outage-home");
    const port = await freePort();
    const file = await modelsFile("outage", port, "random");
    const args = [
      "--home",
      home,
      "--reports",
      path.join(work, "reports"),
      "--run-id",
      "outage-1",
      "--models",
      file,
    ];
    const first = await serve({ port, latencyMs: 100 });

    const run = mmsafeRun(args);
    await waitFor(
      "half of the questions",
      () => first.stats().requests >= RUNNABLE / 2 || run.hasExited(),
      120_000,
    );
    assert.equal(run.hasExited(), false, run.output.stderr);
    await first.close();
    assert.equal(await run.exited, 3, run.output.stderr);
    const told = run.output.stdout + run.output.stderr;
    assert.match(told, /m1 \/ baseline: \d+ of 36 without an answer \((connection|endpoint_unavailable) \d+/);
    assert.match(told, /--run-id outage-1/);
    const afterOutage = await verdictsOf(home, "outage-1");
    assert.equal(afterOutage.length, RUNNABLE, "every item has a verdict: answered, or an error to retry");
    const errors = afterOutage.filter((v) => v.status === "error");
    assert.ok(errors.length > 0 && errors.length < RUNNABLE, `${errors.length} errors`);
    const report = JSON.parse(
      await readFile(path.join(work, "reports", "outage-1", "report.json"), "utf8"),
    ) as Report;
    assert.equal(report.completion.outcome, "with_errors");
    assert.equal(report.completion.errored, errors.length);
    const html = await readFile(path.join(work, "reports", "outage-1", "report.html"), "utf8");
    assert.match(html, /<div class="warn" id="completion" role="alert"><p><strong>Incomplete run: /);

    // The endpoint comes back on the same address: the same command retries exactly the error verdicts.
    const second = await serve({ port });
    const resumed = mmsafeRun(args);
    assert.equal(await resumed.exited, 0, resumed.output.stderr);
    const all = await verdictsOf(home, "outage-1");
    assert.equal(all.length, RUNNABLE);
    assert.ok(all.every((v) => v.status === "answered"));
    assert.equal(second.stats().requests, errors.length, "only the error verdicts were asked again");
    const answeredBefore = new Set(
      afterOutage.filter((v) => v.status === "answered").map((v) => v.verdictKey),
    );
    for (const v of all) {
      if (answeredBefore.has(v.verdictKey)) assert.equal(v.runAttempts, 1, v.verdictKey);
      else assert.equal(v.runAttempts, 2, v.verdictKey);
    }
  });

  it("30% of requests answered 429: all 1,453 items answered in one command, none paid twice", {
    timeout: 300_000,
  }, async () => {
    const home = path.join(work, "storm-home");
    const dataset = path.join(work, "full");
    assert.equal(await spawnMmsafe(["dataset", "sample", "--full", dataset]).exited, 0);
    const port = await freePort();
    const server = await serve({
      port,
      faults: { rates: { "429": 0.3 }, seed: 11, retryAfterSeconds: 1, retryAfterMs: 50 },
    });
    const file = await modelsFile("storm", port, "random", { maxConcurrency: 16 });
    const run = mmsafeRun([
      "--home",
      home,
      "--reports",
      path.join(work, "reports"),
      "--run-id",
      "storm-1",
      "--models",
      file,
      "--dataset",
      dataset,
      "--no-cache",
    ]);
    assert.equal(await run.exited, 0, run.output.stderr);
    const verdicts = await verdictsOf(home, "storm-1");
    assert.equal(verdicts.length, FULL_RUNNABLE);
    assert.equal(verdicts.filter((v) => v.status === "answered").length, FULL_RUNNABLE);
    const stats = server.stats();
    assert.ok(stats.faults["429"] > 0.2 * FULL_RUNNABLE, `${stats.faults["429"]} 429s`);
    // Each question answered once, but the seven pairs of identical records (same sentence and image bytes),
    // which are two items asking one question.
    const twice = answeredTwice(server);
    assert.equal(twice.length, DUPLICATE_PAIRS.length, `answered twice: ${twice.join(", ")}`);
    assert.ok(Object.values(stats.answeredByPrompt).every((n) => n <= 2));
    const report = JSON.parse(
      await readFile(path.join(work, "reports", "storm-1", "report.json"), "utf8"),
    ) as Report;
    assert.equal(report.completion.outcome, "complete");
    assert.equal(report.rows[0]?.counts.retries, stats.faults["429"]);
  });

  it("a slow model that serves one call at a time: shards waiting for its slot are not timed out", {
    timeout: 300_000,
  }, async () => {
    const home = path.join(work, "slow-home");
    const port = await freePort();
    const server = await serve({ port, latencyMs: 400 });
    const file = await modelsFile("slow", port, "random", { maxConcurrency: 1 });
    // One item per shard and every shard at once: the last one waits for all the others' calls.
    const run = mmsafeRun([
      "--home",
      home,
      "--reports",
      path.join(work, "reports"),
      "--run-id",
      "slow-1",
      "--models",
      file,
      "--shard-size",
      "1",
      "--map-concurrency",
      String(RUNNABLE),
    ]);
    assert.equal(await run.exited, 0, run.output.stderr);
    const verdicts = await verdictsOf(home, "slow-1");
    assert.equal(verdicts.length, RUNNABLE);
    assert.ok(verdicts.every((v) => v.status === "answered"));
    assert.equal(server.stats().requests, RUNNABLE);
  });
});
