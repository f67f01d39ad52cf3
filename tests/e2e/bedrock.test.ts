/**
 * Bedrock models in a real local run: `mmsafe run` as a user types it, with the real AWS SDK (SigV4 signing,
 * the standard credentials chain from the environment) against the reference server's Converse route
 * (`POST /model/{id}/converse`, the models file's `endpoint`), beside an OpenAI-compatible model on the same
 * server. Faults are injected by that server, outside the runner's process.
 *
 * - All 1,453 items of the full generated sample, one Bedrock and one OpenAI-compatible model side by side:
 *   every item answered once per model, the accounting exact, the oversized images downscaled for Bedrock
 *   only (and counted), no trace of the secret key anywhere.
 * - Throttling storms, 5xx, hangs, dropped connections and garbage bodies on the Bedrock route: every item
 *   answered in one command, none paid twice.
 * - The start-of-run probe: access denied, an inference profile needed, no credentials: exit 2 in seconds,
 *   with what to do; a bad models file: exit 2 naming the field.
 * - vcd on Bedrock: `logprobs_unavailable` verdicts, no call made.
 *
 * Run: node --import tsx --test tests/e2e/bedrock.test.ts
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { readOfficialDataset } from "../../src/benchmarks/mmsafeaware/layout.ts";
import type { Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import { LARGE_IMAGE_IDS } from "../../src/benchmarks/mmsafeaware/sample.ts";
import type { Verdict } from "../../src/core/schemas.ts";
import {
  type FaultPlan,
  type ReferenceServer,
  startReferenceModelServer,
} from "../../src/local/reference-model-server.ts";
import { CONVERSE_IMAGE_LIMITS } from "../../src/providers/bedrock/limits.ts";
import { localVerdicts, spawnMmsafe } from "../fixtures/local-cli.ts";

const FULL_RUNNABLE = 1453;
const SMALL_RUNNABLE = 36;
const SECRET = "e2eBedrockSecretKey/0123456789abcdefABCDEF";
const ACCESS_KEY = "AKIDE2EBEDROCKTEST";
/** Static test credentials, found by the SDK's default chain in the environment; nothing else to find. */
const CREDENTIALS_ENV = {
  AWS_ACCESS_KEY_ID: ACCESS_KEY,
  AWS_SECRET_ACCESS_KEY: SECRET,
  AWS_EC2_METADATA_DISABLED: "true",
  AWS_CONFIG_FILE: "/nonexistent/config",
  AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/credentials",
};

const work = await mkdtemp(path.join(os.tmpdir(), "mmsafe-bedrock-"));
const reports = path.join(work, "reports");
const servers: ReferenceServer[] = [];
after(async () => {
  for (const server of servers) await server.close().catch(() => undefined);
  await rm(work, { recursive: true, force: true });
});

async function serve(faults?: FaultPlan): Promise<ReferenceServer> {
  const server = await startReferenceModelServer(faults ? { faults } : {});
  servers.push(server);
  return server;
}

const bedrockModel = (server: ReferenceServer, model: string, extra: Record<string, unknown> = {}) => ({
  id: "nova",
  provider: "bedrock",
  model,
  region: "us-east-1",
  endpoint: server.origin,
  maxConcurrency: 8,
  maxTokens: 16,
  pricing: { inputPerMillionTokens: 0.06, outputPerMillionTokens: 0.24 },
  ...extra,
});

async function modelsFile(name: string, models: unknown[]): Promise<string> {
  const file = path.join(work, `${name}.json`);
  await writeFile(file, JSON.stringify({ models }));
  return file;
}

/** `mmsafe run --quiet` with the test credentials in the environment. */
function mmsafeRun(args: string[], env: Record<string, string> = CREDENTIALS_ENV) {
  return spawnMmsafe(["run", "--quiet", "--reports", reports, ...args], env);
}

const reportOf = async (runId: string) =>
  JSON.parse(await readFile(path.join(reports, runId, "report.json"), "utf8")) as Report;

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe("Bedrock and OpenAI-compatible models side by side, all 1,453 items", () => {
  const home = path.join(work, "full-home");
  const dataset = path.join(work, "full");
  let server: ReferenceServer;
  let code: number | null;
  let stderr = "";
  let verdicts: Verdict[] = [];
  let report: Report;
  /** Items whose image exceeds Converse's limits. */
  let oversized: number[] = [];

  before(async () => {
    assert.equal(await spawnMmsafe(["dataset", "sample", "--full", dataset]).exited, 0);
    const found = await readOfficialDataset(dataset);
    oversized = found.items
      .filter((item) => item.imageBytes > CONVERSE_IMAGE_LIMITS.maxBytes)
      .map((item) => item.id)
      .sort((a, b) => a - b);
    server = await serve();
    const file = await modelsFile("side-by-side", [
      bedrockModel(server, "random:7"),
      {
        id: "gpt",
        baseURL: server.baseURL,
        model: "random:11",
        maxConcurrency: 8,
        maxTokens: 16,
        pricing: { inputPerMillionTokens: 2.5, outputPerMillionTokens: 10 },
      },
    ]);
    const run = mmsafeRun([
      "--home",
      home,
      "--run-id",
      "side-1",
      "--models",
      file,
      "--dataset",
      dataset,
      "--no-cache",
    ]);
    code = await run.exited;
    stderr = run.output.stderr;
    verdicts = await localVerdicts(home, "side-1");
    report = await reportOf("side-1");
  });

  it("answers every item once per model", () => {
    assert.equal(code, 0, stderr);
    for (const id of ["nova", "gpt"]) {
      const mine = verdicts.filter((v) => v.modelId === id);
      assert.equal(mine.length, FULL_RUNNABLE, id);
      assert.equal(mine.filter((v) => v.status === "answered").length, FULL_RUNNABLE, id);
    }
    const stats = server.stats();
    assert.equal(stats.byModel["random:7"], FULL_RUNNABLE, "Converse requests: one per item");
    assert.equal(stats.converse.requests, FULL_RUNNABLE);
    assert.equal(stats.byModel["random:11"], FULL_RUNNABLE, "chat-completions requests: one per item");
    assert.deepEqual(stats.converse.lastAuth, {
      accessKeyId: ACCESS_KEY,
      region: "us-east-1",
      service: "bedrock",
    });
  });

  it("keeps the accounting exact: tokens and cost are the verdicts' sums", () => {
    for (const id of ["nova", "gpt"]) {
      const row = report.rows.find((r) => r.modelId === id && r.strategy === "baseline");
      assert.ok(row, id);
      assert.equal(row.counts.planned, FULL_RUNNABLE);
      assert.equal(row.counts.answered, FULL_RUNNABLE);
      assert.equal(row.counts.errored, 0);
      assert.equal(row.counts.missing, 0);
      const mine = verdicts.filter((v) => v.modelId === id);
      const prompt = mine.reduce((s, v) => s + (v.promptTokens ?? 0), 0);
      const completion = mine.reduce((s, v) => s + (v.completionTokens ?? 0), 0);
      assert.ok(prompt > 0 && completion > 0);
      assert.equal(row.usage.promptTokens, prompt, id);
      assert.equal(row.usage.completionTokens, completion, id);
      const pricing = id === "nova" ? [0.06, 0.24] : [2.5, 10];
      const cost = (prompt * (pricing[0] ?? 0) + completion * (pricing[1] ?? 0)) / 1e6;
      assert.ok(
        Math.abs((row.usage.costUsd ?? Number.NaN) - cost) < 1e-9,
        `${id}: ${row.usage.costUsd} ≠ ${cost}`,
      );
    }
  });

  it("downscales exactly the images above Converse's limits, for Bedrock only, and counts them", () => {
    assert.ok(oversized.length > 0, "the full sample holds images above 3.75 MB");
    assert.ok(oversized.every((id) => LARGE_IMAGE_IDS.includes(id)));
    const nova = verdicts.filter((v) => v.modelId === "nova");
    const downscaled = nova.filter((v) => v.imageSent !== null).map((v) => v.itemId);
    assert.deepEqual(
      downscaled.sort((a, b) => a - b),
      oversized,
    );
    for (const v of nova.filter((x) => x.imageSent !== null)) {
      assert.ok((v.imageSent?.bytes ?? Number.POSITIVE_INFINITY) <= CONVERSE_IMAGE_LIMITS.maxBytes);
      assert.ok((v.imageSent?.original.bytes ?? 0) > CONVERSE_IMAGE_LIMITS.maxBytes);
    }
    assert.equal(verdicts.filter((v) => v.modelId === "gpt" && v.imageSent !== null).length, 0);
    const row = (id: string) => report.rows.find((r) => r.modelId === id);
    assert.equal(row("nova")?.counts.imageDownscaled, oversized.length);
    assert.equal(row("gpt")?.counts.imageDownscaled, 0);
  });

  it("shows each model's endpoint, bedrock:<region>/<model> for Bedrock", async () => {
    const models = Object.fromEntries(report.run.models.map((m) => [m.id, m]));
    assert.equal(models.nova?.baseURL, "bedrock:us-east-1/random:7");
    assert.equal(models.nova?.provider, "bedrock");
    assert.equal(models.gpt?.baseURL, server.baseURL);
    const html = await readFile(path.join(reports, "side-1", "report.html"), "utf8");
    assert.ok(html.includes("bedrock:us-east-1/random:7"));
    assert.ok(html.includes("Images sent downscaled"));
  });

  it("leaves no trace of the secret key in the home, the reports or the output", async () => {
    const digest = createHash("sha256").update(SECRET).digest("hex");
    for (const file of [...(await filesUnder(home)), ...(await filesUnder(reports))]) {
      const text = (await readFile(file)).toString("latin1");
      assert.ok(!text.includes(SECRET) && !text.includes(SECRET.slice(0, 12)), file);
      assert.ok(!text.includes(digest), file);
    }
    assert.ok(!stderr.includes(SECRET.slice(0, 12)));
  });
});

describe("Bedrock faults, from the server", () => {
  it("throttling storms, 5xx, hangs, drops and garbage: every item answered in one command, none paid twice", {
    timeout: 300_000,
  }, async () => {
    const server = await serve({
      rates: { "429": 0.3, "500": 0.15, timeout: 0.03, drop: 0.03, garbage: 0.03 },
      seed: 5,
      maxHangMs: 60_000,
    });
    const home = path.join(work, "faults-home");
    // Long enough that a loaded machine's slow answer is not timed out and paid again; hangs still end.
    const file = await modelsFile("faults", [bedrockModel(server, "random:3", { timeoutMs: 5000 })]);
    const run = mmsafeRun(["--home", home, "--run-id", "faults-1", "--models", file, "--no-cache"]);
    assert.equal(await run.exited, 0, run.output.stderr);
    const verdicts = await localVerdicts(home, "faults-1");
    assert.equal(verdicts.length, SMALL_RUNNABLE);
    assert.equal(verdicts.filter((v) => v.status === "answered").length, SMALL_RUNNABLE);
    const stats = server.stats();
    assert.ok(stats.faults["429"] > 0 && stats.faults["500"] > 0, JSON.stringify(stats.faults));
    assert.ok(
      Object.values(stats.answeredByPrompt).every((n) => n === 1),
      "no answer paid twice",
    );
    const retried = verdicts.filter((v) => v.attempts > 1).length;
    assert.ok(retried > 0, "faults were retried");
    const report = await reportOf("faults-1");
    assert.ok((report.rows[0]?.counts.retries ?? 0) >= retried);
  });
});

describe("Bedrock: the start-of-run probe and bad configuration", () => {
  const cases: { name: string; model: string; says: RegExp }[] = [
    {
      name: "access not enabled",
      model: "always-no+denied",
      says: /enable access to always-no\+denied in the Bedrock console in us-east-1/,
    },
    {
      name: "an inference profile needed",
      model: "always-no+needsprofile",
      says: /this model needs an inference profile, e\.g\. us\.always-no\+needsprofile/,
    },
    {
      name: "an unknown model",
      model: "no-such-model",
      says: /Bedrock in us-east-1 has no model "no-such-model"/,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: exit 2 within seconds, saying what to do`, async () => {
      const server = await serve();
      const file = await modelsFile(`probe-${c.model}`, [bedrockModel(server, c.model)]);
      const started = Date.now();
      const run = mmsafeRun(["--home", path.join(work, `probe-home-${cases.indexOf(c)}`), "--models", file]);
      assert.equal(await run.exited, 2, run.output.stderr);
      assert.match(run.output.stderr, c.says);
      assert.ok(Date.now() - started < 60_000);
      assert.equal(server.stats().converse.requests, 1, "one question, not retried");
    });
  }

  it("no AWS credentials at all: exit 2 before any call, naming what to set", async () => {
    const server = await serve();
    const file = await modelsFile("no-credentials", [bedrockModel(server, "always-no")]);
    const run = mmsafeRun(["--home", path.join(work, "no-credentials-home"), "--models", file], {
      AWS_ACCESS_KEY_ID: "",
      AWS_SECRET_ACCESS_KEY: "",
      AWS_SESSION_TOKEN: "",
      AWS_PROFILE: "",
      AWS_EC2_METADATA_DISABLED: "true",
      AWS_CONFIG_FILE: "/nonexistent/config",
      AWS_SHARED_CREDENTIALS_FILE: "/nonexistent/credentials",
    });
    assert.equal(await run.exited, 2, run.output.stderr);
    assert.match(run.output.stderr, /no AWS credentials for Bedrock/);
    assert.match(run.output.stderr, /AWS_PROFILE/);
    assert.equal(server.stats().requests, 0);
  });

  for (const [name, fields, says] of [
    ["a missing region", { region: undefined }, /models\.0\.region: region is required for a Bedrock model/],
    ["an unknown field", { baseURL: "http://x/v1" }, /models\.0: Unrecognized key: "baseURL"/],
    [
      "an unknown provider",
      { provider: "vertex" },
      /models\.0\.provider: provider must be one of openai, bedrock/,
    ],
  ] as const) {
    it(`${name} in the models file: exit 2 naming the field`, async () => {
      const server = await serve();
      const file = await modelsFile(`bad-${name.replace(/\W+/g, "-")}`, [
        { ...bedrockModel(server, "always-no"), ...fields },
      ]);
      const run = mmsafeRun(["--home", path.join(work, "bad-home"), "--models", file]);
      assert.equal(await run.exited, 2, run.output.stderr);
      assert.match(run.output.stderr, says);
    });
  }
});

describe("Bedrock and vcd", () => {
  it("vcd verdicts are logprobs_unavailable errors, with no call; the other strategies answer", async () => {
    const server = await serve();
    const home = path.join(work, "vcd-home");
    const file = await modelsFile("vcd", [bedrockModel(server, "always-no")]);
    const run = mmsafeRun([
      "--home",
      home,
      "--run-id",
      "vcd-1",
      "--models",
      file,
      "--strategies",
      "safety-system-prompt,vcd",
      "--limit",
      "6",
    ]);
    const code = await run.exited;
    assert.notEqual(code, 0, "a row without any answer is not a result");
    const verdicts = await localVerdicts(home, "vcd-1");
    const vcd = verdicts.filter((v) => v.strategy === "vcd");
    assert.equal(vcd.length, 6);
    assert.ok(vcd.every((v) => v.status === "error" && v.error?.kind === "logprobs_unavailable"));
    assert.match(vcd[0]?.error?.message ?? "", /log-probabilities/);
    const prompted = verdicts.filter((v) => v.strategy === "safety-system-prompt");
    assert.equal(prompted.filter((v) => v.status === "answered").length, 6);
    assert.equal(server.stats().converse.requests, 6, "only the safety-system-prompt questions were asked");
  });
});
