import { createHash } from "node:crypto";
import pLimit, { type LimitFunction } from "p-limit";
import type { ObjectStore } from "../adapters/object-store.ts";
import type { CompletionOptions, ModelClient } from "../adapters/openai-model.ts";
import type { VerdictStore } from "../adapters/verdict-store.ts";
import { AimdLimit } from "../core/aimd.ts";
import { buildChatMessages } from "../core/prompts.ts";
import {
  type DatasetItem,
  type EvaluateShardEvent,
  evaluateShardEventSchema,
  type ModelConfig,
  type Strategy,
  type VcdDecision,
  type Verdict,
} from "../core/schemas.ts";
import { verdictKey } from "../core/storage-layout.ts";
import type { VcdOptions } from "../core/strategies.ts";
import { combineVcdOutcomes } from "../core/vcd.ts";
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
  /** Told about each verdict this invocation wrote (metrics, logs); never about ones another attempt wrote. */
  onVerdict?: (verdict: Verdict) => void;
  /** Adds seeded Gaussian noise to an image (the vcd strategy's contrast image); see adapters/image-noise.ts. */
  noiseImage: NoiseImage;
}

/** Decodes an image, adds noise of the given strength (seeded, so reproducible) and re-encodes it. */
export type NoiseImage = (
  bytes: Uint8Array,
  mediaType: DatasetItem["image"]["mediaType"],
  options: { strength: number; seed: number },
) => Promise<{ bytes: Uint8Array; mediaType: string }>;

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
  /** Model calls repeated after a fault (attempts beyond the first), over this invocation's calls. */
  retries: number;
  /** 429 responses met; each may have lowered the model's adaptive concurrency. */
  rateLimited: number;
}

/**
 * The gates of one model: `calls` bounds the requests in flight (the model's maxConcurrency); `staging`
 * bounds the items being prepared or waiting for a call slot (twice as many), so a freed slot is taken at
 * once by an item whose image is already loaded, while memory stays bounded.
 */
export interface ModelGates {
  calls: LimitFunction;
  staging: LimitFunction;
  /** Sets `calls.concurrency`: backs off on 429s, grows back on success, never above maxConcurrency. */
  adaptive: AimdLimit;
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
      gate = {
        calls: pLimit(model.maxConcurrency),
        staging: pLimit(2 * model.maxConcurrency),
        adaptive: new AimdLimit(model.maxConcurrency),
      };
      gates.set(model.id, gate);
    } else if (gate.adaptive.max !== model.maxConcurrency) {
      gate.adaptive = new AimdLimit(model.maxConcurrency);
      gate.calls.concurrency = model.maxConcurrency;
      gate.staging.concurrency = 2 * model.maxConcurrency;
    }
    return gate;
  };
}

interface LoadedImage {
  bytes: Uint8Array;
  dataUrl: string;
}

const dataUrlOf = (mediaType: string, bytes: Uint8Array): string =>
  `data:${mediaType};base64,${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")}`;

/**
 * Loads each item's image once, shares it (and its noised copy, for vcd) between the models and strategies
 * asking about it, then drops it.
 */
class ImageCache {
  private readonly loads = new Map<number, Promise<LoadedImage>>();
  private readonly noised = new Map<number, Promise<string>>();
  private readonly pending = new Map<number, number>();

  constructor(
    private readonly store: ObjectStore,
    private readonly noiseImage: NoiseImage,
    uses: ReadonlyMap<number, number>,
  ) {
    for (const [id, n] of uses) this.pending.set(id, n);
  }

  private load(item: DatasetItem): Promise<LoadedImage> {
    let load = this.loads.get(item.id);
    if (!load) {
      load = this.store.getBytes(item.image.key).then((bytes) => {
        const sha256 = createHash("sha256").update(bytes).digest("hex");
        if (sha256 !== item.image.sha256) {
          throw new Error(
            `image ${item.image.key} changed since upload (sha256 ${sha256.slice(0, 12)}… ≠ ${item.image.sha256.slice(0, 12)}…)`,
          );
        }
        return { bytes, dataUrl: dataUrlOf(item.image.mediaType, bytes) };
      });
      this.loads.set(item.id, load);
    }
    return load;
  }

  /** The item's image as a data URL, verified against the checksum recorded at upload. */
  async dataUrl(item: DatasetItem): Promise<string> {
    return (await this.load(item)).dataUrl;
  }

  /**
   * The vcd contrast image: the item's image with noise of the given strength, seeded by the item id so
   * every model sees the same noised copy and a re-run reproduces it.
   */
  noisedDataUrl(item: DatasetItem, strength: number): Promise<string> {
    let noised = this.noised.get(item.id);
    if (!noised) {
      noised = this.load(item).then(async ({ bytes }) => {
        const out = await this.noiseImage(bytes, item.image.mediaType, { strength, seed: item.id });
        return dataUrlOf(out.mediaType, out.bytes);
      });
      this.noised.set(item.id, noised);
    }
    return noised;
  }

  release(item: DatasetItem): void {
    const left = (this.pending.get(item.id) ?? 1) - 1;
    this.pending.set(item.id, left);
    if (left <= 0) {
      this.loads.delete(item.id);
      this.noised.delete(item.id);
    }
  }
}

interface Task {
  item: DatasetItem;
  model: ModelConfig;
  strategy: Strategy;
}

interface Asked {
  outcome: ModelOutcome;
  decision: VcdDecision | null;
}

type Call = (task: Task, imageUrl: string, options?: CompletionOptions) => Promise<ModelOutcome | null>;

/** A first-token request for vcd: log-probabilities, and a few tokens in case the answer follows markup. */
const VCD_MAX_TOKENS = 8;

const failed = (errorKind: string, error: unknown): Asked => ({
  outcome: {
    kind: "error",
    errorKind,
    message: error instanceof Error ? error.message : String(error),
    latencyMs: 0,
    attempts: 1,
  },
  decision: null,
});

/**
 * Asks the model about one item under one strategy; null when out of time. An item whose image cannot be
 * loaded (or noised, for vcd) gets an error verdict: it is never asked about without its image. vcd asks
 * twice at once, with the clean and the noised image, in two of the model's slots.
 */
async function ask(task: Task, images: ImageCache, vcd: VcdOptions, call: Call): Promise<Asked | null> {
  let clean: string;
  try {
    clean = await images.dataUrl(task.item);
  } catch (error: unknown) {
    return failed("image_unavailable", error);
  }
  if (task.strategy !== "vcd") {
    const outcome = await call(task, clean);
    return outcome === null ? null : { outcome, decision: null };
  }
  let noised: string;
  try {
    noised = await images.noisedDataUrl(task.item, vcd.noise);
  } catch (error: unknown) {
    return failed("image_noise_failed", error);
  }
  const options = { topLogprobs: vcd.topLogprobs, maxTokens: VCD_MAX_TOKENS };
  const [onClean, onNoised] = await Promise.all([call(task, clean, options), call(task, noised, options)]);
  if (onClean === null || onNoised === null) return null;
  return combineVcdOutcomes(onClean, onNoised, vcd);
}

/**
 * Evaluate one shard: every item × model × strategy that has no verdict yet is asked once and gets exactly
 * one verdict (answer or error). Model calls run concurrently up to each model's limit; verdict writes
 * happen off the model slot, so calls never wait behind storage. Re-running the shard resumes it.
 */
export async function evaluateShard(event: unknown, deps: EvaluateShardDeps): Promise<ShardSummary> {
  const { runId, shard, models, strategies, vcd, cache }: EvaluateShardEvent =
    evaluateShardEventSchema.parse(event);
  await Promise.all(models.map((model) => deps.models.prepare(model)));
  const items = parseShard(await deps.store.getText(shard.key), shard.key);

  const keyOf = (t: Task) => verdictKey(t.model.id, t.strategy, t.item.id);
  const all: Task[] = items.flatMap((item) =>
    models.flatMap((model) => strategies.map((strategy) => ({ item, model, strategy }))),
  );
  const done = await deps.verdicts.existingKeys(runId, all.map(keyOf));
  const todo = all.filter((t) => !done.has(keyOf(t)));

  const uses = new Map<number, number>();
  for (const t of todo) uses.set(t.item.id, (uses.get(t.item.id) ?? 0) + 1);
  const images = new ImageCache(deps.store, deps.noiseImage, uses);

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
    retries: 0,
    rateLimited: 0,
  };
  const writes: Promise<void>[] = [];
  // Stop starting calls when a call that starts now might not finish in time; the retry resumes the rest.
  const budgetMs = Math.max(...models.map((m) => m.timeoutMs)) + 15_000;
  let stoppedEarly = 0;

  /** One call in one of the model's slots; null when the shard is out of time before the call starts. */
  const call = async (task: Task, imageUrl: string, options?: CompletionOptions) => {
    const gate = deps.gatesFor(task.model);
    const outcome = await gate.calls(async () => {
      if (deps.remainingMs() < budgetMs) return null;
      // Every call, vcd's two included, says whether the response cache may answer it (false: --no-cache).
      return deps.models.complete(task.model, buildChatMessages(task.item, task.strategy, imageUrl), {
        ...options,
        cache,
      });
    });
    if (outcome !== null && !(outcome.kind === "answer" && outcome.cached)) {
      summary.retries += outcome.attempts - 1;
      summary.rateLimited += outcome.rateLimited ?? 0;
      const limit =
        (outcome.rateLimited ?? 0) > 0 ? gate.adaptive.onRateLimited(Date.now()) : gate.adaptive.onSuccess();
      if (gate.calls.concurrency !== limit) gate.calls.concurrency = limit;
    }
    return outcome;
  };

  const runTask = async (task: Task): Promise<void> => {
    let asked: Asked | null;
    try {
      asked = await ask(task, images, vcd, call);
    } finally {
      images.release(task.item);
    }
    if (asked === null) {
      stoppedEarly++;
      return;
    }
    const verdict = buildVerdict(
      runId,
      task.model.id,
      task.strategy,
      task.item,
      asked.outcome,
      deps.now(),
      asked.decision,
    );
    if (verdict.status === "answered") summary.answered++;
    else summary.errored++;
    writes.push(
      deps.verdicts.putIfAbsent(verdict).then((written) => {
        if (written) {
          summary.written++;
          deps.onVerdict?.(verdict);
        } else summary.duplicatesAvoided++;
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
