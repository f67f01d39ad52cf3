import cliProgress from "cli-progress";
import type { RunEvent } from "../local/runner.ts";

/** Shows a run's progress: a live bar on a terminal, a plain line every few seconds elsewhere (CI logs). */
export class ProgressDisplay {
  private bar: cliProgress.SingleBar | null = null;
  private lastLine = 0;

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
      if (event.sample) {
        this.write(
          "No MMSafeAware data under .mmsafe/datasets/mmsafeaware: using a GENERATED SAMPLE in the official layout.",
        );
        this.write(
          "Its numbers say nothing about any model; see README 'Real data' to evaluate the benchmark itself.",
        );
      }
      for (const line of event.lines) this.write(`dataset: ${line}`);
    } else this.progress(event);
  }

  private write(line: string): void {
    if (this.bar) this.bar.stop();
    this.bar = null;
    this.stream.write(`${line}\n`);
  }

  private progress(event: Extract<RunEvent, { type: "progress" }>): void {
    const seconds = event.elapsedMs / 1000;
    const rate =
      (event.done - event.alreadyDone) / Math.max(0.001, (event.elapsedMs - event.runStartedMs) / 1000);
    const eta = rate > 0 ? Math.round((event.total - event.done) / rate) : null;
    const payload = { errors: event.errors, rate: rate.toFixed(1), etaText: eta === null ? "–" : `${eta}s` };
    if (this.stream.isTTY) {
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            stream: this.stream,
            format: "evaluating {bar} {value}/{total} verdicts | {rate}/s | ETA {etaText} | errors {errors}",
            hideCursor: true,
            clearOnComplete: false,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(event.total, event.done, payload);
      }
      this.bar.setTotal(event.total);
      this.bar.update(event.done, payload);
      if (event.final) this.stop();
      return;
    }
    if (event.final || seconds - this.lastLine >= 5) {
      this.lastLine = seconds;
      const percent = event.total > 0 ? ((100 * event.done) / event.total).toFixed(1) : "0.0";
      this.stream.write(
        `progress: ${event.done}/${event.total} verdicts (${percent}%), ${payload.rate}/s, ETA ${payload.etaText}, errors ${event.errors}\n`,
      );
    }
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
