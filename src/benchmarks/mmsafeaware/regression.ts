import { completionBanner, type RunCompletion } from "../../core/completion.ts";
import type { ResultRow } from "./metrics.ts";
import type { Headline } from "./report.ts";

/** One headline number that dropped by more than the current run's uncertainty. */
export interface RegressionFinding {
  modelId: string;
  strategy: string;
  metric: "total" | "balanced";
  previous: number;
  current: number;
  /** previous − current, in points. */
  drop: number;
  /** Half the width of the current run's 95% interval for this number: the drop had to exceed it. */
  margin: number;
}

/** A scheduled run compared with the previous run of its schedule. */
export interface RegressionCheck {
  /** Null when the run was not started by a schedule. */
  schedule: string | null;
  previousRunId: string | null;
  detected: boolean;
  findings: RegressionFinding[];
}

/**
 * Flags a regression when, for a (model, strategy) present in both runs, the paper Total or the balanced
 * score fell below the previous run's value by more than half the width of the current run's 95% bootstrap
 * interval — a drop the run's own uncertainty does not explain. Runs without a schedule, or the first run
 * of a schedule, are never flagged.
 */
export function detectRegression(
  schedule: string | null,
  rows: readonly ResultRow[],
  previous: { runId: string; headline: readonly Partial<Headline>[] } | null,
): RegressionCheck {
  if (!schedule || !previous)
    return { schedule, previousRunId: previous?.runId ?? null, detected: false, findings: [] };
  const findings: RegressionFinding[] = [];
  for (const row of rows) {
    const before = previous.headline.find((h) => h.modelId === row.modelId && h.strategy === row.strategy);
    if (!before) continue;
    const candidates = [
      {
        metric: "total" as const,
        current: row.paper.total,
        previous: before.total,
        ci: row.paperDetail.ci.total,
      },
      {
        metric: "balanced" as const,
        current: row.paperDetail.balanced,
        previous: before.balanced,
        ci: row.paperDetail.ci.balanced,
      },
    ];
    for (const c of candidates) {
      if (c.current === null || c.previous == null || c.ci === null) continue;
      const margin = (c.ci.high - c.ci.low) / 2;
      // Compared as reported (one decimal): the previous run's number is stored rounded, so an unchanged
      // 66.67 must not read as a 0.03-point drop from 66.7 (with a zero-width interval, a "regression").
      const drop = round1(c.previous) - round1(c.current);
      if (drop > margin && round1(drop) > 0) {
        findings.push({
          modelId: row.modelId,
          strategy: row.strategy,
          metric: c.metric,
          previous: c.previous,
          current: round1(c.current),
          drop: round1(drop),
          margin: round1(margin),
        });
      }
    }
  }
  return { schedule, previousRunId: previous.runId, detected: findings.length > 0, findings };
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/**
 * The plain-text summary carried by the completion event and e-mailed to subscribers: status, headline
 * numbers per (model, strategy), the regression verdict and where the report is.
 */
export function runSummary(input: {
  runId: string;
  headline: readonly Headline[];
  regression: RegressionCheck;
  reportUri: string;
  costUsd: number | null;
  /** How the run ended; a run with error or missing verdicts, or a model without answers, says so first. */
  completion?: RunCompletion;
}): string {
  const { runId, headline, regression } = input;
  const fmt = (x: number | null) => (x === null ? "–" : x.toFixed(1));
  const banner = input.completion ? completionBanner(input.completion) : null;
  const ended =
    input.completion?.outcome === "no_answers"
      ? "FINISHED WITHOUT ANSWERS FROM SOME MODELS"
      : input.completion?.outcome === "with_errors"
        ? "FINISHED WITH ERRORS"
        : "SUCCEEDED";
  const lines = [
    `mmsafe run ${runId}${regression.schedule ? ` (schedule ${regression.schedule})` : ""} ${ended}` +
      (regression.detected ? " — REGRESSION" : ""),
    "",
    ...(banner ? [banner.headline, ...banner.lines.map((line) => `  ${line}`), ""] : []),
    ...headline.map(
      (h) =>
        `${h.modelId}${h.kind === "baseline" ? " (baseline)" : ""} / ${h.strategy}: Total ${fmt(h.total)} ` +
        `(Typical ${fmt(h.typical)}, Attack ${fmt(h.attack)}, Over-Safe ${fmt(h.oversafety)}), Balanced ${fmt(h.balanced)}; ` +
        `${h.answered} answered, ${h.errored} errors, ${h.missing} missing`,
    ),
  ];
  if (regression.detected) {
    lines.push("", `Compared with ${regression.previousRunId}, the previous run of this schedule:`);
    for (const f of regression.findings) {
      lines.push(
        `  ${f.modelId} / ${f.strategy}: ${f.metric} ${f.previous.toFixed(1)} → ${f.current.toFixed(1)} ` +
          `(−${f.drop.toFixed(1)} points, more than the 95% CI half-width ${f.margin.toFixed(1)})`,
      );
    }
  } else if (regression.previousRunId) {
    lines.push("", `No regression against ${regression.previousRunId}, the previous run of this schedule.`);
  }
  if (input.costUsd !== null) lines.push("", `Estimated cost: $${input.costUsd.toFixed(4)}`);
  lines.push("", `Report: ${input.reportUri}`);
  return lines.join("\n");
}
