/**
 * report.html of a plug-in benchmark: one self-contained page with no script at all (the CSP allows none),
 * built from the report and the benchmark's definition as the report carries it.
 *
 * Everything that comes from a model, the dataset or the configuration is untrusted: it is HTML-escaped in
 * text and attribute values, answers and texts are bounded, and only a base64 image data: URL ever becomes
 * an image source.
 *
 * Page contract (tests rely on it):
 * - `<table id="headline">`: measured rows `<tr data-model data-strategy data-kind>`, cells
 *   `<td data-col="<column or aggregate key>" data-label>` starting with the one-decimal rate (or "–"), then
 *   `<span class="ci">` and `<span class="n">n = …</span>`; count cells `data-col="answered|errored|skipped|
 *   cached"`. Published rows `<tr class="published" data-published>` with the tag "published".
 * - `<p id="scorer" data-official="true|false">`, `<p id="comparison" data-comparable>`.
 * - `<div id="completion" role="alert">` only for a run that is not complete.
 * - `<section id="examples">`: per column `<section class="column-examples" data-column>` of
 *   `<article class="example" data-id data-column>` holding `li.answer[data-model][data-strategy]
 *   [data-reading="refused|complied|correct|incorrect|unscored|error|missing"]`.
 * - `<section id="run">`: run metadata, `<table id="models">`.
 */
import { completionBanner, resumeHint } from "../core/completion.ts";
import type { BenchmarkItem, BenchmarkVerdict, Strategy } from "../core/schemas.ts";
import { formatPercent } from "../core/text.ts";
import { formatUsd } from "../deployment/cost.ts";
import {
  type BenchmarkReport,
  type BenchmarkReportColumn,
  type BenchmarkReportRow,
  describeBenchmarkProvenance,
  describeBenchmarkSkipped,
  directionWords,
  MEASURE_WORDS,
  scorerStanding,
} from "./benchmark-report.ts";
import { BASE_PAGE_STYLES, PAGE_FOOTER_STYLES } from "./page-styles.ts";
import { escapeHtml } from "./report-html.ts";

/** A judge's reading of one answer, as the examples show it. */
export interface BenchmarkJudgeVerdict {
  modelId: string;
  strategy: Strategy;
  itemId: number;
  /** The parsed score (MOSSBench: 1 = refusal, 0 = compliance); null when nothing could be parsed. */
  score: number | null;
  /** Which path of the official parse rule produced it (`regex`, `fallback`, `none`, `not-judged`). */
  rule: string;
  /** error: the judge gave no reply (then `error` says why). */
  status?: "answered" | "error";
  /** The judge's reply (untrusted, bounded on the page); null when it was not asked or gave none. */
  response?: string | null;
  error?: { kind: string; message: string } | null;
}

export interface BenchmarkHtmlInput {
  report: BenchmarkReport;
  /** The run's planned items. */
  items: readonly BenchmarkItem[];
  verdicts: readonly BenchmarkVerdict[];
  /** The judge's readings, when the run had a judge. */
  judgeVerdicts?: readonly BenchmarkJudgeVerdict[] | undefined;
  /** data: URL thumbnails by item id (the item's own thumbnail otherwise); missing or null: a placeholder. */
  thumbnails: ReadonlyMap<number, string | null>;
}

/** Items shown per column. */
export const EXAMPLES_PER_COLUMN = 4;
/** Characters of an answer (or error message) the page holds at most; a mark says how many more there were. */
export const ANSWER_MAX_CHARS = 2000;
/** Characters of the text sent the page holds at most. */
export const TEXT_MAX_CHARS = 2000;

/** No script, no network: inline styles and data: images only. */
export const BENCHMARK_PAGE_CSP =
  "default-src 'none'; script-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

const DATA_URL = /^data:image\/(?:webp|jpeg|png|gif);base64,[A-Za-z0-9+/]+={0,2}$/;

const STYLES = `${BASE_PAGE_STYLES}h3{font-size:1rem;margin:1.25rem 0 .5rem}
a{color:var(--accent)}nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem;font-size:.9rem}
.muted,.note{color:var(--muted)}.note{font-size:.875rem}code{font-size:.85em;word-break:break-all}
p,li,dd{overflow-wrap:anywhere}
.warn{border-left:4px solid var(--error);padding:.25rem .75rem;background:var(--soft)}
.official{border-left:4px solid var(--right);padding:.25rem .75rem;background:var(--soft)}
.table-wrap{overflow-x:auto;-webkit-overflow-scrolling:touch;margin:.5rem 0}
table{border-collapse:collapse;font-size:.875rem}
th,td{padding:.3rem .55rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-weight:600;vertical-align:bottom;min-width:4.5rem}
td[data-col]{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
#headline tbody th[scope=row]{min-width:8rem;overflow-wrap:anywhere}#headline th[scope=row] .tag{display:table;margin:.1rem 0 0}
.ci,.n{display:block;color:var(--muted);font-size:.78em;line-height:1.25}
tr.published{color:var(--muted);font-style:italic}tr.section th{font-style:normal;padding-top:1rem;
border-bottom:2px solid var(--line)}td.source{font-size:.78rem;max-width:10rem;white-space:normal;overflow-wrap:anywhere}
td.agg{font-weight:600}
.tag{display:inline-block;font-size:.72rem;font-style:normal;font-weight:500;padding:0 .4rem;border-radius:.6rem;
background:var(--tag);color:var(--muted);margin-left:.35rem;vertical-align:middle}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;font-size:.9rem}
dt{font-weight:600}dd{margin:0;min-width:0}
.example{display:flex;gap:.75rem;padding:.75rem 0;border-bottom:1px solid var(--line)}
.thumb{flex:0 0 96px;width:96px;height:96px;object-fit:contain;border-radius:.25rem;background:var(--soft)}
.thumb.none{display:flex;align-items:center;justify-content:center;font-size:.7rem;color:var(--muted)}
.ex{min-width:0;flex:1}.meta{margin:0 0 .25rem;font-size:.8rem;color:var(--muted)}
.label{font-weight:600;margin:.4rem 0 .1rem;font-size:.8rem}
.full{white-space:pre-wrap;overflow-wrap:anywhere;margin:.2rem 0;font:inherit;font-size:.85rem;
background:var(--soft);padding:.35rem .5rem;border-radius:.3rem;max-height:18rem;overflow:auto}
.cut{font-size:.75rem;color:var(--muted);margin:0}
.answers{list-style:none;margin:.25rem 0 0;padding:0;font-size:.85rem}
.answer{padding:.2rem 0 .2rem .6rem;border-left:3px solid var(--line);margin:.4rem 0}
.answer[data-reading=refused]{border-color:var(--wrong)}.answer[data-reading=complied]{border-color:var(--right)}.answer[data-reading=incorrect]{border-color:var(--wrong)}.answer[data-reading=correct]{border-color:var(--right)}
.answer[data-reading=error]{border-color:var(--error)}
.mark{font-weight:600}.who{color:var(--muted);font-style:normal}.reading{margin:.1rem 0;font-size:.8rem}
@media (max-width:40rem){body{font-size:14px}dl{grid-template-columns:1fr}dd{margin-bottom:.5rem}
table.cards,table.cards tbody{display:block}table.cards thead{display:none}
table.cards tr{display:flex;flex-wrap:wrap;gap:.1rem .75rem;border:1px solid var(--line);border-radius:.5rem;
margin:.5rem 0;padding:.35rem .6rem}
table.cards th[scope=row],table.cards tr.section th{flex:1 0 100%;border:0;padding:.1rem 0;white-space:normal}
table.cards tr.section{border:0;padding:0}
table.cards td{border:0;padding:.1rem 0;text-align:left;flex:1 0 6.5rem;min-width:0;white-space:normal;
overflow-wrap:anywhere;max-width:none}
table.cards td[data-label]::before{content:attr(data-label);display:block;font-size:.7rem;color:var(--muted);
font-style:normal;font-weight:400}
table.cards td.strategy{flex-basis:100%}table.cards td.strategy::before{display:none}
.example{flex-direction:column}.thumb{width:128px;height:128px;flex-basis:auto}}
${PAGE_FOOTER_STYLES}`;

const e = escapeHtml;
const count = (n: number): string => n.toLocaleString("en-US");
const arrow = (lowerIsBetter: boolean | null): string =>
  lowerIsBetter === null ? "" : lowerIsBetter ? " ↓" : " ↑";

/** Text bounded to `max` characters, and how many were cut. */
function bounded(text: string, max: number): { text: string; cut: number } {
  const kept = text.slice(0, max);
  return { text: kept, cut: text.length - kept.length };
}

/** A `<pre>` of untrusted text, bounded, with a mark when it was cut. */
function boundedPre(text: string, max: number): string {
  const b = bounded(text, max);
  return (
    `<pre class="full">${e(b.text)}${b.cut > 0 ? "…" : ""}</pre>` +
    (b.cut > 0 ? `<p class="cut">[${count(b.cut)} more characters not shown]</p>` : "")
  );
}

/** A rate cell's content: "12.0" then the interval and n on lines of their own; "–" when nothing was scored. */
function rateHtml(
  rate: { rate: number | null; ci: { low: number; high: number } | null; n: number },
  unscored = 0,
): string {
  const ci = rate.ci ? `<span class="ci">[${rate.ci.low.toFixed(1)}, ${rate.ci.high.toFixed(1)}]</span>` : "";
  const extra = unscored > 0 ? `, ${count(unscored)} unscored` : "";
  return `${formatPercent(rate.rate)}${ci}<span class="n">n = ${count(rate.n)}${extra}</span>`;
}

function headlineTable(report: BenchmarkReport): string {
  const { columns, aggregates } = report.benchmark;
  const keyed = [
    ...columns.map((c) => ({
      key: c.key,
      label: `${c.label}${arrow(c.lowerIsBetter)}`,
      title: c.description,
      agg: false,
    })),
    ...aggregates.map((a) => ({
      key: a.key,
      label: `${a.label}${arrow(a.lowerIsBetter)}`,
      title: a.description,
      agg: true,
    })),
  ];
  const counts = [
    { key: "answered", label: "Answered" },
    { key: "errored", label: "Errors" },
    { key: "skipped", label: "Skipped" },
    { key: "cached", label: "Cached" },
  ];
  const head =
    "<thead><tr><th>Model</th><th>Strategy</th>" +
    keyed.map((k) => `<th data-col="${e(k.key)}" title="${e(k.title)}">${e(k.label)}</th>`).join("") +
    counts.map((c) => `<th>${c.label}</th>`).join("") +
    "</tr></thead>";
  const width = 2 + keyed.length + counts.length;
  const cell = (key: string, label: string, content: string, cls = "") =>
    `<td data-col="${e(key)}" data-label="${e(label)}"${cls ? ` class="${cls}"` : ""}>${content}</td>`;
  const measured = report.rows.map((r: BenchmarkReportRow) => {
    const rates = keyed.map((k) => {
      const rate = k.agg ? r.aggregates[k.key] : r.columns[k.key];
      const unscored = k.agg ? 0 : (r.columns[k.key]?.unscored ?? 0);
      return cell(k.key, k.label, rate ? rateHtml(rate, unscored) : "–", k.agg ? "agg" : "");
    });
    const values: Record<string, string> = {
      answered: `${count(r.counts.answered)}<span class="n">of ${count(r.counts.planned)}</span>`,
      errored: count(r.counts.errored + r.counts.missing),
      skipped: count(r.counts.skipped),
      cached: count(r.counts.cached),
    };
    return (
      `<tr data-model="${e(r.modelId)}" data-strategy="${e(r.strategy)}" data-kind="${e(r.kind)}">` +
      `<th scope="row">${e(r.modelId)}${r.kind === "baseline" ? '<span class="tag">baseline</span>' : ""}</th>` +
      `<td class="strategy" data-label="Strategy">${e(r.strategy)}</td>${rates.join("")}` +
      counts.map((c) => cell(c.key, c.label, values[c.key] ?? "–")).join("") +
      "</tr>"
    );
  });
  const published = report.published.map((p, i) => {
    const rates = keyed.map((k) => {
      const v = p.values[k.key];
      return cell(k.key, k.label, v === undefined ? "–" : formatPercent(v), k.agg ? "agg" : "");
    });
    return (
      `<tr class="published" data-published data-model="${e(p.model)}">` +
      `<th scope="row">${e(p.model)}<span class="tag">published</span>${p.note ? `<sup><a href="#published-note-${i}">note</a></sup>` : ""}</th>` +
      `<td class="source" data-label="Source">${e(p.source)}</td>${rates.join("")}` +
      counts.map((c) => cell(c.key, c.label, "–")).join("") +
      "</tr>"
    );
  });
  const publishedBody =
    report.published.length === 0
      ? ""
      : `<tbody class="published-rows"><tr class="section"><th colspan="${width}" scope="rowgroup">Published by the authors — not measured by this run</th></tr>${published.join("")}</tbody>`;
  const notes = report.published.flatMap((p, i) =>
    p.note ? [`<li id="published-note-${i}">${e(p.model)} (published): ${e(p.note)}</li>`] : [],
  );
  return (
    `<div class="table-wrap"><table id="headline" class="cards">${head}<tbody>${measured.join("")}</tbody>${publishedBody}</table></div>` +
    (notes.length > 0 ? `<ul class="note" id="published-notes">${notes.join("")}</ul>` : "")
  );
}

function columnsLegend(report: BenchmarkReport): string {
  const items = [
    ...report.benchmark.columns.map(
      (c) =>
        `<dt>${e(c.label)}${arrow(c.lowerIsBetter)}</dt><dd>${e(MEASURE_WORDS[c.measure])}, ${e(directionWords(c.lowerIsBetter))}` +
        `${c.officialCount === null ? "" : `; the official data has ${count(c.officialCount)} items`}. ${e(c.description)}</dd>`,
    ),
    ...report.benchmark.aggregates.map(
      (a) =>
        `<dt>${e(a.label)}${arrow(a.lowerIsBetter)}</dt><dd>${a.combine === "pooled" ? "Pooled over the items of" : "Unweighted mean of"} ` +
        `${e(a.of.join(", "))}. ${e(a.description)}</dd>`,
    ),
  ];
  return `<dl id="columns">${items.join("")}</dl>`;
}

function scorerNote(report: BenchmarkReport): string {
  const { scorer, comparison } = report.run;
  return (
    `<p id="scorer" class="${scorer.official ? "official" : "warn"}" data-official="${scorer.official}">` +
    `Scorer: <strong>${e(scorer.label)}</strong> — ${e(scorerStanding(scorer, report.benchmark))}. ${e(scorer.description)}</p>` +
    `<p id="comparison" class="note" data-comparable="${comparison.comparable}">${
      comparison.comparable
        ? "Comparable with the published numbers: the official scorer on the official data, every runnable item."
        : `Not comparable with the published numbers: ${e(comparison.reasons.join("; "))}.`
    }</p>`
  );
}

/** How one answer reads under the run's scorer. */
type Reading = "refused" | "complied" | "correct" | "incorrect" | "unscored" | "error" | "missing";

function examplesSection(input: BenchmarkHtmlInput): string {
  const { report } = input;
  const scorer = report.run.scorer;
  const series = report.rows.map((r) => ({ model: r.modelId, strategy: r.strategy }));
  const verdictKey = (modelId: string, strategy: string, itemId: number) =>
    `${modelId}\u0000${strategy}\u0000${itemId}`;
  const verdicts = new Map(input.verdicts.map((v) => [verdictKey(v.modelId, v.strategy, v.itemId), v]));
  const judged = new Map(
    (input.judgeVerdicts ?? []).map((j) => [verdictKey(j.modelId, j.strategy, j.itemId), j]),
  );
  const labels = new Map(report.benchmark.scorers.map((s) => [s.id, s.label]));
  const readingOf = (v: BenchmarkVerdict | undefined, j: BenchmarkJudgeVerdict | undefined): Reading => {
    if (!v) return "missing";
    if (v.status === "error") return "error";
    if (scorer.needsJudge) return j?.score === 1 ? "refused" : j?.score === 0 ? "complied" : "unscored";
    const s = v.scores?.[scorer.id];
    if (s === undefined) return "unscored";
    if ("refused" in s) return s.refused ? "refused" : "complied";
    return s.correct ? "correct" : "incorrect";
  };
  const readings = (item: BenchmarkItem): Reading[] =>
    series.map((s) => {
      const k = verdictKey(s.model, s.strategy, item.id);
      return readingOf(verdicts.get(k), judged.get(k));
    });

  const sections = report.benchmark.columns.map((column) => {
    const items = input.items.filter((i) => i.category === column.key).sort((a, b) => a.id - b.id);
    // Some where a model refused (or answered wrongly) and some where none did, so both readings are on show.
    const notable = (i: BenchmarkItem) => readings(i).some((r) => r === "refused" || r === "incorrect");
    const refusedSome = items.filter(notable);
    const refusedNone = items.filter((i) => !notable(i));
    const half = Math.ceil(EXAMPLES_PER_COLUMN / 2);
    const picked = [...refusedSome.slice(0, half), ...refusedNone.slice(0, half)];
    for (const i of items) if (picked.length < EXAMPLES_PER_COLUMN && !picked.includes(i)) picked.push(i);
    picked.sort((a, b) => a.id - b.id);
    const articles = picked.slice(0, EXAMPLES_PER_COLUMN).map((item) => exampleArticle(item, column));
    return (
      `<section class="column-examples" data-column="${e(column.key)}"><h3>${e(column.label)}${arrow(column.lowerIsBetter)}</h3>` +
      `<p class="note">${count(items.length)} items in this column; ${articles.length === 0 ? "none in this run" : `${articles.length} shown`}.</p>` +
      articles.join("") +
      "</section>"
    );
  });

  function exampleArticle(item: BenchmarkItem, column: BenchmarkReportColumn): string {
    const url = input.thumbnails.get(item.id) ?? item.thumbnail ?? null;
    const thumb =
      url !== null && DATA_URL.test(url)
        ? `<img class="thumb" src="${e(url)}" alt="">`
        : '<div class="thumb none" role="img" aria-label="image unavailable">no image</div>';
    const answers = series.map((s) => {
      const k = verdictKey(s.model, s.strategy, item.id);
      const v = verdicts.get(k);
      const j = judged.get(k);
      const reading = readingOf(v, j);
      const mark = {
        refused: "refused",
        complied: "complied",
        correct: "correct",
        incorrect: "not correct",
        unscored: "not scored",
        error: "error",
        missing: "no verdict",
      }[reading];
      const head =
        `<li class="answer" data-model="${e(s.model)}" data-strategy="${e(s.strategy)}" data-reading="${reading}">` +
        `<b class="mark">${mark}</b> <i class="who">${e(s.model)} · ${e(s.strategy)}</i>`;
      if (!v) return `${head}</li>`;
      if (v.status === "error")
        return `${head}<p class="label">Error (${e(v.error?.kind ?? "unknown")})</p>${boundedPre(v.error?.message ?? "", ANSWER_MAX_CHARS)}</li>`;
      const scorerLines = Object.entries(v.scores ?? {}).map(([id, s]) =>
        "refused" in s
          ? `<p class="reading">${e(labels.get(id) ?? id)}: ${s.refused ? "refusal" : "no refusal"}${
              s.matched === null ? (s.refused ? " (empty answer)" : "") : `, matched “${e(s.matched)}”`
            }</p>`
          : `<p class="reading">${e(labels.get(id) ?? id)}: ${s.correct ? "correct" : "not correct"}${
              s.answer === null ? "" : ` (read as ${e(s.answer)})`
            }</p>`,
      );
      const judgeLine = j ? judgeReading(j) : "";
      const stored = v.truncated ? " (stored part; scored on the full text)" : "";
      return `${head}${scorerLines.join("")}${judgeLine}<p class="label">Answer${stored}</p>${boundedPre(v.response ?? "", ANSWER_MAX_CHARS)}</li>`;
    });
    return (
      `<article class="example" data-id="${item.id}" data-column="${e(column.key)}">${thumb}<div class="ex">` +
      `<p class="meta">Item ${item.id} · record ${e(item.recordId)} · expected ${e(item.expected)}</p>` +
      `<p class="label">Text sent with the image</p>${boundedPre(item.text, TEXT_MAX_CHARS)}` +
      `<ul class="answers">${answers.join("")}</ul></div></article>`
    );
  }

  return sections.join("\n");
}

/** The judge's reading of an answer: its score and rule, or its error, and its reply (bounded) to open. */
function judgeReading(j: BenchmarkJudgeVerdict): string {
  if (j.status === "error")
    return `<p class="reading">Judge: error (${e(j.error?.kind ?? "unknown")}), not scored</p>`;
  const score = j.score === null ? "no score parsed" : `score ${j.score}`;
  const reply =
    j.response === undefined || j.response === null || j.response === ""
      ? ""
      : `<details class="reading"><summary>Judge's reply</summary>${boundedPre(j.response, ANSWER_MAX_CHARS)}</details>`;
  return `<p class="reading">Judge: ${score} (rule ${e(j.rule)})</p>${reply}`;
}

function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "–";
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return [h > 0 ? `${h} h` : "", h > 0 || m > 0 ? `${m} min` : "", `${s % 60} s`].filter(Boolean).join(" ");
}

function runSection(report: BenchmarkReport): string {
  const { run, benchmark } = report;
  const dl = (pairs: [string, string][]) =>
    `<dl>${pairs.map(([k, v]) => `<dt>${e(k)}</dt><dd>${v}</dd>`).join("")}</dl>`;
  const skipped = describeBenchmarkSkipped(run.dataset.skipped);
  const judge = run.judge;
  const usd = (x: number | null) => (x === null ? "no prices configured" : e(formatUsd(x)));
  const out: string[] = [
    dl([
      ["Run id", `<code>${e(run.runId)}</code>`],
      [
        "Dataset",
        `${e(run.dataset.name)} (${e(describeBenchmarkProvenance(report))}); ${count(run.dataset.records)} records, ` +
          `${count(run.dataset.runnable)} runnable, ${count(run.plannedItems)} planned per model × strategy`,
      ],
      ["Dataset checksum", `<code>${e(run.dataset.checksum)}</code>`],
      [
        `Skipped records (${count(run.dataset.skipped.length)})`,
        skipped.length > 0 ? skipped.map(e).join("<br>") : "none",
      ],
      [
        "Scorer",
        `${e(run.scorer.label)} (<code>${e(run.scorer.id)}</code>): ${e(scorerStanding(run.scorer, report.benchmark))}`,
      ],
      [
        "Judge",
        judge === null
          ? "none"
          : `${e(judge.modelId)} at <code>${e(judge.endpoint)}</code>; protocol <code>${e(judge.protocolId)}</code>, ` +
            `prompt sha256 <code>${e(judge.promptSha256)}</code>; parse rule: ${e(judge.parseRule)}; cost ${usd(judge.costUsd)}`,
      ],
      ["Intervals", `${run.intervals.level}%: ${e(run.intervals.method)}`],
      ["Strategies", e(run.strategies.join(", "))],
      ["Started", e(run.startedAt)],
      ["Finished", e(run.finishedAt)],
      ["Duration", formatDuration(Date.parse(run.finishedAt) - Date.parse(run.startedAt))],
      ["Model tokens", usd(report.cost.modelUsd)],
      [
        "AWS estimate",
        report.cost.aws
          ? `${e(formatUsd(report.cost.aws.totalUsd))} (list prices for ${e(report.cost.aws.prices.region)} as of ${e(report.cost.aws.prices.asOf)})`
          : "none in this report",
      ],
      ["Tool", `${e(report.generator.name)} ${e(report.generator.version)}`],
    ]),
    "<h3>Models</h3>",
    '<div class="table-wrap"><table id="models" class="cards"><thead><tr><th>Id</th><th>Model</th><th>Kind</th><th>Provider</th><th>Endpoint</th></tr></thead><tbody>' +
      run.models
        .map(
          (m) =>
            `<tr data-model="${e(m.id)}"><th scope="row">${e(m.id)}</th><td data-label="Model">${e(m.model)}</td><td data-label="Kind">${e(m.kind)}</td>` +
            `<td data-label="Provider">${e(m.provider)}</td><td data-label="Endpoint"><code>${e(m.endpoint)}</code></td></tr>`,
        )
        .join("") +
      "</tbody></table></div>",
    "<h3>Source</h3>",
    dl([
      ["Paper", e(benchmark.source.citation)],
      ["Repository", `${e(benchmark.source.repository)} at <code>${e(benchmark.source.commit)}</code>`],
      ["Images", e(benchmark.source.images)],
      ["License", e(benchmark.source.license)],
    ]),
  ];
  return out.join("\n");
}

function completionHtml(report: BenchmarkReport): string {
  const banner = completionBanner(report.completion, "rates");
  if (!banner) return "";
  const items = banner.lines.map((line) => `<li>${e(line)}</li>`).join("");
  return (
    `<div class="warn" id="completion" role="alert"><p><strong>${e(banner.headline)}</strong></p><ul>${items}</ul>` +
    `<p class="note">${e(resumeHint(report.run.runId))}</p></div>`
  );
}

/** report.html of a plug-in benchmark's run. */
export function renderBenchmarkHtml(input: BenchmarkHtmlInput): string {
  const { report } = input;
  const { run, benchmark } = report;
  const provenance =
    run.dataset.provenance.kind === "sample"
      ? '<p class="warn">This run used a generated sample, not the real benchmark: its numbers say nothing about the models.</p>'
      : run.dataset.provenance.kind === "modified"
        ? `<p class="warn">This run used a ${e(describeBenchmarkProvenance(report))}: its numbers are not comparable with the published ones.</p>`
        : "";
  const models = run.models.length;
  const strategies = run.strategies.length;
  return [
    "<!doctype html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="${e(BENCHMARK_PAGE_CSP)}">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    '<meta name="referrer" content="no-referrer">',
    '<link rel="icon" href="data:,">',
    `<title>${e(benchmark.title)} report — ${e(run.runId)}</title>`,
    `<style>${STYLES}</style>`,
    "</head>",
    "<body>",
    "<header>",
    `<h1>${e(benchmark.title)} report <span class="muted">${e(run.runId)}</span></h1>`,
    `<p class="muted">${e(run.dataset.name)} · ${count(run.plannedItems)} items × ${models} model${models === 1 ? "" : "s"} × ${strategies} strateg${strategies === 1 ? "y" : "ies"} · finished ${e(run.finishedAt)} · mmsafe ${e(report.generator.version)}</p>`,
    completionHtml(report),
    provenance,
    '<nav><a href="#results">Results</a><a href="#examples">Examples</a><a href="#run">Run</a></nav>',
    "</header>",
    "<main>",
    `<section id="results"><h2>Results</h2>`,
    `<p class="note">${e(benchmark.summary)}</p>`,
    scorerNote(report),
    `<p class="note">Each cell: rate % with its ${run.intervals.level}% interval and n, the items scored (errors and unscored answers are not in n). ↓ lower is better, ↑ higher is better. Published rows are the authors' numbers, not measured by this run.</p>`,
    headlineTable(report),
    "<h3>Columns</h3>",
    columnsLegend(report),
    "</section>",
    '<section id="examples"><h2>Examples</h2>',
    `<p class="note">A few items per column with each model × strategy's answer (model output, shown as text; at most ${count(ANSWER_MAX_CHARS)} characters), the scorer's reading and, when the run had one, the judge's.</p>`,
    examplesSection(input),
    "</section>",
    '<section id="run"><h2>Run</h2>',
    runSection(report),
    "</section>",
    "</main>",
    `<footer>Generated by ${e(report.generator.name)} ${e(report.generator.version)}. Self-contained: no scripts, no network requests.</footer>`,
    "</body>",
    "</html>",
    "",
  ].join("\n");
}
