import { createHash } from "node:crypto";
import pLimit, { type LimitFunction } from "p-limit";
import type { ObjectStore } from "../adapters/object-store.ts";
import type { ModelClient } from "../adapters/openai-model.ts";
import type { VerdictStore } from "../adapters/verdict-store.ts";
import { buildChatMessages } from "../core/prompts.ts";
import {
  type DatasetItem,
  type EvaluateShardEvent,
  evaluateShardEventSchema,
  type ModelConfig,
  type Strategy,
} from "../core/schemas.ts";
import { verdictKey } from "../core/storage-layout.ts";
import { buildVerdict, type ModelOutcome } from "../core/verdicts.ts";
import { parseShard } from "./dataset-io.ts";
import { ShardIncompleteError } from "./errors.ts";

export interface EvaluateShardDeps {
  store: ObjectStore;
  verdicts: VerdictStore;
  models: ModelClient;
  /** The concurrency gates of a model; shared by every shard evaluated in this process. */
  gatesFor: (model: ModelConfig) => ModelGates;
  now: () => Date;
  /** Milliseconds left before the invocation is killed (Lambda's getRemainingTimeInMillis). */
  remainingMs: () => number;
}

export interface ShardSummary {
  runId: string;
  shard: number;
  items: number;
  planned: number;
  alreadyDone: number;
  written: number;
  answered: number;
  errored: number;
  /** Verdicts another attempt wrote first (a retry racing a slow attempt); none were overwritten. */
  duplicatesAvoided: number;
}

/**
 * The gates of one model: `calls` bounds the requests in flight (the model's maxConcurrency); `staging`
 * bounds the items being prepared or waiting for a call slot (twice as many), so a freed slot is taken at
 * once by an item whose image is already loaded, while memory stays bounded.
 */
export interface ModelGates {
  calls: LimitFunction;
  staging: LimitFunction;
}

/**
 * Gates per model id, kept for the life of the process: inside a Lambda container that is one invocation
 * at a time; in the local runner every shard shares them, so `maxConcurrency` bounds the calls in flight
 * to that model across the whole run.
 */
export function processWideGates(): (model: ModelConfig) => ModelGates {
  const gates = new Map<string, ModelGates>();
  return (model) => {
    let gate = gates.get(model.id);
    if (!gate) {
      gate = { calls: pLimit(model.maxConcurrency), staging: pLimit(2 * model.maxConcurrency) };
      gates.set(model.id, gate);
    } else if (gate.calls.concurrency !== model.maxConcurrency) {
      gate.calls.concurrency = model.maxConcurrency;
      gate.staging.concurrency = 2 * model.maxConcurrency;
    }
    return gate;
  };
}

/** Loads each item's image once, shares it between the models and strategies asking about it, then drops it. */
class ImageCache {
  private readonly loads = new Map<number, Promise<string>>();
  private readonly pending = new Map<number, number>();

  constructor(
    private readonly store: ObjectStore,
    uses: ReadonlyMap<number, number>,
  ) {
    for (const [id, n] of uses) this.pending.set(id, n);
  }

  /** The item's image as a data URL, verified against the checksum recorded at upload. */
  dataUrl(item: DatasetItem): Promise<string> {
    let load = this.loads.get(item.id);
    if (!load) {
      load = this.store.getBytes(item.image.key).then((bytes) => {
        const sha256 = createHash("sha256").update(bytes).digest("hex");
        if (sha256 !== item.image.sha256) {
          throw new Error(
            `image ${item.image.key} changed since upload (sha256 ${sha256.slice(0, 12)}… ≠ ${item.image.sha256.slice(0, 12)}…)`,
          );
        }
        return `data:${item.image.mediaType};base64,${Buffer.from(bytes).toString("base64")}`;
      });
      this.loads.set(item.id, load);
    }
    return load;
  }

  release(item: DatasetItem): void {
    const left = (this.pending.get(item.id) ?? 1) - 1;
    this.pending.set(item.id, left);
    if (left <= 0) this.loads.delete(item.id);
  }
}

interface Task {
  item: DatasetItem;
  model: ModelConfig;
  strategy: Strategy;
}

/**
 * Evaluate one shard: every item × model × strategy that has no verdict yet is asked once and gets exactly
 * one verdict (answer or error). Model calls run concurrently up to each model's limit; verdict writes
 * happen off the model slot, so calls never wait behind storage. Re-running the shard resumes it.
 */
export async function evaluateShard(event: unknown, deps: EvaluateShardDeps): Promise<ShardSummary> {
  const { runId, shard, models, strategies }: EvaluateShardEvent = evaluateShardEventSchema.parse(event);
  for (const model of models) deps.models.assertUsable(model);
  const items = parseShard(await deps.store.getText(shard.key), shard.key);

  const keyOf = (t: Task) => verdictKey(t.model.id, t.strategy, t.item.id);
  const all: Task[] = items.flatMap((item) =>
    models.flatMap((model) => strategies.map((strategy) => ({ item, model, strategy }))),
  );
  const done = await deps.verdicts.existingKeys(runId, all.map(keyOf));
  const todo = all.filter((t) => !done.has(keyOf(t)));

  const uses = new Map<number, number>();
  for (const t of todo) uses.set(t.item.id, (uses.get(t.item.id) ?? 0) + 1);
  const images = new ImageCache(deps.store, uses);

  const summary: ShardSummary = {
    runId,
    shard: shard.index,
    items: items.length,
    planned: all.length,
    alreadyDone: done.size,
    written: 0,
    answered: 0,
    errored: 0,
    duplicatesAvoided: 0,
  };
  const writes: Promise<void>[] = [];
  // Stop starting calls when a call that starts now might not finish in time; the retry resumes the rest.
  const budgetMs = Math.max(...models.map((m) => m.timeoutMs)) + 15_000;
  let stoppedEarly = 0;

  const runTask = async (task: Task): Promise<void> => {
    const gates = deps.gatesFor(task.model);
    let outcome: ModelOutcome | null;
    try {
      const image = await images.dataUrl(task.item).then(
        (url) => ({ url }),
        (error: unknown) => ({ error: error instanceof Error ? error.message : String(error) }),
      );
      // Never ask about an item without its image: such an item gets an error verdict instead.
      outcome =
        "url" in image
          ? await gates.calls(async () => {
              if (deps.remainingMs() < budgetMs) return null;
              return deps.models.complete(task.model, buildChatMessages(task.item, task.strategy, image.url));
            })
          : {
              kind: "error",
              errorKind: "image_unavailable",
              message: image.error,
              latencyMs: 0,
              attempts: 1,
            };
    } finally {
      images.release(task.item);
    }
    if (outcome === null) {
      stoppedEarly++;
      return;
    }
    const verdict = buildVerdict(runId, task.model.id, task.strategy, task.item, outcome, deps.now());
    if (verdict.status === "answered") summary.answered++;
    else summary.errored++;
    writes.push(
      deps.verdicts.putIfAbsent(verdict).then((written) => {
        if (written) summary.written++;
        else summary.duplicatesAvoided++;
      }),
    );
  };

  // Staging, not the call slot, waits for the image: storage reads overlap the calls in flight.
  await Promise.all(todo.map((task) => deps.gatesFor(task.model).staging(() => runTask(task))));
  const results = await Promise.allSettled(writes);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed.length > 0) {
    throw new Error(
      `shard ${shard.index}: ${failed.length} verdict write(s) failed (the others are kept; a retry redoes only these)`,
      {
        cause: failed[0]?.reason,
      },
    );
  }
  if (stoppedEarly > 0) {
    throw new ShardIncompleteError(
      `shard ${shard.index}: stopped ${stoppedEarly} call(s) early to stay within the time limit; the retry resumes them`,
    );
  }
  return summary;
}
