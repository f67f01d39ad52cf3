import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CircuitBreaker } from "../../src/core/circuit-breaker.ts";

describe("CircuitBreaker", () => {
  it("opens after the threshold of consecutive endpoint failures, not before, and an answer resets the count", () => {
    const breaker = new CircuitBreaker(3, 1000);
    breaker.record("connection", "refused", 0);
    breaker.record("connection", "refused", 1);
    breaker.record(null, "", 2);
    breaker.record("server_error", "HTTP 500", 3);
    breaker.record("timeout", "timed out", 4);
    assert.equal(breaker.isOpen, false);
    assert.equal(breaker.allow(5), true);
    breaker.record("connection", "ECONNREFUSED 127.0.0.1:9", 6);
    assert.equal(breaker.isOpen, true);
    assert.equal(breaker.opened, 1);
    assert.equal(breaker.allow(7), false);
    assert.equal(breaker.describe(), "3 calls in a row failed (last: ECONNREFUSED 127.0.0.1:9)");
  });

  it("lets one trial call through after openMs: an answer closes it, a failure opens it for another period", () => {
    const breaker = new CircuitBreaker(1, 1000);
    breaker.record("connection", "refused", 0);
    assert.equal(breaker.allow(999), false);
    assert.equal(breaker.allow(1000), true, "the trial");
    assert.equal(breaker.allow(1001), false, "only one trial at a time");
    breaker.record("connection", "still refused", 1002);
    assert.equal(breaker.opened, 2);
    assert.equal(breaker.allow(1500), false);
    assert.equal(breaker.allow(2002), true);
    breaker.record(null, "", 2003);
    assert.equal(breaker.isOpen, false);
    assert.equal(breaker.allow(2004), true);
    assert.equal(breaker.allow(2005), true, "closed: every call may start");
  });

  it("counts only endpoint failures: a 429, a 400 or a content filter are no sign of an endpoint that is down", () => {
    assert.deepEqual(
      ["connection", "timeout", "server_error", "rate_limited", "http_400", "content_filter", "auth"].filter(
        (k) => CircuitBreaker.ENDPOINT_FAILURES.has(k),
      ),
      ["connection", "timeout", "server_error"],
    );
  });
});
