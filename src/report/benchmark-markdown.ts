/**
 * report.md of a plug-in benchmark: the measured table (each column's rate with its 95% interval and n), the
 * scorer and whether it is the official protocol, the authors' published rows apart, the accounting and the
 * run. Every string from the data, the configuration or a model is escaped as Markdown text.
 */
import { completionBanner, resumeHint } from "../core/completion.ts";
import { answerNotes, escapeMarkdown, formatPercent } from "../core/text.ts";
import { formatUsd, renderCostMarkdown } from "../deployment/cost.ts";
import {
  type BenchmarkReport,
  type BenchmarkReportRow,
  describeBenchmarkProvenance,
  describeBenchmarkSkipped,
  directionWords,
  MEASURE_WORDS,
  scorerStanding,
} from "./benchmark-report.ts";

const md = escapeMarkdown;
const count = (n: number): string => n.toLocaleString("en-US");

/** A rate cell: "12.0 [6.0, 19.0] (n = 100)", "– (n = 0)" when nothing was scored. */
export function rateCell(
  rate: { rate: number | null; ci: { low: number; high: number } | null; n: number },
  unscored = 0,
): string {
  const ci = rate.ci ? ` [${rate.ci.low.toFixed(1)}, ${rate.ci.high.toFixed(1)}]` : "";
  const extra = unscored > 0 ? `, ${count(unscored)} unscored` : "";
  return `${formatPercent(rate.rate)}${ci} (n = ${count(rate.n)}${extra})`;
}

const arrow = (lowerIsBetter: boolean | null): string =>
  lowerIsBetter === null ? "" : lowerIsBetter ? " ↓" : " ↑";

function rowLabel(r: BenchmarkReportRow): string {
  return `${md(r.modelId)}${r.kind === "baseline" ? " *(baseline)*" : ""}`;
}

/** report.md of a plug-in benchmark's run. */
export function renderBenchmarkMarkdown(report: BenchmarkReport): string {
  const { run, benchmark } = report;
  const out: string[] = [];
  out.push(`# ${md(benchmark.title)} report — run ${md(run.runId)}`, "");
  const banner = completionBanner(report.completion, "rates");
  if (banner) {
    out.push(
      `> **${md(banner.headline)}**`,
      ...banner.lines.map((line) => `> - ${md(line)}`),
      ">",
      `> ${md(resumeHint(run.runId))}`,
      "",
    );
  }
  if (run.dataset.provenance.kind === "sample")
    out.push(
      "> **This run used a generated sample, not the real benchmark: its numbers say nothing about the models.**",
      "",
    );
  out.push(md(benchmark.summary), "");
  out.push(
    `Dataset **${md(run.dataset.name)}** (${md(describeBenchmarkProvenance(report))}), ` +
      `${count(run.dataset.records)} records, ${count(run.dataset.runnable)} runnable, ` +
      `${count(run.dataset.skipped.length)} skipped, ${count(run.plannedItems)} planned per model × strategy. ` +
      `Checksum \`${run.dataset.checksum.slice(0, 16)}…\`.`,
    "",
  );
  out.push(
    `**Scorer: ${md(run.scorer.label)}** (\`${md(run.scorer.id)}\`) — ${scorerStanding(run.scorer, report.benchmark)}. ${md(run.scorer.description)}`,
    "",
  );
  if (run.judge) {
    const j = run.judge;
    out.push(
      `Judge: ${md(j.modelId)} at ${md(j.endpoint)}, protocol \`${md(j.protocolId)}\` (prompt sha256 \`${md(j.promptSha256.slice(0, 16))}…\`). ` +
        `Parse rule: ${md(j.parseRule)}`,
      "",
    );
  }
  out.push(
    run.comparison.comparable
      ? "Comparable with the published numbers: the official scorer on the official data, every runnable item."
      : `Not comparable with the published numbers: ${run.comparison.reasons.map(md).join("; ")}.`,
    "",
  );
  out.push(
    `Started ${md(run.startedAt)}, finished ${md(run.finishedAt)}. mmsafe ${md(report.generator.version)}.`,
    "",
  );

  out.push("## Results (measured by this run)", "");
  out.push(
    `Each cell: rate % [${run.intervals.level}% CI] (n = items scored; errors and unscored answers are not in n). ` +
      `CI: ${md(run.intervals.method)}. ↓ lower is better, ↑ higher is better. Scored with ${md(run.scorer.label)}.`,
    "",
  );
  const headers = [
    "Model",
    "Strategy",
    ...benchmark.columns.map((c) => `${md(c.label)}${arrow(c.lowerIsBetter)}`),
    ...benchmark.aggregates.map((a) => `${md(a.label)}${arrow(a.lowerIsBetter)}`),
    "Answered",
    "Errors",
    "Skipped",
    "Cached",
  ];
  out.push(`| ${headers.join(" | ")} |`, `|${headers.map(() => "---").join("|")}|`);
  for (const r of report.rows) {
    const cells = [
      rowLabel(r),
      md(r.strategy),
      ...benchmark.columns.map((c) => {
        const col = r.columns[c.key];
        return col ? rateCell(col, col.unscored) : "–";
      }),
      ...benchmark.aggregates.map((a) => {
        const agg = r.aggregates[a.key];
        return agg ? `**${rateCell(agg)}**` : "–";
      }),
      `${count(r.counts.answered)}/${count(r.counts.planned)}`,
      count(r.counts.errored + r.counts.missing),
      count(r.counts.skipped),
      count(r.counts.cached),
    ];
    out.push(`| ${cells.join(" | ")} |`);
  }
  out.push("");

  out.push("### Columns", "");
  for (const c of benchmark.columns) {
    const official =
      c.officialCount === null ? "" : `; the official data has ${count(c.officialCount)} items`;
    out.push(
      `- **${md(c.label)}** (\`${md(c.key)}\`): ${MEASURE_WORDS[c.measure]}, ${directionWords(c.lowerIsBetter)}${official}. ${md(c.description)}`,
    );
  }
  for (const a of benchmark.aggregates) {
    const direction = directionWords(a.lowerIsBetter);
    out.push(
      `- **${md(a.label)}** (\`${md(a.key)}\`): ${a.combine === "pooled" ? "pooled over the items of" : "unweighted mean of"} ${a.of.map(md).join(", ")}${direction ? `, ${direction}` : ""}. ${md(a.description)}`,
    );
  }
  out.push("");

  out.push("## Published by the authors (not measured by this run)", "");
  if (report.published.length === 0) {
    out.push(`No published numbers are transcribed for ${md(benchmark.title)}.`, "");
  } else {
    const keys = [...benchmark.columns, ...benchmark.aggregates].filter((c) =>
      report.published.some((p) => p.values[c.key] !== undefined),
    );
    const head = ["Model", ...keys.map((k) => md(k.label)), "Source", "Note"];
    out.push(`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`);
    for (const p of report.published) {
      const cells = [
        `${md(p.model)} *(published)*`,
        ...keys.map((k) => {
          const v = p.values[k.key];
          return v === undefined ? "–" : formatPercent(v);
        }),
        md(p.source),
        p.note ? md(p.note) : "",
      ];
      out.push(`| ${cells.join(" | ")} |`);
    }
    out.push(
      "",
      `*Published numbers, as the authors printed them; the scorer they were computed with is ${md(
        benchmark.scorers.find((s) => s.official)?.label ?? "the authors' protocol",
      )}.*`,
      "",
    );
  }

  out.push("## Accounting", "");
  out.push(
    "Every planned item, per model × strategy, is answered, errored (the pipeline could not get an answer; never scored) " +
      "or missing (no verdict). Records the data holds but that cannot be evaluated are skipped, listed here:",
    "",
  );
  const skipped = describeBenchmarkSkipped(run.dataset.skipped);
  out.push(skipped.length > 0 ? skipped.map((s) => `- Skipped: ${md(s)}`).join("\n") : "- Skipped: none");
  for (const r of report.rows) {
    const kinds = Object.entries(r.errorsByKind)
      .map(([k, n]) => `${md(k)} × ${n}`)
      .join(", ");
    const unscored = Object.values(r.columns).reduce((s, c) => s + c.unscored, 0);
    out.push(
      `- ${rowLabel(r)} / ${md(r.strategy)}: planned ${count(r.counts.planned)} = answered ${count(r.counts.answered)} + ` +
        `errored ${count(r.counts.errored)} + missing ${count(r.counts.missing)}${kinds ? ` (errors: ${kinds})` : ""}; ` +
        `${count(unscored)} answers the scorer could not read; ${count(r.counts.retries)} retries; ` +
        `${count(r.counts.cached)} answers from the cache; tokens ${count(r.usage.promptTokens)} in / ${count(r.usage.completionTokens)} out; ` +
        `latency p50 ${r.latencyMs.p50 ?? "–"} ms, p95 ${r.latencyMs.p95 ?? "–"} ms${answerNotes(r.counts)}`,
    );
  }
  out.push("");

  if (report.cost.aws) {
    out.push(
      renderCostMarkdown(
        report.cost.aws,
        report.rows.map((r) => ({ modelId: r.modelId, strategy: r.strategy, usd: r.usage.costUsd })),
      ),
    );
  } else {
    out.push("## Cost of this run", "");
    out.push(
      `Model tokens: ${report.cost.modelUsd === null ? "no prices configured" : formatUsd(report.cost.modelUsd)}.`,
      "",
    );
  }
  if (run.judge)
    out.push(
      `Judge tokens: ${report.cost.judgeUsd === null ? "no prices configured" : formatUsd(report.cost.judgeUsd)}.`,
      "",
    );

  out.push("## Models", "");
  for (const m of run.models) {
    out.push(
      `- ${md(m.id)}: model ${md(m.model)} (${md(m.provider)}) at ${md(m.endpoint)}${m.kind === "baseline" ? " (reference baseline, not a model)" : ""}`,
    );
  }
  out.push("", `Strategies: ${run.strategies.map(md).join(", ")}.`, "");
  out.push("## Source", "");
  out.push(
    `- ${md(benchmark.source.citation)}`,
    `- Data: ${md(benchmark.source.repository)} at \`${md(benchmark.source.commit)}\``,
    `- Images: ${md(benchmark.source.images)}`,
    `- License: ${md(benchmark.source.license)}`,
    "",
  );
  return out.join("\n");
}
