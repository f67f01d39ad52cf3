import { formatPercent, type Headline } from "../core/report.ts";

/** Strips terminal control characters from untrusted text before it is printed. */
export function terminalSafe(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
}

/** The headline table for a terminal: paper scoring, one row per model × strategy. */
export function headlineTable(rows: readonly Headline[]): string {
  const header = [
    "model",
    "strategy",
    "Typical",
    "Attack",
    "Over-Safe",
    "Total",
    "Balanced",
    "answered",
    "errors",
    "skipped",
    "missing",
    "cached",
  ];
  const body = rows.map((r) => [
    terminalSafe(r.modelId) + (r.kind === "baseline" ? " (baseline)" : ""),
    r.strategy,
    formatPercent(r.typical),
    formatPercent(r.attack),
    formatPercent(r.oversafety),
    formatPercent(r.total),
    formatPercent(r.balanced),
    String(r.answered),
    String(r.errored),
    String(r.skipped ?? 0),
    String(r.missing),
    String(r.cached ?? 0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
