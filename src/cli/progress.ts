import cliProgress from "cli-progress";
import type { ModelErrorSummary, RunEvent } from "../local/runner.ts";
import { terminalSafe } from "./format.ts";

/** A `progress` event of a run. */
export type ProgressEvent = Extract<RunEvent, { type: "progress" }>;

/** Seconds between two plain progress lines (logs, CI). */
export const PLAIN_LINE_INTERVAL_S = 5;

/**
 * Verdicts per second since the evaluation started (after upload and planning), not counting the verdicts
 * a resumed run already had; 0 before any verdict.
 */
export function rate(event: ProgressEvent): number {
  const seconds = (event.elapsedMs - event.runStartedMs) / 1000;
  const done = event.done - event.alreadyDone;
  return seconds > 0 && done > 0 ? done / seconds : 0;
}

/** Seconds left at the current rate: 0 when every planned verdict is written, null while the rate is 0. */
export function eta(event: ProgressEvent): number | null {
  const remaining = event.total - event.done;
  if (remaining <= 0) return 0;
  const r = rate(event);
  return r > 0 ? Math.ceil(remaining / r) : null;
}

/** "–" (unknown), "6 s", "2 min 05 s", "1 h 02 min". */
export function formatDuration(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return "–";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** 12,345 */
export const formatCount = (n: number): string => n.toLocaleString("en-US");

/** "$0.0123" (4 decimals below $10, else 2), or "–" when no model has prices. */
export function formatCost(usd: number | null | undefined): string {
  if (usd === null || usd === undefined) return "–";
  return `$${usd.toFixed(usd < 10 ? 4 : 2)}`;
}

const percent = (done: number, total: number): string =>
  total > 0 ? ((100 * done) / total).toFixed(1) : "0.0";

/**
 * The figures after the counts: errors, and when the runner gathered them, retries, tokens, cost and cached
 * answers. `errors 1 · retries 3 · tokens 12,345 · cost $0.0123 · cached 0`
 */
export function formatStats(event: ProgressEvent): string {
  const parts = [`errors ${formatCount(event.errors)}`];
  if (event.retries !== undefined) parts.push(`retries ${formatCount(event.retries)}`);
  if (event.tokens !== undefined) parts.push(`tokens ${formatCount(event.tokens)}`);
  if (event.costUsd !== undefined) parts.push(`cost ${formatCost(event.costUsd)}`);
  if (event.cached !== undefined) parts.push(`cached ${formatCount(event.cached)}`);
  return parts.join(" · ");
}

/**
 * Time so far, rate and time left: `elapsed 12 s · 14.2/s · ETA 6 s`. Elapsed counts from the start of the
 * run (dataset upload and planning included), as a user waiting for it counts.
 */
export function formatTiming(event: ProgressEvent): string {
  return [
    `elapsed ${formatDuration(event.elapsedMs / 1000)}`,
    `${rate(event).toFixed(1)}/s`,
    `ETA ${formatDuration(eta(event))}`,
  ].join(" · ");
}

/**
 * The plain progress line (logs, CI):
 * `progress: 120/216 verdicts (55.6%) · elapsed 12 s · 14.2/s · ETA 6 s · errors 1 · retries 3 ·
 * tokens 12,345 · cost $0.0123 · cached 0 · gpt-4o 60/108, claude 60/108` (one line; per model when the
 * runner gathered it).
 */
export function formatProgressLine(event: ProgressEvent): string {
  const parts = [
    `progress: ${event.done}/${event.total} verdicts (${percent(event.done, event.total)}%)`,
    formatTiming(event),
    formatStats(event),
  ];
  if (event.models && event.models.length > 0)
    parts.push(event.models.map((m) => `${m.id} ${m.done}/${m.total}`).join(", "));
  if (event.judge)
    parts.push(
      `judge ${event.judge.id} ${event.judge.done}/${event.judge.total}${event.judge.errors > 0 ? ` (errors ${formatCount(event.judge.errors)})` : ""}`,
    );
  return parts.join(" · ");
}

/** Seconds between two error summaries (a model's summary is repeated only when its count changed). */
export const ERROR_SUMMARY_INTERVAL_S = 5;

/**
 * A model's error verdicts in one line, in place of a log line per error:
 * `m1: 120 errors (connection 118, timeout 2) at http://127.0.0.1:9/v1: Connection error.`
 */
export function formatErrorSummary(summary: ModelErrorSummary): string {
  const kinds = Object.entries(summary.kinds)
    .map(([kind, n]) => `${kind} ${formatCount(n)}`)
    .join(", ");
  const sample = summary.sample === null ? "" : `: ${summary.sample.replace(/\s+/g, " ").trim()}`;
  return terminalSafe(
    `${summary.id}: ${formatCount(summary.errors)} error${summary.errors === 1 ? "" : "s"} (${kinds}) at ${summary.baseURL}${sample}`,
  );
}

/** One line of the live display: a label, a bar of `value`/`total`, then `text`. */
export interface BarRow {
  label: string;
  value: number;
  total: number;
  text: string;
}

/** Label column of the live display; longer model ids are cut with an ellipsis. */
export const LABEL_WIDTH = 12;
const BAR_SIZE = 16;

const fitLabel = (label: string): string =>
  label.length > LABEL_WIDTH ? `${label.slice(0, LABEL_WIDTH - 1)}…` : label.padEnd(LABEL_WIDTH);

/**
 * The live display's bar rows (≤ 80 columns each): one per model (`60/108  55.6% · errors 1 · $0.0061`),
 * then the totals (`120/216  55.6%`). Below them go a line of their own for the timing
 * ({@link formatTiming}: elapsed, rate, ETA), so it never pushes a bar row past 80 columns, and the figures
 * line ({@link formatStats}).
 */
export function barRows(event: ProgressEvent): BarRow[] {
  const models = event.models ?? [];
  const counts = [...models.map((m) => `${m.done}/${m.total}`), `${event.done}/${event.total}`];
  const width = Math.max(...counts.map((c) => c.length));
  const countsText = (done: number, total: number) =>
    `${`${done}/${total}`.padEnd(width)} ${percent(done, total).padStart(5)}%`;
  const rows: BarRow[] = models.map((m) => {
    const parts = [countsText(m.done, m.total)];
    if (m.errors > 0) parts.push(`errors ${formatCount(m.errors)}`);
    if (m.costUsd !== null) parts.push(formatCost(m.costUsd));
    return { label: fitLabel(m.id), value: m.done, total: m.total, text: parts.join(" · ") };
  });
  rows.push({
    label: fitLabel(models.length > 0 ? "all models" : "verdicts"),
    value: event.done,
    total: event.total,
    text: countsText(event.done, event.total),
  });
  // The judge reads each stored answer once: its own bar, below the answers it reads.
  const judge = event.judge;
  if (judge) {
    const parts = [countsText(judge.done, judge.total)];
    if (judge.errors > 0) parts.push(`errors ${formatCount(judge.errors)}`);
    rows.push({
      label: fitLabel(`judge ${judge.id}`),
      value: judge.done,
      total: judge.total,
      text: parts.join(" · "),
    });
  }
  return rows;
}

/** Shows a run's progress: live bars on a terminal, a plain line every few seconds elsewhere (CI logs). */
export class ProgressDisplay {
  private multi: cliProgress.MultiBar | null = null;
  private bars: cliProgress.SingleBar[] = [];
  private lastLine = Number.NEGATIVE_INFINITY;
  private lastDone = -1;
  private lastErrors = -1;
  private lastSummaryAt = Number.NEGATIVE_INFINITY;
  /** Per model, the error count its last summary line gave. */
  private readonly summarised = new Map<string, number>();

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly quiet = false,
  ) {}

  handle(event: RunEvent): void {
    if (this.quiet) return;
    if (event.type === "info") this.write(event.message);
    else if (event.type === "planned") {
      const resumed =
        event.alreadyDone > 0
          ? ` (${event.alreadyDone} already done: resuming, those are not asked again)`
          : "";
      this.write(`run ${event.runId}: ${event.verdicts} verdicts planned${resumed}`);
    } else if (event.type === "dataset") {
      if (event.fallback) {
        this.write(
          event.benchmark && event.lookedIn
            ? `No ${event.benchmark} data under ${event.lookedIn}: using a GENERATED SAMPLE in the official layout.`
            : "No MMSafeAware data under .mmsafe/datasets/mmsafeaware: using a GENERATED SAMPLE in the official layout.",
        );
        this.write(
          "Its numbers say nothing about any model; see README 'Real data' to evaluate the benchmark itself.",
        );
      }
      for (const line of event.lines) this.write(`dataset: ${line}`);
    } else this.progress(event);
  }

  private write(line: string): void {
    // Above the live bars while they run (shown at their next redraw), else a plain line.
    if (this.multi) this.multi.log(`${line}\n`);
    else this.stream.write(`${line}\n`);
  }

  private progress(event: ProgressEvent): void {
    this.summariseErrors(event);
    if (this.stream.isTTY) {
      this.live(event);
      if (event.final) this.stop();
      return;
    }
    const seconds = event.elapsedMs / 1000;
    // The final line is left out when the last one already said as much (a run that ended between lines).
    // The judge's readings count as progress too (a rejudge writes nothing else).
    const done = event.done + (event.judge?.done ?? 0);
    const errors = event.errors + (event.judge?.errors ?? 0);
    const due = event.final
      ? done !== this.lastDone || errors !== this.lastErrors
      : seconds - this.lastLine >= PLAIN_LINE_INTERVAL_S;
    if (due) {
      this.lastLine = seconds;
      this.lastDone = done;
      this.lastErrors = errors;
      this.stream.write(`${formatProgressLine(event)}\n`);
    }
  }

  /**
   * Every few seconds (and at the end), a line per model whose error verdicts grew since its last line:
   * the handlers write no line per error locally.
   */
  private summariseErrors(event: ProgressEvent): void {
    const seconds = event.elapsedMs / 1000;
    if (!event.final && seconds - this.lastSummaryAt < ERROR_SUMMARY_INTERVAL_S) return;
    const changed = (event.errorSummaries ?? []).filter((m) => this.summarised.get(m.id) !== m.errors);
    if (changed.length === 0) return;
    this.lastSummaryAt = seconds;
    for (const summary of changed) {
      this.summarised.set(summary.id, summary.errors);
      this.write(formatErrorSummary(summary));
    }
  }

  private live(event: ProgressEvent): void {
    const rows = barRows(event);
    const lines = [formatTiming(event), formatStats(event)];
    // The rows are fixed once planned; rebuild only if they change (another run's event, say).
    if (this.multi && this.bars.length !== rows.length + lines.length) this.stop();
    if (!this.multi) {
      this.multi = new cliProgress.MultiBar(
        {
          stream: this.stream,
          format: "{label} {bar} {text}",
          barsize: BAR_SIZE,
          hideCursor: true,
          clearOnComplete: false,
          linewrap: false,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bars = rows.map((row) => this.multi?.create(Math.max(1, row.total), row.value, row)).filter(isBar);
      // Text lines without a bar, under the totals: the timing, then the figures.
      for (const text of lines) {
        const line = this.multi.create(1, 0, { text }, { format: `${" ".repeat(LABEL_WIDTH + 1)}{text}` });
        if (line) this.bars.push(line);
      }
      return;
    }
    rows.forEach((row, i) => {
      const bar = this.bars[i];
      bar?.setTotal(Math.max(1, row.total));
      bar?.update(row.value, row);
    });
    for (const [i, text] of lines.entries()) this.bars[rows.length + i]?.update(0, { text });
  }

  stop(): void {
    // A redraw first: it writes the lines logged since the last one above the bars.
    this.multi?.update();
    this.multi?.stop();
    this.multi = null;
    this.bars = [];
  }
}

const isBar = (bar: cliProgress.SingleBar | undefined): bar is cliProgress.SingleBar => bar !== undefined;
