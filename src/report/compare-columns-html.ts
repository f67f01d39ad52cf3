/**
 * A plug-in benchmark's paired comparison as one self-contained HTML page: a table of the columns and
 * aggregates its definition declares (rates, B − A, interval, McNemar's b/c and p, the change in words),
 * and the flipped items listed per column with both sides' answers. Pure: no I/O.
 *
 * Labels, ids and answers are untrusted (run ids, model ids, dataset ids, model output): every one is
 * HTML-escaped. The page has no script, and its Content-Security-Policy allows nothing but its own inline
 * style, by hash.
 *
 * Page contract (tests rely on it):
 * - `<table id="columns">`: one `<tr data-row="<column or aggregate key>">` per row, cells
 *   `<td data-col="n|a|b|diff|ci|b-count|c-count|p|change">`; a significant p cell (for an aggregate without
 *   p, its ci cell) has `class="significant"`.
 * - `<table id="flips">`: one `<tr class="flip" data-column data-direction="onlyA|onlyB" data-id>` per
 *   flipped item listed.
 */

import {
  COLUMN_COMPARISON_NOTES,
  type ColumnsComparison,
  changeWords,
  comparedRows,
  directionArrow,
  FLIPS_LISTED,
  type PairedRate,
} from "../core/compare-columns.ts";
import { formatDifference, formatInterval, formatPValue, SIGNIFICANCE_LEVEL } from "../core/paired-tests.ts";
import { formatPercent } from "../core/text.ts";
import { ANSWER_MAX_CHARS } from "./compare-html.ts";
import { COMPARE_PAGE_STYLES } from "./page-styles.ts";
import { scriptHash as cspHash, escapeHtml } from "./report-html.ts";

/** A flipped item as its page lists it: the item, its column, which side had the event, both answers. */
export interface ColumnFlipItem {
  id: string;
  column: string;
  /** `onlyA`: the column's event happened in A only; `onlyB`: in B only. */
  direction: "onlyA" | "onlyB";
  answerA: string | null;
  answerB: string | null;
}

const e = escapeHtml;

const STYLE = `${COMPARE_PAGE_STYLES}
body { margin: 0 auto; max-width: 80rem; padding: 1rem; font: 15px/1.5 system-ui, -apple-system, "Segoe UI",
  Roboto, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 1.35rem; margin: 0 0 .5rem; overflow-wrap: anywhere; }
h2 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; }
dd { margin: 0; min-width: 0; }
.scroll { overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; vertical-align: top; text-align: left; }
#columns td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
#columns td[data-col="change"] { text-align: left; }
#columns tr.aggregate th, #columns tr.aggregate td { font-weight: 600; }
.better { color: var(--good); }
.worse { color: var(--bad); }
#flips td.answer { white-space: pre-wrap; overflow-wrap: anywhere; min-width: 12rem;
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
#flips td.id { overflow-wrap: anywhere; }
@media (max-width: 40rem) { body { padding: .6rem; font-size: 14px; } th, td { padding: .25rem .35rem; } }
`;

/** The page's Content-Security-Policy: nothing but its own inline style. */
export const COLUMNS_COMPARISON_CSP = [
  "default-src 'none'",
  `style-src ${cspHash(STYLE)}`,
  "script-src 'none'",
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

function tableRow(r: PairedRate): string {
  const mark = (on: boolean, title: string) => (on ? ` class="significant" title="${title}"` : "");
  const pSignificant = r.pValue !== null && r.significant;
  const ciSignificant = r.pValue === null && r.significant;
  const changeClass = r.change === "better" || r.change === "worse" ? ` class="${r.change}"` : "";
  return (
    `<tr data-row="${e(r.key)}"${r.combine !== undefined ? ` class="aggregate"` : ""}>` +
    `<th scope="row">${e(`${r.label}${directionArrow(r.lowerIsBetter)}`)}</th>` +
    `<td data-col="n">${r.n}</td>` +
    `<td data-col="a">${e(formatPercent(r.rateA))}</td>` +
    `<td data-col="b">${e(formatPercent(r.rateB))}</td>` +
    `<td data-col="diff">${e(formatDifference(r.difference))}</td>` +
    `<td data-col="ci"${mark(ciSignificant, "95% CI excludes 0")}>${e(formatInterval(r.ci))}</td>` +
    `<td data-col="b-count">${r.discordant.b}</td>` +
    `<td data-col="c-count">${r.discordant.c}</td>` +
    `<td data-col="p"${mark(pSignificant, "p &lt; 0.05")}>${e(formatPValue(r.pValue))}</td>` +
    `<td data-col="change"${changeClass}>${e(changeWords(r))}</td></tr>`
  );
}

const answerCell = (answer: string | null): string => {
  if (answer === null) return `<td class="answer muted">–</td>`;
  const cut = answer.length > ANSWER_MAX_CHARS;
  const note = cut
    ? `<span class="note"> … (${answer.length - ANSWER_MAX_CHARS} more characters)</span>`
    : "";
  return `<td class="answer">${e(cut ? answer.slice(0, ANSWER_MAX_CHARS) : answer)}${note}</td>`;
};

/** The comparison as a self-contained page (light and dark, no script); `items` gives flipped answers. */
export function renderColumnsComparisonHtml(
  c: ColumnsComparison,
  items: readonly ColumnFlipItem[] = [],
): string {
  const a = e(c.labelA);
  const b = e(c.labelB);
  const x = c.excluded;
  const labelOf = new Map(c.columns.map((col) => [col.key, col.label]));
  const flips = items.map(
    (item) =>
      `<tr class="flip" data-column="${e(item.column)}" data-direction="${item.direction}" data-id="${e(item.id)}">` +
      `<td class="id">${e(item.id)}</td><td>${e(labelOf.get(item.column) ?? item.column)}</td>` +
      `<td>${item.direction === "onlyA" ? "A only" : "B only"}</td>` +
      answerCell(item.answerA) +
      answerCell(item.answerB) +
      "</tr>",
  );
  const totalFlips = c.columns.reduce((s, col) => s + col.discordant.b + col.discordant.c, 0);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${COLUMNS_COMPARISON_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${e(c.benchmark.title)}: ${a} vs ${b}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>${e(c.benchmark.title)}, paired comparison</h1>
<dl>
<dt>A</dt><dd class="label" id="label-a">${a}</dd>
<dt>B</dt><dd class="label" id="label-b">${b}</dd>
<dt>Scorer</dt><dd class="label">${e(c.scorer)}</dd>
</dl>
<p>${c.paired} items scored on both. Excluded: ${x.onlyA} only in A, ${x.onlyB} only in B, ${x.erroredA} errored
in A, ${x.erroredB} errored in B, ${x.unscoredA} unscored in A, ${x.unscoredB} unscored in B.</p>
</header>
<main>
<h2>Rates per column</h2>
<div class="scroll">
<table id="columns">
<caption>${COLUMN_COMPARISON_NOTES.map(e).join(" ")} Highlighted: significant at ${SIGNIFICANCE_LEVEL}.</caption>
<thead><tr><th scope="col">Column</th><th scope="col">n</th><th scope="col">A %</th><th scope="col">B %</th>
<th scope="col">Δ pp (B − A)</th><th scope="col">95% CI of Δ</th><th scope="col">b<br><span class="muted">A only</span></th>
<th scope="col">c<br><span class="muted">B only</span></th><th scope="col">McNemar p</th><th scope="col">Change</th></tr></thead>
<tbody>
${comparedRows(c).map(tableRow).join("\n")}
</tbody>
</table>
</div>
<h2>Flipped items (${flips.length} listed of ${totalFlips})</h2>
<p class="muted">Items whose event (refusal, attack success, right answer: the column's measure) happened on one
side only; up to ${FLIPS_LISTED} per column and direction.</p>
<div class="scroll">
<table id="flips">
<thead><tr><th scope="col">Item</th><th scope="col">Column</th><th scope="col">Event in</th>
<th scope="col">A's answer</th><th scope="col">B's answer</th></tr></thead>
<tbody>
${flips.join("\n")}
</tbody>
</table>
</div>
${flips.length === 0 ? `<p class="muted">No flipped item.</p>\n` : ""}</main>
</body>
</html>
`;
}
