import { createHash } from "node:crypto";
import pLimit, { type LimitFunction } from "p-limit";
import type { ObjectStore } from "../adapters/object-store.ts";
import type { ExistingVerdict, VerdictStore } from "../adapters/verdict-store.ts";
import type { JudgeProtocol } from "../benchmarks/definition.ts";
import { combineVcdOutcomes, LOGPROBS_UNAVAILABLE_MESSAGE } from "../benchmarks/mmsafeaware/vcd.ts";
import type { BenchmarkPlugin } from "../benchmarks/plugin.ts";
import { AimdLimit } from "../core/aimd.ts";
import { CircuitBreaker } from "../core/circuit-breaker.ts";
import { buildChatMessages, type ChatMessage } from "../core/prompts.ts";
import {
  type BenchmarkItem,
  checkModelsEventSchema,
  type DatasetItem,
  type EvaluateShardEvent,
  evaluateShardEventSchema,
  isBenchmarkItem,
  type ModelConfig,
  modelEndpoint,
  returnsLogprobs,
  type ShardItem,
  type ShardRef,
  type StoredVerdict,
  type Strategy,
  type VcdDecision,
} from "../core/schemas.ts";
import type { VcdOptions } from "../core/strategies.ts";
import {
  buildBenchmarkVerdict,
  buildJudgeVerdict,
  buildVerdict,
  type JudgeIdentity,
  type ModelOutcome,
} from "../core/verdicts.ts";
import { judgeVerdictKey, verdictKey } from "../deployment/storage-layout.ts";
import { unusableModelHint } from "../providers/hints.ts";
import { CallNotStartedError, type CompletionOptions, type ModelClient } from "../providers/model-client.ts";
import { parseShard, parseShardManifest } from "./dataset-io.ts";
import { ModelUnavailableError, ShardIncompleteError, VerdictWriteError } from "./errors.ts";
import type { CallBudgets } from "./run-budgets.ts";
import { type RunPlugins, runPlugins } from "./run-plugins.ts";

export interface EvaluateShardDeps {
  store: ObjectStore;
  verdicts: VerdictStore;
  models: ModelClient;
  /** The concurrency gates of a model; shared by every shard evaluated in this process. */
  gatesFor: (model: ModelConfig) => ModelGates;
  /**
   * The run-wide model budgets (slots and pacing shared by every process of the run; see run-budgets.ts).
   * Without it, only this process's gates bound the calls.
   */
  budgets?: CallBudgets;
  now: () => Date;
  /** Milliseconds left before the invocation is killed (Lambda's getRemainingTimeInMillis). */
  remainingMs: () => number;
  /** Told about each verdict this invocation wrote (metrics, logs); never about ones another attempt wrote. */
  onVerdict?: (verdict: StoredVerdict) => void;
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
  /** Error verdicts of earlier attempts asked again (a resume retries errors unless told to keep them). */
  errorsRetried: number;
  /** Verdicts another attempt wrote first (a retry racing a slow attempt); none were overwritten. */
  duplicatesAvoided: number;
  /** Items not asked because the model's circuit breaker was open (written as endpoint_unavailable). */
  notAsked: number;
  /** Model calls repeated after a fault (attempts beyond the first), over this invocation's calls. */
  retries: number;
  /** 429 responses met; each may have lowered the model's adaptive concurrency. */
  rateLimited: number;
  /** With a judge: its readings the shard's answers need, and how many it asked for now. */
  judgements?: { planned: number; asked: number };
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
  /** Stops calling a model whose endpoint keeps failing (see core/circuit-breaker.ts). */
  breaker: CircuitBreaker;
  /** The endpoint these gates describe (modelEndpoint); a model id at another one gets new gates. */
  endpoint?: string;
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
    // A model id now at another endpoint (a resume after fixing a judge's baseURL) starts afresh: the
    // breaker and the adaptive limit described the old endpoint.
    if (gate && gate.endpoint !== modelEndpoint(model)) gate = undefined;
    if (!gate) {
      gate = {
        endpoint: modelEndpoint(model),
        calls: pLimit(model.maxConcurrency),
        staging: pLimit(2 * model.maxConcurrency),
        adaptive: new AimdLimit(model.maxConcurrency),
        breaker: new CircuitBreaker(),
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

  private load(item: ShardItem): Promise<LoadedImage> {
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
  async dataUrl(item: ShardItem): Promise<string> {
    return (await this.load(item)).dataUrl;
  }

  /**
   * The vcd contrast image: the item's image with noise of the given strength, seeded by the item id so
   * every model sees the same noised copy and a re-run reproduces it.
   */
  noisedDataUrl(item: ShardItem, strength: number): Promise<string> {
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

  release(item: ShardItem): void {
    const left = (this.pending.get(item.id) ?? 1) - 1;
    this.pending.set(item.id, left);
    if (left <= 0) {
      this.loads.delete(item.id);
      this.noised.delete(item.id);
    }
  }
}

interface Task {
  item: ShardItem;
  /** The evaluated model (for a judge task: the model whose answer is judged). */
  model: ModelConfig;
  strategy: Strategy;
  /** Set for a judge task: the judge reads the stored answer of item × model × strategy. */
  judge?: JudgeTask;
}

/** What a judge task needs: the judge, its protocol, and the answer it reads. */
interface JudgeTask {
  model: ModelConfig;
  identity: JudgeIdentity;
  plugin: BenchmarkPlugin;
  item: BenchmarkItem;
  /** The answer as stored on its verdict (bounded; a cut answer carries its truncation mark). */
  answer: string;
}

/**
 * The seed judges are asked with where the API takes one: MOSSBench's official judge code asks with seed 42
 * at temperature 0 (Plan sets the judge's temperature to 0).
 */
export const JUDGE_SEED = 42;

/** The judge request: the protocol's prompt filled in, with the item's image where the protocol attaches it. */
function judgeMessages(prompt: string, imageDataUrl: string | null): ChatMessage[] {
  return [
    {
      role: "user",
      content: [
        { type: "text", text: prompt },
        ...(imageDataUrl === null ? [] : [{ type: "image_url" as const, image_url: { url: imageDataUrl } }]),
      ],
    },
  ];
}

interface Asked {
  outcome: ModelOutcome;
  decision: VcdDecision | null;
}

type Call = (
  task: Task,
  messages: ChatMessage[],
  options?: CompletionOptions,
) => Promise<ModelOutcome | null>;

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
  if (task.strategy === "vcd" && !returnsLogprobs(task.model)) {
    // Never a silent fallback to another decoding: the verdict says why there is no answer. No call is made.
    return failed(
      "logprobs_unavailable",
      new Error(
        `${LOGPROBS_UNAVAILABLE_MESSAGE} (${modelEndpoint(task.model)}: the Converse API returns none)`,
      ),
    );
  }
  let clean: string;
  try {
    clean = await images.dataUrl(task.item);
  } catch (error: unknown) {
    return failed("image_unavailable", error);
  }
  if (task.strategy !== "vcd") {
    const outcome = await call(task, buildChatMessages(task.item, task.strategy, clean));
    return outcome === null ? null : { outcome, decision: null };
  }
  let noised: string;
  try {
    noised = await images.noisedDataUrl(task.item, vcd.noise);
  } catch (error: unknown) {
    return failed("image_noise_failed", error);
  }
  const options = { topLogprobs: vcd.topLogprobs, maxTokens: VCD_MAX_TOKENS };
  const [onClean, onNoised] = await Promise.all([
    call(task, buildChatMessages(task.item, task.strategy, clean), options),
    call(task, buildChatMessages(task.item, task.strategy, noised), options),
  ]);
  if (onClean === null || onNoised === null) return null;
  return combineVcdOutcomes(onClean, onNoised, vcd);
}

/** The budget scope of a model in a run: its limits hold for the run, across shards. */
export const budgetScope = (runId: string, modelId: string): string => `${runId}#${modelId}`;

/** Writes of one verdict before the shard gives up on storage. */
const WRITE_ATTEMPTS = 4;
const WRITE_BACKOFF_MS = 250;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What asking a set of tasks needs besides the tasks. */
interface TaskRun {
  runId: string;
  vcd: VcdOptions;
  cache: boolean;
  /** The verdict each task has now, if any (an error verdict being retried). */
  previousOf: (task: Task) => ExistingVerdict | null;
  /** The run's plug-in benchmarks (scorers, judge protocol). */
  plugins: RunPlugins;
}

/** What asking a set of tasks did. */
interface TaskRunResult {
  counts: Pick<
    ShardSummary,
    "written" | "answered" | "errored" | "duplicatesAvoided" | "notAsked" | "retries" | "rateLimited"
  >;
  /** Tasks not asked because the run stopped starting calls (time, or storage failing). */
  stoppedEarly: number;
  writeFailures: unknown[];
  /** The outcome of every task that was asked. */
  outcomes: Map<Task, ModelOutcome>;
}

/**
 * Asks about every task and writes one verdict each (answer or error). Model calls run concurrently up to
 * each model's limit; each verdict is written as soon as its answer arrives, retried on storage faults, and
 * awaited before this returns. After a write that failed for good, no new call starts.
 */
async function runTasks(
  todo: readonly Task[],
  run: TaskRun,
  deps: EvaluateShardDeps,
): Promise<TaskRunResult> {
  const { runId, vcd, cache, previousOf } = run;
  const uses = new Map<number, number>();
  for (const t of todo) uses.set(t.item.id, (uses.get(t.item.id) ?? 0) + 1);
  const images = new ImageCache(deps.store, deps.noiseImage, uses);
  const counts: TaskRunResult["counts"] = {
    written: 0,
    answered: 0,
    errored: 0,
    duplicatesAvoided: 0,
    notAsked: 0,
    retries: 0,
    rateLimited: 0,
  };
  const result: TaskRunResult = { counts, stoppedEarly: 0, writeFailures: [], outcomes: new Map() };
  // Stop starting calls when a call that starts now might not finish in time; the retry resumes the rest.
  const budgetMs = Math.max(...todo.map((t) => t.model.timeoutMs)) + 15_000;
  // Outcomes of calls the breaker did not make: no attempt, so no signal for the adaptive concurrency.
  const notCalled = new WeakSet<ModelOutcome>();

  /**
   * One call in one of the model's slots; null when no call may start any more (out of time, or storage
   * failing). A model whose breaker is open is not called: the outcome says why.
   */
  const callsStopped = () => result.writeFailures.length > 0 || deps.remainingMs() < budgetMs;
  const { budgets } = deps;
  const call = async (task: Task, messages: ChatMessage[], options?: CompletionOptions) => {
    // A judge task's calls go to the judge, under the judge's own gates, budget, breaker and cache.
    const model = task.judge?.model ?? task.model;
    const gate = deps.gatesFor(model);
    // Every attempt waits for its turn under the model's run-wide budget (all shards, all processes).
    const beforeAttempt = budgets
      ? () =>
          budgets.acquire(
            budgetScope(runId, model.id),
            {
              maxConcurrency: model.maxConcurrency,
              requestsPerMinute: model.requestsPerMinute,
              tokensPerMinute: model.tokensPerMinute,
            },
            callsStopped,
          )
      : undefined;
    const outcome = await gate.calls(async (): Promise<ModelOutcome | null> => {
      if (callsStopped()) return null;
      if (!gate.breaker.allow(Date.now())) {
        counts.notAsked++;
        const unavailable: ModelOutcome = {
          kind: "error",
          errorKind: "endpoint_unavailable",
          message: `not asked: ${model.id} at ${modelEndpoint(model)} is unavailable, ${gate.breaker.describe()}; a resume retries it`,
          latencyMs: 0,
          attempts: 1,
        };
        notCalled.add(unavailable);
        return unavailable;
      }
      // Every call, vcd's two included, says whether the response cache may answer it (false: --no-cache).
      let asked: ModelOutcome;
      try {
        asked = await deps.models.complete(model, messages, {
          ...options,
          cache,
          ...(beforeAttempt ? { beforeAttempt } : {}),
        });
      } catch (error: unknown) {
        // Stopped while waiting for the budget: not asked, as when out of time.
        if (error instanceof CallNotStartedError) return null;
        throw error;
      }
      const endpointFailure =
        asked.kind === "error" && CircuitBreaker.ENDPOINT_FAILURES.has(asked.errorKind)
          ? asked.errorKind
          : null;
      gate.breaker.record(endpointFailure, asked.kind === "error" ? asked.message : "", Date.now());
      return asked;
    });
    if (outcome !== null && !(outcome.kind === "answer" && outcome.cached) && !notCalled.has(outcome)) {
      counts.retries += outcome.attempts - 1;
      counts.rateLimited += outcome.rateLimited ?? 0;
      const limit =
        (outcome.rateLimited ?? 0) > 0 ? gate.adaptive.onRateLimited(Date.now()) : gate.adaptive.onSuccess();
      if (gate.calls.concurrency !== limit) gate.calls.concurrency = limit;
    }
    return outcome;
  };

  /** Stores a verdict, retrying storage faults; false when another attempt wrote first. */
  const write = async (verdict: StoredVerdict, replacing: ExistingVerdict | null): Promise<boolean> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await deps.verdicts.put(verdict, replacing);
      } catch (error: unknown) {
        if (attempt >= WRITE_ATTEMPTS) throw error;
        await sleep(WRITE_BACKOFF_MS * 2 ** (attempt - 1));
      }
    }
  };

  /** Writes a verdict built for a task, carrying on the attempts of the error verdict it replaces. */
  const store = async (task: Task, built: StoredVerdict): Promise<void> => {
    const previous = previousOf(task);
    // A retried error verdict's attempts carry on: the report tells items that needed more than one run.
    const verdict: StoredVerdict =
      previous === null
        ? built
        : { ...built, runAttempts: previous.runAttempts + 1, attempts: built.attempts + previous.attempts };
    if (verdict.status === "answered") counts.answered++;
    else counts.errored++;
    try {
      if (await write(verdict, previous)) {
        counts.written++;
        // Judge verdicts are the judge's calls, not the evaluated model's: its metrics count answers only.
        if (!("judge" in verdict)) deps.onVerdict?.(verdict);
      } else counts.duplicatesAvoided++;
    } catch (error: unknown) {
      result.writeFailures.push(error);
    }
  };

  /** A judge task: the judge reads the stored answer, or the protocol scores it unasked (an empty answer). */
  const runJudgeTask = async (task: Task, judge: JudgeTask): Promise<void> => {
    let outcome: ModelOutcome | null = null;
    if (judge.plugin.judgeNeeded(judge.answer)) {
      let image: string | null = null;
      try {
        if (judge.identity.protocol.attachImage) image = await images.dataUrl(judge.item);
      } catch (error: unknown) {
        outcome = failed("image_unavailable", error).outcome;
      } finally {
        images.release(judge.item);
      }
      if (outcome === null) {
        const prompt = judge.identity.protocol.prompt({
          question: judge.item.text,
          response: judge.answer,
          text: judge.item.text,
          answer: judge.answer,
          expected: judge.item.expected,
        });
        const asked = await call(task, judgeMessages(prompt, image), { seed: JUDGE_SEED });
        if (asked === null) {
          result.stoppedEarly++;
          return;
        }
        outcome = asked;
        result.outcomes.set(task, asked);
      }
    } else images.release(judge.item);
    await store(
      task,
      buildJudgeVerdict({
        runId,
        modelId: task.model.id,
        strategy: task.strategy,
        item: judge.item,
        judge: judge.identity,
        outcome,
        unjudgedScore: judge.plugin.unjudgedScore,
        now: deps.now(),
      }),
    );
  };

  const runTask = async (task: Task): Promise<void> => {
    // Once calls may not start (time, storage failing), the image is not even loaded: the shard settles fast.
    if (result.writeFailures.length > 0 || deps.remainingMs() < budgetMs) {
      result.stoppedEarly++;
      return;
    }
    if (task.judge) return runJudgeTask(task, task.judge);
    let asked: Asked | null;
    try {
      asked = await ask(task, images, vcd, call);
    } finally {
      images.release(task.item);
    }
    if (asked === null) {
      result.stoppedEarly++;
      return;
    }
    result.outcomes.set(task, asked.outcome);
    const { item } = task;
    const built: StoredVerdict = isBenchmarkItem(item)
      ? buildBenchmarkVerdict(
          runId,
          task.model.id,
          task.strategy,
          item,
          asked.outcome,
          deps.now(),
          run.plugins(item.benchmark),
        )
      : buildVerdict(runId, task.model.id, task.strategy, item, asked.outcome, deps.now(), asked.decision);
    await store(task, built);
  };

  // Staging, not the call slot, waits for the image: storage reads overlap the calls in flight.
  await Promise.all(
    todo.map((task) => deps.gatesFor(task.judge?.model ?? task.model).staging(() => runTask(task))),
  );
  return result;
}

/** The benchmarks of a shard's plug-in items (MMSafeAware's need no plug-in). */
const benchmarksOf = (items: readonly ShardItem[]): string[] => [
  ...new Set(items.filter(isBenchmarkItem).map((item) => item.benchmark)),
];

/** Two invocations' counts added up. */
function addCounts(a: TaskRunResult["counts"], b: TaskRunResult["counts"]): TaskRunResult["counts"] {
  const sum = { ...a };
  for (const key of Object.keys(b) as (keyof typeof b)[]) sum[key] += b[key];
  return sum;
}

/**
 * Judge tasks of a shard: every answered verdict of a plug-in benchmark's item × model × strategy whose
 * benchmark has a judge protocol, and that has no reading by this judge yet (or, when retrying errors, only an
 * error reading). An item whose answer is an error (or missing) waits: a resume that answers it judges it.
 */
async function judgeTasks(
  runId: string,
  items: readonly ShardItem[],
  models: readonly ModelConfig[],
  strategies: readonly Strategy[],
  judge: ModelConfig,
  retry: { errors: boolean; before: string | undefined },
  verdicts: VerdictStore,
  plugins: RunPlugins,
): Promise<{ all: number; todo: Task[]; previousOf: (task: Task) => ExistingVerdict | null }> {
  type Candidate = { item: BenchmarkItem; plugin: BenchmarkPlugin; protocol: JudgeProtocol };
  const candidates: Candidate[] = items.flatMap((item) => {
    if (!isBenchmarkItem(item)) return [];
    const plugin = plugins(item.benchmark);
    return plugin.judge ? [{ item, plugin, protocol: plugin.judge }] : [];
  });
  const keyOf = (c: Candidate, model: ModelConfig, strategy: Strategy) =>
    judgeVerdictKey(judge.id, model.id, strategy, c.item.id);
  const triples = candidates.flatMap((c) =>
    models.flatMap((model) => strategies.map((strategy) => ({ c, model, strategy }))),
  );
  if (triples.length === 0) return { all: 0, todo: [], previousOf: () => null };
  if (!verdicts.answers)
    throw new Error("this verdict store cannot read stored answers, which a judge needs");
  const existing = await verdicts.existing(
    runId,
    triples.map((t) => keyOf(t.c, t.model, t.strategy)),
  );
  const open = triples.filter((t) => {
    const previous = existing.get(keyOf(t.c, t.model, t.strategy));
    if (previous === undefined) return true;
    return (
      retry.errors &&
      previous.status === "error" &&
      (retry.before === undefined || previous.createdAt < retry.before)
    );
  });
  const answers = await verdicts.answers(
    runId,
    open.map((t) => verdictKey(t.model.id, t.strategy, t.c.item.id)),
  );
  const previous = new Map<Task, ExistingVerdict | null>();
  const todo: Task[] = [];
  for (const t of open) {
    const answer = answers.get(verdictKey(t.model.id, t.strategy, t.c.item.id));
    if (answer === undefined) continue;
    const task: Task = {
      item: t.c.item,
      model: t.model,
      strategy: t.strategy,
      judge: {
        model: judge,
        identity: { modelId: judge.id, protocol: t.c.protocol },
        plugin: t.c.plugin,
        item: t.c.item,
        answer,
      },
    };
    todo.push(task);
    previous.set(task, existing.get(keyOf(t.c, t.model, t.strategy)) ?? null);
  }
  return { all: triples.length, todo, previousOf: (task) => previous.get(task) ?? null };
}

/** Tasks of a shard's items × models × strategies, and which of them need asking. */
async function shardTasks(
  runId: string,
  items: readonly ShardItem[],
  models: readonly ModelConfig[],
  strategies: readonly Strategy[],
  retry: { errors: boolean; before: string | undefined },
  verdicts: VerdictStore,
): Promise<{ all: Task[]; todo: Task[]; previousOf: (task: Task) => ExistingVerdict | null }> {
  const keyOf = (t: Task) => verdictKey(t.model.id, t.strategy, t.item.id);
  const all: Task[] = items.flatMap((item) =>
    models.flatMap((model) => strategies.map((strategy) => ({ item, model, strategy }))),
  );
  const existing = await verdicts.existing(runId, all.map(keyOf));
  const previousOf = (t: Task): ExistingVerdict | null => existing.get(keyOf(t)) ?? null;
  const todo = all.filter((t) => {
    const previous = previousOf(t);
    if (previous === null) return true;
    // ISO 8601 times in UTC compare in time order.
    return (
      retry.errors &&
      previous.status === "error" &&
      (retry.before === undefined || previous.createdAt < retry.before)
    );
  });
  return { all, todo, previousOf };
}

/**
 * Evaluate one shard: every item × model × strategy that has no verdict yet (or, unless `retryErrors` is
 * false, only an error verdict) is asked and gets exactly one verdict (answer or error). Re-running the
 * shard resumes it.
 *
 * @throws VerdictWriteError when a verdict cannot be stored after retries: no new call starts after that,
 *   the calls in flight finish and are written if they can, and every verdict written so far is kept.
 * @throws ShardIncompleteError when the shard stopped starting calls to stay within its time; the
 *   workflow's retry resumes it.
 */
export async function evaluateShard(event: unknown, deps: EvaluateShardDeps): Promise<ShardSummary> {
  const {
    runId,
    shard,
    models,
    strategies,
    vcd,
    cache,
    retryErrors,
    retryErrorsBefore,
    judge,
    judgeOnly,
  }: EvaluateShardEvent = evaluateShardEventSchema.parse(event);
  const retry = { errors: retryErrors, before: retryErrorsBefore };
  // A rejudge never asks the evaluated models: they need no credentials either.
  if (!judgeOnly) await Promise.all(models.map((model) => deps.models.prepare(model)));
  if (judge) await deps.models.prepare(judge);
  const items = parseShard(await deps.store.getText(shard.key), shard.key);
  const plugins = await runPlugins(deps.store, runId, benchmarksOf(items));
  const { all, todo, previousOf } = judgeOnly
    ? { all: [], todo: [], previousOf: () => null }
    : await shardTasks(runId, items, models, strategies, retry, deps.verdicts);
  const asked = await runTasks(todo, { runId, vcd, cache, previousOf, plugins }, deps);
  // The judge reads the answers once they are stored: this shard's, and earlier attempts'.
  const judging =
    judge === null || asked.writeFailures.length > 0
      ? null
      : await judgeTasks(runId, items, models, strategies, judge, retry, deps.verdicts, plugins);
  const judged =
    judging &&
    (await runTasks(judging.todo, { runId, vcd, cache, previousOf: judging.previousOf, plugins }, deps));
  const counts = judged ? addCounts(asked.counts, judged.counts) : asked.counts;
  const stoppedEarly = asked.stoppedEarly + (judged?.stoppedEarly ?? 0);
  const writeFailures = [...asked.writeFailures, ...(judged?.writeFailures ?? [])];
  const summary: ShardSummary = {
    runId,
    shard: shard.index,
    items: items.length,
    planned: all.length,
    alreadyDone: all.length - todo.length,
    errorsRetried: todo.filter((t) => previousOf(t) !== null).length,
    ...counts,
    ...(judging ? { judgements: { planned: judging.all, asked: judging.todo.length } } : {}),
  };
  if (writeFailures.length > 0) {
    throw new VerdictWriteError(
      `shard ${shard.index}: ${writeFailures.length} verdict write(s) failed after ${WRITE_ATTEMPTS} attempts ` +
        `(${describeError(writeFailures[0])}); ${counts.written} verdicts were written and are kept, ` +
        `${stoppedEarly} item(s) were not asked; resuming the run retries only what has no verdict`,
      { cause: writeFailures[0] },
    );
  }
  if (stoppedEarly > 0) {
    throw new ShardIncompleteError(
      `shard ${shard.index}: stopped ${stoppedEarly} call(s) early to stay within the time limit; the retry resumes them`,
    );
  }
  return summary;
}

/**
 * The CheckModels task: before the fan-out, each model is asked one real question of the run — its first
 * item × strategy (in shard order) without an answer — and the verdict is stored as the shard would store
 * it, so the check costs no extra call. A model that cannot be asked (unreachable, key refused, unknown
 * model, not an OpenAI-compatible API) stops the run in seconds. Models with nothing left to ask are not
 * called at all.
 *
 * @throws ModelUnavailableError naming every model that cannot be asked and what to fix.
 */
export async function checkModels(event: unknown, deps: EvaluateShardDeps): Promise<CheckModelsResult> {
  const input = checkModelsEventSchema.parse(event);
  const { runId, strategies, vcd, cache, retryErrors, retryErrorsBefore, judge } = input;
  // A rejudge asks no evaluated model: only the judge is checked.
  const models = input.judgeOnly ? [] : input.models;
  await Promise.all(models.map((model) => deps.models.prepare(model)));
  if (judge) await deps.models.prepare(judge);
  const shards = parseShardManifest(await deps.store.getText(input.manifestKey), input.manifestKey);
  const first = new Map<string, Task>();
  const previous = new Map<Task, ExistingVerdict | null>();
  // Shard by shard until every model has a question or none is left: usually the first shard only.
  for (const shard of shards) {
    const waiting = models.filter((m) => !first.has(m.id));
    if (waiting.length === 0) break;
    const items = parseShard(await deps.store.getText(shard.key), shard.key);
    const { todo, previousOf } = await shardTasks(
      runId,
      items,
      waiting,
      strategies,
      { errors: retryErrors, before: retryErrorsBefore },
      deps.verdicts,
    );
    for (const task of todo) {
      if (first.has(task.model.id)) continue;
      first.set(task.model.id, task);
      previous.set(task, previousOf(task));
    }
  }
  const tasks = [...first.values()];
  const plugins = await runPlugins(deps.store, runId, benchmarksOf(tasks.map((t) => t.item)));
  const { outcomes, writeFailures } = await runTasks(
    tasks,
    { runId, vcd, cache, previousOf: (t) => previous.get(t) ?? null, plugins },
    deps,
  );
  const problems = tasks.flatMap((task) => {
    const outcome = outcomes.get(task);
    const problem = outcome === undefined ? undefined : unusableModel(task.model, outcome);
    return problem === undefined ? [] : [problem];
  });
  // The judge too: its first reading of an answer stored so far (the models' checks just stored some).
  const judged = judge && problems.length === 0 ? await checkJudge(input, judge, shards, deps) : null;
  if (judged?.problem) problems.push(judged.problem);
  if (problems.length > 0) {
    throw new ModelUnavailableError(
      `${problems.length === 1 ? "a model" : `${problems.length} models`} cannot be asked, so the run stopped before fanning out:\n` +
        problems.map((p) => `  ${p}`).join("\n"),
    );
  }
  if (writeFailures.length > 0) {
    throw new VerdictWriteError(
      `checking the models: a verdict could not be stored (${describeError(writeFailures[0])})`,
      {
        cause: writeFailures[0],
      },
    );
  }
  return {
    checked: tasks.map((task) => {
      const outcome = outcomes.get(task);
      return {
        modelId: task.model.id,
        itemId: task.item.id,
        strategy: task.strategy,
        outcome:
          outcome === undefined ? "not asked" : outcome.kind === "answer" ? "answered" : outcome.errorKind,
      };
    }),
    nothingLeft: models.filter((m) => !first.has(m.id)).map((m) => m.id),
    ...(judged && judge
      ? {
          judge: {
            modelId: judge.id,
            itemId: judged.task.item.id,
            outcome:
              judged.outcome === undefined
                ? "not asked"
                : judged.outcome.kind === "answer"
                  ? "answered"
                  : judged.outcome.errorKind,
          },
        }
      : {}),
  };
}

/**
 * Asks the judge about the first stored answer of the run that it has no reading of, keeping the reading as
 * the shard would, so a judge that cannot be asked stops the run in seconds too. Nothing to read: no call.
 */
async function checkJudge(
  input: CheckModelsEvent,
  judge: ModelConfig,
  shards: readonly ShardRef[],
  deps: EvaluateShardDeps,
): Promise<{ problem: string | undefined; task: Task; outcome: ModelOutcome | undefined } | null> {
  const retry = { errors: input.retryErrors, before: input.retryErrorsBefore };
  for (const shard of shards) {
    const items = parseShard(await deps.store.getText(shard.key), shard.key);
    const plugins = await runPlugins(deps.store, input.runId, benchmarksOf(items));
    const found = await judgeTasks(
      input.runId,
      items,
      input.models,
      input.strategies,
      judge,
      retry,
      deps.verdicts,
      plugins,
    );
    const task = found.todo[0];
    if (!task) continue;
    const { outcomes } = await runTasks(
      [task],
      { runId: input.runId, vcd: input.vcd, cache: input.cache, previousOf: found.previousOf, plugins },
      deps,
    );
    const outcome = outcomes.get(task);
    return { problem: outcome === undefined ? undefined : unusableModel(judge, outcome), task, outcome };
  }
  return null;
}

type CheckModelsEvent = ReturnType<typeof checkModelsEventSchema.parse>;

/** What {@link checkModels} did (the CheckModels task's result; small). */
export interface CheckModelsResult {
  checked: { modelId: string; itemId: number; strategy: Strategy; outcome: string }[];
  /** Models with no item left to ask (a resume of a finished run): not called. */
  nothingLeft: string[];
  /** The judge's check: its first reading of a stored answer (absent without a judge, or nothing to read). */
  judge?: { modelId: string; itemId: number; outcome: string };
}

function unusableModel(model: ModelConfig, outcome: ModelOutcome): string | undefined {
  if (outcome.kind !== "error") return undefined;
  const hint = unusableModelHint(model, outcome.errorKind);
  if (hint === undefined) return undefined;
  const detail = outcome.message.replace(/\s+/g, " ").slice(0, 300);
  return `model "${model.id}": ${hint} (${outcome.errorKind}: ${detail})`;
}

function describeError(error: unknown): string {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return message.length > 300 ? `${message.slice(0, 299)}…` : message;
}
