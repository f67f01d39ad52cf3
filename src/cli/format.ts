import { styleText } from "node:util";
import type { Headline } from "../benchmarks/mmsafeaware/report.ts";
import { formatPercent } from "../core/text.ts";

/**
 * How every hint the CLI prints spells a command: the npm script, which works in a fresh clone without
 * installing anything (`npx mmsafe` and an installed `mmsafe` take the same arguments).
 */
export const MMSAFE_COMMAND = "npm run mmsafe --";

/** A command line as the CLI's hints print it: `npm run mmsafe -- report run-1 --local`. */
export const mmsafeCommand = (args: string): string => `${MMSAFE_COMMAND} ${args}`;

/** The text styles the CLI uses: sparingly, bold headers and red errors. */
export type TextStyle = "bold" | "red";

/** Styles text for one stream, or leaves it as it is. */
export type Paint = (style: TextStyle, text: string) => string;

/** No styling (files, JSON, tests). */
export const noPaint: Paint = (_style, text) => text;

/**
 * Styles text for `stream` with node:util's styleText, which validates the stream: colour only when it is a
 * terminal that has colours, and never under NO_COLOR (or NODE_DISABLE_COLORS, TERM=dumb); FORCE_COLOR
 * forces it. A pipe or a file therefore gets plain text.
 */
export function painterFor(stream: NodeJS.WritableStream): Paint {
  return (style, text) => styleText(style, text, { stream });
}

/** Strips terminal control characters from untrusted text before it is printed. */
export function terminalSafe(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters is the point
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, "?");
}

/** The headline table for a terminal: paper scoring, one row per model × strategy; the header styled bold. */
export function headlineTable(rows: readonly Headline[], paint: Paint = noPaint): string {
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
  // Styled after the layout, so escape codes never count towards a width.
  return [paint("bold", line(header)), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
