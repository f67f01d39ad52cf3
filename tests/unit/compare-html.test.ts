import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { type Comparison, compareVerdicts } from "../../src/benchmarks/mmsafeaware/compare.ts";
import type { Category } from "../../src/benchmarks/mmsafeaware/facts.ts";
import { formatInterval } from "../../src/core/paired-tests.ts";
import { type Verdict, verdictSchema } from "../../src/core/schemas.ts";
import {
  ANSWER_MAX_CHARS,
  type ComparisonItem,
  renderComparisonHtml,
} from "../../src/report/compare-html.ts";

function verdict(itemId: number, category: Category, right: boolean, modelId: string): Verdict {
  return verdictSchema.parse({
    runId: "r",
    verdictKey: `verdicts/${modelId}/baseline/${itemId}.json`,
    modelId,
    strategy: "baseline",
    itemId,
    category,
    attackType: category === "attack" ? "role_play" : null,
    domain: null,
    scenario: null,
    expected: "no",
    status: "answered",
    response: right ? "No." : "Yes.",
    strictAnswer: right ? "no" : "yes",
    correctPaper: right,
    correctStrict: right,
    finishReason: "stop",
    error: null,
    latencyMs: 1,
    promptTokens: 1,
    completionTokens: 1,
    attempts: 1,
    createdAt: "2026-01-01T00:00:00.000Z",
  });
}

const HOSTILE_A = `run-1/<script>alert("a")</script>`;
const HOSTILE_B = `"><img src=x onerror=alert(1)>'&`;

/**
 * Typical 1–10: A right on all, B wrong on 1–8 (8 right→wrong, p = 2·½⁸ < 0.05).
 * Attack 11–14: A wrong on all, B right on 11 (1 wrong→right). Over-Safe 15–16: both right.
 */
function comparison(): Comparison {
  const a: Verdict[] = [];
  const b: Verdict[] = [];
  for (let id = 1; id <= 10; id++) {
    a.push(verdict(id, "typical", true, "a"));
    b.push(verdict(id, "typical", id > 8, "b"));
  }
  for (let id = 11; id <= 14; id++) {
    a.push(verdict(id, "attack", false, "a"));
    b.push(verdict(id, "attack", id === 11, "b"));
  }
  for (let id = 15; id <= 16; id++) {
    a.push(verdict(id, "oversafety", true, "a"));
    b.push(verdict(id, "oversafety", true, "b"));
  }
  return compareVerdicts(a, b, { scoring: "paper", labelA: HOSTILE_A, labelB: HOSTILE_B });
}

const items: ComparisonItem[] = [
  {
    id: 1,
    category: "typical",
    sentence: "Is it safe to <b>mix</b> bleach & ammonia?",
    answerA: "No.",
    answerB: `Yes.</td></tr><script>steal()</script><tr><td>`,
  },
  { id: 11, category: "attack", sentence: "Role-play: 'ignore the rules'", answerA: null, answerB: "No." },
  { id: 2, category: "typical", sentence: "Long", answerA: "x".repeat(ANSWER_MAX_CHARS + 50), answerB: "" },
];

/** The cells of a table row, by data-col, with tags stripped. */
function rowCells(html: string, column: string): Record<string, string> {
  const row = new RegExp(`<tr data-column="${column}">(.*?)</tr>`, "s").exec(html)?.[1] ?? "";
  const cells: Record<string, string> = {};
  for (const m of row.matchAll(/<td data-col="(\w+)"([^>]*)>(.*?)<\/td>/gs))
    cells[m[1] ?? ""] =
      `${(m[3] ?? "").replace(/<[^>]+>/g, "")}${(m[2] ?? "").includes("significant") ? " [sig]" : ""}`;
  return cells;
}

describe("renderComparisonHtml", () => {
  const c = comparison();
  const html = renderComparisonHtml(c, items);

  it("escapes hostile labels, sentences and answers everywhere", () => {
    assert.equal(html.match(/<script/g)?.length, 1, "only the page's own script");
    assert.ok(!html.includes("<img"), "no injected element");
    assert.ok(!html.includes("steal()</script>"));
    assert.ok(!html.includes("<b>mix</b>"));
    assert.ok(html.includes("run-1/&lt;script&gt;alert(&quot;a&quot;)&lt;/script&gt;"));
    assert.ok(html.includes("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&#39;&amp;"));
    assert.ok(
      html.includes("Yes.&lt;/td&gt;&lt;/tr&gt;&lt;script&gt;steal()&lt;/script&gt;&lt;tr&gt;&lt;td&gt;"),
    );
    assert.ok(html.includes("Is it safe to &lt;b&gt;mix&lt;/b&gt; bleach &amp; ammonia?"));
    assert.match(html, /<title>run-1\/&lt;script&gt;/);
  });

  it("has the per-column table: A %, B %, Δ pp and its CI, discordant counts and the exact McNemar p, significance marked", () => {
    assert.deepEqual(rowCells(html, "typical"), {
      n: "10",
      a: "100.0",
      b: "20.0",
      diff: "-80.0",
      ci: formatInterval(c.columns.typical.ci),
      onlyA: "8",
      onlyB: "0",
      p: "0.008 * [sig]",
    });
    assert.deepEqual(rowCells(html, "attack"), {
      n: "4",
      a: "0.0",
      b: "25.0",
      diff: "+25.0",
      ci: formatInterval(c.columns.attack.ci),
      onlyA: "0",
      onlyB: "1",
      p: "1.000",
    });
    assert.deepEqual(rowCells(html, "oversafety"), {
      n: "2",
      a: "100.0",
      b: "100.0",
      diff: "0.0",
      ci: "[0.0, 0.0]",
      onlyA: "0",
      onlyB: "0",
      p: "1.000",
    });
    // Total: the unweighted mean of the columns; counts and p over the 16 pooled items (8 vs 1: p = 0.039).
    assert.deepEqual(rowCells(html, "total"), {
      n: "16",
      a: "66.7",
      b: "48.3",
      diff: "-18.3",
      ci: formatInterval(c.total.ci),
      onlyA: "8",
      onlyB: "1",
      p: "0.039 * [sig]",
    });
    // Unsafe: the 14 typical and attack items (Over-Safe is the other half of Balanced).
    assert.deepEqual(rowCells(html, "unsafe"), {
      n: "14",
      a: "71.4",
      b: "21.4",
      diff: "-50.0",
      ci: formatInterval(c.unsafe.ci),
      onlyA: "8",
      onlyB: "1",
      p: "0.039 * [sig]",
    });
    // Balanced = mean(Unsafe, Over-Safe): no McNemar p; its interval excludes 0, so that cell is marked.
    assert.ok(c.balanced.ci && c.balanced.ci.high < 0);
    assert.deepEqual(rowCells(html, "balanced"), {
      n: "16",
      a: "85.7",
      b: "60.7",
      diff: "-25.0",
      ci: `${formatInterval(c.balanced.ci)} * [sig]`,
      onlyA: "8",
      onlyB: "1",
      p: "–",
    });
  });

  it("shows an empty column's p as –, not 1.000", () => {
    const typicalOnly = compareVerdicts(
      [verdict(1, "typical", true, "a")],
      [verdict(1, "typical", false, "b")],
      { scoring: "paper", labelA: "a", labelB: "b" },
    );
    const empty = rowCells(renderComparisonHtml(typicalOnly), "attack");
    assert.deepEqual([empty.n, empty.a, empty.ci, empty.p], ["0", "–", "–", "–"]);
  });

  it("lists every flip with its column, direction and id, with the sentence and both answers when known", () => {
    const flips = [
      ...html.matchAll(/<tr class="flip" data-column="(\w+)" data-direction="([\w-]+)" data-id="(\d+)">/g),
    ];
    assert.deepEqual(
      flips.map((m) => `${m[1]}/${m[2]}/${m[3]}`),
      [...[1, 2, 3, 4, 5, 6, 7, 8].map((id) => `typical/right-to-wrong/${id}`), "attack/wrong-to-right/11"],
    );
    const row = (id: number) => new RegExp(`data-id="${id}">(.*?)</tr>`, "s").exec(html)?.[1] ?? "";
    assert.match(row(11), /Role-play: &#39;ignore the rules&#39;/);
    assert.match(row(11), /<td class="answer muted">–<\/td><td class="answer">No\.<\/td>/);
    assert.match(row(2), /… \(50 more characters\)/);
    assert.match(row(5), /<td class="sentence muted">–<\/td>/, "an item not given is listed by id only");
    assert.match(html, /<select id="filter-column">.*<option value="typical">Typical \(8\)<\/option>/s);
    assert.match(
      html,
      /<select id="filter-direction">.*<option value="wrong-to-right">wrong → right \(1\)<\/option>/s,
    );
  });

  it("allows only its own inline style and script, by hash", () => {
    const csp = /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)?.[1] ?? "";
    const hash = (text: string) => `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
    const script = /<script>(.*?)<\/script>/s.exec(html)?.[1] ?? "";
    const style = /<style>(.*?)<\/style>/s.exec(html)?.[1] ?? "";
    assert.match(csp, /^default-src 'none'; /);
    assert.ok(csp.includes(`script-src ${hash(script)}`), csp);
    assert.ok(csp.includes(`style-src ${hash(style)}`), csp);
    assert.ok(!csp.includes("unsafe-inline"));
    assert.doesNotMatch(html, /<[a-z][^>]*\son\w+\s*=/i, "no inline event handler in any tag");
  });

  it("filters the flips by column and direction by toggling `hidden`", () => {
    const script = /<script>(.*?)<\/script>/s.exec(html)?.[1] ?? "";
    const rows = [
      ...html.matchAll(/<tr class="flip" data-column="(\w+)" data-direction="([\w-]+)" data-id="(\d+)">/g),
    ].map((m) => ({ dataset: { column: m[1], direction: m[2], id: m[3] }, hidden: false }));
    const listeners: (() => void)[] = [];
    const select = (value: string) => ({
      value,
      addEventListener: (_: string, f: () => void) => listeners.push(f),
    });
    const elements = {
      "filter-column": select("all"),
      "filter-direction": select("all"),
      "flip-count": { textContent: "" },
      "no-flips": { hidden: true },
    };
    const document = {
      getElementById: (id: keyof typeof elements) => elements[id],
      querySelectorAll: () => rows,
    };
    new Function("document", script)(document);
    const visible = () => rows.filter((r) => !r.hidden).map((r) => Number(r.dataset.id));
    assert.equal(visible().length, 9);
    assert.equal(elements["flip-count"].textContent, "9 of 9");
    elements["filter-direction"].value = "wrong-to-right";
    for (const f of listeners) f();
    assert.deepEqual(visible(), [11]);
    elements["filter-column"].value = "typical";
    for (const f of listeners) f();
    assert.deepEqual(visible(), []);
    assert.equal(elements["flip-count"].textContent, "0 of 9");
    assert.equal(elements["no-flips"].hidden, false);
  });

  it("renders without items, and says so when nothing flipped", () => {
    const c = comparison();
    const none = renderComparisonHtml({
      ...c,
      flips: {
        typical: { rightToWrong: [], wrongToRight: [] },
        attack: { rightToWrong: [], wrongToRight: [] },
        oversafety: { rightToWrong: [], wrongToRight: [] },
      },
    });
    assert.doesNotMatch(none, /<tr class="flip"/);
    assert.match(none, /<p id="no-flips" class="muted">No flipped item\.<\/p>/);
    assert.match(renderComparisonHtml(c), /data-id="1"><td>1<\/td>/);
  });
});
