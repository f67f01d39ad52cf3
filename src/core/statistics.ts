/** Small, seeded statistics: reproducible across runs and machines. */

/** mulberry32: a fast 32-bit PRNG; the same seed gives the same stream everywhere. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 95% interval, in the unit of the statistic. */
export interface Interval {
  low: number;
  high: number;
}

/**
 * Percentile bootstrap of a statistic over groups of 0/1 outcomes, resampling items within each group
 * (so each group keeps its size, as the benchmark's subsets do). Groups with no items stay empty.
 * Returns null for a statistic that is undefined on the data (e.g. a group is empty).
 */
export function stratifiedBootstrap<K extends string>(
  groups: Record<K, readonly number[]>,
  statistic: (proportions: Record<K, number | null>) => number | null,
  options: { resamples?: number; seed?: number } = {},
): Interval | null {
  const resamples = options.resamples ?? 1000;
  const random = seededRandom(options.seed ?? 20250211);
  const keys = Object.keys(groups) as K[];
  const values: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const proportions = {} as Record<K, number | null>;
    for (const key of keys) {
      const items = groups[key];
      if (items.length === 0) {
        proportions[key] = null;
        continue;
      }
      let sum = 0;
      for (let i = 0; i < items.length; i++) sum += items[Math.floor(random() * items.length)] ?? 0;
      proportions[key] = sum / items.length;
    }
    const value = statistic(proportions);
    if (value === null) return null;
    values.push(value);
  }
  values.sort((a, b) => a - b);
  const at = (q: number) =>
    values[Math.min(values.length - 1, Math.max(0, Math.floor(q * values.length)))] ?? 0;
  return { low: at(0.025), high: at(0.975) };
}
