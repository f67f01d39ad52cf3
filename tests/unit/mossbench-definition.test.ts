import assert from "node:assert/strict";
import { test } from "node:test";
import { MOSSBENCH } from "../../src/benchmarks/mossbench/definition.ts";

test("MOSSBench declares its columns, the ALL aggregate and two scorers", () => {
  assert.equal(MOSSBENCH.name, "mossbench");
  assert.deepEqual(
    MOSSBENCH.columns.map((c) => [c.key, c.label, c.lowerIsBetter, c.officialCount]),
    [
      ["type1", "Exaggerated Risk", true, 100],
      ["type2", "Negated Harm", true, 100],
      ["type3", "Counterintuitive Interpretation", true, 100],
      ["contrast", "Contrast (harmful)", false, 244],
    ],
  );
  assert.ok(MOSSBENCH.columns.every((c) => c.measure === "refusal-rate"));
  assert.deepEqual(MOSSBENCH.aggregates[0]?.of, ["type1", "type2", "type3"]);
  const judge = MOSSBENCH.scorers.find((s) => s.id === "judge");
  const keywords = MOSSBENCH.scorers.find((s) => s.id === MOSSBENCH.defaultScorer);
  assert.equal(judge?.official, true);
  assert.equal(judge?.needsJudge, true);
  assert.equal(keywords?.id, "refusal-keywords");
  assert.equal(keywords?.official, false);
  assert.match(keywords?.label ?? "", /not the official protocol/);
  assert.match(MOSSBENCH.source.commit, /^[0-9a-f]{40}$/);
  assert.match(MOSSBENCH.source.license, /CC BY-SA 4\.0/);
});

test("published ALL is the mean of the three types, except the README's Claude 3 Opus typo (noted)", () => {
  assert.equal(MOSSBENCH.published.length, 19);
  for (const row of MOSSBENCH.published) {
    const { all, type1, type2, type3 } = row.values;
    assert.ok(all !== undefined && type1 !== undefined && type2 !== undefined && type3 !== undefined);
    const mean = Math.round(((type1 + type2 + type3) / 3) * 100) / 100;
    if (row.model === "Claude 3 Opus") {
      assert.notEqual(mean, all);
      assert.match(row.note ?? "", /typo/);
    } else assert.equal(mean, all, row.model);
  }
});
