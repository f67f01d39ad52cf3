import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pLimit from "p-limit";
import { AimdLimit } from "../../src/core/aimd.ts";

describe("adaptive concurrency (AIMD)", () => {
  it("starts at the configured maximum and never exceeds it", () => {
    const aimd = new AimdLimit(8);
    assert.equal(aimd.limit, 8);
    for (let i = 0; i < 100; i++) aimd.onSuccess();
    assert.equal(aimd.limit, 8);
  });

  it("halves on a 429, once per cooldown, never below 1", () => {
    const aimd = new AimdLimit(16, 1000);
    assert.equal(aimd.onRateLimited(0), 8);
    assert.equal(aimd.onRateLimited(10), 8, "a burst of 429s from calls already in flight is one signal");
    assert.equal(aimd.onRateLimited(1000), 4);
    assert.equal(aimd.onRateLimited(2000), 2);
    assert.equal(aimd.onRateLimited(3000), 1);
    assert.equal(aimd.onRateLimited(4000), 1);
    assert.equal(aimd.decreases, 4);
  });

  it("grows back by about one per round of successful calls", () => {
    const aimd = new AimdLimit(16);
    aimd.onRateLimited(0); // 8
    // A round at limit 8 is 8 calls: +8 × 1/8 ≈ +1.
    let limit = aimd.limit;
    for (let i = 0; i < 8; i++) limit = aimd.onSuccess();
    assert.equal(limit, 8, "7.99… after floating additions stays 8 until the round completes");
    for (let i = 0; i < 9; i++) limit = aimd.onSuccess();
    assert.equal(limit, 9);
  });

  it("converges below an endpoint's real capacity when driving a p-limit gate", async () => {
    // An endpoint that answers 429 whenever more than 3 calls are in flight.
    const capacity = 3;
    const aimd = new AimdLimit(16, 20);
    const gate = pLimit(aimd.limit);
    let inFlight = 0;
    let maxInFlight = 0;
    let rateLimited = 0;
    const call = () =>
      gate(async () => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        const limited = inFlight > capacity;
        await new Promise((r) => setTimeout(r, 5));
        inFlight--;
        return limited;
      }).then((limited) => {
        if (limited) rateLimited++;
        gate.concurrency = limited ? aimd.onRateLimited(Date.now()) : aimd.onSuccess();
      });
    await Promise.all(Array.from({ length: 400 }, call));
    assert.ok(aimd.decreases >= 2, `backed off (${aimd.decreases} decreases)`);
    assert.ok(aimd.limit <= capacity + 2, `settled near the capacity (limit ${aimd.limit})`);
    assert.ok(rateLimited < 400 * 0.5, `most calls went through (${rateLimited} rate-limited)`);
  });
});
