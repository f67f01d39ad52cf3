/**
 * Run-wide model budgets: several RunBudgets (one per process) over one store never hold more slots than the
 * limit, pace requests and tokens at the rate, take back the slots of a holder that died, and let a stopped
 * caller go. Against memory and against the embedded DynamoDB (dynalite), as on AWS.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { type BudgetStore, DynamoBudgetStore, MemoryBudgetStore } from "../../src/adapters/budget-store.ts";
import { type EmbeddedAws, LOCAL_RESOURCES, startEmbeddedAws } from "../../src/local/embedded-aws.ts";
import { type BudgetLimits, LEASE_MS, RunBudgets } from "../../src/pipeline/run-budgets.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

let home: string;
let aws: EmbeddedAws;
let dynamo: DynamoDBClient;

// The embedded servers, whose DynamoDB has the budgets table the local runner creates.
before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-run-budgets-"));
  aws = await startEmbeddedAws(path.join(home, "aws"));
  dynamo = new DynamoDBClient({
    endpoint: aws.dynamodbEndpoint,
    region: LOCAL_RESOURCES.region,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
});

after(async () => {
  dynamo.destroy();
  await aws.close();
  await rm(home, { recursive: true, force: true });
});

const stores: [string, () => BudgetStore][] = [
  ["memory", () => new MemoryBudgetStore()],
  [
    "DynamoDB",
    () => new DynamoBudgetStore(DynamoDBDocumentClient.from(dynamo), LOCAL_RESOURCES.budgetsTable),
  ],
];

let scopes = 0;
const newScope = () => `run-${++scopes}#model`;
const never = () => false;

/** `calls` calls spread over the processes, each holding its slot `holdMs`; start times and peak in flight. */
async function callThrough(
  processes: RunBudgets[],
  scope: string,
  limits: BudgetLimits,
  calls: number,
  holdMs: number,
  tokens: number | null = null,
): Promise<{ begin: number; starts: number[]; peak: number }> {
  // Before the first permit is asked for: the budget's count starts no earlier.
  const begin = Date.now();
  let inFlight = 0;
  let peak = 0;
  const starts: number[] = [];
  await Promise.all(
    Array.from({ length: calls }, async (_, i) => {
      const budgets = processes[i % processes.length];
      assert.ok(budgets);
      const permit = await budgets.acquire(scope, limits, never);
      assert.ok(permit, "a permit");
      starts.push(Date.now());
      inFlight++;
      peak = Math.max(peak, inFlight);
      await delay(holdMs);
      inFlight--;
      permit.done(tokens);
    }),
  );
  await Promise.all(processes.map((p) => p.settle()));
  return { begin, starts: starts.sort((a, b) => a - b), peak };
}

for (const [name, makeStore] of stores) {
  describe(`run-wide budgets (${name})`, () => {
    it("never holds more slots than maxConcurrency across processes, and every call gets one", async () => {
      const store = makeStore();
      const processes = [new RunBudgets(store), new RunBudgets(store), new RunBudgets(store)];
      const { starts, peak } = await callThrough(processes, newScope(), { maxConcurrency: 4 }, 60, 15);
      assert.equal(starts.length, 60);
      assert.ok(peak <= 4, `${peak} calls in flight at once`);
    });

    it("paces requests at requestsPerMinute across processes", async () => {
      const store = makeStore();
      const processes = [new RunBudgets(store), new RunBudgets(store)];
      const rpm = 3_000; // one every 20 ms
      const { begin, starts } = await callThrough(
        processes,
        newScope(),
        { maxConcurrency: 8, requestsPerMinute: rpm },
        40,
        5,
      );
      // Request n starts no earlier than (n − 1) intervals after the count began, which is after `begin`.
      const last = starts.at(-1) ?? 0;
      const perMinute = ((starts.length - 1) * 60_000) / (last - begin);
      // Only the bound: a loaded machine may go slower than the rate, never faster.
      assert.ok(perMinute <= rpm * 1.05, `${perMinute.toFixed(0)} requests per minute, limit ${rpm}`);
    });

    it("paces calls by the tokens they used (tokensPerMinute)", async () => {
      const store = makeStore();
      const budgets = new RunBudgets(store);
      // 60,000 tokens a minute = 1,000 a second; 100 tokens a call: one call per 100 ms.
      const { begin, starts } = await callThrough(
        [budgets],
        newScope(),
        { maxConcurrency: 1, tokensPerMinute: 60_000 },
        6,
        1,
        100,
      );
      // The 6th call waits for the 500 tokens before it, counted from no earlier than `begin`.
      const span = (starts.at(-1) ?? 0) - begin;
      assert.ok(span >= 500 - 5, `6 calls of 100 tokens took ${span} ms at 1,000 tokens/s`);
    });

    it("takes back the slots of a holder that died once its lease expired", async () => {
      const store = makeStore();
      const scope = newScope();
      let clock = Date.now();
      const dead = new RunBudgets(store, { now: () => clock });
      // The dead process took both slots and never gave them back.
      assert.ok(await dead.acquire(scope, { maxConcurrency: 2 }, never));
      assert.ok(await dead.acquire(scope, { maxConcurrency: 2 }, never));
      const alive = new RunBudgets(store, { now: () => clock });
      let stop = false;
      const waiting = alive.acquire(scope, { maxConcurrency: 2 }, () => stop);
      await delay(100);
      clock += LEASE_MS + 1_000;
      const permit = await Promise.race([waiting, delay(3_000, "timed out" as const)]);
      assert.notEqual(permit, "timed out", "the expired slot was not taken back");
      assert.ok(permit);
      stop = true;
    });

    it("lets a caller waiting for a slot go when it stops (null: no call starts)", async () => {
      const store = makeStore();
      const scope = newScope();
      const budgets = new RunBudgets(store);
      const held = await budgets.acquire(scope, { maxConcurrency: 1 }, never);
      assert.ok(held);
      let stop = false;
      const waiting = budgets.acquire(scope, { maxConcurrency: 1 }, () => stop);
      await delay(50);
      stop = true;
      assert.equal(await waiting, null);
      held.done(null);
      // The slot is free again.
      const next = await budgets.acquire(scope, { maxConcurrency: 1 }, never);
      assert.ok(next);
      next.done(null);
      await budgets.settle();
    });
  });
}
