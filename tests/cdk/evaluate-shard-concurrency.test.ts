/**
 * evaluate-shard's reserved concurrency, set by `evaluateShard.reservedConcurrency` in the deploy config:
 * none by default, exactly the configured number when set, and a config error naming the field otherwise.
 *
 * Run: node --import tsx --test tests/cdk/evaluate-shard-concurrency.test.ts
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDeployConfig } from "../../src/deployment/deploy-config.ts";
import { synthesize } from "./support.ts";

describe("evaluate-shard reserved concurrency", () => {
  it("is unreserved by default and with null: no function reserves any of the account's concurrency", () => {
    for (const config of [{ evaluateShard: {} }, { evaluateShard: { reservedConcurrency: null } }]) {
      assert.deepEqual(parseDeployConfig(config, "test").evaluateShard, { reservedConcurrency: null });
    }
    const synthesized = synthesize({});
    for (const [id, properties] of synthesized.resourcesOfType("AWS::Lambda::Function")) {
      assert.equal(properties.ReservedConcurrentExecutions, undefined, id);
    }
  });

  it("reserves the configured number for evaluate-shard only", () => {
    const synthesized = synthesize({ evaluateShard: { reservedConcurrency: 40 } });
    const evaluateShard = synthesized.logicalId(synthesized.stack.evaluateShardFunction.function);
    const reserved = synthesized
      .resourcesOfType("AWS::Lambda::Function")
      .map(([id, properties]) => [id, properties.ReservedConcurrentExecutions]);
    assert.deepEqual(
      reserved.filter(([, value]) => value !== undefined),
      [[evaluateShard, 40]],
    );
  });

  it("rejects 0, fractions, strings and unknown fields, naming the field and what to write", () => {
    const cases: Array<[unknown, RegExp]> = [
      [
        { reservedConcurrency: 0 },
        /evaluateShard\.reservedConcurrency: 0 would throttle every shard.*use null/,
      ],
      [{ reservedConcurrency: -3 }, /evaluateShard\.reservedConcurrency: 0 would throttle/],
      [
        { reservedConcurrency: 2.5 },
        /evaluateShard\.reservedConcurrency: a whole number ≥ 1, or null for none/,
      ],
      [
        { reservedConcurrency: "40" },
        /evaluateShard\.reservedConcurrency: a whole number ≥ 1, or null for none/,
      ],
      [{ reserved: 40 }, /evaluateShard: Unrecognized key: "reserved"/],
    ];
    for (const [evaluateShard, message] of cases) {
      assert.throws(
        () => parseDeployConfig({ evaluateShard }, "config/deploy.json"),
        (error: unknown) => {
          assert.ok(error instanceof Error);
          assert.match(error.message, /^config\/deploy\.json is invalid:/);
          assert.match(error.message, message);
          return true;
        },
        JSON.stringify(evaluateShard),
      );
    }
  });
});
