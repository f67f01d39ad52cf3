/**
 * How many shards run at once when a run's input names no `mapConcurrency`. Shared by Plan (what a run
 * does) and the cost estimate (what it would cost), so the two cannot differ.
 */

/** Shards at once by default: at most this many. */
export const MAX_DEFAULT_MAP_CONCURRENCY = 40;

/**
 * A model's maxConcurrency holds for the whole run, so more shards at once than its slots can serve make
 * the run no faster: they wait for a slot, and on AWS each waiting Lambda is billed. The default is enough
 * shards for the largest budget's slots to be filled by their calls, twice over (shards starting and
 * ending), plus one; at most {@link MAX_DEFAULT_MAP_CONCURRENCY} and the shards there are.
 *
 * @param callsPerShard calls a shard makes to each model (items × strategies, vcd counting two)
 */
export function defaultMapConcurrency(
  maxConcurrencies: readonly number[],
  callsPerShard: number,
  shards: number,
): number {
  const fill = Math.max(1, ...maxConcurrencies.map((max) => Math.ceil(max / Math.max(1, callsPerShard))));
  return Math.max(1, Math.min(shards, MAX_DEFAULT_MAP_CONCURRENCY, 2 * fill + 1));
}
