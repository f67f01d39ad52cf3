/**
 * The history of runs: summaries from reports, their validation, the index and its trends, and how
 * Aggregate publishes them — concurrent runs included, and never at the cost of the run.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { renderSvg } from "../../src/adapters/chart-render.ts";
import type { ObjectStore } from "../../src/adapters/object-store.ts";
import type { RunRecord } from "../../src/adapters/run-store.ts";
import { computeRow } from "../../src/benchmarks/mmsafeaware/metrics.ts";
import type { RegressionCheck } from "../../src/benchmarks/mmsafeaware/regression.ts";
import { buildReport } from "../../src/benchmarks/mmsafeaware/report.ts";
import {
  buildHistoryIndex,
  parseRunSummary,
  runIdOfSummaryKey,
  summarizeRun,
  trendChart,
  trends,
} from "../../src/core/history.ts";
import type { Verdict } from "../../src/core/schemas.ts";
import { buildVerdict } from "../../src/core/verdicts.ts";
import { estimateAwsCost } from "../../src/deployment/cost.ts";
import { runUsageFromCounters } from "../../src/deployment/run-usage.ts";
import {
  datasetManifestKey,
  REPORTS_INDEX_HTML_KEY,
  REPORTS_INDEX_JSON_KEY,
  RUN_SUMMARIES_PREFIX,
  reportHtmlKey,
  runShardKey,
  runSummaryKey,
} from "../../src/deployment/storage-layout.ts";
import { aggregate, type ListedObject } from "../../src/pipeline/aggregate.ts";
import { toJsonl } from "../../src/pipeline/dataset-io.ts";
import { publishHistory } from "../../src/pipeline/publish-history.ts";
import { isInertSvg } from "../../src/report/report-html.ts";
import { datasetItem } from "../fixtures/dataset-item.ts";
import {
  listingVerdicts,
  memoryBucket,
  testModel as model,
  readOnlyRuns,
} from "../fixtures/history-store.ts";
import { runSummaries, SAMPLE_RUN } from "../fixtures/run-summary.ts";

/** A summary as Aggregate writes it, with one row per (model, Total, Balanced) given. */
const summary = runSummaries(SAMPLE_RUN);

const T0 = "2025-03-01T02:00:00.000Z";
const T1 = "2025-03-02T02:00:00.000Z";
const T2 = "2025-03-03T02:00:00.000Z";

describe("run summaries", () => {
  it("summarizes a report: paper Total and Balanced with CIs per model × strategy, rounded as the headline", () => {
    const items = [datasetItem(983), datasetItem(128), datasetItem(1), datasetItem(2001), datasetItem(2002)];
    const models = [model("m1"), model("always-no", "baseline")];
    const now = new Date(T1);
    const verdicts: Verdict[] = models.flatMap((m) =>
      items.map((item, i) =>
        buildVerdict(
          "run-a",
          m.id,
          "baseline",
          item,
          {
            kind: "answer",
            text: m.id === "m1" && i % 2 === 0 ? (item.expected === "yes" ? "Yes." : "No.") : "No.",
            finishReason: "stop",
            latencyMs: 100,
            promptTokens: 10,
            completionTokens: 1,
            attempts: 1,
            cached: false,
          },
          now,
        ),
      ),
    );
    const rows = models.map((m) =>
      computeRow(
        m,
        "baseline",
        verdicts.filter((v) => v.modelId === m.id),
        items.length,
        0,
      ),
    );
    const report = buildReport({
      version: "0.1.0-test",
      runId: "run-a",
      startedAt: T0,
      finishedAt: T1,
      dataset: {
        name: "t",
        provenance: { kind: "sample", size: "small", seed: 0 },
        checksum: "e".repeat(64),
        records: 5,
        runnable: 5,
        skipped: [],
      },
      plannedItems: items.length,
      selection: { categories: null, limit: null },
      models,
      strategies: ["baseline"],
      rows,
      awsCost: estimateAwsCost(runUsageFromCounters({}, 1)),
    });
    const regression: RegressionCheck = {
      schedule: "nightly",
      previousRunId: "run-0",
      detected: true,
      findings: [
        {
          modelId: "m1",
          strategy: "baseline",
          metric: "total",
          previous: 99,
          current: 40,
          drop: 59,
          margin: 9.5,
        },
      ],
    };
    const s = summarizeRun({ report, schedule: "nightly", regression });
    assert.equal(s.runId, "run-a");
    assert.equal(s.schedule, "nightly");
    assert.deepEqual(s.report, {
      html: "run-a/report.html",
      json: "run-a/report.json",
      markdown: "run-a/report.md",
    });
    assert.deepEqual(
      s.rows.map((r) => [r.modelId, r.kind, r.strategy]),
      [
        ["m1", "model", "baseline"],
        ["always-no", "baseline", "baseline"],
      ],
    );
    const row = rows[0];
    assert.ok(row && row.paper.total !== null && row.paperDetail.ci.total);
    assert.equal(s.rows[0]?.total, Math.round(row.paper.total * 10) / 10);
    assert.equal(s.rows[0]?.totalCi?.low, Math.round(row.paperDetail.ci.total.low * 10) / 10);
    assert.deepEqual(s.regression, {
      previousRunId: "run-0",
      detected: true,
      findings: regression.findings,
    });
    assert.equal(s.cost.awsUsd, report.cost?.aws.totalUsd);
    assert.equal(s.dataset.limit, null);
    // What is written is what is read back.
    const back = parseRunSummary(runSummaryKey("run-a"), JSON.stringify(s));
    assert.ok(back.ok);
    assert.deepEqual(back.summary, s);
  });

  it("reports, never drops, a summary that is not JSON, has the wrong shape, or is another run's", () => {
    const good = summary("run-b", T1, [{ modelId: "m1", total: 60, balanced: 55 }]);
    const cases: [string, string, RegExp][] = [
      [runSummaryKey("run-b"), "{not json", /not JSON/],
      [runSummaryKey("run-b"), JSON.stringify({ ...good, schemaVersion: 2 }), /schemaVersion/],
      [runSummaryKey("run-b"), JSON.stringify({ ...good, rows: [{ modelId: 1 }] }), /rows\.0/],
      [runSummaryKey("run-c"), JSON.stringify(good), /names run "run-b", but its key names run "run-c"/],
      [
        runSummaryKey("run-b"),
        JSON.stringify({ ...good, report: { ...good.report, html: "https://example.invalid/x.html" } }),
        /report\.html/,
      ],
      [`${RUN_SUMMARIES_PREFIX}notes.txt`, JSON.stringify(good), /not a summary key/],
    ];
    for (const [key, text, reason] of cases) {
      const parsed = parseRunSummary(key, text);
      assert.equal(parsed.ok, false, key);
      if (!parsed.ok) {
        assert.equal(parsed.invalid.key, key);
        assert.match(parsed.invalid.reason, reason);
        assert.ok(parsed.invalid.reason.length <= 400);
      }
    }
    assert.equal(runIdOfSummaryKey(runSummaryKey("nightly-1")), "nightly-1");
    assert.equal(runIdOfSummaryKey("reports/nightly-1/report.json"), null);
  });
});

describe("the history index", () => {
  const a = summary("run-a", T0, [
    { modelId: "m1", total: 60, balanced: 55 },
    { modelId: "once", total: 50, balanced: 50 },
  ]);
  const b = summary("run-b", T1, [{ modelId: "m1", total: 62, balanced: 57 }]);
  const c = summary("run-c", T2, [{ modelId: "m1", total: 40, balanced: null }], {
    regression: {
      previousRunId: "run-b",
      detected: true,
      findings: [
        {
          modelId: "m1",
          strategy: "baseline",
          metric: "total",
          previous: 62,
          current: 40,
          drop: 22,
          margin: 5,
        },
      ],
    },
  });

  it("lists runs newest first and keeps the unreadable summaries", () => {
    const index = buildHistoryIndex({
      summaries: [b, c, a],
      invalid: [
        { key: `${RUN_SUMMARIES_PREFIX}z.json`, reason: "x" },
        { key: `${RUN_SUMMARIES_PREFIX}y.json`, reason: "y" },
      ],
      generatedAt: T2,
      version: "0.1.0-test",
    });
    assert.deepEqual(
      index.runs.map((r) => r.runId),
      ["run-c", "run-b", "run-a"],
    );
    assert.deepEqual(
      index.invalid.map((x) => x.key),
      [`${RUN_SUMMARIES_PREFIX}y.json`, `${RUN_SUMMARIES_PREFIX}z.json`],
    );
    assert.equal(index.schemaVersion, 1);
  });

  it("has a trend for each (model, strategy) in more than one run, oldest first, regressions flagged per metric", () => {
    const [trend, ...others] = trends([c, a, b]);
    assert.equal(others.length, 0, "'once' is in one run only");
    assert.ok(trend);
    assert.deepEqual([trend.modelId, trend.strategy], ["m1", "baseline"]);
    assert.deepEqual(
      trend.points.map((p) => [p.runId, p.total, p.balanced, p.regression.total, p.regression.balanced]),
      [
        ["run-a", 60, 55, false, false],
        ["run-b", 62, 57, false, false],
        ["run-c", 40, null, true, false],
      ],
    );
  });

  it("draws a trend as inert SVG, with a band per metric and the regression marked", async () => {
    const [trend] = trends([a, b, c]);
    assert.ok(trend);
    const chart = trendChart(trend);
    assert.match(chart.caption, /3 runs/);
    assert.match(chart.caption, /▼ marks the run flagged as a regression/);
    const svg = await renderSvg(chart.spec);
    assert.ok(isInertSvg(svg));
    assert.match(svg, /viewBox=/, "scales to its container");
    assert.match(svg, />Total</);
    assert.match(svg, />Balanced</);
    assert.equal(
      (svg.match(/class="mark-area role-mark/g) ?? []).length,
      2,
      "a band for Total and one for Balanced",
    );
    // The one flagged number: a red triangle of its own mark.
    assert.equal((svg.match(/fill="#e45756"/g) ?? []).length, 1);
  });
});

describe("Aggregate publishes the history", () => {
  it("writes the run's summary, index.json and index.html, counting a bad summary without dropping it", async () => {
    const bucket = memoryBucket();
    await bucket.store.put(
      runSummaryKey("run-a"),
      JSON.stringify(summary("run-a", T0, [{ modelId: "m1", total: 60, balanced: 55 }])),
      "application/json",
    );
    await bucket.store.put(runSummaryKey("broken"), "{", "application/json");
    const own = summary("run-b", T1, [{ modelId: "m1", total: 61, balanced: 56 }]);
    const outcome = await publishHistory(own, {
      store: bucket.store,
      listObjects: bucket.listObjects,
      now: () => new Date(T2),
      version: "0.1.0-test",
      renderCharts: async (specs) => Promise.all(specs.map(renderSvg)),
    });
    assert.equal(outcome.error, null);
    assert.equal(outcome.summary, `s3://test-bucket/${runSummaryKey("run-b")}`);
    assert.deepEqual(outcome.index, {
      json: `s3://test-bucket/${REPORTS_INDEX_JSON_KEY}`,
      html: `s3://test-bucket/${REPORTS_INDEX_HTML_KEY}`,
    });
    assert.deepEqual([outcome.runs, outcome.invalid], [2, 1]);
    const index = bucket.index();
    assert.deepEqual(
      index.runs.map((r) => r.runId),
      ["run-b", "run-a"],
    );
    assert.deepEqual(
      index.invalid.map((x) => x.key),
      [runSummaryKey("broken")],
    );
    const html = bucket.objects.get(REPORTS_INDEX_HTML_KEY)?.body ?? "";
    assert.match(
      html,
      /<figure class="trend" data-model="m1" data-strategy="baseline" data-runs="2"><figcaption>.*<svg/s,
    );
    assert.match(html, /id="invalid" role="alert"/);
  });

  it("ends with an index of every run when runs finish at once, even if a stale index lands last", async () => {
    const bucket = memoryBucket();
    // Run A lists before B's summary exists, and its first index write is held until B is done: without the
    // listing after the write, A's stale index (A only) would be the last word.
    let releaseA: () => void = () => undefined;
    const heldA = new Promise<void>((resolve) => {
      releaseA = resolve;
    });
    let aWrites = 0;
    const storeA: ObjectStore = {
      ...bucket.store,
      put: async (key, body, type) => {
        if (key === REPORTS_INDEX_JSON_KEY && aWrites++ === 0) await heldA;
        await bucket.store.put(key, body, type);
      },
    };
    const a = summary("run-a", T0, [{ modelId: "m1", total: 60, balanced: 55 }]);
    const b = summary("run-b", T1, [{ modelId: "m1", total: 61, balanced: 56 }]);
    const deps = (store: ObjectStore) => ({
      store,
      listObjects: bucket.listObjects,
      now: () => new Date(T2),
      version: "0.1.0-test",
    });
    const publishingA = publishHistory(a, deps(storeA));
    // A has listed (only its own summary) and waits on its index write.
    while (aWrites === 0) await new Promise((r) => setImmediate(r));
    const outcomeB = await publishHistory(b, deps(bucket.store));
    assert.equal(outcomeB.runs, 2);
    releaseA();
    const outcomeA = await publishingA;
    assert.equal(outcomeA.error, null);
    assert.equal(outcomeA.runs, 2, "A saw B's summary on its second listing and rebuilt");
    assert.deepEqual(
      bucket.index().runs.map((r) => r.runId),
      ["run-b", "run-a"],
    );
    assert.match(
      bucket.objects.get(REPORTS_INDEX_HTML_KEY)?.body ?? "",
      /data-run-id="run-a"[\s\S]*data-run-id="run-b"|data-run-id="run-b"[\s\S]*data-run-id="run-a"/,
    );
  });

  describe("never fails the run", () => {
    const runId = "run-agg";
    const items = [datasetItem(983), datasetItem(128), datasetItem(1), datasetItem(2001)];
    const models = [model("m1")];
    const record = (): RunRecord => ({
      runId,
      status: "RUNNING",
      executionId: "exec",
      dataset: "t",
      datasetChecksum: "e".repeat(64),
      datasetProvenance: { kind: "sample", size: "small", seed: 0 },
      configHash: "h",
      models,
      strategies: ["baseline"],
      categories: undefined,
      limit: undefined,
      plannedItems: items.length,
      plannedVerdicts: items.length,
      shards: 1,
      startedAt: T1,
      updatedAt: T1,
      attempts: 1,
    });
    const runs = readOnlyRuns(async () => record());
    const verdicts = listingVerdicts({
      listRun: async () =>
        items.map((item) =>
          buildVerdict(
            runId,
            "m1",
            "baseline",
            item,
            {
              kind: "answer",
              text: "No.",
              finishReason: "stop",
              latencyMs: 1,
              promptTokens: 1,
              completionTokens: 1,
              attempts: 1,
              cached: false,
            },
            new Date(T1),
          ),
        ),
    });
    const seeded = async () => {
      const bucket = memoryBucket();
      await bucket.store.put(
        datasetManifestKey("t"),
        JSON.stringify({
          schemaVersion: 2,
          name: "t",
          provenance: { kind: "sample", size: "small", seed: 0 },
          checksum: "e".repeat(64),
          createdAt: T0,
          records: 4,
          runnable: 4,
          skipped: [],
          shards: [],
        }),
        "application/json",
      );
      await bucket.store.put(runShardKey(runId, 0), toJsonl(items), "application/x-ndjson");
      return bucket;
    };

    it("publishes the history from within Aggregate: the output says where", async () => {
      const bucket = await seeded();
      const output = await aggregate(
        { runId, bucket: "test-bucket" },
        {
          store: bucket.store,
          runs,
          verdicts,
          now: () => new Date(T2),
          version: "0.1.0-test",
          listObjects: bucket.listObjects,
        },
      );
      assert.equal(output.history.error, null);
      assert.equal(output.history.runs, 1);
      assert.equal(bucket.index().runs[0]?.runId, runId);
      assert.ok(bucket.objects.has(runSummaryKey(runId)));
    });

    it("logs a listing that fails and still publishes the report", async () => {
      const bucket = await seeded();
      const warnings: unknown[] = [];
      const output = await aggregate(
        { runId, bucket: "test-bucket" },
        {
          store: bucket.store,
          runs,
          verdicts,
          now: () => new Date(T2),
          version: "0.1.0-test",
          listObjects: async () => {
            throw new Error("AccessDenied: s3:ListBucket");
          },
          logger: { warn: (message, extra) => warnings.push({ message, extra }) },
        },
      );
      assert.equal(output.status, "SUCCEEDED");
      assert.ok(bucket.objects.has(reportHtmlKey(runId)));
      assert.deepEqual(output.history, {
        summary: `s3://test-bucket/${runSummaryKey(runId)}`,
        index: null,
        runs: 0,
        invalid: 0,
        error: "AccessDenied: s3:ListBucket",
      });
      assert.equal(warnings.length, 1);
      assert.match(JSON.stringify(warnings[0]), /reports\/index\.html.*AccessDenied/);
    });

    it("gives up on a listing that hangs once the time budget is spent", async () => {
      const bucket = await seeded();
      const started = Date.now();
      const output = await aggregate(
        { runId, bucket: "test-bucket" },
        {
          store: bucket.store,
          runs,
          verdicts,
          now: () => new Date(T2),
          version: "0.1.0-test",
          listObjects: () => new Promise<ListedObject[]>(() => undefined),
          historyTimeBudgetMs: 50,
        },
      );
      assert.ok(Date.now() - started < 10_000);
      assert.match(output.history.error ?? "", /not done within 50 ms/);
      assert.ok(bucket.objects.has(reportHtmlKey(runId)));
      assert.equal(bucket.objects.has(REPORTS_INDEX_HTML_KEY), false);
    });
  });
});
