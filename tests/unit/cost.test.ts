import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, it } from "node:test";
import {
  AWS_PRICES,
  addUsage,
  type CostEstimate,
  emptyAwsUsage,
  estimateAwsCost,
  estimateRunForItems,
  formatUsd,
  type RunUsage,
  renderCostMarkdown,
  standardTransitionsFor,
  withPriceOverrides,
} from "../../src/core/cost.ts";
import { WORKFLOW_DEFINITION } from "../../src/core/storage-layout.ts";

const close = (actual: number | undefined, expected: number, what: string) =>
  assert.ok(
    actual !== undefined && Math.abs(actual - expected) < 1e-12,
    `${what}: ${actual} ≠ ${expected} (expected)`,
  );

const usdOf = (estimate: CostEstimate, item: string) => estimate.lines.find((l) => l.item === item)?.usd;

describe("estimateAwsCost", () => {
  const usage: RunUsage = {
    lambda: [
      { function: "plan", memoryMb: 512, invocations: 1, billedMs: 2000 }, // 0.5 GB × 2 s = 1 GB-s
      { function: "evaluateShard", memoryMb: 1024, invocations: 10, billedMs: 40_000 }, // 40 GB-s
    ],
    standardTransitions: 15,
    express: { executions: 10, billedMs: 41_000, memoryMb: 50 }, // billed as 64 MB: 0.0625 × 41 = 2.5625 GB-s
    aws: {
      s3: { get: 1000, put: 20, list: 0, other: 10 },
      dynamodb: { readUnits: 500, writeUnits: 1000, requests: 1200 },
    },
    events: 1,
  };

  it("prices each line by hand-computed quantities", () => {
    const e = estimateAwsCost(usage);
    close(usdOf(e, "Lambda plan compute (512 MB arm64)"), 1 * 0.0000133334, "plan GB-s");
    close(usdOf(e, "Lambda evaluateShard compute (1024 MB arm64)"), 40 * 0.0000133334, "shard GB-s");
    close(usdOf(e, "Lambda requests"), 11 * 0.0000002, "Lambda requests");
    close(usdOf(e, "Step Functions Standard state transitions"), 15 * 0.000025, "transitions");
    close(usdOf(e, "Step Functions Express requests"), 10 * 0.000001, "express requests");
    close(usdOf(e, "Step Functions Express duration (64 MB)"), 2.5625 * 0.00001667, "express duration");
    close(usdOf(e, "DynamoDB write request units"), 1000 * 0.000000625, "WRU");
    close(usdOf(e, "DynamoDB read request units"), 500 * 0.000000125, "RRU");
    close(usdOf(e, "S3 PUT/COPY/POST/LIST requests"), 20 * 0.000005, "S3 put");
    close(usdOf(e, "S3 GET and other requests"), 1010 * 0.0000004, "S3 get");
    close(usdOf(e, "EventBridge custom events"), 0.000001, "events");
    // 41 GB-s × 0.0000133334 = 0.0005466694, + 0.0000022 + 0.000375 + 0.00001 + 0.000042716875 + 0.000625
    // + 0.0000625 + 0.0001 + 0.000404 + 0.000001
    close(e.totalUsd, 0.002169086275, "total");
    assert.equal(e.lines.length, 11, "no logs line: no logsGb given");
    assert.deepEqual(e.prices, { region: "us-east-1", asOf: AWS_PRICES.asOf });
    const wru = e.lines.find((l) => l.item === "DynamoDB write request units");
    assert.deepEqual(
      { quantity: wru?.quantity, unit: wru?.unit, price: wru?.price },
      { quantity: 1000, unit: "WRU", price: "$0.625 per million" },
    );
  });

  it("leaves out zero quantities and prices logs when given", () => {
    const e = estimateAwsCost({
      lambda: [],
      standardTransitions: 0,
      express: { executions: 0, billedMs: 0, memoryMb: 64 },
      aws: emptyAwsUsage(),
      events: 0,
      logsGb: 2,
    });
    assert.deepEqual(
      e.lines.map((l) => [l.item, l.usd]),
      [["CloudWatch Logs ingestion", 1]],
    );
    assert.equal(e.totalUsd, 1);
  });

  it("uses overridden prices and labels them", () => {
    const prices = withPriceOverrides({
      region: "eu-west-1",
      asOf: "2026-02-01",
      dynamodb: { perMillionWriteUnits: 0.7625 },
    });
    assert.equal(prices.dynamodb.perMillionReadUnits, AWS_PRICES.dynamodb.perMillionReadUnits);
    const e = estimateAwsCost(usage, prices);
    close(usdOf(e, "DynamoDB write request units"), 1000 * 0.0000007625, "overridden WRU");
    assert.deepEqual(e.prices, { region: "eu-west-1", asOf: "2026-02-01" });
  });

  it("adds usages", () => {
    const sum = addUsage(usage.aws, usage.aws);
    assert.deepEqual(sum, {
      s3: { get: 2000, put: 40, list: 0, other: 20 },
      dynamodb: { readUnits: 1000, writeUnits: 2000, requests: 2400 },
    });
  });
});

describe("standardTransitionsFor", () => {
  it("counts the states of the success and failure paths plus one per child execution", () => {
    assert.equal(standardTransitionsFor(0, "succeeded"), 5);
    assert.equal(standardTransitionsFor(59, "succeeded"), 64);
    assert.equal(standardTransitionsFor(3, "failed"), 9); // Plan, Evaluate + 3, 4 failure states
    assert.equal(standardTransitionsFor(3, "failed", "Evaluate"), 9);
    assert.equal(standardTransitionsFor(3, "failed", "Aggregate"), 10);
    assert.equal(standardTransitionsFor(3, "failed", "Plan"), 4);
    assert.throws(() => standardTransitionsFor(-1, "succeeded"), RangeError);
  });

  it("matches the paths of the workflow definition", async () => {
    interface State {
      Type: string;
      Next?: string;
      Catch?: { Next: string }[];
    }
    const asl = JSON.parse(await readFile(WORKFLOW_DEFINITION, "utf8")) as {
      StartAt: string;
      States: Record<string, State>;
    };
    const path = (from: string): string[] => {
      const names: string[] = [];
      for (let name: string | undefined = from; name !== undefined; name = asl.States[name]?.Next) {
        names.push(name);
      }
      return names;
    };
    const success = path(asl.StartAt);
    assert.deepEqual(success, ["Plan", "Evaluate", "Aggregate", "PublishCompleted", "RunSucceeded"]);
    const failure = path(asl.States.Evaluate?.Catch?.[0]?.Next ?? "");
    assert.deepEqual(failure, ["DescribeFailure", "MarkRunFailed", "PublishFailed", "RunFailed"]);
    assert.equal(asl.States.Aggregate?.Catch?.[0]?.Next, "DescribeFailure");
    const planFailure = path(asl.States.Plan?.Catch?.[0]?.Next ?? "");
    assert.deepEqual(planFailure, ["DescribePlanFailure", "PublishFailed", "RunFailed"]);
    assert.equal(standardTransitionsFor(0, "succeeded"), success.length);
    assert.equal(standardTransitionsFor(0, "failed", "Evaluate"), 2 + failure.length);
    assert.equal(standardTransitionsFor(0, "failed", "Aggregate"), 3 + failure.length);
    assert.equal(standardTransitionsFor(0, "failed", "Plan"), 1 + planFailure.length);
  });
});

describe("estimateRunForItems", () => {
  it("prices the worked example: 1,453 items, one model and strategy, shards of 25, 1 s calls, 8 at once", () => {
    const e = estimateRunForItems({
      items: 1453,
      models: 1,
      strategies: 1,
      shardSize: 25,
      modelLatencyMs: 1000,
      maxConcurrency: 8,
    });
    console.log(renderCostMarkdown(e, [{ modelId: "example-model", strategy: "baseline", usd: null }]));
    for (const note of e.notes) console.log(note);

    // 59 shards: 58 of 25 items (ceil(25/8) = 4 waves of 1 s, + 0.5 s) and one of 3 (1 wave, + 0.5 s).
    const shard = e.usage.lambda.find((l) => l.function === "evaluateShard");
    assert.deepEqual(shard, {
      function: "evaluateShard",
      memoryMb: 1024,
      invocations: 59,
      billedMs: 262_500,
    });
    assert.equal(e.usage.standardTransitions, 64);
    // Express: 4.6 s and 1.6 s per child (+100 ms invoke), 64 MB.
    assert.deepEqual(e.usage.express, { executions: 59, billedMs: 268_400, memoryMb: 64 });
    // GET: models, dataset manifest, 15 dataset shards, run manifest, 59 shards, 1,453 images, manifest again.
    // PUT: 59 shards + manifest, 2 map results, 1 responses file, report.json and report.md.
    assert.deepEqual(e.usage.aws.s3, { get: 1531, put: 65, list: 0, other: 0 });
    // Reads: 1 + 1,453 × 0.5 + 1 + ceil(1,453 × 700 / 4,096) × 0.5 = 853; writes: 2 + 1,453 + 2.
    assert.equal(e.usage.aws.dynamodb.readUnits, 853);
    assert.equal(e.usage.aws.dynamodb.writeUnits, 1457);

    close(usdOf(e, "Lambda evaluateShard compute (1024 MB arm64)"), 262.5 * 0.0000133334, "shards");
    close(usdOf(e, "Step Functions Standard state transitions"), 64 * 0.000025, "transitions");
    close(usdOf(e, "Step Functions Express duration (64 MB)"), 16.775 * 0.00001667, "express");
    // Lambda 266.5 GB-s (0.0035533511) and 61 requests (0.0000122), 64 transitions (0.0016), 59 Express
    // executions (0.000059) of 16.775 GB-s (0.00027963925), 1,457 WRU (0.000910625), 853 RRU (0.000106625),
    // 65 PUT (0.000325) and 1,531 GET (0.0006124) S3 requests, 1 event (0.000001).
    close(e.totalUsd, 0.00745984035, "total");
    assert.equal(formatUsd(e.totalUsd), "$0.00746");
    assert.equal(e.notes.length, 2, "a shard fits the EvaluateShard timeout");
  });

  it("warns when a shard cannot finish within the EvaluateShard timeout", () => {
    const e = estimateRunForItems({
      items: 100,
      models: 1,
      strategies: 4,
      shardSize: 100,
      modelLatencyMs: 5000,
      maxConcurrency: 2,
    });
    assert.match(e.notes.at(-1) ?? "", /EvaluateShard timeout/);
  });
});

describe("renderCostMarkdown", () => {
  it("shows token costs, the AWS lines with their prices and the price date", () => {
    const e = estimateAwsCost({
      lambda: [{ function: "plan", memoryMb: 512, invocations: 1, billedMs: 2000 }],
      standardTransitions: 5,
      express: { executions: 0, billedMs: 0, memoryMb: 64 },
      aws: {
        s3: { get: 0, put: 0, list: 0, other: 0 },
        dynamodb: { readUnits: 0, writeUnits: 4, requests: 4 },
      },
      events: 1,
    });
    const md = renderCostMarkdown(e, [
      { modelId: "gpt", strategy: "baseline", usd: 1.234 },
      { modelId: "local|model", strategy: "baseline", usd: null },
    ]);
    assert.match(md, /^## Cost of this run$/m);
    assert.match(md, /\| gpt \| baseline \| \$1\.23 \|/);
    assert.match(md, /\| local\\\|model \| baseline \| no prices configured \|/);
    assert.match(md, /\| \*\*Total\*\* \| \| \*\*\$1\.23\*\* \(priced rows only\) \|/);
    assert.match(
      md,
      /\| DynamoDB write request units \| 4 \| WRU \| \$0\.625 per million \| \$0\.0000025 \|/,
    );
    assert.match(
      md,
      /\| Lambda plan compute \(512 MB arm64\) \| 1 \| GB-second \| \$0\.0000133334 per GB-second \|/,
    );
    assert.match(md, /us-east-1, on-demand, as of 2026-01-15 \(verify at aws\.amazon\.com\/pricing\)/);
  });

  it("formats sub-cent amounts without exponents", () => {
    assert.equal(formatUsd(0), "$0");
    assert.equal(formatUsd(12.345), "$12.35");
    assert.equal(formatUsd(0.0123), "$0.0123");
    assert.equal(formatUsd(0.0000002), "$0.0000002");
    assert.equal(formatUsd(0.00745984), "$0.00746");
  });
});
