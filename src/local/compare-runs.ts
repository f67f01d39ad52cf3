/**
 * `mmsafe compare`: pairs the verdicts of two (run, model, strategy) sides kept by the local servers and
 * compares them item by item (core/compare.ts).
 */
import { createDocumentClient } from "../adapters/aws-clients.ts";
import type { ObjectStore } from "../adapters/object-store.ts";
import { DynamoRunStore, type RunRecord } from "../adapters/run-store.ts";
import { DynamoVerdictStore } from "../adapters/verdict-store.ts";
import { type Comparison, compareVerdicts, type Scoring } from "../core/compare.ts";
import type { ComparisonItem } from "../core/compare-html.ts";
import type { DatasetItem, Strategy, Verdict } from "../core/schemas.ts";
import { runShardKey } from "../core/storage-layout.ts";
import { parseShard } from "../pipeline/dataset-io.ts";
import { LOCAL_RESOURCES } from "./embedded-aws.ts";
import { openLocalSession } from "./runner.ts";

/** One side of a comparison: `RUN`, `RUN/MODEL` or `RUN/MODEL/STRATEGY`. */
export interface SideSpec {
  runId: string;
  modelId?: string | undefined;
  strategy?: string | undefined;
}

/** A side spec the runs cannot resolve, with what would work instead. */
export class CompareInputError extends Error {
  override readonly name = "CompareInputError";
}

export function parseSideSpec(text: string): SideSpec {
  const [runId, modelId, strategy, ...rest] = text.split("/");
  if (!runId || rest.length > 0 || modelId === "" || strategy === "") {
    throw new CompareInputError(`"${text}": expected RUN, RUN/MODEL or RUN/MODEL/STRATEGY`);
  }
  return { runId, modelId, strategy };
}

/** Picks the named value, or the only one there is (preferring real models over baselines). */
function pick<T extends string>(
  what: string,
  spec: string,
  named: string | undefined,
  options: T[],
  preferred: T[],
): T {
  if (named !== undefined) {
    const found = options.find((o) => o === named);
    if (!found)
      throw new CompareInputError(
        `${spec}: no ${what} "${named}" in this run (it has ${options.join(", ")})`,
      );
    return found;
  }
  const candidates = preferred.length > 0 ? preferred : options;
  const [only, ...others] = candidates;
  if (only === undefined || others.length > 0) {
    throw new CompareInputError(`${spec}: the run has several ${what}s (${options.join(", ")}); name one`);
  }
  return only;
}

function resolveSide(spec: SideSpec, run: RunRecord): { modelId: string; strategy: Strategy; label: string } {
  const text = [spec.runId, spec.modelId, spec.strategy].filter(Boolean).join("/");
  const modelIds = run.models.map((m) => m.id);
  const realModels = run.models.filter((m) => m.kind === "model").map((m) => m.id);
  const modelId = pick("model", text, spec.modelId, modelIds, realModels);
  const strategy = pick("strategy", text, spec.strategy, run.strategies, []);
  return { modelId, strategy, label: `${spec.runId}/${modelId}/${strategy}` };
}

/**
 * Compares side A with side B on the items both answered. The runs must be on the same dataset (same
 * checksum); the embedded servers under `home` must hold them (runs made with `mmsafe run`).
 */
export async function compareLocal(
  home: string,
  a: SideSpec,
  b: SideSpec,
  scoring: Scoring,
): Promise<Comparison> {
  return (await compareSides(home, a, b, scoring, false)).comparison;
}

/**
 * {@link compareLocal}, plus what a page shows of each flipped item: its sentence (from run A's shards)
 * and both sides' responses.
 */
export async function compareLocalWithItems(
  home: string,
  a: SideSpec,
  b: SideSpec,
  scoring: Scoring,
): Promise<{ comparison: Comparison; items: ComparisonItem[] }> {
  return compareSides(home, a, b, scoring, true);
}

async function compareSides(
  home: string,
  a: SideSpec,
  b: SideSpec,
  scoring: Scoring,
  withItems: boolean,
): Promise<{ comparison: Comparison; items: ComparisonItem[] }> {
  const session = await openLocalSession(home);
  const client = createDocumentClient();
  const runs = new DynamoRunStore(client, LOCAL_RESOURCES.runsTable);
  const verdicts = new DynamoVerdictStore(client, LOCAL_RESOURCES.verdictsTable);
  const runOf = async (spec: SideSpec) => {
    const run = await runs.get(spec.runId);
    if (!run)
      throw new CompareInputError(
        `no run "${spec.runId}" under ${home} (list them with the run ids you used)`,
      );
    return run;
  };
  const runA = await runOf(a);
  const runB = await runOf(b);
  if (runA.datasetChecksum !== runB.datasetChecksum) {
    throw new CompareInputError(
      `runs ${a.runId} and ${b.runId} evaluated different datasets (checksums ${runA.datasetChecksum.slice(0, 12)}… and ${runB.datasetChecksum.slice(0, 12)}…)`,
    );
  }
  const sideA = resolveSide(a, runA);
  const sideB = resolveSide(b, runB);
  if (sideA.label === sideB.label) throw new CompareInputError(`both sides are ${sideA.label}`);
  // Two sides of one run (two models or strategies) read its verdicts once.
  const runVerdicts = new Map<string, ReturnType<typeof verdicts.listRun>>();
  const verdictsOf = async (runId: string, side: { modelId: string; strategy: Strategy }) => {
    let all = runVerdicts.get(runId);
    if (!all) {
      all = verdicts.listRun(runId);
      runVerdicts.set(runId, all);
    }
    return (await all).filter((v) => v.modelId === side.modelId && v.strategy === side.strategy);
  };
  const [va, vb] = await Promise.all([verdictsOf(a.runId, sideA), verdictsOf(b.runId, sideB)]);
  let comparison: Comparison;
  try {
    comparison = compareVerdicts(va, vb, { scoring, labelA: sideA.label, labelB: sideB.label });
  } catch (error: unknown) {
    // No shared items, or sides from different datasets: a problem with what was asked, not a crash.
    throw new CompareInputError(error instanceof Error ? error.message : String(error), { cause: error });
  }
  if (!withItems) return { comparison, items: [] };
  const flipped = new Set(
    Object.values(comparison.flips).flatMap((f) => [...f.rightToWrong, ...f.wrongToRight]),
  );
  const sentences = await flippedSentences(session.store, a.runId, runA.shards, flipped);
  const responseOf = (side: readonly Verdict[]) => new Map(side.map((v) => [v.itemId, v.response]));
  const [responsesA, responsesB] = [responseOf(va), responseOf(vb)];
  const items: ComparisonItem[] = [...flipped]
    .sort((x, y) => x - y)
    .map((id) => {
      const item = sentences.get(id);
      return {
        id,
        sentence: item?.sentence ?? "",
        category: item?.category ?? "",
        answerA: responsesA.get(id) ?? null,
        answerB: responsesB.get(id) ?? null,
      };
    });
  return { comparison, items };
}

/** The dataset items of these ids, read from a run's shards (an absent or unreadable shard is skipped). */
async function flippedSentences(
  store: ObjectStore,
  runId: string,
  shards: number,
  ids: ReadonlySet<number>,
): Promise<Map<number, DatasetItem>> {
  const found = new Map<number, DatasetItem>();
  if (ids.size === 0) return found;
  for (let index = 0; index < shards && found.size < ids.size; index++) {
    const key = runShardKey(runId, index);
    const text = await store.getTextIfExists(key).catch(() => null);
    if (text === null) continue;
    let items: DatasetItem[];
    try {
      items = parseShard(text, key);
    } catch {
      continue;
    }
    for (const item of items) if (ids.has(item.id)) found.set(item.id, item);
  }
  return found;
}
