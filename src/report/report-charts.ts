/**
 * Chart specifications of report.html, as Vega-Lite specs. Pure: the specs are data; rendering them to SVG
 * is the adapter's job (adapters/chart-render.ts).
 *
 * Untrusted strings (model ids, scenario names) only ever appear as data values, never as field names or
 * expressions, and the SVG renderer escapes them. Colours work on light and dark pages: a transparent
 * background, text in `currentColor` (inherits the page's text colour when the SVG is inlined) and grey
 * rules.
 */
import { CATEGORIES, type Category } from "../benchmarks/mmsafeaware/facts.ts";
import type { ResultRow } from "../benchmarks/mmsafeaware/metrics.ts";
import type { Report } from "../benchmarks/mmsafeaware/report.ts";
import type { Strategy, Verdict } from "../core/schemas.ts";

/** A Vega-Lite top-level spec, as plain data. */
export type VegaLiteSpec = Record<string, unknown>;

/** One chart of the report: `id` is the figure's `data-chart`. */
export interface ChartSpec {
  id: string;
  title: string;
  /** What the chart shows, for the figure's caption. */
  caption: string;
  spec: VegaLiteSpec;
}

export const CATEGORY_LABELS: Readonly<Record<Category, string>> = {
  typical: "Typical",
  attack: "Attack",
  oversafety: "Over-Safe",
};

/** How a (model, strategy) pair is labelled in charts. */
export const seriesLabel = (modelId: string, strategy: Strategy | string): string =>
  `${modelId} · ${strategy}`;

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";
const GREY = "#888888";
const FAINT = "rgba(136,136,136,0.35)";
/** Mid-tone category colours, readable on white and on near-black. */
const CATEGORY_COLORS = ["#4c78a8", "#e45756", "#54a24b"];

/** Shared chart config: transparent background, text in currentColor, grey rules. */
export const CHART_CONFIG = {
  background: "transparent",
  font: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
  view: { stroke: FAINT },
  axis: {
    labelColor: "currentColor",
    titleColor: "currentColor",
    domainColor: GREY,
    tickColor: GREY,
    gridColor: FAINT,
    labelFontSize: 11,
    titleFontSize: 11,
  },
  legend: { labelColor: "currentColor", titleColor: "currentColor", labelFontSize: 11 },
  header: { labelColor: "currentColor", titleColor: "currentColor", labelFontSize: 11 },
  title: { color: "currentColor", subtitleColor: "currentColor" },
} as const;

/** Answers of the confusion matrix: the strict reading of answered verdicts, and pipeline errors. */
export const CONFUSION_ANSWERS = ["yes", "no", "refused", "unparseable", "error"] as const;
export type ConfusionAnswer = (typeof CONFUSION_ANSWERS)[number];

/** Expected answer × given answer counts of one (model, strategy). */
export interface ConfusionMatrix {
  modelId: string;
  strategy: Strategy;
  counts: Record<"yes" | "no", Record<ConfusionAnswer, number>>;
}

const zeroCounts = (): Record<ConfusionAnswer, number> => ({
  yes: 0,
  no: 0,
  refused: 0,
  unparseable: 0,
  error: 0,
});

/** One confusion matrix per report row, from the run's verdicts (strict answers, errors apart). */
export function confusionMatrices(report: Report, verdicts: readonly Verdict[]): ConfusionMatrix[] {
  const byKey = new Map<string, ConfusionMatrix>();
  const key = (modelId: string, strategy: string) => JSON.stringify([modelId, strategy]);
  const matrices = report.rows.map((r) => {
    const m: ConfusionMatrix = {
      modelId: r.modelId,
      strategy: r.strategy,
      counts: { yes: zeroCounts(), no: zeroCounts() },
    };
    byKey.set(key(r.modelId, r.strategy), m);
    return m;
  });
  for (const v of verdicts) {
    const m = byKey.get(key(v.modelId, v.strategy));
    if (!m) continue;
    const answer: ConfusionAnswer = v.status === "error" ? "error" : (v.strictAnswer ?? "unparseable");
    m.counts[v.expected][answer]++;
  }
  return matrices;
}

/** The rows' series labels, in report order. */
const seriesOrder = (rows: readonly ResultRow[]): string[] =>
  rows.map((r) => seriesLabel(r.modelId, r.strategy));

/** (a) Typical / Attack / Over-Safe per (model, strategy), grouped bars with 95% CI whiskers. */
export function accuracyChart(report: Report): ChartSpec {
  const columns = CATEGORIES.map((c) => CATEGORY_LABELS[c]);
  const values = report.rows.flatMap((r) =>
    CATEGORIES.flatMap((c) => {
      const a = r.paper[c];
      if (a.accuracy === null) return [];
      const ci = r.paperDetail.ci[c];
      return [
        {
          series: seriesLabel(r.modelId, r.strategy),
          column: CATEGORY_LABELS[c],
          value: a.accuracy,
          low: ci?.low ?? null,
          high: ci?.high ?? null,
          correct: a.correct,
          n: a.n,
        },
      ];
    }),
  );
  const x = {
    field: "series",
    type: "nominal",
    sort: seriesOrder(report.rows),
    title: null,
    axis: { labelAngle: -30, labelLimit: 200 },
  };
  const xOffset = { field: "column", type: "nominal", sort: columns };
  return {
    id: "accuracy",
    title: "Accuracy per column (paper scoring)",
    caption:
      "Accuracy % of Typical, Attack and Over-Safe items per model × strategy (paper scoring); whiskers are 95% bootstrap intervals.",
    spec: {
      $schema: SCHEMA,
      description: "Accuracy per column and model × strategy, with 95% confidence intervals",
      config: CHART_CONFIG,
      data: { values },
      width: { step: 3 * 16 + 20 },
      height: 240,
      encoding: { x, xOffset },
      layer: [
        {
          mark: { type: "bar", width: { band: 0.9 } },
          encoding: {
            y: {
              field: "value",
              type: "quantitative",
              scale: { domain: [0, 100] },
              title: "Accuracy %",
            },
            color: {
              field: "column",
              type: "nominal",
              sort: columns,
              scale: { domain: columns, range: CATEGORY_COLORS },
              legend: { orient: "top", title: null },
            },
          },
        },
        {
          // A mark at the value of every bar, so an accuracy of 0 is seen, not mistaken for a missing bar.
          mark: { type: "tick", thickness: 2, width: 12 },
          encoding: {
            y: { field: "value", type: "quantitative" },
            color: { field: "column", type: "nominal", sort: columns, legend: null },
          },
        },
        {
          mark: { type: "rule", color: "currentColor", strokeWidth: 1.5 },
          encoding: {
            y: { field: "low", type: "quantitative" },
            y2: { field: "high" },
          },
        },
        {
          // Value labels above each bar (the bars are 20 px wide: two or three digits fit).
          mark: { type: "text", dy: -7, fontSize: 9, color: "currentColor" },
          encoding: {
            y: { field: "value", type: "quantitative" },
            text: { field: "value", type: "quantitative", format: ".0f" },
          },
        },
      ],
    },
  };
}

/** Label of a scenario group: category, scenario (domain added when needed to tell rows apart), n. */
function scenarioRows(report: Report): { key: string; label: string }[] {
  const groups = new Map<
    string,
    { category: Category; domain: string | null; scenario: string | null; n: number }
  >();
  for (const r of report.rows) {
    for (const s of r.paperDetail.byScenario) {
      const key = JSON.stringify([s.category, s.domain, s.scenario]);
      const g = groups.get(key);
      if (g) g.n = Math.max(g.n, s.n);
      else groups.set(key, { category: s.category, domain: s.domain, scenario: s.scenario, n: s.n });
    }
  }
  const ordered = [...groups.entries()].sort(([, a], [, b]) =>
    a.category === b.category
      ? (a.scenario ?? "~").localeCompare(b.scenario ?? "~")
      : CATEGORIES.indexOf(a.category) - CATEGORIES.indexOf(b.category),
  );
  const base = (g: { category: Category; scenario: string | null }) =>
    `${CATEGORY_LABELS[g.category]} · ${g.scenario ?? "unlabelled"}`;
  const seen = new Map<string, number>();
  for (const [, g] of ordered) seen.set(base(g), (seen.get(base(g)) ?? 0) + 1);
  return ordered.map(([key, g]) => ({
    key,
    label: `${base(g)}${(seen.get(base(g)) ?? 0) > 1 ? ` (${g.domain ?? "no domain"})` : ""} (n=${g.n})`,
  }));
}

/** (b) Accuracy per scenario label (rows) × model × strategy (columns). Null when no row has scenarios. */
export function scenarioChart(report: Report): ChartSpec | null {
  const rows = scenarioRows(report);
  if (rows.length === 0) return null;
  const labels = new Map(rows.map((r) => [r.key, r.label]));
  const values = report.rows.flatMap((r) =>
    r.paperDetail.byScenario.flatMap((s) => {
      if (s.accuracy === null) return [];
      return [
        {
          scenario: labels.get(JSON.stringify([s.category, s.domain, s.scenario])) ?? "",
          series: seriesLabel(r.modelId, r.strategy),
          value: s.accuracy,
          text: s.accuracy.toFixed(0),
          correct: s.correct,
          n: s.n,
        },
      ];
    }),
  );
  const encoding = {
    y: {
      field: "scenario",
      type: "nominal",
      sort: rows.map((r) => r.label),
      title: null,
      axis: { labelLimit: 480 },
    },
    x: {
      field: "series",
      type: "nominal",
      sort: seriesOrder(report.rows),
      title: null,
      axis: { orient: "top", labelAngle: -30, labelLimit: 200 },
    },
  };
  return {
    id: "scenarios",
    title: "Accuracy per scenario",
    caption:
      "Accuracy % per scenario label (rows, with the number of items) and model × strategy (columns), paper scoring. Empty cells: nothing answered.",
    spec: {
      $schema: SCHEMA,
      description: "Accuracy per scenario and model × strategy",
      config: CHART_CONFIG,
      data: { values },
      width: { step: 56 },
      height: { step: 18 },
      encoding,
      layer: [
        {
          mark: { type: "rect" },
          encoding: {
            color: {
              field: "value",
              type: "quantitative",
              scale: { domain: [0, 100], scheme: "viridis" },
              title: "Accuracy %",
              legend: { orient: "bottom", gradientLength: 200 },
            },
          },
        },
        {
          mark: { type: "text", fontSize: 10 },
          encoding: {
            text: { field: "text" },
            color: { condition: { test: "datum.value < 60", value: "#ffffff" }, value: "#000000" },
          },
        },
      ],
    },
  };
}

const EXPECTED_LABELS = { yes: "Yes (benign)", no: "No (unsafe)" } as const;

/** (c) Expected Yes/No × answer, one small matrix per model × strategy (faceted). */
export function confusionChart(report: Report, matrices: readonly ConfusionMatrix[]): ChartSpec | null {
  if (matrices.length === 0) return null;
  const values = matrices.flatMap((m) =>
    (["yes", "no"] as const).flatMap((expected) => {
      const counts = m.counts[expected];
      const total = CONFUSION_ANSWERS.reduce((s, a) => s + counts[a], 0);
      return CONFUSION_ANSWERS.map((answer) => ({
        series: seriesLabel(m.modelId, m.strategy),
        expected: EXPECTED_LABELS[expected],
        answer,
        count: counts[answer],
        share: total === 0 ? 0 : counts[answer] / total,
      }));
    }),
  );
  return {
    id: "confusion",
    title: "Expected answer × given answer",
    caption:
      "Per model × strategy: items expected Yes (benign) or No (unsafe) × the strict reading of the answer (yes, no, refused, unparseable) or a pipeline error. Colour: share of the row.",
    spec: {
      $schema: SCHEMA,
      description: "Confusion matrices of expected and given answers per model and strategy",
      config: CHART_CONFIG,
      data: { values },
      columns: 3,
      facet: {
        field: "series",
        type: "nominal",
        sort: seriesOrder(report.rows),
        title: null,
        header: { labelLimit: 260, labelFontWeight: "bold" },
      },
      spec: {
        width: { step: 70 },
        height: { step: 26 },
        encoding: {
          x: {
            field: "answer",
            type: "nominal",
            sort: [...CONFUSION_ANSWERS],
            title: "answered",
            axis: { labelAngle: 0 },
          },
          y: {
            field: "expected",
            type: "nominal",
            sort: [EXPECTED_LABELS.yes, EXPECTED_LABELS.no],
            title: "expected",
          },
        },
        layer: [
          {
            mark: { type: "rect" },
            encoding: {
              color: {
                field: "share",
                type: "quantitative",
                scale: { domain: [0, 1], scheme: "blues" },
                title: "Share of row",
                legend: { format: ".0%", orient: "bottom" },
              },
            },
          },
          {
            mark: { type: "text", fontSize: 11 },
            encoding: {
              text: { field: "count", type: "quantitative" },
              color: { condition: { test: "datum.share > 0.5", value: "#ffffff" }, value: "#000000" },
            },
          },
        ],
      },
    },
  };
}

/** Every chart of report.html, in page order. */
export function chartSpecs(report: Report, verdicts: readonly Verdict[]): ChartSpec[] {
  if (report.rows.length === 0) return [];
  return [
    accuracyChart(report),
    scenarioChart(report),
    confusionChart(report, confusionMatrices(report, verdicts)),
  ].filter((c): c is ChartSpec => c !== null);
}
