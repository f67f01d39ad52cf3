/**
 * Renders Vega-Lite specs (report/report-charts.ts) to SVG strings at report time: Vega-Lite compiles to Vega,
 * and a headless Vega view (no canvas, no DOM, no network) renders the scenegraph to SVG markup, which
 * escapes every text it writes.
 */
import * as vega from "vega";
import { compile, type TopLevelSpec } from "vega-lite";
import type { VegaLiteSpec } from "../report/report-charts.ts";
import { isInertSvg } from "../report/report-html.ts";

/** One spec to one `<svg>…</svg>` string. Throws when the spec does not compile or render. */
export async function renderSvg(spec: VegaLiteSpec): Promise<string> {
  const compiled = compile(spec as unknown as TopLevelSpec, { logger: vega.logger(vega.None) }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none", logLevel: vega.Error });
  try {
    const svg = await view.toSVG();
    // Defence in depth: a chart is markup Vega made from data; it must never carry script.
    if (!isInertSvg(svg)) throw new Error("rendered chart is not inert SVG markup");
    return svg;
  } finally {
    view.finalize();
  }
}

/** Renders specs one after another (Vega views are CPU-bound; parallelism gains nothing). */
export async function renderCharts(specs: readonly VegaLiteSpec[]): Promise<string[]> {
  const out: string[] = [];
  for (const spec of specs) out.push(await renderSvg(spec));
  return out;
}
