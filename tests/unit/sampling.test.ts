import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CATEGORIES, type Category, goldLabel } from "../../src/benchmarks/mmsafeaware/facts.ts";
import { categoryQuotas, stratifiedSample } from "../../src/core/sampling.ts";

/** The official runnable ids: 1–1153 and 2001–2300 (2301–2370 have no image). */
const OFFICIAL_RUNNABLE = [
  ...Array.from({ length: 1153 }, (_, i) => i + 1),
  ...Array.from({ length: 300 }, (_, i) => 2001 + i),
].map((id) => ({ id, category: goldLabel(id).category }));

const perCategory = (items: readonly { category: Category }[]) =>
  Object.fromEntries(CATEGORIES.map((c) => [c, items.filter((i) => i.category === c).length]));

describe("categoryQuotas", () => {
  it("splits 300 of the official 171 / 855 / 427 by largest remainder: 35 / 177 / 88", () => {
    // Exact shares 35.31, 176.53, 88.16: floors 35 + 176 + 88 = 299; the one left goes to attack (.53).
    assert.deepEqual(categoryQuotas({ typical: 171, attack: 855, oversafety: 427 }, 300), {
      typical: 35,
      attack: 177,
      oversafety: 88,
    });
  });

  it("gives every category one item once the limit allows it, taken from the largest quota", () => {
    // Largest remainder alone gives 0 / 2 / 1 (shares .35, 1.77, .88); typical's one comes from attack.
    assert.deepEqual(categoryQuotas({ typical: 171, attack: 855, oversafety: 427 }, 3), {
      typical: 1,
      attack: 1,
      oversafety: 1,
    });
    // Below the number of categories there is no room: largest remainder decides (attack .59).
    assert.deepEqual(categoryQuotas({ typical: 171, attack: 855, oversafety: 427 }, 1), {
      typical: 0,
      attack: 1,
      oversafety: 0,
    });
  });

  it("breaks equal remainders in the paper's column order", () => {
    // Shares 1.5 / 1.5 / 0: one left over; typical comes first.
    assert.deepEqual(categoryQuotas({ typical: 1, attack: 1, oversafety: 0 }, 1), {
      typical: 1,
      attack: 0,
      oversafety: 0,
    });
    assert.deepEqual(categoryQuotas({ typical: 10, attack: 10, oversafety: 10 }, 4), {
      typical: 2,
      attack: 1,
      oversafety: 1,
    });
  });

  it("takes everything when the limit reaches the total, and nothing of an absent category", () => {
    const counts = { typical: 3, attack: 0, oversafety: 2 };
    assert.deepEqual(categoryQuotas(counts, 5), counts);
    assert.deepEqual(categoryQuotas(counts, 500), counts);
    assert.deepEqual(categoryQuotas(counts, 2), { typical: 1, attack: 0, oversafety: 1 });
  });

  it("rejects a limit that is not a non-negative integer", () => {
    assert.throws(() => categoryQuotas({ typical: 1, attack: 1, oversafety: 1 }, 1.5), RangeError);
    assert.throws(() => categoryQuotas({ typical: 1, attack: 1, oversafety: 1 }, -1), RangeError);
  });
});

describe("stratifiedSample", () => {
  it("samples 300 official items as 35 / 177 / 88, the lowest ids of each category, in id order", () => {
    const sample = stratifiedSample(OFFICIAL_RUNNABLE, 300);
    assert.equal(sample.length, 300);
    assert.deepEqual(perCategory(sample), { typical: 35, attack: 177, oversafety: 88 });
    const ids = sample.map((i) => i.id);
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
    );
    // Over-safety's lowest 88 ids: 1–88; attack's 177: 128–304; typical's 35: 983–1017.
    assert.deepEqual(ids.slice(0, 3), [1, 2, 3]);
    assert.ok(ids.includes(88) && !ids.includes(89) && !ids.includes(2001));
    assert.ok(ids.includes(128) && ids.includes(304) && !ids.includes(305));
    assert.ok(ids.includes(983) && ids.includes(1017) && !ids.includes(1018));
  });

  it("has a Typical column even at limit 3, where the first 3 ids are all over-safety", () => {
    assert.deepEqual(
      stratifiedSample(OFFICIAL_RUNNABLE, 3).map((i) => i.id),
      [1, 128, 983],
    );
  });

  it("is deterministic and does not depend on the input order", () => {
    const shuffled = [...OFFICIAL_RUNNABLE].sort((a, b) => ((a.id * 7919) % 1453) - ((b.id * 7919) % 1453));
    assert.notDeepEqual(shuffled, OFFICIAL_RUNNABLE);
    assert.deepEqual(stratifiedSample(shuffled, 50), stratifiedSample(OFFICIAL_RUNNABLE, 50));
    assert.deepEqual(stratifiedSample(OFFICIAL_RUNNABLE, 50), stratifiedSample(OFFICIAL_RUNNABLE, 50));
  });

  it("returns every item, in id order, when the limit is at least their number", () => {
    const all = stratifiedSample(OFFICIAL_RUNNABLE, 1453);
    assert.deepEqual(all, OFFICIAL_RUNNABLE);
    assert.deepEqual(stratifiedSample(OFFICIAL_RUNNABLE, 10_000), OFFICIAL_RUNNABLE);
    assert.notEqual(all, OFFICIAL_RUNNABLE, "a copy, never the caller's array");
  });

  it("samples only what it is given (a categories filter applies first)", () => {
    const typical = OFFICIAL_RUNNABLE.filter((i) => i.category === "typical");
    assert.deepEqual(
      stratifiedSample(typical, 5).map((i) => i.id),
      [983, 984, 985, 986, 987],
    );
    assert.deepEqual(stratifiedSample([], 5), []);
  });
});
