import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import {
  AWS_PRICES,
  addUsage,
  budgetMatchedMapConcurrency,
  type CostEstimate,
  childTransitionsFor,
  emptyAwsUsage,
  estimateAwsCost,
  estimateRunForItems,
  formatDuration,
  formatUsd,
  type RunUsage,
  renderCostMarkdown,
  SHARD_ATTEMPTS_LIMIT,
  STEP_FUNCTIONS_LIMITS,
  scaleTable,
  standardTransitionsFor,
  statePayloadBytes,
  withPriceOverrides,
} from "../../src/deployment/cost.ts";
import { runUsageFromCounters } from "../../src/deployment/run-usage.ts";
import { WORKFLOW_DEFINITION } from "../../src/deployment/storage-layout.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

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
    childTransitions: 12, // 10 shard children, 2 of them retried once
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
    close(usdOf(e, "Step Functions Standard state transitions (workflow)"), 15 * 0.000025, "transitions");
    close(
      usdOf(e, "Step Functions Standard state transitions (shard executions)"),
      12 * 0.000025,
      "child transitions",
    );
    close(usdOf(e, "DynamoDB write request units"), 1000 * 0.000000625, "WRU");
    close(usdOf(e, "DynamoDB read request units"), 500 * 0.000000125, "RRU");
    close(usdOf(e, "S3 PUT/COPY/POST/LIST requests"), 20 * 0.000005, "S3 put");
    close(usdOf(e, "S3 GET and other requests"), 1010 * 0.0000004, "S3 get");
    close(usdOf(e, "EventBridge custom events"), 0.000001, "events");
    // 41 GB-s × 0.0000133334 = 0.0005466694, + 0.0000022 + 0.000375 + 0.0003 + 0.000625 + 0.0000625
    // + 0.0001 + 0.000404 + 0.000001
    close(e.totalUsd, 0.0024163694, "total");
    assert.equal(e.lines.length, 10, "no logs line: no logsGb given");
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
      childTransitions: 0,
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
    assert.equal(standardTransitionsFor(0, "succeeded"), 6);
    assert.equal(standardTransitionsFor(59, "succeeded"), 65);
    assert.equal(standardTransitionsFor(3, "failed"), 10); // Plan, CheckModels, Evaluate + 3, 4 failure states
    assert.equal(standardTransitionsFor(3, "failed", "Evaluate"), 10);
    assert.equal(standardTransitionsFor(3, "failed", "Aggregate"), 11);
    assert.equal(standardTransitionsFor(3, "failed", "Plan"), 4);
    assert.throws(() => standardTransitionsFor(-1, "succeeded"), RangeError);
  });

  it("counts a run stopped by CheckModels without any child execution", () => {
    // Plan, CheckModels, DescribeFailure, MarkRunFailed, PublishFailed, RunFailed: no shard was started,
    // so the planned shards change nothing.
    assert.equal(standardTransitionsFor(0, "failed", "CheckModels"), 6);
    assert.equal(standardTransitionsFor(59, "failed", "CheckModels"), 6);
    const e = estimateAwsCost({
      lambda: [],
      standardTransitions: standardTransitionsFor(59, "failed", "CheckModels"),
      childTransitions: 0,
      aws: emptyAwsUsage(),
      events: 1,
    });
    close(usdOf(e, "Step Functions Standard state transitions (workflow)"), 6 * 0.000025, "transitions");
    assert.equal(usdOf(e, "Step Functions Standard state transitions (shard executions)"), undefined);
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
    assert.deepEqual(success, [
      "Plan",
      "CheckModels",
      "Evaluate",
      "Aggregate",
      "PublishCompleted",
      "RunSucceeded",
    ]);
    const failure = path(asl.States.Evaluate?.Catch?.[0]?.Next ?? "");
    assert.deepEqual(failure, ["DescribeFailure", "MarkRunFailed", "PublishFailed", "RunFailed"]);
    assert.equal(asl.States.CheckModels?.Catch?.[0]?.Next, "DescribeFailure");
    assert.equal(asl.States.Aggregate?.Catch?.[0]?.Next, "DescribeFailure");
    const planFailure = path(asl.States.Plan?.Catch?.[0]?.Next ?? "");
    assert.deepEqual(planFailure, ["DescribePlanFailure", "PublishFailed", "RunFailed"]);
    assert.equal(standardTransitionsFor(0, "succeeded"), success.length);
    assert.equal(standardTransitionsFor(0, "failed", "CheckModels"), 2 + failure.length);
    assert.equal(standardTransitionsFor(0, "failed", "Evaluate"), 3 + failure.length);
    assert.equal(standardTransitionsFor(0, "failed", "Aggregate"), 4 + failure.length);
    assert.equal(standardTransitionsFor(0, "failed", "Plan"), 1 + planFailure.length);
  });

  it("matches the shard child of the workflow definition: STANDARD, one state that ends it", async () => {
    const child = z
      .object({
        States: z.object({
          Evaluate: z.object({
            ItemProcessor: z.object({
              ProcessorConfig: z.object({ ExecutionType: z.string() }),
              StartAt: z.string(),
              States: z.record(z.string(), z.object({ Type: z.string(), End: z.boolean().optional() })),
            }),
          }),
        }),
      })
      .parse(JSON.parse(await readFile(WORKFLOW_DEFINITION, "utf8"))).States.Evaluate.ItemProcessor;
    assert.equal(child.ProcessorConfig.ExecutionType, "STANDARD", "children billed per transition");
    // One state, entered once per attempt; no Succeed/Fail state after it.
    assert.deepEqual(Object.keys(child.States), [child.StartAt]);
    assert.deepEqual(child.States[child.StartAt], { Type: "Task", End: true });
    assert.equal(childTransitionsFor(1), Object.keys(child.States).length);
  });
});

describe("childTransitionsFor", () => {
  it("counts one transition per attempt of EvaluateShard: each retry adds one", () => {
    assert.equal(childTransitionsFor(0), 0);
    assert.equal(childTransitionsFor(59), 59);
    // 59 shards, 3 of them resumed twice after ShardIncomplete and 1 retried after VerdictWriteFailed.
    assert.equal(childTransitionsFor(59, 3 * 2 + 1), 66);
    assert.throws(() => childTransitionsFor(-1), RangeError);
    assert.throws(() => childTransitionsFor(3, 0.5), RangeError);
  });

  it("takes the retries of a finished run from its counters, apart from the CheckModels invocation", () => {
    // 3 shards; evaluate-shard ran 6 times: the check and 5 attempts, so 2 retries.
    const usage = runUsageFromCounters(
      { planInvocations: 1, evaluateShardInvocations: 6, aggregateInvocations: 1 },
      3,
    );
    assert.equal(usage.standardTransitions, 9); // 6 + 3 children started
    assert.equal(usage.childTransitions, 5);
    close(
      usdOf(estimateAwsCost(usage), "Step Functions Standard state transitions (shard executions)"),
      5 * 0.000025,
      "child transitions",
    );
    // A resume: two executions, so two checks; the second execution's child attempts count too.
    assert.equal(
      runUsageFromCounters({ planInvocations: 2, evaluateShardInvocations: 7, aggregateInvocations: 1 }, 3)
        .childTransitions,
      5,
    );
    // Attempts cut short by the Lambda runtime record nothing: still at least one per shard.
    assert.equal(
      runUsageFromCounters({ planInvocations: 1, evaluateShardInvocations: 2, aggregateInvocations: 1 }, 3)
        .childTransitions,
      3,
    );
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
      // One shard at a time: each has the model's 8 slots to itself, as if the budget were per shard.
      mapConcurrency: 1,
    });
    console.log(renderCostMarkdown(e, [{ modelId: "example-model", strategy: "baseline", usd: null }]));
    for (const note of e.notes) console.log(note);

    // 59 shards: 58 of 25 items (ceil(25/8) = 4 waves of 1 s, + 0.5 s) and one of 3 (1 wave, + 0.5 s);
    // and CheckModels before them: one question (1 wave, + 0.5 s). 58 × 4.5 + 1.5 + 1.5 = 264 s.
    const shard = e.usage.lambda.find((l) => l.function === "evaluateShard");
    assert.deepEqual(shard, {
      function: "evaluateShard",
      memoryMb: 1024,
      invocations: 60,
      billedMs: 264_000,
    });
    // Plan, CheckModels, Evaluate + 59 children started, Aggregate, PublishCompleted, RunSucceeded.
    assert.equal(e.usage.standardTransitions, 65);
    // Each STANDARD child enters EvaluateShard once (no retries assumed).
    assert.equal(e.usage.childTransitions, 59);
    // GET: models, dataset manifest, 15 dataset shards; the check's run manifest, first shard and one image;
    // the ItemReader's run manifest, 59 shards, the 1,452 images the check did not ask about; manifest again.
    // PUT: 59 shards + manifest, 2 map results, 1 responses file, report.json and report.md.
    assert.deepEqual(e.usage.aws.s3, { get: 1533, put: 65, list: 0, other: 0 });
    // Reads: 1 + (25 checked + 1,453) × 0.5 + 1 + ceil(1,453 × 700 / 4,096) × 0.5 = 865.5 (no slot waits).
    assert.equal(e.usage.aws.dynamodb.readUnits, 865.5);
    // Writes: 2 + 1,453 + 2 (the check's verdict is one of the 1,453), and the budgets table: each full
    // shard takes and gives back 8 slots (16), the last one 3 (6), the check 1 (2): 936.
    assert.deepEqual(e.scale.budgetsTable, { readUnits: 0, writeUnits: 936, requests: 936 });
    assert.equal(e.usage.aws.dynamodb.writeUnits, 1457 + 936);
    // GetItem, PutItem; 1 + 59 BatchGetItem; 1,453 PutItem; GetItem, UpdateItem; 1 Query page; the slots.
    assert.equal(e.usage.aws.dynamodb.requests, 1518 + 936);

    close(usdOf(e, "Lambda evaluateShard compute (1024 MB arm64)"), 264 * 0.0000133334, "shards");
    close(usdOf(e, "Step Functions Standard state transitions (workflow)"), 65 * 0.000025, "transitions");
    close(
      usdOf(e, "Step Functions Standard state transitions (shard executions)"),
      59 * 0.000025,
      "child transitions",
    );
    // Lambda 268 GB-s (0.0035733512) and 62 requests (0.0000124), 65 + 59 transitions (0.001625 + 0.001475),
    // 2,393 WRU (0.001495625), 865.5 RRU (0.0001081875), 65 PUT (0.000325) and 1,533 GET (0.0006132) S3
    // requests, 1 event (0.000001).
    close(e.totalUsd, 0.0092287637, "total");
    assert.equal(formatUsd(e.totalUsd), "$0.00923");
    assert.ok((e.totalUsd / 1453) * 1000 <= 0.01, "at most $0.01 per 1,000 verdicts");
    // Plan 2 s, the check 1.5 s, the shards one after another (58 × 4.5 + 1.5 s), aggregate 3 s; the model's
    // budget alone needs ceil(1,453 / 8) = 182 s.
    assert.equal(e.scale.runMs, 2000 + 1500 + 58 * 4500 + 1500 + 3000);
    assert.equal(e.scale.budgetMs, 182_000);
    assert.equal(e.scale.parallelChildren, 1);
    assert.equal(e.notes.length, 2, "a shard fits the EvaluateShard timeout and waits for no slot");
  });

  it("shares a model's slots among the shards running at once, billing the wait", () => {
    // 4 shards of 25 calls at once share 2 slots: half a slot each, so 25 × 4 / 2 = 50 s of calls, 25 s of
    // them waiting (a shard holds 1 slot at a time).
    const run = {
      items: 100,
      models: 1,
      strategies: 1,
      shardSize: 25,
      modelLatencyMs: 1000,
      maxConcurrency: 2,
      mapConcurrency: 4,
    };
    const e = estimateRunForItems(run);
    assert.deepEqual(e.scale.slowestShard, {
      items: 25,
      sharing: 4,
      slotShare: 0.5,
      attempts: 1,
      billedMs: 50_500,
      slotWaitMs: 25_000,
    });
    assert.equal(e.usage.lambda.find((l) => l.function === "evaluateShard")?.billedMs, 4 * 50_500 + 1500);
    // Per shard: its slot taken and given back (2), renewed twice in its 25 s of holding it, and 5 quick
    // tries then one per 500 ms in its 25 s of waiting (55 failed writes and 55 reads); the check: 2.
    assert.deepEqual(e.scale.budgetsTable, {
      readUnits: 4 * 55,
      writeUnits: 4 * (2 + 2 + 55) + 2,
      requests: 4 * (2 + 2 + 55 + 55) + 2,
    });
    assert.equal(e.scale.runMs, 2000 + 1500 + 50_500 + 3000);
    assert.equal(e.scale.budgetMs, 50_000);
    assert.match(
      e.notes.join("\n"),
      /4 shards at once share 2 slots per model: a shard waits for a slot 25 s/,
    );

    // Two at a time: each has a slot of its own; the run takes as long, for half the Lambda time.
    assert.equal(budgetMatchedMapConcurrency(run), 2);
    const matched = estimateRunForItems({ ...run, mapConcurrency: 2 });
    assert.equal(matched.scale.slowestShard.slotWaitMs, 0);
    assert.equal(
      matched.usage.lambda.find((l) => l.function === "evaluateShard")?.billedMs,
      4 * 25_500 + 1500,
    );
    assert.equal(matched.scale.runMs, 2000 + 1500 + 2 * 25_500 + 3000);
    assert.ok(matched.totalUsd < e.totalUsd);
  });

  it("paces calls at requestsPerMinute and tokensPerMinute, one budget write per call for each", () => {
    const run = {
      items: 50,
      models: 1,
      strategies: 1,
      shardSize: 25,
      modelLatencyMs: 1000,
      maxConcurrency: 8,
      mapConcurrency: 2,
    };
    const free = estimateRunForItems(run).scale;
    // 2 shards of 25 calls at once, 4 slots each: ceil(25 / 4) = 7 s; at 60 requests a minute, 30 each.
    assert.equal(free.slowestShard.billedMs, 7500);
    const paced = estimateRunForItems({ ...run, requestsPerMinute: 60 }).scale;
    assert.equal(paced.slowestShard.billedMs, 50_500);
    assert.equal(paced.budgetMs, 50_000);
    // Each of the 51 calls (the check's included) counts its request: 51 writes more; renewals every 10 s
    // of the 50 s the slots are held: 5 per shard.
    assert.equal(paced.budgetsTable.writeUnits - free.budgetsTable.writeUnits, 51 + 2 * 5);
    // Tokens per minute: the request count and the tokens of each call, two writes per call. 850 tokens a
    // call at 85,000 a minute is 100 calls a minute: 25 × 2 / 100 min = 30 s a shard.
    const tokens = estimateRunForItems({ ...run, tokensPerMinute: 85_000 }).scale;
    assert.equal(tokens.slowestShard.billedMs, 30_500);
    assert.equal(tokens.budgetsTable.writeUnits - free.budgetsTable.writeUnits, 2 * 51 + 2 * 3);
    assert.throws(() => estimateRunForItems({ ...run, requestsPerMinute: 0 }), /requestsPerMinute/);
  });

  it("retries a shard that runs out of time in its child, and counts the attempts", () => {
    const e = estimateRunForItems({
      items: 100,
      models: 1,
      strategies: 4,
      shardSize: 100,
      modelLatencyMs: 5000,
      maxConcurrency: 2,
    });
    // 400 calls, 2 at a time, 5 s each: 1,000 s of calls; an invocation starts calls for 240 − 60 − 15 =
    // 165 s, so 7 attempts: 6 retries, each another invocation, state transition and 7 history events.
    assert.equal(e.scale.slowestShard.attempts, 7);
    assert.equal(e.scale.slowestShard.billedMs, 1_000_000 + 7 * 500);
    assert.equal(e.usage.childTransitions, 7);
    assert.equal(e.scale.evaluateShardInvocations, 1 + 7);
    assert.equal(e.scale.childHistoryEvents, 4 + 3 * 7);
    assert.equal(e.scale.shardsOverAttempts, 0);
    assert.match(e.notes.at(-1) ?? "", /6 attempt\(s\) stop short \(ShardIncomplete\) and are retried/);

    const hopeless = estimateRunForItems({
      items: 1000,
      models: 1,
      strategies: 4,
      shardSize: 1000,
      modelLatencyMs: 5000,
      maxConcurrency: 1,
    });
    assert.equal(hopeless.scale.shardsOverAttempts, 1);
    assert.match(hopeless.notes.at(-1) ?? "", /need more than the 21 attempts a child execution makes/);
  });

  it("sizes the payloads that grow with the run: every model's config in the Map's and each child's input", () => {
    const one = statePayloadBytes(1, 1);
    const perModel = statePayloadBytes(2, 1) - one;
    assert.ok(one > 500 && one < 2048, `${one} bytes`);
    assert.ok(perModel > 100 && perModel < 1024, `${perModel} bytes per model`);
    // Linear in the models (ids with more digits add a byte or two each).
    const ten = statePayloadBytes(11, 1) - one;
    assert.ok(ten >= 10 * perModel && ten <= 10 * (perModel + 2), `${ten} bytes for 10 more models`);
    assert.ok(statePayloadBytes(100, 4) < STEP_FUNCTIONS_LIMITS.payloadBytes);
  });
});

describe("scaleTable", () => {
  it("is what the README shows under Scale, so the two cannot drift", async () => {
    const readme = await readFile(path.join(REPO_ROOT, "README.md"), "utf8");
    const start =
      "<!-- scale-table: generated by `npm run scale-table`; tests/unit/cost.test.ts checks it -->\n";
    const end = "<!-- /scale-table -->";
    const from = readme.indexOf(start);
    const to = readme.indexOf(end);
    assert.ok(from >= 0 && to > from, "README.md has the scale-table markers");
    assert.equal(
      readme.slice(from + start.length, to),
      `${scaleTable()}`,
      "README's Scale table is stale: paste the output of `npm run scale-table` between the markers",
    );
  });

  it("has a column per run size and the Step Functions limits, at 1,500, 15,000 and 150,000 verdicts", () => {
    const table = scaleTable();
    assert.match(table, /^\| verdicts +\| +1,500 \| +15,000 \| +150,000 \|$/m);
    for (const label of [
      "shards = child executions (STANDARD)",
      "Lambda concurrency = parallel children (limit 10,000)",
      "DynamoDB write units (budgets table)",
      "AWS cost (per 1,000 verdicts)",
      "largest state payload (limit 256 KiB)",
      "a shard's child execution (EXPRESS: 5 min at most)",
      "history events, run / child (limit 25,000)",
    ]) {
      assert.ok(table.includes(`| ${label} `), label);
    }
    // Every row of the table has the same width (aligned as a formatter would).
    const rows = table.split("\n\n")[0]?.split("\n") ?? [];
    assert.equal(new Set(rows.map((row) => [...row].length)).size, 1);
    // Other assumptions give other figures.
    assert.notEqual(scaleTable({ mapConcurrency: 2 }), table);
  });

  it("matches the workflow: STANDARD children that retry ShardIncomplete 20 times", async () => {
    const asl = JSON.stringify(JSON.parse(await readFile(WORKFLOW_DEFINITION, "utf8")));
    assert.match(asl, /"ExecutionType":"STANDARD"/);
    const retry = z
      .object({
        States: z.object({
          Evaluate: z.object({
            ItemProcessor: z.object({
              States: z.object({
                EvaluateShard: z.object({
                  Retry: z.array(z.object({ ErrorEquals: z.array(z.string()), MaxAttempts: z.number() })),
                }),
              }),
            }),
          }),
        }),
      })
      .parse(JSON.parse(asl))
      .States.Evaluate.ItemProcessor.States.EvaluateShard.Retry.find((r) =>
        r.ErrorEquals.includes("ShardIncomplete"),
      );
    assert.equal((retry?.MaxAttempts ?? 0) + 1, SHARD_ATTEMPTS_LIMIT);
  });

  it("formats durations in s, min and h", () => {
    assert.equal(formatDuration(42_400), "42 s");
    assert.equal(formatDuration(60_000), "1 min");
    assert.equal(formatDuration(196_000), "3 min 16 s");
    assert.equal(formatDuration(3_772_000), "1 h 3 min");
    assert.equal(formatDuration(7_200_000), "2 h");
  });
});

describe("renderCostMarkdown", () => {
  it("shows token costs, the AWS lines with their prices and the price date", () => {
    const e = estimateAwsCost({
      lambda: [{ function: "plan", memoryMb: 512, invocations: 1, billedMs: 2000 }],
      standardTransitions: 6,
      childTransitions: 0,
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
