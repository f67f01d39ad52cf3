/**
 * Plain-text helpers every report shares (Markdown, terminal): percentages, Markdown escaping of untrusted
 * text, terminal-safe labels and aligned tables, id ranges, skipped records, notes on answers that did not
 * come back as expected.
 */
import type { RowCounts } from "./call-accounting.ts";
import type { SkippedRecord } from "./schemas.ts";

/** A percentage with one decimal, or an en dash when there is nothing to measure. */
export const formatPercent = (x: number | null): string => (x === null ? "–" : x.toFixed(1));

/**
 * Escapes untrusted text (model output, dataset text, config values) for a Markdown table cell, so it is
 * shown as text: no HTML, no links, no table breaks.
 */
export function escapeMarkdown(text: string): string {
  return text
    .replace(/\r?\n|\r/g, " ")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/([\\`*_[\]{}()#+!|~])/g, "\\$1");
}

/** Control characters (newlines, escapes) in a label would break a terminal table: each becomes a space. */
export const plainText = (text: string): string => text.replace(/\p{Cc}/gu, " ");

/**
 * Lays out a terminal table: the columns at `leftColumns` left-aligned, the others right-aligned, trailing
 * spaces trimmed; the header line styled by `bold`.
 */
export function alignedTable(
  header: readonly string[],
  body: readonly (readonly string[])[],
  bold: (text: string) => string,
  leftColumns: readonly number[] = [0],
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => (cells[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) =>
        leftColumns.includes(i) ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0),
      )
      .join("  ")
      .trimEnd();
  // Styled after the layout, so escape codes never count towards a width.
  return [bold(line(header)), ...body.map(line)];
}

/** "2301–2370, 2400" from a list of ids. */
export function formatIdRanges(ids: readonly number[]): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] ?? 0) === (sorted[j] ?? 0) + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}–${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(", ");
}

/** Groups skipped records by reason: "70 records have no image: ids 2301–2370". */
export function describeSkipped(skipped: readonly SkippedRecord[]): string[] {
  const byReason = new Map<string, SkippedRecord[]>();
  for (const s of skipped) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s]);
  return [...byReason.entries()].map(([reason, records]) => {
    const ids = records.flatMap((r) => (r.id === null ? [] : [r.id]));
    const unnamed = records.length - ids.length;
    const what = `${records.length} record${records.length === 1 ? "" : "s"} ${reason}`;
    const idText = ids.length > 0 ? `: id${ids.length === 1 ? "" : "s"} ${formatIdRanges(ids)}` : "";
    return `${what}${idText}${unnamed > 0 ? ` (${unnamed} without a readable id)` : ""}`;
  });
}

/**
 * What the accounting line adds when answers did not come back as expected: asked with a downscaled image,
 * too long to store whole, or without valid token counts (empty when none of these happened).
 */
export function answerNotes(
  counts: Pick<RowCounts, "truncated" | "invalidUsage" | "imageDownscaled">,
): string {
  const notes: string[] = [];
  if (counts.imageDownscaled > 0)
    notes.push(
      `${counts.imageDownscaled} asked with a downscaled image (the dataset's exceeded the provider's limits)`,
    );
  if (counts.truncated > 0)
    notes.push(`${counts.truncated} answers truncated for storage (scored on their full text)`);
  if (counts.invalidUsage > 0)
    notes.push(`${counts.invalidUsage} without valid token counts from the endpoint (counted as 0)`);
  return notes.map((n) => `; ${n}`).join("");
}
