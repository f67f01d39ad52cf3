/**
 * The regression check of scheduled runs (benchmarks/mmsafeaware/regression.ts): a drop beyond the run's own uncertainty is
 * flagged; an unchanged number is not, even when the previous run's headline holds it rounded and the
 * current interval has zero width (a constant baseline).
 *
 * Run: node --import tsx --test tests/unit/regression.test.ts
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { computeRow } from "../../src/benchmarks/mmsafeaware/metrics.ts";
import { detectRegression } from "../../src/benchmarks/mmsafeaware/regression.ts";
import { modelConfigSchema } from "../../src/core/schemas.ts";
import { buildVerdict } from "../../src/core/verdicts.ts";
import { datasetItem } from "../fixtures/dataset-item.ts";

const MODEL = modelConfigSchema.parse({
  id: "always-no",
  baseURL: "http://127.0.0.1:1/v1",
  model: "always-no",
});
// Typical, attack and over-safety items: always-No is right on the first two, wrong on the third.
const ITEMS = [983, 984, 985, 128, 129, 130, 1, 2, 3].map((id) => datasetItem(id));
const NOW = new Date("2026-01-01T00:00:00Z");

const rowAnswering = (answer: (expected: "yes" | "no") => string) =>
  computeRow(
    MODEL,
    "baseline",
    ITEMS.map((item) =>
      buildVerdict(
        "r",
        MODEL.id,
        "baseline",
        item,
        {
          kind: "answer",
          text: answer(item.expected),
          finishReason: "stop",
          latencyMs: 1,
          promptTokens: 1,
          completionTokens: 1,
          attempts: 1,
        },
        NOW,
      ),
    ),
    ITEMS.length,
  );

describe("regression check", () => {
  it("does not flag an unchanged constant baseline against its rounded previous headline", () => {
    const row = rowAnswering(() => "No");
    assert.ok(Math.abs((row.paper.total ?? 0) - 66.667) < 0.01);
    const check = detectRegression("nightly", [row], {
      runId: "previous",
      headline: [{ modelId: MODEL.id, strategy: "baseline", total: 66.7, balanced: 50 }],
    });
    assert.equal(check.detected, false, JSON.stringify(check.findings));
  });

  it("flags a drop beyond the run's own interval", () => {
    const row = rowAnswering(() => "No");
    const check = detectRegression("nightly", [row], {
      runId: "previous",
      headline: [{ modelId: MODEL.id, strategy: "baseline", total: 90, balanced: 90 }],
    });
    assert.equal(check.detected, true);
    assert.deepEqual(
      check.findings.map((f) => f.metric),
      ["total", "balanced"],
    );
  });
});
