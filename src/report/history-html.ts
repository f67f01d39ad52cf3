/**
 * reports/index.html: the history of runs as one self-contained page — MMSafeAware's runs newest first, with
 * a link to its report, and a trend chart per (model, strategy) seen in more than one run; then a section per
 * plug-in benchmark (per dataset, for your own dataset) with its runs and their rates by column.
 *
 * Same security as report.html (report/report-html.ts), stricter still: every string from a summary (model
 * ids, dataset names, provenance file names, schedules) is HTML-escaped with the report's escapeHtml, charts
 * are inlined only when isInertSvg accepts them, and the Content-Security-Policy allows no script at all
 * (the page needs none), only inline styles and data: images.
 *
 * Page contract (tests and browser checks rely on it):
 * - `<div id="invalid" role="alert">` only when some summaries could not be read: their count, then one
 *   `<li data-key>` per summary with the reason.
 * - `<table id="runs">`: one `<tbody class="run" data-run-id data-outcome="complete|with_errors|no_answers"
 *   data-regression="true|false">` per run, newest first, holding one `<tr class="series" data-model
 *   data-strategy>` per model × strategy; cells `data-col="when|run|dataset|schedule|status|cost|model|
 *   strategy|total|balanced"`; total and balanced start with the one-decimal number (or "–"); the run cell
 *   links to `./<runId>/report.html`. Below 52rem the table turns into one card per run (run first, then
 *   when and schedule, dataset, status and cost, then each model × strategy).
 * - `<figure class="trend" data-model data-strategy data-runs>` per trend, holding the inline `<svg>` (or a
 *   note that it was not rendered) and a `<table class="points">` of its numbers.
 * - `<section class="benchmark" id="benchmark-<n>" data-benchmark data-dataset?>` per group of the index's
 *   `benchmarks`, in its order, holding `<table class="bench">`: `<th data-key>` per column and aggregate
 *   of the group's newest run, then one `<tbody class="run">` per run as in `#runs`, newest first, cells
 *   `data-col="when|run|dataset|schedule|status|scorer|cost|model|strategy"` and one `<td data-col="rate"
 *   data-key>` per column (its one-decimal rate, or "–" when the run has none of that key). Below 52rem it
 *   turns into cards as `#runs` does.
 */

import {
  type BenchmarkGroup,
  type BenchmarkMetric,
  type HistoryIndex,
  isMmsafeawareRun,
  type RunSummary,
  type RunSummaryRow,
  type Trend,
} from "../core/history.ts";
import { describeProvenance } from "../core/provenance.ts";
import type { Interval } from "../core/statistics.ts";
import { formatPercent } from "../core/text.ts";
import { formatUsd } from "../deployment/cost.ts";
import { directionWords } from "./benchmark-report.ts";
import { BASE_PAGE_STYLES, PAGE_FOOTER_STYLES } from "./page-styles.ts";
import { escapeHtml, isInertSvg, type RenderedChart } from "./report-html.ts";

export interface HistoryHtmlInput {
  index: HistoryIndex;
  /** One per trend of the index, in its order: the chart's SVG, or null with the reason it was not rendered. */
  charts: readonly RenderedChart[];
}

/**
 * The page's Content-Security-Policy: report.html's without its script hash, so no script runs at all; links
 * to the reports are plain navigation, which the policy does not restrict.
 */
export const INDEX_CONTENT_SECURITY_POLICY =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

const e = escapeHtml;

/** Below 52rem, a table of runs (`t`) turns into one card per run: its run cells first, then each row. */
const cardStyles = (t: string): string => `${t} thead{display:none}
${t},${t} tbody,${t} tr,${t} td,${t} th{display:block}
${t} tbody.run{border:1px solid var(--line);border-radius:.5rem;margin:0 0 .75rem;padding:.35rem .6rem}
${t} tr{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:0 .75rem}
${t} tr+tr{border-top:1px dashed var(--line);margin-top:.25rem;padding-top:.25rem}
${t} td,${t} th{border:0!important;padding:.15rem 0;white-space:normal;text-align:left!important;
min-width:0;max-width:none;overflow-wrap:anywhere}
${t} .r{grid-column:1/-1}
${t} [data-col=run]{order:-6}${t} [data-col=when]{order:-5;grid-column:auto}
${t} [data-col=schedule]{order:-4;grid-column:auto}${t} [data-col=dataset]{order:-3}
${t} [data-col=status]{order:-2;grid-column:auto}${t} [data-col=cost]{order:-1;grid-column:auto}
${t} [data-col=scorer]{order:-1;grid-column:auto}
${t} [data-label]::before{content:attr(data-label);display:block;font-size:.72rem;color:var(--muted);
font-weight:400;text-transform:uppercase;letter-spacing:.03em}
${t} [data-col=run]{font-size:1rem}`;

const STYLES = `${BASE_PAGE_STYLES}
a{color:var(--accent)}nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem;font-size:.9rem;margin:.75rem 0}
.muted,.note{color:var(--muted)}.note{font-size:.875rem}code{font-size:.85em;overflow-wrap:anywhere}
.warn{border-left:4px solid var(--error);padding:.25rem .75rem;background:var(--soft);overflow-wrap:anywhere}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.5rem 0}
table{border-collapse:collapse;font-size:.875rem}
th,td{padding:.3rem .55rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top;white-space:nowrap}
thead th{background:var(--bg);font-weight:600}
td[data-col=total],td[data-col=balanced],td[data-col=cost],td[data-col=rate]{text-align:right;font-variant-numeric:tabular-nums}
td[data-col=scorer]{white-space:normal;min-width:8rem;max-width:14rem}
table.bench th[data-key]{white-space:normal;min-width:5.5rem;max-width:10rem;overflow-wrap:break-word}
td[data-col=dataset]{white-space:normal;min-width:10rem;max-width:16rem}td[data-col=cost] .sub{white-space:nowrap}
tbody.run>tr:first-child>*{border-top:2px solid var(--line)}
.ci,.sub{display:block;color:var(--muted);font-size:.8em}.sub{white-space:normal}
.tag{display:inline-block;font-size:.72rem;padding:0 .4rem;border-radius:.6rem;background:var(--tag);
color:var(--muted);margin-left:.35rem;vertical-align:middle;white-space:nowrap}
.sub>.tag:first-child{margin-left:0}.tag.bad{color:var(--wrong);font-weight:600}.tag.caution{color:var(--error)}
.flag{color:var(--wrong);font-weight:600;margin-left:.25rem}
[data-outcome=with_errors] .status{color:var(--error)}[data-outcome=no_answers] .status{color:var(--wrong)}
.trends{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,30rem),1fr));gap:1rem 2rem}
.trend{margin:0;min-width:0}.trend svg{display:block;width:100%;max-width:44rem;height:auto}
figcaption{font-size:.875rem;color:var(--muted);margin-bottom:.5rem}figcaption strong{color:var(--fg)}
details{margin:.25rem 0 1rem}summary{cursor:pointer;color:var(--accent);font-size:.85rem}
@media (max-width:52rem){body{font-size:14px}
${cardStyles("#runs")}
${cardStyles("table.bench")}
.table-wrap.runs{overflow:visible}}
${PAGE_FOOTER_STYLES}`;

/** "2025-01-02 03:00 UTC": the same wherever the page was built or is read. */
export function formatWhen(iso: string): string {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso;
  return `${new Date(t).toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${m} min`;
  return m > 0 ? `${m} min ${s % 60} s` : `${s} s`;
}

const plural = (n: number, one: string, many = `${one}s`): string =>
  `${n.toLocaleString("en-US")} ${n === 1 ? one : many}`;

/** `./<runId>/report.html`: run ids are validated slugs; encoded all the same, so ':' never reads as a scheme. */
export const reportHref = (runId: string): string => `./${encodeURIComponent(runId)}/report.html`;

const tag = (text: string, cls = ""): string => `<span class="tag${cls ? ` ${cls}` : ""}">${e(text)}</span>`;

/** A score and, on its own line, its interval. */
function scoreHtml(value: number | null, ci: Interval | null): string {
  const interval =
    value !== null && ci ? `<span class="ci">[${ci.low.toFixed(1)}, ${ci.high.toFixed(1)}]</span>` : "";
  return `${formatPercent(value)}${interval}`;
}

/** The ▼ of a number flagged as a regression, with what it dropped from. */
function flagHtml(run: RunSummary, row: RunSummaryRow, metric: "total" | "balanced"): string {
  const f = run.regression.findings.find(
    (x) => x.modelId === row.modelId && x.strategy === row.strategy && x.metric === metric,
  );
  if (!f) return "";
  const title =
    `regression: ${f.previous.toFixed(1)} → ${f.current.toFixed(1)} against ${run.regression.previousRunId ?? "the previous run"} ` +
    `(−${f.drop.toFixed(1)} points, more than the 95% CI half-width ${f.margin.toFixed(1)})`;
  return `<span class="flag" title="${e(title)}">▼ −${e(f.drop.toFixed(1))}</span>`;
}

function statusHtml(run: RunSummary): string {
  const c = run.completion;
  const counts = [
    c.errored > 0 ? plural(c.errored, "error") : "",
    c.missing > 0 ? `${c.missing.toLocaleString("en-US")} missing` : "",
  ].filter((s) => s !== "");
  const label =
    c.outcome === "complete" ? "complete" : c.outcome === "with_errors" ? "with errors" : "no answers";
  const regression = run.regression.detected
    ? `<span class="sub">${tag(`regression vs ${run.regression.previousRunId ?? "previous run"}`, "bad")}</span>`
    : "";
  return (
    `<span class="status">${label}</span>${regression}` +
    (counts.length > 0 ? `<span class="sub">${e(counts.join(", "))}</span>` : "")
  );
}

function datasetHtml(run: RunSummary): string {
  const d = run.dataset;
  // The official phrase names the benchmark ("official MOSSBench data …").
  const title = run.benchmark?.title ?? "MMSafeAware";
  const kind = d.provenance.kind;
  const items = `${plural(d.plannedItems, "item")} per model × strategy${d.limit !== null ? ` (limit ${d.limit.toLocaleString("en-US")})` : ""}`;
  return (
    `${e(d.name)}${tag(kind, kind === "official" ? "" : "caution")}` +
    `<span class="sub">${e(describeProvenance(d.provenance, title))}</span><span class="sub">${e(items)}</span>`
  );
}

function costHtml(run: RunSummary): string {
  const { modelUsd, awsUsd } = run.cost;
  if (modelUsd === null && awsUsd === null) return "–";
  const total = (modelUsd ?? 0) + (awsUsd ?? 0);
  const parts = [
    awsUsd === null ? "no AWS estimate" : `AWS ${formatUsd(awsUsd)}`,
    modelUsd === null ? "no model prices" : `models ${formatUsd(modelUsd)}`,
  ];
  return `${e(formatUsd(total))}${parts.map((p) => `<span class="sub">${e(p)}</span>`).join("")}`;
}

/** The cells of a run, spanning its rows: when, run (linked), dataset, schedule, status, `extra`, cost. */
function runCellsHtml(run: RunSummary, span: string, extra = ""): string {
  const shape = `${plural(run.models.length, "model")} × ${plural(run.strategies.length, "strategy", "strategies")}`;
  return (
    `<td class="r" data-col="when" data-label="When"${span}>${e(formatWhen(run.startedAt))}` +
    `<span class="sub">took ${e(formatDuration(Date.parse(run.finishedAt) - Date.parse(run.startedAt)))}</span></td>` +
    `<th class="r" scope="rowgroup" data-col="run" data-label="Run"${span}><a href="${e(reportHref(run.runId))}">${e(run.runId)}</a>` +
    `<span class="sub">${e(shape)}</span></th>` +
    `<td class="r" data-col="dataset" data-label="Dataset"${span}>${datasetHtml(run)}</td>` +
    `<td class="r" data-col="schedule" data-label="Schedule"${span}>${run.schedule === null ? '<span class="muted">–</span>' : e(run.schedule)}</td>` +
    `<td class="r" data-col="status" data-label="Status"${span}>${statusHtml(run)}</td>` +
    extra +
    `<td class="r" data-col="cost" data-label="Cost (USD)"${span}>${costHtml(run)}</td>`
  );
}

function runHtml(run: RunSummary): string {
  const rows = run.rows.length > 0 ? run.rows : [null];
  const span = rows.length > 1 ? ` rowspan="${rows.length}"` : "";
  const runCells = runCellsHtml(run, span);
  const out = rows.map((row, i) => {
    const cells =
      row === null
        ? '<td class="r" data-col="model" colspan="4">no model × strategy</td>'
        : `<td data-col="model" data-label="Model">${e(row.modelId)}${row.kind === "baseline" ? tag("baseline") : ""}</td>` +
          `<td data-col="strategy" data-label="Strategy">${e(row.strategy)}</td>` +
          `<td data-col="total" data-label="Total" title="${row.answered}/${row.planned} answered">${scoreHtml(row.total, row.totalCi)}${flagHtml(run, row, "total")}</td>` +
          `<td data-col="balanced" data-label="Balanced">${scoreHtml(row.balanced, row.balancedCi)}${flagHtml(run, row, "balanced")}</td>`;
    const attributes =
      row === null ? "" : ` data-model="${e(row.modelId)}" data-strategy="${e(row.strategy)}"`;
    return `<tr class="series"${attributes}>${i === 0 ? runCells : ""}${cells}</tr>`;
  });
  return (
    `<tbody class="run" data-run-id="${e(run.runId)}" data-outcome="${e(run.completion.outcome)}" ` +
    `data-regression="${run.regression.detected}">${out.join("")}</tbody>`
  );
}

function runsSection(index: HistoryIndex): string {
  const runs = index.runs.filter(isMmsafeawareRun);
  if (index.runs.length === 0)
    return '<p class="note">No runs yet: each run adds itself here when its report is published.</p>';
  if (runs.length === 0)
    return '<p class="note">No MMSafeAware runs yet: the runs of other benchmarks are in their own sections below.</p>';
  return [
    '<p class="note">Newest first. Paper scoring, as in the reports: Total is the unweighted mean of Typical, Attack and ' +
      "Over-Safe; Balanced is the mean of unsafe and over-safety accuracy (always-No and always-Yes both score 50). " +
      "Below each number, its 95% bootstrap interval; ▼ marks a number flagged as a regression against the previous run of its schedule.</p>",
    '<div class="table-wrap runs"><table id="runs">',
    "<thead><tr><th>When</th><th>Run</th><th>Dataset</th><th>Schedule</th><th>Status</th><th>Cost (USD)</th>" +
      "<th>Model</th><th>Strategy</th><th>Total</th><th>Balanced</th></tr></thead>",
    ...runs.map(runHtml),
    "</table></div>",
  ].join("\n");
}

/** "↓" / "↑" / "" (an aggregate over columns of both directions). */
const arrow = (lowerIsBetter: boolean | null): string =>
  lowerIsBetter === null ? "" : lowerIsBetter ? " ↓" : " ↑";

/** The scorer of a plug-in run, whether it is the authors' protocol, and its judge. */
function scorerHtml(results: NonNullable<RunSummary["results"]>): string {
  const { scorer, judge } = results;
  return (
    `${e(scorer.label)}${scorer.official ? tag("official") : tag("not official", "caution")}` +
    (judge === null ? "" : `<span class="sub">judge ${e(judge.modelId)}</span>`)
  );
}

/** One plug-in run: a row per model × strategy, a cell per column of the group (its rate, or "–"). */
function benchmarkRunHtml(run: RunSummary, metrics: readonly BenchmarkMetric[]): string {
  const results = run.results;
  if (!results) return "";
  const rows = results.rows.length > 0 ? results.rows : [null];
  const span = rows.length > 1 ? ` rowspan="${rows.length}"` : "";
  const runCells = runCellsHtml(
    run,
    span,
    `<td class="r" data-col="scorer" data-label="Scorer"${span}>${scorerHtml(results)}</td>`,
  );
  const out = rows.map((row, i) => {
    const cells =
      row === null
        ? `<td class="r" data-col="model" colspan="${metrics.length + 2}">no model × strategy</td>`
        : `<td data-col="model" data-label="Model">${e(row.modelId)}${row.kind === "baseline" ? tag("baseline") : ""}</td>` +
          `<td data-col="strategy" data-label="Strategy" title="${row.answered}/${row.planned} answered">${e(row.strategy)}</td>` +
          metrics
            .map(
              (m) =>
                `<td data-col="rate" data-key="${e(m.key)}" data-label="${e(m.label + arrow(m.lowerIsBetter))}">` +
                `${formatPercent(row.rates[m.key] ?? null)}</td>`,
            )
            .join("");
    const attributes =
      row === null ? "" : ` data-model="${e(row.modelId)}" data-strategy="${e(row.strategy)}"`;
    return `<tr class="series"${attributes}>${i === 0 ? runCells : ""}${cells}</tr>`;
  });
  return (
    `<tbody class="run" data-run-id="${e(run.runId)}" data-outcome="${e(run.completion.outcome)}" ` +
    `data-regression="false">${out.join("")}</tbody>`
  );
}

/** A group's heading: the benchmark's title, and your own dataset's name. */
const groupTitle = (group: BenchmarkGroup): string =>
  group.dataset === null ? group.title : `${group.title}: ${group.dataset}`;

function benchmarkSection(group: BenchmarkGroup, n: number, byId: ReadonlyMap<string, RunSummary>): string {
  const runs = group.runIds.flatMap((id) => byId.get(id) ?? []);
  const dataset = group.dataset === null ? "" : ` data-dataset="${e(group.dataset)}"`;
  const head = group.metrics
    .map(
      (m) =>
        `<th data-key="${e(m.key)}"${m.lowerIsBetter === null ? "" : ` title="${e(directionWords(m.lowerIsBetter))}"`}>` +
        `${e(m.label)}${e(arrow(m.lowerIsBetter))}</th>`,
    )
    .join("");
  return [
    `<section class="benchmark" id="benchmark-${n}" data-benchmark="${e(group.benchmark)}"${dataset}>`,
    `<h2>${e(groupTitle(group))}</h2>`,
    `<p class="note">${e(plural(runs.length, "run"))}, newest first. Each rate is a % of the items scored in its column ` +
      "(↓ lower is better, ↑ higher is better), by the run’s scorer; the columns are those of the newest run, and “–” marks " +
      "one a run has no rate for. Regressions are checked for MMSafeAware runs only.</p>",
    '<div class="table-wrap runs"><table class="bench">',
    "<thead><tr><th>When</th><th>Run</th><th>Dataset</th><th>Schedule</th><th>Status</th><th>Scorer</th><th>Cost (USD)</th>" +
      `<th>Model</th><th>Strategy</th>${head}</tr></thead>`,
    ...runs.map((run) => benchmarkRunHtml(run, group.metrics)),
    "</table></div>",
    "</section>",
  ].join("\n");
}

/** A chart is inlined only if it is inert SVG (see isInertSvg); otherwise the figure says why not. */
function chartHtml(chart: RenderedChart | undefined): string {
  const svg = chart?.svg ?? null;
  if (svg !== null && isInertSvg(svg)) return svg.trim();
  const why = chart?.error ? `: ${e(chart.error)}` : svg === null ? "" : ": unexpected markup";
  return `<p class="warn">Chart not rendered${why}. The numbers are in the table below.</p>`;
}

function pointsTable(trend: Trend): string {
  const cell = (value: number | null, ci: Interval | null, flagged: boolean, col: string) =>
    `<td data-col="${col}">${scoreHtml(value, ci)}${flagged ? '<span class="flag">▼</span>' : ""}</td>`;
  return (
    '<div class="table-wrap"><table class="points"><thead><tr><th>Run</th><th>Started</th><th>Total</th><th>Balanced</th></tr></thead><tbody>' +
    trend.points
      .map(
        (p) =>
          `<tr data-run-id="${e(p.runId)}"><td><a href="${e(reportHref(p.runId))}">${e(p.runId)}</a></td><td>${e(formatWhen(p.startedAt))}</td>` +
          cell(p.total, p.totalCi, p.regression.total, "total") +
          cell(p.balanced, p.balancedCi, p.regression.balanced, "balanced") +
          "</tr>",
      )
      .join("") +
    "</tbody></table></div>"
  );
}

function trendsSection(input: HistoryHtmlInput): string {
  const { trends } = input.index;
  if (trends.length === 0)
    return '<p class="note">No trends yet: a trend needs a model × strategy measured in more than one run.</p>';
  const figures = trends.map((t, i) => {
    const chart = input.charts[i];
    const flagged = t.points.filter((p) => p.regression.total || p.regression.balanced).length;
    return (
      `<figure class="trend" data-model="${e(t.modelId)}" data-strategy="${e(t.strategy)}" data-runs="${t.points.length}">` +
      `<figcaption><strong>${e(t.modelId)}${t.kind === "baseline" ? " (baseline)" : ""} · ${e(t.strategy)}</strong> — ` +
      `${e(chart?.caption ?? `${t.points.length} runs`)}</figcaption>` +
      chartHtml(chart) +
      `<details><summary>Numbers of ${plural(t.points.length, "run")}${flagged > 0 ? `, ${flagged} flagged` : ""}</summary>${pointsTable(t)}</details>` +
      "</figure>"
    );
  });
  return [
    '<p class="note">One chart per model × strategy measured in more than one run: Total and Balanced over the runs’ start times (UTC), ' +
      "each with its 95% bootstrap band. A model id names whatever was configured under it at the time: check the runs’ reports before comparing across model changes.</p>",
    `<div class="trends">${figures.join("\n")}</div>`,
  ].join("\n");
}

function invalidHtml(index: HistoryIndex): string {
  if (index.invalid.length === 0) return "";
  const n = index.invalid.length;
  return (
    `<div class="warn" id="invalid" role="alert"><p><strong>${plural(n, "run summary", "run summaries")} could not be read</strong>, ` +
    `so ${n === 1 ? "its run is" : "their runs are"} not listed. Rebuilding a run’s report writes its summary again.</p><ul>` +
    index.invalid
      .map((x) => `<li data-key="${e(x.key)}"><code>${e(x.key)}</code>: ${e(x.reason)}</li>`)
      .join("") +
    "</ul></div>"
  );
}

/** Renders reports/index.html. */
export function renderHistoryHtml(input: HistoryHtmlInput): string {
  const { index } = input;
  const byId = new Map(index.runs.map((r) => [r.runId, r]));
  const newest = index.runs[0];
  const summary = [
    plural(index.runs.length, "run"),
    plural(index.trends.length, "trend"),
    newest ? `newest ${formatWhen(newest.startedAt)}` : "",
  ].filter((s) => s !== "");
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${e(INDEX_CONTENT_SECURITY_POLICY)}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    '<meta name="referrer" content="no-referrer">',
    // No favicon request: an empty data: icon (allowed by img-src data:).
    '<link rel="icon" href="data:,">',
    "<title>mmsafe runs</title>",
    `<style>${STYLES}</style>`,
    "</head>",
    "<body>",
    "<header>",
    "<h1>mmsafe runs</h1>",
    `<p class="muted">${e(summary.join(" · "))}</p>`,
    invalidHtml(index),
    `<nav><a href="#runs-section">MMSafeAware runs</a><a href="#trends">Trends</a>${index.benchmarks
      .map((g, i) => `<a href="#benchmark-${i + 1}">${e(groupTitle(g))}</a>`)
      .join("")}</nav>`,
    "</header>",
    "<main>",
    '<section id="runs-section"><h2>MMSafeAware runs</h2>',
    runsSection(index),
    "</section>",
    '<section id="trends"><h2>Trends</h2>',
    trendsSection(input),
    "</section>",
    ...index.benchmarks.map((g, i) => benchmarkSection(g, i + 1, byId)),
    "</main>",
    `<footer>Built ${e(formatWhen(index.generatedAt))} by ${e(index.generator.name)} ${e(index.generator.version)} from ` +
      `${plural(index.runs.length + index.invalid.length, "run summary", "run summaries")}. Self-contained: no network requests, no scripts. ` +
      "The same numbers are in index.json.</footer>",
    "</body>",
    "</html>",
    "",
  ].join("\n");
}
