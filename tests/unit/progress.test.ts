import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import {
  barRows,
  eta,
  formatCost,
  formatDuration,
  formatErrorSummary,
  formatProgressLine,
  formatTiming,
  LABEL_WIDTH,
  ProgressDisplay,
  type ProgressEvent,
  rate,
} from "../../src/cli/progress.ts";
import type { ModelConfig } from "../../src/core/schemas.ts";
import { type RunEvent, tallyProgress, type VerdictProgressRow } from "../../src/local/runner.ts";

const event = (overrides: Partial<ProgressEvent> = {}): ProgressEvent => ({
  type: "progress",
  runId: "run-1",
  done: 120,
  total: 216,
  errors: 1,
  alreadyDone: 0,
  elapsedMs: 12_000,
  runStartedMs: 2_000,
  final: false,
  ...overrides,
});

const rich = (overrides: Partial<ProgressEvent> = {}): ProgressEvent =>
  event({
    retries: 3,
    tokens: 12_345,
    costUsd: 0.0123,
    cached: 0,
    models: [
      { id: "gpt-4o", done: 60, total: 108, errors: 1, tokens: 6000, costUsd: 0.0123 },
      { id: "claude", done: 60, total: 108, errors: 0, tokens: 6345, costUsd: null },
    ],
    ...overrides,
  });

describe("progress figures", () => {
  it("rate counts the verdicts of this execution since the evaluation started", () => {
    assert.equal(rate(event()), 12); // 120 verdicts in 10 s
    assert.equal(rate(event({ alreadyDone: 100 })), 2); // a resume: only 20 were written now
    assert.equal(rate(event({ elapsedMs: 2_000 })), 0, "no time yet");
    assert.equal(rate(event({ done: 0 })), 0, "no verdict yet");
  });

  it("eta is the remaining verdicts at that rate, 0 when done, unknown while nothing moves", () => {
    assert.equal(eta(event()), 8); // 96 left at 12/s
    assert.equal(eta(event({ done: 216 })), 0);
    assert.equal(eta(event({ done: 0 })), null);
    assert.equal(eta(event({ done: 215, elapsedMs: 1_000_000 })), 5, "rounded up: never 0 before the end");
  });

  it("formats durations and costs", () => {
    assert.deepEqual([null, 0, 6, 59.6, 125, 3600, 3725].map(formatDuration), [
      "–",
      "0 s",
      "6 s",
      "1 min 00 s",
      "2 min 05 s",
      "1 h 00 min",
      "1 h 02 min",
    ]);
    assert.deepEqual([null, undefined, 0, 0.0123, 12.3456].map(formatCost), [
      "–",
      "–",
      "$0.0000",
      "$0.0123",
      "$12.35",
    ]);
  });
});

describe("formatProgressLine", () => {
  it("gives counts, elapsed time, rate, ETA, errors, retries, tokens, cost, cached answers and each model", () => {
    assert.equal(
      formatProgressLine(rich()),
      "progress: 120/216 verdicts (55.6%) · elapsed 12 s · 12.0/s · ETA 8 s · errors 1 · retries 3 · " +
        "tokens 12,345 · cost $0.0123 · cached 0 · gpt-4o 60/108, claude 60/108",
    );
  });

  it("gives the judge's readings after the models' verdicts, with its errors", () => {
    assert.equal(
      formatProgressLine(rich({ judge: { id: "judge", done: 100, errors: 2, total: 216 } })),
      "progress: 120/216 verdicts (55.6%) · elapsed 12 s · 12.0/s · ETA 8 s · errors 1 · retries 3 · " +
        "tokens 12,345 · cost $0.0123 · cached 0 · gpt-4o 60/108, claude 60/108 · judge judge 100/216 (errors 2)",
    );
    const rows = barRows(rich({ judge: { id: "judge", done: 100, errors: 0, total: 216 } }));
    const last = rows[rows.length - 1];
    assert.equal(last?.label.trim(), "judge judge");
    assert.deepEqual([last?.value, last?.total], [100, 216]);
  });

  it("says – for the cost when no model has prices, and for the ETA before any verdict", () => {
    assert.equal(
      formatProgressLine(rich({ done: 0, costUsd: null, models: [] })),
      "progress: 0/216 verdicts (0.0%) · elapsed 12 s · 0.0/s · ETA – · errors 1 · retries 3 · tokens 12,345 · cost – · cached 0",
    );
  });

  it("gives only what was gathered (`mmsafe start` counts verdicts and errors)", () => {
    assert.equal(
      formatProgressLine(event({ done: 216, final: true })),
      "progress: 216/216 verdicts (100.0%) · elapsed 12 s · 21.6/s · ETA 0 s · errors 1",
    );
  });

  it("counts the elapsed time from the start of the run, in minutes and hours when long", () => {
    assert.equal(formatTiming(event({ elapsedMs: 0, done: 0 })), "elapsed 0 s · 0.0/s · ETA –");
    assert.match(formatTiming(event({ elapsedMs: 125_000 })), /^elapsed 2 min 05 s · /);
    assert.match(formatTiming(event({ elapsedMs: 3_725_000 })), /^elapsed 1 h 02 min · /);
  });
});

describe("barRows (the live display)", () => {
  it("has a row per model and a totals row, within 80 columns with the bar", () => {
    const long = "a-model-id-that-is-far-too-long-for-the-column";
    const rows = barRows(
      rich({
        done: 12_000,
        total: 12_345,
        models: [{ id: long, done: 6000, total: 6172, errors: 123, tokens: 1, costUsd: 12.34 }],
      }),
    );
    assert.equal(rows.length, 2);
    assert.equal(rows[0]?.label, `${long.slice(0, LABEL_WIDTH - 1)}…`);
    assert.equal(rows[0]?.text, "6000/6172    97.2% · errors 123 · $12.34");
    assert.equal(rows[1]?.label.trim(), "all models");
    // The timing (elapsed, rate, ETA) has a line of its own below the bars.
    assert.equal(rows[1]?.text, "12000/12345  97.2%");
    for (const row of rows) {
      assert.equal(row.label.length, LABEL_WIDTH);
      assert.ok(LABEL_WIDTH + 1 + 16 + 1 + row.text.length <= 80, row.text);
    }
  });

  it("without per-model figures shows one verdicts row", () => {
    const rows = barRows(event());
    assert.deepEqual(
      rows.map((r) => [r.label.trim(), r.value, r.total]),
      [["verdicts", 120, 216]],
    );
  });
});

describe("ProgressDisplay on a terminal", () => {
  it("shows the elapsed time, rate and ETA on a line of their own under the bars", () => {
    let text = "";
    const stream = Object.assign(
      new Writable({
        write(chunk: Buffer | string, _encoding, done) {
          text += chunk.toString();
          done();
        },
      }),
      { isTTY: true, columns: 100 },
    ) as unknown as NodeJS.WriteStream;
    const display = new ProgressDisplay(stream);
    display.handle(rich({ elapsedMs: 65_000 }));
    display.handle(rich({ elapsedMs: 70_000, done: 216, final: true }));
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the terminal's escape codes are stripped
    const shown = text.replace(/\u001b\[[0-9;?]*[A-Za-z]/g, "");
    assert.match(shown, new RegExp(`^ {${LABEL_WIDTH + 1}}elapsed 1 min 10 s · [\\d.]+/s · ETA 0 s$`, "m"));
    assert.match(shown, /^all models {3}\S+ 216\/216 100\.0%$/m);
  });
});

describe("ProgressDisplay off a terminal", () => {
  const capture = () => {
    const lines: string[] = [];
    const stream = {
      isTTY: false,
      write: (text: string) => {
        lines.push(...text.split("\n").filter(Boolean));
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    return { lines, stream };
  };

  it("writes a plain line at most every 5 s, and the final one unless it would repeat the last", () => {
    const { lines, stream } = capture();
    const display = new ProgressDisplay(stream);
    const at = (s: number, done: number, final = false): RunEvent =>
      rich({ elapsedMs: s * 1000, done, final });
    display.handle(at(3, 10));
    display.handle(at(4, 20)); // within 5 s of the last line
    display.handle(at(8, 80));
    display.handle(at(9, 216));
    display.handle(at(9.5, 216, true));
    assert.deepEqual(
      lines.map((l) => l.split(" · ")[0]),
      [
        "progress: 10/216 verdicts (4.6%)",
        "progress: 80/216 verdicts (37.0%)",
        "progress: 216/216 verdicts (100.0%)",
      ],
    );
  });

  it("prints nothing with --quiet", () => {
    const { lines, stream } = capture();
    const display = new ProgressDisplay(stream, true);
    display.handle({ type: "info", message: "hello" });
    display.handle(rich({ final: true, errorSummaries: [summary(3)] }));
    assert.deepEqual(lines, []);
  });

  it("sums error verdicts up per model every 5 s, only when they grew, and at the end", () => {
    const { lines, stream } = capture();
    const display = new ProgressDisplay(stream);
    const at = (s: number, errors: number, final = false): RunEvent =>
      rich({ elapsedMs: s * 1000, done: 10 * s, final, errorSummaries: errors > 0 ? [summary(errors)] : [] });
    display.handle(at(1, 0));
    display.handle(at(2, 5)); // the first errors: said at once
    display.handle(at(4, 9)); // within 5 s of the last summary
    display.handle(at(8, 9)); // 9 errors: said once
    display.handle(at(14, 9)); // unchanged: not repeated
    display.handle(at(15, 12, true)); // the end: said whatever the interval
    assert.deepEqual(
      lines.filter((l) => !l.startsWith("progress:")),
      [
        "m1: 5 errors (connection 5) at http://127.0.0.1:9/v1: Connection error.",
        "m1: 9 errors (connection 9) at http://127.0.0.1:9/v1: Connection error.",
        "m1: 12 errors (connection 12) at http://127.0.0.1:9/v1: Connection error.",
      ],
    );
  });
});

function summary(errors: number) {
  return {
    id: "m1",
    baseURL: "http://127.0.0.1:9/v1",
    errors,
    kinds: { connection: errors },
    sample: "Connection error.",
  };
}

describe("formatErrorSummary", () => {
  it("gives the count, the kinds (most common first), the endpoint and a sample on one line", () => {
    assert.equal(
      formatErrorSummary({
        id: "gpt-4o",
        baseURL: "https://api.example.com/v1",
        errors: 1,
        kinds: { timeout: 1 },
        sample: "Request timed out.\n(after 30 s)",
      }),
      "gpt-4o: 1 error (timeout 1) at https://api.example.com/v1: Request timed out. (after 30 s)",
    );
    assert.equal(
      formatErrorSummary({
        id: "m\u001b[31m",
        baseURL: "http://h/v1",
        errors: 1_234,
        kinds: { server_error: 1_200, endpoint_unavailable: 34 },
        sample: null,
      }),
      "m?[31m: 1,234 errors (server_error 1,200, endpoint_unavailable 34) at http://h/v1",
    );
  });
});

describe("tallyProgress", () => {
  const model = (id: string, pricing?: ModelConfig["pricing"]): ModelConfig => ({
    id,
    baseURL: "http://127.0.0.1:9/v1",
    model: id,
    kind: "model",
    maxConcurrency: 1,
    maxTokens: 16,
    temperature: 0,
    timeoutMs: 1000,
    ...(pricing ? { pricing } : {}),
  });
  const row = (overrides: Partial<VerdictProgressRow>): VerdictProgressRow => ({
    modelId: "a",
    strategy: "baseline",
    status: "answered",
    attempts: 1,
    promptTokens: 100,
    completionTokens: 10,
    cached: false,
    ...overrides,
  });

  it("adds up per model and in all; retries beyond one call (two for vcd), none for cached answers", () => {
    const tally = tallyProgress(
      [
        row({ attempts: 3 }), // 2 retries
        row({ strategy: "vcd", attempts: 3 }), // vcd calls twice: 1 retry
        row({ strategy: "vcd", attempts: 2 }), // none
        row({ cached: true, attempts: 4, promptTokens: 0, completionTokens: 0 }), // cached: none
        row({ modelId: "b", status: "error", attempts: 2 }), // 1 retry
        row({ modelId: "gone" }), // a model not in the plan: counted in all only
      ],
      [model("a", { inputPerMillionTokens: 2, outputPerMillionTokens: 10 }), model("b")],
      10,
    );
    assert.deepEqual(
      { ...tally, models: undefined },
      {
        done: 6,
        errors: 1,
        retries: 4,
        tokens: 550,
        costUsd: (300 * 2 + 30 * 10) / 1e6,
        cached: 1,
        models: undefined,
        errorSummaries: [
          { id: "b", baseURL: "http://127.0.0.1:9/v1", errors: 1, kinds: { unknown: 1 }, sample: null },
        ],
      },
    );
    assert.deepEqual(tally.models, [
      { id: "a", done: 4, total: 10, errors: 0, tokens: 330, costUsd: (300 * 2 + 30 * 10) / 1e6 },
      { id: "b", done: 1, total: 10, errors: 1, tokens: 110, costUsd: null },
    ]);
  });

  it("has no cost when no model has prices", () => {
    assert.equal(tallyProgress([row({})], [model("a")], 1).costUsd, null);
  });

  it("sums up each model's error verdicts: kinds, most common first, and a message of that kind", () => {
    const error = (kind: string, errorMessage: string | null) =>
      row({ modelId: "b", status: "error", errorKind: kind, errorMessage });
    const tally = tallyProgress(
      [
        error("timeout", "Request timed out."),
        error("connection", null),
        error("connection", "Connection error."),
        error("connection", "Connection error (again)."),
        row({}),
      ],
      [model("a"), model("b")],
      10,
    );
    assert.deepEqual(tally.errorSummaries, [
      {
        id: "b",
        baseURL: "http://127.0.0.1:9/v1",
        errors: 4,
        kinds: { connection: 3, timeout: 1 },
        sample: "Connection error.",
      },
    ]);
  });

  it("on a resume that retries errors, counts the error verdicts written before it as still to do", () => {
    const rows = [
      row({ status: "error", errorKind: "connection", createdAt: "2026-01-01T00:00:00.000Z" }), // to retry
      row({ status: "error", errorKind: "connection", createdAt: "2026-01-02T00:00:01.000Z" }), // this run's
      row({ createdAt: "2026-01-01T00:00:00.000Z" }), // an old answer: done
    ];
    const resumed = tallyProgress(rows, [model("a")], 10, {
      retryingErrorsBefore: "2026-01-02T00:00:00.000Z",
    });
    assert.deepEqual([resumed.done, resumed.errors, resumed.models[0]?.done], [2, 1, 2]);
    const kept = tallyProgress(rows, [model("a")], 10);
    assert.deepEqual([kept.done, kept.errors], [3, 2]);
  });
});
