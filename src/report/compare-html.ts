/**
 * A paired comparison as one self-contained HTML page: the per-column table (accuracies, B − A, discordant
 * counts, exact McNemar p) and the items that flipped, filterable by column and direction. Pure: no I/O.
 *
 * Labels, sentences and answers are untrusted (run ids, dataset text, model output): they are HTML-escaped
 * in text and attributes; the filter script only toggles `hidden` and writes a count with textContent, and
 * the Content-Security-Policy allows nothing but the page's own inline style and script, by hash.
 *
 * Page contract (tests rely on it):
 * - `<table id="comparison">`: one `<tr data-column="typical|attack|oversafety|total|unsafe|balanced">` per
 *   row, cells `<td data-col="n|a|b|diff|ci|onlyA|onlyB|p">`; a significant p cell (for Balanced, which has
 *   no p-value, its ci cell) has `class="significant"`. An empty row's p cell is "–".
 * - Filters `<select id="filter-column">` (all, typical, attack, oversafety) and
 *   `<select id="filter-direction">` (all, right-to-wrong, wrong-to-right); count `#flip-count`.
 * - One `<tr class="flip" data-column data-direction data-id>` per flipped item in `<table id="flips">`;
 *   filtered-out rows get the `hidden` attribute.
 */

import {
  COLUMN_LABELS,
  COMPARISON_NOTES,
  type Comparison,
  type ComparisonRow,
  comparisonRows,
} from "../benchmarks/mmsafeaware/compare.ts";
import { CATEGORIES } from "../benchmarks/mmsafeaware/facts.ts";
import { formatDifference, formatInterval, formatPValue, SIGNIFICANCE_LEVEL } from "../core/paired-tests.ts";
import { formatPercent } from "../core/text.ts";
import { COMPARE_PAGE_STYLES } from "./page-styles.ts";
import { scriptHash as cspHash, escapeHtml } from "./report-html.ts";

/** What the page shows of a flipped item; without it, an item is listed by id only. */
export interface ComparisonItem {
  id: number;
  sentence: string;
  category: string;
  /** Side A's response to the item (null: none, e.g. an error). */
  answerA?: string | null;
  answerB?: string | null;
}

/** Characters of an answer kept in the page; longer ones are cut with a note. */
export const ANSWER_MAX_CHARS = 2000;

export type FlipDirection = "right-to-wrong" | "wrong-to-right";

const DIRECTION_LABELS: Record<FlipDirection, string> = {
  "right-to-wrong": "right → wrong",
  "wrong-to-right": "wrong → right",
};

const e = escapeHtml;

const STYLE = `${COMPARE_PAGE_STYLES}
body { margin: 0 auto; max-width: 72rem; padding: 1.5rem; font: 15px/1.5 system-ui, -apple-system, "Segoe UI",
  Roboto, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
dd { margin: 0; }
th, td { border: 1px solid var(--line); padding: .35rem .55rem; vertical-align: top; text-align: left; }
#comparison td:not(:first-child), #comparison th:not(:first-child) { text-align: right;
  font-variant-numeric: tabular-nums; }
#comparison tr[data-column="total"] td, #comparison tr[data-column="balanced"] td { font-weight: 600; }
#comparison td[data-col="ci"] { white-space: nowrap; }
.up { color: var(--good); }
.down { color: var(--bad); }
.filters { display: flex; flex-wrap: wrap; gap: 1rem; align-items: center; margin: .5rem 0; }
select { font: inherit; padding: .15rem .3rem; }
#flips td.answer, #flips td.sentence { white-space: pre-wrap; overflow-wrap: anywhere; }
#flips td.answer { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
.direction { white-space: nowrap; }
`;

const SCRIPT = `(function () {
  "use strict";
  var column = document.getElementById("filter-column");
  var direction = document.getElementById("filter-direction");
  var count = document.getElementById("flip-count");
  var none = document.getElementById("no-flips");
  if (!column || !direction || !count) return;
  var rows = document.querySelectorAll("tr.flip");
  function apply() {
    var c = column.value, d = direction.value, shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var on = (c === "all" || row.dataset.column === c) && (d === "all" || row.dataset.direction === d);
      row.hidden = !on;
      if (on) shown++;
    }
    count.textContent = shown + " of " + rows.length;
    if (none) none.hidden = shown > 0;
  }
  column.addEventListener("change", apply);
  direction.addEventListener("change", apply);
  apply();
})();
`;

/** The page's Content-Security-Policy: nothing but its own inline style and script. */
export const COMPARISON_CSP = [
  "default-src 'none'",
  `style-src ${cspHash(STYLE)}`,
  `script-src ${cspHash(SCRIPT)}`,
  "img-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

const signed = (difference: number | null): string => {
  const text = formatDifference(difference);
  const cls = difference === null || text === "0.0" ? "" : difference > 0 ? "up" : "down";
  return cls ? `<span class="${cls}">${e(text)}</span>` : e(text);
};

function tableRow(r: ComparisonRow): string {
  const significant = (on: boolean) =>
    on ? ` class="significant" title="${r.pValue === null ? "95% CI excludes 0" : "p &lt; 0.05"}"` : "";
  const pSignificant = r.pValue !== null && r.significant;
  const ciSignificant = r.pValue === null && r.significant;
  return (
    `<tr data-column="${r.key}"><th scope="row">${e(r.name)}</th>` +
    `<td data-col="n">${r.n}</td>` +
    `<td data-col="a">${e(formatPercent(r.accuracyA))}</td>` +
    `<td data-col="b">${e(formatPercent(r.accuracyB))}</td>` +
    `<td data-col="diff">${signed(r.difference)}</td>` +
    `<td data-col="ci"${significant(ciSignificant)}>${e(formatInterval(r.ci))}${ciSignificant ? " *" : ""}</td>` +
    `<td data-col="onlyA">${r.onlyARight}</td>` +
    `<td data-col="onlyB">${r.onlyBRight}</td>` +
    `<td data-col="p"${significant(pSignificant)}>${e(formatPValue(r.pValue))}${pSignificant ? " *" : ""}</td></tr>`
  );
}

const answerCell = (answer: string | null | undefined): string => {
  if (answer === undefined || answer === null) return `<td class="answer muted">–</td>`;
  const cut = answer.length > ANSWER_MAX_CHARS;
  const text = cut ? answer.slice(0, ANSWER_MAX_CHARS) : answer;
  const note = cut
    ? `<span class="note"> … (${answer.length - ANSWER_MAX_CHARS} more characters)</span>`
    : "";
  return `<td class="answer">${e(text)}${note}</td>`;
};

/**
 * The comparison as a self-contained HTML page (light and dark). `items` gives the flipped items' sentences
 * and both sides' answers; items not given are listed by id only.
 */
export function renderComparisonHtml(c: Comparison, items: readonly ComparisonItem[] = []): string {
  const byId = new Map(items.map((item) => [item.id, item]));
  const a = e(c.labelA);
  const b = e(c.labelB);
  const x = c.excluded;

  const rows = comparisonRows(c).map(tableRow);

  const flips: string[] = [];
  for (const category of CATEGORIES) {
    const directions: [FlipDirection, number[]][] = [
      ["right-to-wrong", c.flips[category].rightToWrong],
      ["wrong-to-right", c.flips[category].wrongToRight],
    ];
    for (const [direction, ids] of directions) {
      for (const id of ids) {
        const item = byId.get(id);
        flips.push(
          `<tr class="flip" data-column="${category}" data-direction="${direction}" data-id="${id}">` +
            `<td>${id}</td><td>${e(COLUMN_LABELS[category])}</td>` +
            `<td class="direction ${direction === "right-to-wrong" ? "down" : "up"}">${e(DIRECTION_LABELS[direction])}</td>` +
            (item ? `<td class="sentence">${e(item.sentence)}</td>` : `<td class="sentence muted">–</td>`) +
            answerCell(item?.answerA) +
            answerCell(item?.answerB) +
            "</tr>",
        );
      }
    }
  }
  const flipCount = flips.length;

  const columnOptions = [
    `<option value="all">all columns</option>`,
    ...CATEGORIES.map((category) => {
      const n = c.flips[category].rightToWrong.length + c.flips[category].wrongToRight.length;
      return `<option value="${category}">${e(COLUMN_LABELS[category])} (${n})</option>`;
    }),
  ];
  const directionCount = (d: FlipDirection) =>
    CATEGORIES.reduce(
      (sum, category) =>
        sum +
        (d === "right-to-wrong" ? c.flips[category].rightToWrong : c.flips[category].wrongToRight).length,
      0,
    );
  const directionOptions = [
    `<option value="all">both directions</option>`,
    ...(Object.keys(DIRECTION_LABELS) as FlipDirection[]).map(
      (d) => `<option value="${d}">${e(DIRECTION_LABELS[d])} (${directionCount(d)})</option>`,
    ),
  ];

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${COMPARISON_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>${a} vs ${b} (${e(c.scoring)} scoring)</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>Paired comparison, ${e(c.scoring)} scoring</h1>
<dl>
<dt>A</dt><dd class="label" id="label-a">${a}</dd>
<dt>B</dt><dd class="label" id="label-b">${b}</dd>
</dl>
<p>${c.pooled.n} items answered by both. Excluded: ${x.onlyA} only in A, ${x.onlyB} only in B,
${x.erroredA} errored in A, ${x.erroredB} errored in B.</p>
</header>
<main>
<h2>Accuracy per column</h2>
<table id="comparison">
<caption>${COMPARISON_NOTES.map(e).join(" ")} * and highlighted: p &lt; ${SIGNIFICANCE_LEVEL} (Balanced: its
95% CI excludes 0).</caption>
<thead><tr><th scope="col">Column</th><th scope="col">n</th><th scope="col">A %</th><th scope="col">B %</th>
<th scope="col">Δ pp (B − A)</th><th scope="col">95% CI of Δ</th>
<th scope="col">Only A right<br><span class="muted">right → wrong</span></th>
<th scope="col">Only B right<br><span class="muted">wrong → right</span></th><th scope="col">p</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>
<h2>Flipped items (${flipCount})</h2>
<p class="muted">Items right on one side only, going from A to B: “right → wrong” were right in A and wrong in
B.</p>
<div class="filters">
<label>Column <select id="filter-column">${columnOptions.join("")}</select></label>
<label>Direction <select id="filter-direction">${directionOptions.join("")}</select></label>
<span>showing <output id="flip-count">${flipCount} of ${flipCount}</output></span>
</div>
<table id="flips">
<thead><tr><th scope="col">Item</th><th scope="col">Column</th><th scope="col">A → B</th>
<th scope="col">Sentence</th><th scope="col">A's answer</th><th scope="col">B's answer</th></tr></thead>
<tbody>
${flips.join("\n")}
</tbody>
</table>
<p id="no-flips" class="muted"${flipCount > 0 ? " hidden" : ""}>No flipped item${flipCount > 0 ? " matches the filters" : ""}.</p>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
