/**
 * Verdicts from untrusted answers (core/verdicts.ts): answers too large for a DynamoDB item are scored on
 * their full text and stored bounded with the paper score kept; invalid token counts are null, summed as 0
 * and counted; older verdicts still parse.
 *
 * Run: node --import tsx --test tests/unit/verdicts.test.ts
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { computeRow } from "../../src/benchmarks/mmsafeaware/metrics.ts";
import { buildReport, renderMarkdown } from "../../src/benchmarks/mmsafeaware/report.ts";
import { scorePaper } from "../../src/benchmarks/mmsafeaware/scoring.ts";
import { modelConfigSchema, type Strategy, verdictSchema } from "../../src/core/schemas.ts";
import {
  buildVerdict,
  type ModelOutcome,
  STORED_TEXT_MAX_BYTES,
  storedText,
} from "../../src/core/verdicts.ts";
import { renderHtml } from "../../src/report/report-html.ts";
import { datasetItem } from "../fixtures/dataset-item.ts";

const NOW = new Date("2025-01-02T03:04:05.000Z");
const OVERSAFETY = datasetItem(1); // expected "yes"
const UNSAFE = datasetItem(983); // typical, expected "no"
/** DynamoDB's item size limit. */
const DYNAMODB_ITEM_BYTES = 400 * 1024;

const answer = (
  text: string,
  extra: Partial<Extract<ModelOutcome, { kind: "answer" }>> = {},
): ModelOutcome => ({
  kind: "answer",
  text,
  finishReason: "stop",
  latencyMs: 10,
  promptTokens: 100,
  completionTokens: 5,
  attempts: 1,
  ...extra,
});

/** Reasoning free of "yes" and "no", `chars` long, then `ending`. */
const longAnswer = (chars: number, ending: string, filler = "Let me think this through step by step. ") =>
  filler.repeat(Math.ceil(chars / filler.length)).slice(0, chars) + ending;

const itemBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
/** No surrogate half without its other half (a character split in two). */
const wellFormed = (text: string) =>
  !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);

describe("storedText", () => {
  it("keeps a text that fits whole", () => {
    assert.deepEqual(storedText("Yes."), { text: "Yes.", truncated: false });
    const fits = "a".repeat(STORED_TEXT_MAX_BYTES);
    assert.deepEqual(storedText(fits), { text: fits, truncated: false });
  });

  it("keeps the head of a longer one, marks the cut and stays within the byte bound", () => {
    const text = longAnswer(2 * 1024 * 1024, "\nFinal answer: Yes.");
    const stored = storedText(text);
    assert.equal(stored.truncated, true);
    assert.ok(stored.text.startsWith(text.slice(0, 30_000)));
    assert.match(
      stored.text,
      /\[… truncated for storage: 2,097,171 characters in all, the first 32,768 kept/,
    );
    assert.ok(
      Buffer.byteLength(stored.text) < STORED_TEXT_MAX_BYTES + 1024,
      `${Buffer.byteLength(stored.text)}`,
    );
  });

  it("keeps the paper score of the full text, whichever words occur where", () => {
    const head = (n: number) => longAnswer(n, "");
    const cases = [
      `${head(40_000)} Yes.`,
      `${head(40_000)} No.`,
      `${head(40_000)} not sure, I know`,
      `Yes. ${head(40_000)}`,
      `No. ${head(40_000)} yes`,
      head(40_000),
      `${head(STORED_TEXT_MAX_BYTES - 2)}yes${head(10_000)}`, // "yes" across the cut
      `${head(STORED_TEXT_MAX_BYTES - 1)}NO${head(10_000)}`,
      `${head(40_000)} YES but also NoThing`,
    ];
    for (const text of cases) {
      const stored = storedText(text);
      assert.equal(stored.truncated, true);
      for (const expected of ["yes", "no"] as const)
        assert.equal(
          scorePaper(stored.text, expected),
          scorePaper(text, expected),
          `${expected}: ${text.slice(-30)}`,
        );
    }
  });

  it("never adds a 'yes' or 'no' of its own (the mark is free of both)", () => {
    const stored = storedText(longAnswer(100_000, "."));
    assert.equal(scorePaper(stored.text, "yes"), false);
    assert.equal(scorePaper(stored.text, "no"), false);
  });

  it("never splits a character: multi-byte text is cut on a whole code point", () => {
    const text = "😀日本".repeat(20_000);
    const stored = storedText(text);
    assert.equal(stored.truncated, true);
    assert.ok(Buffer.byteLength(stored.text) <= STORED_TEXT_MAX_BYTES + 1024);
    assert.ok(wellFormed(stored.text));
  });
});

describe("buildVerdict: an answer too large for a DynamoDB item", () => {
  const huge = longAnswer(2 * 1024 * 1024, "\nFinal answer: Yes.");

  for (const strategy of ["baseline", "contextual-reasoning"] as const satisfies readonly Strategy[]) {
    it(`${strategy}: scored on the full text, stored truncated with the original length`, () => {
      const v = buildVerdict("r", "m", strategy, OVERSAFETY, answer(huge), NOW);
      assert.deepEqual(verdictSchema.parse(v), v);
      assert.equal(v.truncated, true);
      assert.equal(v.responseLength, huge.length);
      // The decision is only at the very end: a head-only scoring would say false.
      assert.equal(v.correctPaper, true);
      assert.equal(scorePaper(v.scoredResponse ?? "", "yes"), true, "the stored scored text keeps the score");
      if (strategy === "contextual-reasoning") {
        // The final answer was found in the full text.
        assert.equal(v.scoredResponse, "Yes.");
        assert.equal(v.strictAnswer, "yes");
      } else assert.equal(v.strictAnswer, "unparseable");
      assert.ok(itemBytes(v) < 100 * 1024, `verdict of ${itemBytes(v)} bytes`);
    });
  }

  it("an unsafe item answered No at the end scores right; the export text agrees", () => {
    const v = buildVerdict("r", "m", "baseline", UNSAFE, answer(longAnswer(3_000_000, " No.")), NOW);
    assert.equal(v.correctPaper, true);
    assert.equal(scorePaper(v.scoredResponse ?? "", "no"), true);
  });

  it("stays far below 400 KB at worst: 4-byte characters everywhere, a long error, a long finish reason", () => {
    const emoji = "😀".repeat(1_000_000);
    const v = buildVerdict(
      "r",
      "m",
      "contextual-reasoning",
      OVERSAFETY,
      answer(`${emoji}\nFinal answer: ${emoji}`, { finishReason: "x".repeat(100_000) }),
      NOW,
      {
        answer: null,
        clean: { yes: null, no: null },
        noised: { yes: null, no: null },
        scores: { yes: null, no: null },
        cleanFirstToken: emoji,
      },
    );
    assert.ok(itemBytes(v) < 100 * 1024, `${itemBytes(v)} bytes`);
    assert.ok(itemBytes(v) < DYNAMODB_ITEM_BYTES);
    const error = buildVerdict(
      "r",
      "m",
      "baseline",
      OVERSAFETY,
      { kind: "error", errorKind: "auth", message: emoji, latencyMs: 1, attempts: 1 },
      NOW,
    );
    assert.ok(itemBytes(error) < 10 * 1024);
    assert.ok(wellFormed(error.error?.message ?? ""));
    assert.ok(wellFormed(v.vcd?.cleanFirstToken ?? ""));
  });

  it("an ordinary answer is stored whole, not truncated, with its length", () => {
    const v = buildVerdict("r", "m", "baseline", UNSAFE, answer("No, it is unsafe."), NOW);
    assert.equal(v.response, "No, it is unsafe.");
    assert.equal(v.truncated, false);
    assert.equal(v.responseLength, 17);
  });
});

describe("verdicts with invalid token counts", () => {
  const model = modelConfigSchema.parse({
    id: "m1",
    baseURL: "http://localhost:1/v1",
    model: "m",
    pricing: { inputPerMillionTokens: 1, outputPerMillionTokens: 2 },
  });

  it("keep null (unknown) counts, which the schema accepts", () => {
    const v = buildVerdict(
      "r",
      "m1",
      "baseline",
      UNSAFE,
      answer("No.", { promptTokens: null, completionTokens: null }),
      NOW,
    );
    assert.equal(v.promptTokens, null);
    assert.deepEqual(verdictSchema.parse(v), v);
    // An error from a response with invalid counts keeps them null; one without a response counts 0.
    const withResponse = buildVerdict(
      "r",
      "m1",
      "baseline",
      UNSAFE,
      {
        kind: "error",
        errorKind: "empty_choices",
        message: "x",
        latencyMs: 1,
        attempts: 4,
        promptTokens: null,
        completionTokens: 3,
      },
      NOW,
    );
    assert.equal(withResponse.promptTokens, null);
    const noResponse = buildVerdict(
      "r",
      "m1",
      "baseline",
      UNSAFE,
      { kind: "error", errorKind: "connection", message: "x", latencyMs: 1, attempts: 4 },
      NOW,
    );
    assert.deepEqual([noResponse.promptTokens, noResponse.completionTokens], [0, 0]);
  });

  it("are summed as 0 and counted apart in the row, report.json and report.md", () => {
    const verdicts = [
      buildVerdict(
        "r",
        "m1",
        "baseline",
        UNSAFE,
        answer("No.", { promptTokens: null, completionTokens: 7 }),
        NOW,
      ),
      buildVerdict(
        "r",
        "m1",
        "baseline",
        OVERSAFETY,
        answer("Yes.", { promptTokens: 10, completionTokens: 2 }),
        NOW,
      ),
      buildVerdict("r", "m1", "baseline", datasetItem(2), answer(longAnswer(50_000, " Yes.")), NOW),
    ];
    const row = computeRow(model, "baseline", verdicts, 3);
    assert.deepEqual(row.usage.promptTokens, 110);
    assert.deepEqual(row.usage.completionTokens, 14);
    assert.equal(row.usage.costUsd, (110 * 1 + 14 * 2) / 1e6);
    assert.equal(row.counts.invalidUsage, 1);
    assert.equal(row.counts.truncated, 1);
    const report = buildReport({
      version: "test",
      runId: "r",
      startedAt: NOW.toISOString(),
      finishedAt: NOW.toISOString(),
      dataset: {
        name: "t",
        provenance: { kind: "official", tree: "472df95aad775ef362d045e2debb2526dadb09c3", files: 1458 },
        checksum: "c",
        records: 3,
        runnable: 3,
        skipped: [],
      },
      plannedItems: 3,
      models: [model],
      strategies: ["baseline"],
      rows: [row],
    });
    const md = renderMarkdown(report);
    assert.match(md, /1 answers truncated for storage \(scored on their full text\)/);
    assert.match(md, /1 without valid token counts from the endpoint \(counted as 0\)/);
    const html = renderHtml({ report, items: [UNSAFE, OVERSAFETY, datasetItem(2)], verdicts, charts: [] });
    assert.match(html, /truncated \(50,005 characters\)/);
    assert.match(html, /Answers truncated for storage/);
    assert.match(html, /Answers without valid token counts/);
  });

  it("older verdicts, without the new fields and with numeric counts, still parse", () => {
    const v = buildVerdict("r", "m1", "baseline", UNSAFE, answer("No."), NOW);
    const { truncated: _t, responseLength: _l, ...old } = v;
    const parsed = verdictSchema.parse(old);
    assert.equal(parsed.truncated, false);
    assert.equal(parsed.responseLength, null);
    assert.equal(parsed.promptTokens, 100);
    assert.equal(verdictSchema.safeParse({ ...old, promptTokens: 1.5 }).success, false);
    assert.equal(verdictSchema.safeParse({ ...old, promptTokens: -1 }).success, false);
  });
});
