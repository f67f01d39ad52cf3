/**
 * How a local run ends when it does not simply succeed, as a user meets it: the real CLI (`mmsafe run`, a
 * process of its own) against reference model servers, with the fault brought in from outside the runner:
 *
 * - Ctrl-C (SIGINT to the CLI's process group, as a terminal sends it): exit 130, "interrupted: N of M
 *   verdicts kept; resume with: …" (N exact: the answers in flight are written first), the run INTERRUPTED,
 *   the servers closed; the resume finishes the run and asks no question twice;
 * - SIGKILL: `mmsafe runs --local` shows the run RUNNING while it works, INTERRUPTED once its process is gone;
 * - two runs on one home at once: never a crash, the second refuses with exit 2 and no stack trace;
 * - the embedded-servers process killed mid-run: exit 1 with the resume command, no unhandled rejection, and
 *   the resume completes;
 * - endpoints that fail (reference servers in processes of their own, `--faults 500=…`): exit 3, a line per
 *   model without every answer, the resume command; once the endpoints are back, that command finishes it.
 *
 * The in-process reference server counts every question (`byPrompt`, keyed by `promptKey(model, [prompt
 * text, image bytes])`) across the runner processes; a verdict is mapped to its question from the dataset.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { after, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { DynamoRunStore, type RunRecord } from "../../src/adapters/run-store.ts";
import { DynamoVerdictStore } from "../../src/adapters/verdict-store.ts";
import { readOfficialDataset } from "../../src/benchmarks/mmsafeaware/layout.ts";
import { benchmarkPromptText } from "../../src/benchmarks/mmsafeaware/prompt-file.ts";
import type { Verdict } from "../../src/core/schemas.ts";
import { LOCAL_RESOURCES, startEmbeddedAws } from "../../src/local/embedded-aws.ts";
import { EmbeddedAwsInUseError } from "../../src/local/local-errors.ts";
import {
  promptKey,
  type ReferenceServer,
  type ReferenceServerStats,
  startReferenceModelServer,
} from "../../src/local/reference-model-server.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const RUNNABLE = 36; // the generated sample: 40 records, 4 without an image
const CONCURRENCY = 2;

const work = mkdtempSync(path.join(os.tmpdir(), "mmsafe-interrupts-"));
const started: ChildProcess[] = [];
/** Children that lead a process group of their own (killed as a group). */
const groupLeaders = new Set<ChildProcess>();
const servers: ReferenceServer[] = [];

after(async () => {
  // Only if a check failed half-way: nothing of these tests may outlive them.
  for (const child of started) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) continue;
    try {
      process.kill(groupLeaders.has(child) ? -child.pid : child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  for (const pid of serversOf(work)) process.kill(pid, "SIGKILL");
  for (const server of servers) await server.close();
  await rm(work, { recursive: true, force: true });
});

/** Pids of embedded-servers processes whose data is under `dir`. */
function serversOf(dir: string): number[] {
  const ps = spawnSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return ps.stdout
    .split("\n")
    .filter((line) => line.includes("aws-servers-process.mjs") && line.includes(dir))
    .map((line) => Number.parseInt(line.trim(), 10));
}

async function waitFor(what: string, condition: () => boolean, timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(10);
  }
}

interface Cli {
  child: ChildProcess;
  output: { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  hasExited: () => boolean;
}

/**
 * `mmsafe <args>` as a user types it. With `ownGroup`, the CLI leads a process group of its own (with the
 * embedded servers it starts), so a test can send it what a terminal sends on Ctrl-C: a signal to the group.
 */
function mmsafe(args: readonly string[], options: { ownGroup?: boolean } = {}): Cli {
  const child = spawn(process.execPath, ["bin/mmsafe.js", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.ownGroup === true,
  });
  started.push(child);
  if (options.ownGroup) groupLeaders.add(child);
  const output = { stdout: "", stderr: "" };
  child.stdout?.on("data", (chunk: Buffer) => {
    output.stdout += chunk.toString("utf8");
  });
  child.stderr?.on("data", (chunk: Buffer) => {
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

/** A fresh home with a models file naming reference models at `baseURL`s. */
async function setUp(
  name: string,
  models: readonly { id: string; model: string; baseURL: string; maxConcurrency?: number }[],
) {
  const dir = path.join(work, name);
  const home = path.join(dir, "home");
  const reports = path.join(dir, "reports");
  const modelsFile = path.join(dir, "models.json");
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeFile(
    modelsFile,
    JSON.stringify({
      models: models.map((m) => ({
        id: m.id,
        baseURL: m.baseURL,
        model: m.model,
        kind: "model",
        maxConcurrency: m.maxConcurrency ?? CONCURRENCY,
        maxTokens: 16,
        timeoutMs: 60_000,
      })),
    }),
  );
  /** `mmsafe run` of this home, the same command to start and resume run `runId`. */
  const runArgs = (runId: string, ...extra: string[]) => [
    "run",
    "--home",
    home,
    "--reports",
    reports,
    "--run-id",
    runId,
    "--models",
    modelsFile,
    ...extra,
  ];
  /** The resume command the CLI prints for this home. */
  const resumeHint = (runId: string) =>
    `npm run mmsafe -- run --run-id ${runId} --home ${home} --models ${modelsFile} --reports ${reports}`;
  return { home, reports, modelsFile, runArgs, resumeHint };
}

/** Reads a home's run record and verdicts with servers of its own (no run may hold the home then). */
async function readHome(
  home: string,
  runId: string,
): Promise<{ run: RunRecord | null; verdicts: Verdict[] }> {
  const aws = await startEmbeddedAws(path.join(home, "aws"));
  const client = new DynamoDBClient({
    endpoint: aws.dynamodbEndpoint,
    region: LOCAL_RESOURCES.region,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  try {
    const documents = DynamoDBDocumentClient.from(client);
    return {
      run: await new DynamoRunStore(documents, LOCAL_RESOURCES.runsTable).get(runId),
      verdicts: await new DynamoVerdictStore(documents, LOCAL_RESOURCES.verdictsTable).listRun(runId),
    };
  } finally {
    client.destroy();
    await aws.close();
  }
}

/** Each verdict's question, as the reference server keys it (the baseline prompt and the image bytes). */
async function questionsOf(home: string, models: readonly { id: string; model: string }[]) {
  const dataset = await readOfficialDataset(path.join(home, "datasets", "sample"));
  assert.equal(dataset.items.length, RUNNABLE);
  const byVerdict = new Map<string, string>(); // `${modelId}/${itemId}` → promptKey
  for (const item of dataset.items) {
    const image = await readFile(item.imagePath);
    const text = benchmarkPromptText(item.instruction, item.sentence);
    for (const m of models) byVerdict.set(`${m.id}/${item.id}`, promptKey(m.model, [text, image]));
  }
  return (v: Verdict): string => {
    const key = byVerdict.get(`${v.modelId}/${v.itemId}`);
    assert.ok(key, `no dataset item for verdict ${v.verdictKey}`);
    return key;
  };
}

/** One verdict per item × model, each model's items all there. */
function assertComplete(verdicts: readonly Verdict[], models: readonly { id: string }[]): void {
  assert.equal(verdicts.length, RUNNABLE * models.length);
  assert.equal(new Set(verdicts.map((v) => v.verdictKey)).size, verdicts.length);
  for (const m of models)
    assert.equal(
      new Set(verdicts.filter((v) => v.modelId === m.id).map((v) => v.itemId)).size,
      RUNNABLE,
      m.id,
    );
}

/** A stack trace line, or Node's report of an unhandled rejection / uncaught exception. */
const CRASH = /^\s+at |unhandled|uncaught|Database is closed|ECONNREFUSED/im;

/** What the endpoint received between two snapshots, per question. */
const askedBetween = (before: ReferenceServerStats, afterwards: ReferenceServerStats) => (key: string) =>
  (afterwards.byPrompt[key] ?? 0) - (before.byPrompt[key] ?? 0);

async function referenceServer(latencyMs: number): Promise<ReferenceServer> {
  const server = await startReferenceModelServer({ latencyMs });
  servers.push(server);
  return server;
}

describe("interrupting a local run", () => {
  it("Ctrl-C: exit 130, the verdicts kept, the run INTERRUPTED; the resume asks only what had no verdict", {
    timeout: 300_000,
  }, async () => {
    const server = await referenceServer(150);
    const models = [
      { id: "ref-random", model: "random", baseURL: server.baseURL },
      { id: "ref-always-no", model: "always-no", baseURL: server.baseURL },
    ];
    const total = RUNNABLE * models.length;
    const { home, runArgs, resumeHint } = await setUp("ctrl-c", models);
    const runId = "ctrl-c-1";

    // 1. Ctrl-C once ~30% of the questions were asked: SIGINT to the whole process group, as a terminal does.
    const run = mmsafe([...runArgs(runId), "--quiet"], { ownGroup: true });
    await waitFor("30% of the questions", () => server.stats().requests >= total * 0.3 || run.hasExited());
    assert.equal(run.hasExited(), false, `the run ended before the interrupt:\n${run.output.stderr}`);
    const pid = run.child.pid ?? -1;
    const interruptedAt = performance.now();
    process.kill(-pid, "SIGINT");
    const { code, signal } = await run.exited;
    const stopMs = performance.now() - interruptedAt;
    const atInterrupt = server.stats();

    // 2. What the user is told (--quiet: that line only), and the exit code.
    assert.deepEqual({ code, signal }, { code: 130, signal: null }, run.output.stderr);
    const told = run.output.stderr.match(/^interrupted: (\d+) of (\d+) verdicts kept; resume with: (.*)$/m);
    assert.ok(told, run.output.stderr);
    assert.equal(run.output.stderr.trim(), told[0], "--quiet prints only what ended the run");
    assert.equal(Number(told[2]), total);
    assert.equal(told[3], resumeHint(runId));
    assert.equal(run.output.stdout, "");
    // The embedded servers were closed before the CLI ended (they also got the SIGINT, and ignored it).
    assert.deepEqual(serversOf(home), []);

    // 3. The run is INTERRUPTED, with as many verdicts as the CLI said; `runs --local` says so too.
    const kept = await readHome(home, runId);
    assert.equal(kept.run?.status, "INTERRUPTED");
    assert.equal(kept.run?.error, "Interrupted");
    assert.match(kept.run?.cause ?? "", /^SIGINT: mmsafe run \(pid \d+ on .*\) was stopped$/);
    // Exactly as many as the CLI said: the answers in flight were written before the count.
    assert.equal(kept.verdicts.length, Number(told[1]), "verdicts in the table vs the number the CLI said");
    assert.ok(kept.verdicts.length > 0 && kept.verdicts.length < total, `${kept.verdicts.length} kept`);
    const listing = spawnSync(process.execPath, ["bin/mmsafe.js", "runs", "--local", "--home", home], {
      encoding: "utf8",
    });
    assert.equal(listing.status, 0, listing.stderr);
    assert.match(listing.stdout, new RegExp(`^${runId}\\s+INTERRUPTED\\s.*error: Interrupted`, "m"));

    // 4. The same command resumes it: every verdict, the kept ones untouched, none of their questions asked
    // again.
    const resumed = mmsafe([...runArgs(runId), "--quiet"]);
    const end = await resumed.exited;
    assert.equal(end.code, 0, resumed.output.stderr);
    assert.doesNotMatch(resumed.output.stderr, /waiting for/, "the lock was released at once");
    const done = await readHome(home, runId);
    assertComplete(done.verdicts, models);
    assert.equal(done.run?.status, "SUCCEEDED");
    const byKey = new Map(done.verdicts.map((v) => [v.verdictKey, v]));
    for (const v of kept.verdicts)
      assert.deepEqual(byKey.get(v.verdictKey), v, `${v.verdictKey} was rewritten`);
    const question = await questionsOf(home, models);
    const inResume = askedBetween(atInterrupt, server.stats());
    for (const v of kept.verdicts) assert.equal(inResume(question(v)), 0, `${v.verdictKey} asked again`);
    const final = server.stats();
    const twice = Object.entries(final.byPrompt).filter(([, n]) => n > 1);
    for (const [key, n] of twice) {
      assert.equal(n, 2, `question ${key} asked ${n} times`);
      assert.ok(!kept.verdicts.some((v) => question(v) === key), `${key} had a verdict and was asked again`);
    }
    // The calls in flight at the interrupt were let finish and written: none is paid twice.
    assert.equal(twice.length, 0, `${twice.length} questions asked twice`);
    console.log(
      `ctrl-c: exit ${stopMs.toFixed(0)} ms after SIGINT; ${kept.verdicts.length}/${total} verdicts kept after ${atInterrupt.requests} requests; ` +
        `the resume made ${final.requests - atInterrupt.requests} calls, ${twice.length} questions asked twice (in flight)`,
    );
  });

  it("SIGTERM (to the CLI alone) ends the run the same way: exit 130, the message, INTERRUPTED", {
    timeout: 300_000,
  }, async () => {
    const server = await referenceServer(1_500);
    const models = [{ id: "ref-always-yes", model: "always-yes", baseURL: server.baseURL }];
    const { home, runArgs, resumeHint } = await setUp("sigterm", models);
    const runId = "sigterm-1";
    const run = mmsafe(runArgs(runId));
    await waitFor("the first questions", () => server.stats().requests >= CONCURRENCY || run.hasExited());
    run.child.kill("SIGTERM");
    const { code } = await run.exited;
    assert.equal(code, 130, run.output.stderr);
    assert.match(
      run.output.stderr,
      new RegExp(`^interrupted: \\d+ of ${RUNNABLE} verdicts kept; resume with: ${resumeHint(runId)}$`, "m"),
    );
    assert.doesNotMatch(run.output.stderr, CRASH);
    // A shard told to stop is no fault, and no handler runs once the servers close (not even a workflow retry).
    assert.doesNotMatch(run.output.stderr, /"level":"(ERROR|WARN)"/, run.output.stderr);
    assert.deepEqual(serversOf(home), []);
    const { run: record } = await readHome(home, runId);
    assert.equal(record?.status, "INTERRUPTED");
    assert.match(record?.cause ?? "", /^SIGTERM: /);
  });

  it("SIGKILL: `runs --local` shows the run RUNNING while it works, INTERRUPTED once its process is gone", {
    timeout: 300_000,
  }, async () => {
    // The answers come from this process: while spawnSync waits for the listing, none is given, so the run
    // is still working when the listing reads it, however slow the machine.
    const server = await referenceServer(1_500);
    const models = [{ id: "ref-always-no", model: "always-no", baseURL: server.baseURL }];
    const { home, runArgs } = await setUp("sigkill", models);
    const runId = "sigkill-1";
    const runs = () =>
      spawnSync(process.execPath, ["bin/mmsafe.js", "runs", "--local", "--home", home], { encoding: "utf8" });

    const run = mmsafe([...runArgs(runId), "--quiet"]);
    await waitFor("the first answers", () => server.stats().requests >= 4 || run.hasExited());
    // While it works, a listing reads the home through the run's own servers.
    const live = runs();
    assert.equal(live.status, 0, live.stderr);
    assert.equal(run.hasExited(), false, `the run ended before the kill:\n${run.output.stderr}`);
    assert.match(live.stdout, new RegExp(`^${runId}\\s+RUNNING\\s.*\\srunning\\s`, "m"), live.stdout);

    run.child.kill("SIGKILL");
    assert.equal((await run.exited).signal, "SIGKILL");
    await waitFor("the killed run's servers to exit", () => serversOf(home).length === 0, 30_000);
    const gone = runs();
    assert.equal(gone.status, 0, gone.stderr);
    assert.doesNotMatch(gone.stdout, /RUNNING/);
    assert.match(
      gone.stdout,
      new RegExp(`^${runId}\\s+INTERRUPTED\\s.*error: its process \\(pid ${run.child.pid}\\) is gone`, "m"),
    );
    // Nothing marked it: the record still says RUNNING; the listing knows better.
    assert.equal((await readHome(home, runId)).run?.status, "RUNNING");
  });

  it("two runs on one home at once: no crash; the second refuses with exit 2, the first completes", {
    timeout: 300_000,
  }, async () => {
    const server = await referenceServer(0);
    const models = [{ id: "ref-random", model: "random", baseURL: server.baseURL }];
    for (const trial of [1, 2, 3]) {
      const { home, runArgs } = await setUp(`two-runs-${trial}`, models);
      const ids = [`a-${trial}`, `b-${trial}`] as const;
      const [a, b] = ids.map((id) => mmsafe([...runArgs(id, "--limit", "6"), "--quiet"]));
      assert.ok(a && b);
      const codes = [(await a.exited).code, (await b.exited).code];
      for (const [i, cli] of [a, b].entries()) {
        assert.doesNotMatch(cli.output.stderr, CRASH, `trial ${trial}, run ${ids[i]}:\n${cli.output.stderr}`);
        if (codes[i] === 2)
          assert.match(
            cli.output.stderr,
            new RegExp(
              `^mmsafe: another mmsafe process \\(pid \\d+, since [\\dT:.Z-]+\\) is using --home ${home}: wait for it to end, or give this one another --home\\n$`,
            ),
          );
      }
      // Either both ran (one after the other), or one refused; never anything else.
      assert.ok(
        (codes[0] === 0 && codes[1] === 2) ||
          (codes[0] === 2 && codes[1] === 0) ||
          (codes[0] === 0 && codes[1] === 0),
        `trial ${trial}: exit codes ${codes.join(", ")}\n${a.output.stderr}\n${b.output.stderr}`,
      );
      for (const [i, id] of ids.entries()) {
        const { run, verdicts } = await readHome(home, id);
        if (codes[i] === 0) {
          assert.equal(run?.status, "SUCCEEDED", id);
          assert.equal(verdicts.length, 6, id);
        } else {
          assert.equal(run, null, `${id} refused, so it recorded nothing`);
          assert.equal(verdicts.length, 0, id);
        }
      }
    }
  });

  it("the embedded servers killed mid-run: exit 1 with the resume command, no crash; the resume completes", {
    timeout: 300_000,
  }, async () => {
    const server = await referenceServer(150);
    const models = [
      { id: "ref-random", model: "random", baseURL: server.baseURL },
      { id: "ref-always-no", model: "always-no", baseURL: server.baseURL },
    ];
    const total = RUNNABLE * models.length;
    const { home, runArgs, resumeHint } = await setUp("servers-killed", models);
    const runId = "servers-killed-1";

    const run = mmsafe(runArgs(runId));
    await waitFor("30% of the questions", () => server.stats().requests >= total * 0.3 || run.hasExited());
    assert.equal(run.hasExited(), false, `the run ended before the kill:\n${run.output.stderr}`);
    // The servers' process names itself in the home (pid, its parent's pid, ports).
    const holder = JSON.parse(await readFile(path.join(home, "aws", "servers.json"), "utf8")) as {
      pid: number;
      ownerPid: number;
    };
    assert.equal(holder.ownerPid, run.child.pid);
    process.kill(holder.pid, "SIGKILL");
    const { code } = await run.exited;
    const atKill = server.stats();

    assert.equal(code, 1, run.output.stderr);
    assert.doesNotMatch(run.output.stderr, CRASH, run.output.stderr);
    assert.match(
      run.output.stderr,
      new RegExp(
        `^run ${runId} stopped: the embedded S3/DynamoDB servers \\(pid ${holder.pid}\\) were killed \\(SIGKILL\\) during run ${runId}\\.$`,
        "m",
      ),
    );
    assert.ok(run.output.stderr.trimEnd().endsWith(`resume with: ${resumeHint(runId)}`), run.output.stderr);

    const kept = await readHome(home, runId);
    const resumed = mmsafe([...runArgs(runId), "--quiet"]);
    assert.equal((await resumed.exited).code, 0, resumed.output.stderr);
    const done = await readHome(home, runId);
    assertComplete(done.verdicts, models);
    const question = await questionsOf(home, models);
    const inResume = askedBetween(atKill, server.stats());
    for (const v of kept.verdicts) assert.equal(inResume(question(v)), 0, `${v.verdictKey} asked again`);
  });
});

describe("the home's lock (embedded servers of one data folder)", () => {
  it("a second opener is refused, or reads through the first one's servers; the lock passes on at close", async () => {
    const dir = path.join(work, "lock", "aws");
    const first = await startEmbeddedAws(dir);
    try {
      const holder = JSON.parse(await readFile(path.join(dir, "servers.json"), "utf8")) as Record<
        string,
        unknown
      >;
      assert.deepEqual(
        { pid: holder.pid, ownerPid: holder.ownerPid, host: holder.host },
        { pid: first.pid, ownerPid: process.pid, host: os.hostname() },
      );
      await assert.rejects(startEmbeddedAws(dir), (error: unknown) => {
        assert.ok(error instanceof EmbeddedAwsInUseError, String(error));
        assert.equal(error.holder.pid, first.pid);
        return true;
      });
      const reader = await startEmbeddedAws(dir, { whenInUse: "attach" });
      assert.equal(reader.attachedTo?.pid, first.pid);
      assert.equal(reader.dynamodbEndpoint, first.dynamodbEndpoint);
      await reader.close(); // nothing to close: the servers are the first one's
      assert.deepEqual(serversOf(dir), [first.pid]);
    } finally {
      await first.close();
    }
    const next = await startEmbeddedAws(dir);
    assert.equal(next.attachedTo, null);
    await next.close();
    assert.deepEqual(serversOf(dir), []);
  });
});

/** A reference server in a process of its own (scripts/reference-model-server.ts); its URL once it listens. */
async function serverProcess(
  args: readonly string[],
): Promise<{ baseURL: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ["--import", "tsx", "scripts/reference-model-server.ts", ...args], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  started.push(child);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const baseURL = await new Promise<string>((resolve, reject) => {
    child.once("exit", (exitCode) => reject(new Error(`reference server exited (${exitCode})`)));
    if (child.stdout) createInterface({ input: child.stdout }).once("line", resolve);
  });
  return {
    baseURL,
    stop: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** What a reference server in its own process has received (`GET /stats`). */
async function statsOf(baseURL: string): Promise<ReferenceServerStats> {
  const response = await fetch(new URL("/stats", baseURL));
  return (await response.json()) as ReferenceServerStats;
}

describe("a local run whose endpoints fail", () => {
  it("exits 3 with a line per model without every answer and the resume command, which finishes the run", {
    timeout: 300_000,
  }, async () => {
    // flaky: every request has a 60% chance of a 500 (drawn per question and attempt, so reproducible):
    // some items fail all the client's attempts. broken: every request fails.
    const flaky = await serverProcess(["--faults", "500=0.6", "--fault-seed", "3"]);
    const broken = await serverProcess(["--faults", "500=1"]);
    // More calls at once than elsewhere: failing calls back off between attempts.
    const models = [
      { id: "flaky", model: "random", baseURL: flaky.baseURL, maxConcurrency: 8 },
      { id: "broken", model: "always-no", baseURL: broken.baseURL, maxConcurrency: 8 },
    ];
    const { home, runArgs, resumeHint } = await setUp("failing-endpoints", models);
    const runId = "failing-1";

    const run = mmsafe(runArgs(runId));
    const { code } = await run.exited;
    const { stdout, stderr } = run.output;
    assert.equal(code, 3, stderr);
    assert.doesNotMatch(stderr, CRASH, stderr);

    // What the user is told: the model with no answer above the table; after the report, a line per model
    // (counts, error kinds, a sample message naming the endpoint), then the exact resume command.
    const lines = stdout.split("\n");
    const header = lines.findIndex((l) => /^model\s+strategy\s+Typical/.test(l));
    const noAnswers = lines.findIndex((l) =>
      l.startsWith(
        "NO ANSWERS: broken / baseline answered none of its 36 items; its row below is not a result",
      ),
    );
    assert.ok(noAnswers >= 0 && noAnswers < header, stdout);
    assert.match(
      stdout,
      new RegExp(`^Run ${runId} — paper scoring`, "m"),
      "flaky answered: a result, flagged",
    );
    const { verdicts } = await readHome(home, runId);
    assertComplete(verdicts, models);
    const errorsOf = (id: string) => verdicts.filter((v) => v.modelId === id && v.status === "error");
    const flakyErrors = errorsOf("flaky").length;
    assert.ok(flakyErrors > 0 && flakyErrors < RUNNABLE, `flaky: ${flakyErrors} errors`);
    assert.equal(errorsOf("broken").length, RUNNABLE);
    const tail = lines.slice(lines.findIndex((l) => l.startsWith(`run ${runId} finished, but`)));
    assert.equal(
      tail[0],
      `run ${runId} finished, but ${flakyErrors + RUNNABLE} verdicts are not answers (errors or missing):`,
    );
    assert.match(
      tail[1] ?? "",
      new RegExp(
        `^  flaky / baseline: ${flakyErrors} of 36 without an answer \\(server_error ${flakyErrors}\\): 500 `,
      ),
    );
    assert.match(tail[2] ?? "", /^ {2}broken \/ baseline: 36 of 36 without an answer \(.*\): .+/);
    assert.equal(tail[3], `resume to retry them: ${resumeHint(runId)}`);

    // What the endpoints received: every attempt the verdicts record, and no answered question twice.
    const flakyStats = await statsOf(flaky.baseURL);
    const brokenStats = await statsOf(broken.baseURL);
    const attemptsOf = (id: string) =>
      verdicts.filter((v) => v.modelId === id).reduce((n, v) => n + v.attempts, 0);
    const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
    assert.ok(sum(flakyStats.byPrompt) >= attemptsOf("flaky"), "every attempt reached the endpoint");
    assert.ok(
      Object.values(flakyStats.answeredByPrompt).every((n) => n === 1),
      "no question answered twice",
    );
    assert.equal(sum(flakyStats.answeredByPrompt), RUNNABLE - flakyErrors);
    assert.equal(brokenStats.faults["500"], brokenStats.requests, "broken answered nothing");

    // The logs: no JSON line per error verdict (the progress display sums them up per model), no
    // Powertools empty-metrics warning, no SDK stream-length warning.
    assert.doesNotMatch(stderr, /"level":"WARN"/);
    assert.doesNotMatch(stderr, /No application metrics to publish|Stream of unknown length/);
    assert.match(
      stderr,
      new RegExp(`^flaky: \\d+ errors? \\(server_error \\d+\\) at ${flaky.baseURL}: 500 `, "m"),
    );
    assert.match(stderr, new RegExp(`^broken: \\d+ errors? \\(.*\\) at ${broken.baseURL}: `, "m"));

    // The endpoints come back (the same ports, no faults): the printed command finishes the run, asking
    // only the items that had no answer.
    const ports = [flaky, broken].map((s) => new URL(s.baseURL).port);
    await flaky.stop();
    await broken.stop();
    const healed = [];
    for (const port of ports) healed.push(await serverProcess(["--port", port ?? "0"]));
    const resumeArgs = (tail[3] ?? "")
      .replace(/^resume to retry them: npm run mmsafe -- run /, "")
      .split(" ");
    const resumed = mmsafe(["run", ...resumeArgs, "--quiet"]);
    const end = await resumed.exited;
    assert.equal(end.code, 0, `${resumed.output.stderr}\n${resumed.output.stdout}`);
    const done = await readHome(home, runId);
    assertComplete(done.verdicts, models);
    assert.ok(done.verdicts.every((v) => v.status === "answered"));
    const asked = await Promise.all(healed.map((s) => statsOf(s.baseURL)));
    assert.equal(asked[0]?.requests, flakyErrors, "flaky: only its error verdicts were asked again");
    assert.equal(asked[1]?.requests, RUNNABLE, "broken: every item, once");
    for (const s of healed) await s.stop();
  });
});
