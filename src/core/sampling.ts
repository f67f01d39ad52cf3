/**
 * `limit`: a deterministic sample of the runnable items, stratified by category, so a smoke test of N items
 * still has every column of the paper's table (taking the first N ids would give only over-safety and attack
 * items: ids 1–127 and 128–982 come before typical's 983–1153).
 */
import { CATEGORIES, type Category } from "../benchmarks/mmsafeaware/facts.ts";

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
  return quotasInOrder(CATEGORIES, counts, limit);
}

/**
 * {@link categoryQuotas} over any benchmark's columns: `order` is the columns' order (it breaks ties), and
 * `counts` has an entry for each of them.
 */
export function quotasInOrder<K extends string>(
  order: readonly K[],
  counts: Readonly<Record<K, number>>,
  limit: number,
): Record<K, number> {
  if (!Number.isInteger(limit) || limit < 0)
    throw new RangeError(`limit must be a non-negative integer, got ${limit}`);
  for (const c of order) {
    if (!Number.isInteger(counts[c]) || counts[c] < 0)
      throw new RangeError(`${c}: an item count must be a non-negative integer, got ${counts[c]}`);
  }
  const total = order.reduce((sum, c) => sum + counts[c], 0);
  if (limit >= total) return { ...counts };

  const quotas = Object.fromEntries(order.map((c) => [c, 0])) as Record<K, number>;
  // Integer arithmetic: exact share = limit × count / total = floor + remainder / total.
  const remainders = order.map((c) => {
    quotas[c] = Math.floor((limit * counts[c]) / total);
    return { category: c, remainder: (limit * counts[c]) % total };
  });
  let left = limit - order.reduce((sum, c) => sum + quotas[c], 0);
  // A stable sort keeps the columns' order among equal remainders.
  for (const { category } of [...remainders].sort((a, b) => b.remainder - a.remainder)) {
    if (left === 0) break;
    quotas[category]++;
    left--;
  }

  const present = order.filter((c) => counts[c] > 0);
  if (limit >= present.length) {
    for (const c of present) {
      if (quotas[c] > 0) continue;
      // Some quota is ≥ 2 here: `limit` ≥ the present categories and one of them has none.
      const largest = order.reduce((best, x) => (quotas[x] > quotas[best] ? x : best));
      quotas[largest]--;
      quotas[c] = 1;
    }
  }
  return quotas;
}

/** Items per category. */
export function countByCategory(categories: Iterable<Category>): Record<Category, number> {
  return countInOrder(CATEGORIES, categories);
}

/** Items per column of `order`; a key outside it is a programming error. */
export function countInOrder<K extends string>(order: readonly K[], keys: Iterable<K>): Record<K, number> {
  const counts = Object.fromEntries(order.map((c) => [c, 0])) as Record<K, number>;
  for (const key of keys) {
    if (!(key in counts)) throw new RangeError(`"${key}" is not one of ${order.join(", ")}`);
    counts[key]++;
  }
  return counts;
}

/**
 * A deterministic sample of at most `limit` items, stratified by category (see categoryQuotas): within a
 * category the lowest ids. The result is in id order; `limit` ≥ the number of items returns them all.
 * `order` is the benchmark's columns (MMSafeAware's by default).
 */
export function stratifiedSample<K extends string, T extends { id: number; category: K }>(
  items: readonly T[],
  limit: number,
  order: readonly K[] = CATEGORIES as readonly string[] as readonly K[],
): T[] {
  const byId = [...items].sort((a, b) => a.id - b.id);
  const left = quotasInOrder(
    order,
    countInOrder(
      order,
      byId.map((item) => item.category),
    ),
    limit,
  );
  return byId.filter((item) => {
    if (left[item.category] === 0) return false;
    left[item.category]--;
    return true;
  });
}
