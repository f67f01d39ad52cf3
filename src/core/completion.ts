import type { ResultRow } from "../benchmarks/mmsafeaware/metrics.ts";
import type { Strategy, Verdict } from "./schemas.ts";

/** Longest sample error message carried in a completion summary (messages are already redacted). */
const MAX_SAMPLE = 300;

/** One model × strategy that did not get an answer for every planned item. */
export interface AffectedRow {
  modelId: string;
  strategy: Strategy;
  planned: number;
  answered: number;
  errored: number;
  /** Planned but without any verdict (a shard that failed within the tolerated percentage). */
  missing: number;
  /** Error verdicts per error kind (connection, rate_limited, endpoint_unavailable, …). */
  kinds: Record<string, number>;
  /** The most common kind's first message, shortened: what to show a user (never holds a key). */
  sample: string | null;
  /**
   * With a judge: answers the judge has no reading of (it failed, gave no score, or was not asked yet), by
   * why in `kinds` (`judge: …`). They are answers, so they are not in `errored`.
   */
  unjudged?: number;
}

/**
 * How a run ended, for the exit code, the report's banner and the completion event:
 * - `complete`: every planned verdict is an answer;
 * - `with_errors`: some verdicts are errors or missing; resuming the run (same run id) retries them;
 * - `no_answers`: at least one model × strategy has no answer at all, so its row is no result.
 */
export interface RunCompletion {
  outcome: "complete" | "with_errors" | "no_answers";
  errored: number;
  missing: number;
  /** Answers a run's judge has no reading of (absent without a judge); a resume asks the judge again. */
  unjudged?: number;
  affected: AffectedRow[];
}

/** What the completion reads of a row: any benchmark's rows have these. */
export type CompletionRow = Pick<ResultRow, "modelId" | "strategy" | "counts" | "errorsByKind">;
/** What the completion reads of a verdict (for a sample error message). */
export type CompletionVerdict = Pick<Verdict, "modelId" | "strategy" | "status" | "error">;

/** The completion of a run from its rows and verdicts. */
export function runCompletion(
  rows: readonly CompletionRow[],
  verdicts: readonly CompletionVerdict[],
): RunCompletion {
  const affected: AffectedRow[] = [];
  for (const row of rows) {
    const { planned, answered, errored, missing } = row.counts;
    if (errored === 0 && missing === 0) continue;
    const top = Object.entries(row.errorsByKind).sort(
      (a, b) => b[1] - a[1] || a[0].localeCompare(b[0]),
    )[0]?.[0];
    const message =
      top === undefined
        ? undefined
        : verdicts.find(
            (v) =>
              v.modelId === row.modelId &&
              v.strategy === row.strategy &&
              v.status === "error" &&
              v.error?.kind === top,
          )?.error?.message;
    affected.push({
      modelId: row.modelId,
      strategy: row.strategy,
      planned,
      answered,
      errored,
      missing,
      kinds: { ...row.errorsByKind },
      sample: message === undefined ? null : shorten(message),
    });
  }
  const noAnswers = rows.some((r) => r.counts.planned > 0 && r.counts.answered === 0);
  return {
    outcome: noAnswers ? "no_answers" : affected.length > 0 ? "with_errors" : "complete",
    errored: affected.reduce((sum, a) => sum + a.errored, 0),
    missing: affected.reduce((sum, a) => sum + a.missing, 0),
    affected,
  };
}

function shorten(message: string): string {
  const line = message.replace(/\s+/g, " ").trim();
  return line.length > MAX_SAMPLE ? `${line.slice(0, MAX_SAMPLE - 1)}…` : line;
}

/** One line per affected model × strategy: "m1 / baseline: 120 of 1,453 failed (connection 120): <sample>". */
export function describeAffected(a: AffectedRow): string {
  const kinds = Object.entries(a.kinds)
    .sort((x, y) => y[1] - x[1])
    .map(([kind, n]) => `${kind} ${n.toLocaleString("en-US")}`)
    .join(", ");
  const failed = a.errored + a.missing;
  const unjudged = a.unjudged ?? 0;
  if (failed === 0 && unjudged > 0)
    return (
      `${a.modelId} / ${a.strategy}: ${unjudged.toLocaleString("en-US")} of ${a.answered.toLocaleString("en-US")} ` +
      `answers without a judge reading (${kinds})`
    );
  const parts = [kinds, a.missing > 0 ? `missing ${a.missing.toLocaleString("en-US")}` : ""].filter(
    (p) => p !== "",
  );
  return (
    `${a.modelId} / ${a.strategy}: ${failed.toLocaleString("en-US")} of ${a.planned.toLocaleString("en-US")} ` +
    `without an answer (${parts.join(", ")})${a.sample === null ? "" : `: ${a.sample}`}`
  );
}

/**
 * The report's banner for a run that is not complete: a headline sentence, then one line per affected
 * model × strategy. Empty for a complete run. Plain text: callers escape it for Markdown or HTML.
 */
export function completionBanner(
  completion: RunCompletion,
  measured = "accuracies",
): { headline: string; lines: string[] } | null {
  if (completion.outcome === "complete") return null;
  const silent = completion.affected.filter((a) => a.answered === 0);
  const unjudged = completion.unjudged ?? 0;
  const counts = [
    completion.errored > 0 ? `${completion.errored.toLocaleString("en-US")} verdicts are errors` : "",
    completion.missing > 0 ? `${completion.missing.toLocaleString("en-US")} are missing` : "",
    unjudged > 0 ? `${unjudged.toLocaleString("en-US")} answers have no judge reading` : "",
  ].filter((s) => s !== "");
  const headline =
    completion.outcome === "no_answers"
      ? `No result for ${silent.map((a) => `${a.modelId} / ${a.strategy}`).join(", ")}: ${silent.length === 1 ? "it" : "they"} answered nothing, so ${silent.length === 1 ? "its row is" : "their rows are"} not a measurement. ` +
        `${counts.join(" and ")}. Resume the run (same run id) to ask again.`
      : `Incomplete run: ${counts.join(" and ")}; ${measured} are over the ${unjudged > 0 ? "scored" : "answered"} items only. Resume the run (same run id) to retry them.`;
  return { headline, lines: completion.affected.map(describeAffected) };
}

/**
 * How to resume a run that is not complete, locally and on AWS: the same run id asks again about every item
 * without an answer (error verdicts included), and never repeats an answered one.
 */
export function resumeHint(runId: string): string {
  return (
    `To resume: locally, the same command with --run-id ${runId} (npm run mmsafe -- run --run-id ${runId} …); ` +
    `on AWS, npm run mmsafe -- start --run-id ${runId}, or a new execution with the input {"runId": "${runId}"}.`
  );
}
