/**
 * End to end: the response cache across local runs, through the real workflow, handlers, `openai` SDK and
 * embedded S3, against a reference server that counts every request.
 *
 * A: m1 → every request is paid; B: the identical config again under a new run id → no request at all, the
 * same answers; C: m1 and a new m2 → requests for m2 only; D: m1 with `cache: false` → every request again.
 * Every run evaluates baseline and vcd, so vcd's two calls (clean and noised image) are cached too.
 *
 * Run: node --import tsx --test tests/e2e/cache.test.ts
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { createDocumentClient, createS3Client } from "../../src/adapters/aws-clients.ts";
import { DynamoVerdictStore } from "../../src/adapters/verdict-store.ts";
import type { Report } from "../../src/benchmarks/mmsafeaware/report.ts";
import type { ModelConfig, Verdict } from "../../src/core/schemas.ts";
import { S3_PREFIXES } from "../../src/deployment/storage-layout.ts";
import { LOCAL_RESOURCES } from "../../src/local/embedded-aws.ts";
import {
  type ReferenceServer,
  type ReferenceServerStats,
  startReferenceModelServer,
} from "../../src/local/reference-model-server.ts";
import { closeLocalSession, type LocalRunResult, runLocal } from "../../src/local/runner.ts";
import { referenceModel } from "../fixtures/reference-models.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

/** Items evaluated per run: a sample of N runnable items, stratified by category (`limit`). */
const N = 12;
const STRATEGIES = ["baseline", "vcd"];
/** Requests per model and run: one for baseline, two for vcd (clean and noised image). */
const CALLS_PER_MODEL = N * 3;
const M1 = "noise-sensitive";
const M2 = "always-no";

const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-e2e-cache-"));
let server: ReferenceServer;

interface Run {
  result: LocalRunResult;
  /** Requests the reference server received during the run. */
  stats: ReferenceServerStats;
  verdicts: Verdict[];
  report: Report;
}
const runs: Record<"a" | "b" | "c" | "d", Run> = {} as Record<"a" | "b" | "c" | "d", Run>;

const model = (id: string): ModelConfig => referenceModel(server, id, id);

async function run(runId: string, models: string[], extra: Record<string, boolean> = {}): Promise<Run> {
  server.resetStats();
  const result = await runLocal({
    home,
    reportsDir: path.join(home, "reports"),
    models: models.map(model),
    input: { runId, strategies: STRATEGIES, limit: N, shardSize: 5, ...extra },
  });
  assert.equal(result.execution.status, "SUCCEEDED", `${result.execution.error}: ${result.execution.cause}`);
  const stats = server.stats();
  const verdicts = await new DynamoVerdictStore(
    createDocumentClient(),
    LOCAL_RESOURCES.verdictsTable,
  ).listRun(runId);
  const report = JSON.parse(
    await readFile(path.join(result.reportDir ?? "", "report.json"), "utf8"),
  ) as Report;
  return { result, stats, verdicts, report };
}

/** What a verdict says, without what differs between runs (run id, timing, tokens, cached). */
const answerOf = (v: Verdict) => ({
  verdictKey: v.verdictKey,
  status: v.status,
  response: v.response,
  strictAnswer: v.strictAnswer,
  correctPaper: v.correctPaper,
  vcd: v.vcd,
});
const answersOf = (verdicts: readonly Verdict[], modelId: string) =>
  verdicts
    .filter((v) => v.modelId === modelId)
    .map(answerOf)
    .sort((x, y) => x.verdictKey.localeCompare(y.verdictKey));

const cachedCounts = (verdicts: readonly Verdict[]) => {
  const counts: Record<string, { cached: number; asked: number }> = {};
  for (const v of verdicts) {
    const key = `${v.modelId}/${v.strategy}`;
    const c = counts[key] ?? { cached: 0, asked: 0 };
    if (v.cached) c.cached++;
    else c.asked++;
    counts[key] = c;
  }
  return counts;
};

const reportCached = (report: Report) =>
  Object.fromEntries(report.rows.map((r) => [`${r.modelId}/${r.strategy}`, r.counts.cached]));

before(async () => {
  server = await startReferenceModelServer();
  runs.a = await run("cache-a", [M1]);
  runs.b = await run("cache-b", [M1]);
  runs.c = await run("cache-c", [M1, M2]);
  runs.d = await run("cache-d", [M1], { cache: false });
});

after(async () => {
  await closeLocalSession();
  await server?.close();
  await rm(home, { recursive: true, force: true });
});

describe("the response cache across runs", () => {
  it("A, first run: every request is paid once, no answer is cached", () => {
    assert.deepEqual(runs.a.stats.byModel, { [M1]: CALLS_PER_MODEL });
    assert.equal(runs.a.stats.requests, CALLS_PER_MODEL);
    // byPrompt counts (model, text, image): baseline and vcd's clean call ask the same question (with and
    // without log-probabilities), vcd's noised call another; nothing is asked more often than that.
    const perPrompt = Object.values(runs.a.stats.byPrompt).sort();
    assert.deepEqual(perPrompt, [...Array<number>(N).fill(1), ...Array<number>(N).fill(2)]);
    assert.equal(runs.a.verdicts.length, N * STRATEGIES.length);
    assert.ok(runs.a.verdicts.every((v) => v.status === "answered" && !v.cached));
    assert.ok(runs.a.verdicts.every((v) => (v.promptTokens ?? 0) > 0));
  });

  it("B, the identical config under a new run id: zero model calls, the same answers, all cached", () => {
    assert.equal(runs.b.stats.requests, 0);
    assert.deepEqual(runs.b.stats.byModel, {});
    assert.deepEqual(cachedCounts(runs.b.verdicts), {
      [`${M1}/baseline`]: { cached: N, asked: 0 },
      [`${M1}/vcd`]: { cached: N, asked: 0 },
    });
    assert.deepEqual(answersOf(runs.b.verdicts, M1), answersOf(runs.a.verdicts, M1));
    for (const v of runs.b.verdicts) {
      assert.deepEqual([v.promptTokens, v.completionTokens], [0, 0], `${v.verdictKey}: nothing paid`);
      // vcd's two cached calls count one attempt each.
      assert.equal(v.attempts, v.strategy === "vcd" ? 2 : 1);
    }
    // vcd decided from cached log-probabilities exactly as from fresh ones.
    assert.ok(runs.b.verdicts.some((v) => v.strategy === "vcd" && v.vcd?.answer === "no"));
  });

  it("C, a model added to the old config: only the new model is asked", () => {
    assert.deepEqual(runs.c.stats.byModel, { [M2]: CALLS_PER_MODEL });
    assert.deepEqual(cachedCounts(runs.c.verdicts), {
      [`${M1}/baseline`]: { cached: N, asked: 0 },
      [`${M1}/vcd`]: { cached: N, asked: 0 },
      [`${M2}/baseline`]: { cached: 0, asked: N },
      [`${M2}/vcd`]: { cached: 0, asked: N },
    });
    assert.deepEqual(answersOf(runs.c.verdicts, M1), answersOf(runs.a.verdicts, M1));
  });

  it("D, cache: false: every request of m1 is paid again, with the same answers", () => {
    assert.deepEqual(runs.d.stats.byModel, { [M1]: CALLS_PER_MODEL });
    assert.ok(runs.d.verdicts.every((v) => !v.cached && (v.promptTokens ?? 0) > 0));
    assert.deepEqual(answersOf(runs.d.verdicts, M1), answersOf(runs.a.verdicts, M1));
  });

  it("the report says how many answers came from the cache", async () => {
    assert.deepEqual(reportCached(runs.a.report), { [`${M1}/baseline`]: 0, [`${M1}/vcd`]: 0 });
    assert.deepEqual(reportCached(runs.b.report), { [`${M1}/baseline`]: N, [`${M1}/vcd`]: N });
    assert.deepEqual(reportCached(runs.c.report), {
      [`${M1}/baseline`]: N,
      [`${M1}/vcd`]: N,
      [`${M2}/baseline`]: 0,
      [`${M2}/vcd`]: 0,
    });
    assert.deepEqual(reportCached(runs.d.report), { [`${M1}/baseline`]: 0, [`${M1}/vcd`]: 0 });
    const markdown = await readFile(path.join(runs.b.result.reportDir ?? "", "report.md"), "utf8");
    assert.match(markdown, new RegExp(`${N} answers from the cache`));
  });

  it("holds one entry per distinct request under cache/, shared by the runs (D wrote none)", async () => {
    const s3 = createS3Client(true);
    try {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3.send(
          new ListObjectsV2Command({
            Bucket: LOCAL_RESOURCES.bucket,
            Prefix: S3_PREFIXES.cache,
            ContinuationToken: token,
          }),
        );
        keys.push(...(page.Contents ?? []).map((o) => o.Key ?? ""));
        token = page.NextContinuationToken;
      } while (token);
      assert.equal(keys.length, 2 * CALLS_PER_MODEL, "m1's and m2's requests, each stored once");
      assert.ok(
        keys.every((k) => /^cache\/responses\/[0-9a-f]{2}\/[0-9a-f]{64}\.json$/.test(k)),
        keys[0],
      );
    } finally {
      s3.destroy();
    }
  });
});
