/**
 * `limit`: a deterministic sample of the runnable items, stratified by category, so a smoke test of N items
 * still has every column of the paper's table (taking the first N ids would give only over-safety and attack
 * items: ids 1–127 and 128–982 come before typical's 983–1153).
 */
import { CATEGORIES, type Category } from "./benchmark.ts";

/**
 * Items per category for a sample of `limit` items from `counts` items per category: proportional quotas by
 * the largest-remainder method (ties broken in CATEGORIES order), then at least one item for every category
 * that has items, as long as `limit` is at least the number of such categories (each one taken from the
 * largest quota, the first in CATEGORIES order on a tie). With `limit` ≥ the total, every item.
 */
export function categoryQuotas(
  counts: Readonly<Record<Category, number>>,
  limit: number,
): Record<Category, number> {
  if (!Number.isInteger(limit) || limit < 0)
    throw new RangeError(`limit must be a non-negative integer, got ${limit}`);
  for (const c of CATEGORIES) {
    if (!Number.isInteger(counts[c]) || counts[c] < 0)
      throw new RangeError(`${c}: an item count must be a non-negative integer, got ${counts[c]}`);
  }
  const total = CATEGORIES.reduce((sum, c) => sum + counts[c], 0);
  if (limit >= total) return { ...counts };

  const quotas = { typical: 0, attack: 0, oversafety: 0 } satisfies Record<Category, number>;
  // Integer arithmetic: exact share = limit × count / total = floor + remainder / total.
  const remainders = CATEGORIES.map((c) => {
    quotas[c] = Math.floor((limit * counts[c]) / total);
    return { category: c, remainder: (limit * counts[c]) % total };
  });
  let left = limit - CATEGORIES.reduce((sum, c) => sum + quotas[c], 0);
  // A stable sort keeps CATEGORIES order among equal remainders.
  for (const { category } of [...remainders].sort((a, b) => b.remainder - a.remainder)) {
    if (left === 0) break;
    quotas[category]++;
    left--;
  }

  const present = CATEGORIES.filter((c) => counts[c] > 0);
  if (limit >= present.length) {
    for (const c of present) {
      if (quotas[c] > 0) continue;
      // Some quota is ≥ 2 here: `limit` ≥ the present categories and one of them has none.
      const largest = CATEGORIES.reduce((best, x) => (quotas[x] > quotas[best] ? x : best));
      quotas[largest]--;
      quotas[c] = 1;
    }
  }
  return quotas;
}

/** Items per category. */
export function countByCategory(categories: Iterable<Category>): Record<Category, number> {
  const counts = { typical: 0, attack: 0, oversafety: 0 } satisfies Record<Category, number>;
  for (const category of categories) counts[category]++;
  return counts;
}

/**
 * A deterministic sample of at most `limit` items, stratified by category (see categoryQuotas): within a
 * category the lowest ids. The result is in id order; `limit` ≥ the number of items returns them all.
 */
export function stratifiedSample<T extends { id: number; category: Category }>(
  items: readonly T[],
  limit: number,
): T[] {
  const byId = [...items].sort((a, b) => a.id - b.id);
  const left = categoryQuotas(countByCategory(byId.map((item) => item.category)), limit);
  return byId.filter((item) => {
    if (left[item.category] === 0) return false;
    left[item.category]--;
    return true;
  });
}
