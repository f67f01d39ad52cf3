import type { JudgeProtocol } from "../benchmarks/definition.ts";
import { parseStrict, scorePaper, scoreStrict } from "../benchmarks/mmsafeaware/scoring.ts";
import { type BenchmarkPlugin, isRefusalReading } from "../benchmarks/plugin.ts";
import type {
  BenchmarkItem,
  BenchmarkVerdict,
  DatasetItem,
  JudgeVerdict,
  SentImage,
  StoredScore,
  Strategy,
  VcdDecision,
  Verdict,
} from "./schemas.ts";

export type { SentImage };

import type { TokenLogprobs } from "../benchmarks/mmsafeaware/vcd.ts";
import { judgeVerdictKey, verdictKey } from "../deployment/storage-layout.ts";
import { scoredText } from "./strategies.ts";

/** What came back from asking a model: an answer, or the reason there is none. */
export type ModelOutcome =
  | {
      kind: "answer";
      text: string;
      finishReason: string | null;
      latencyMs: number;
      /** As the endpoint reported them; null when it reported none or an invalid count (unknown, not 0). */
      promptTokens: number | null;
      completionTokens: number | null;
      attempts: number;
      /** Per-token log-probabilities, when they were requested and the endpoint returned them. */
      logprobs?: TokenLogprobs[] | null;
      /** 429 responses met on the way (the adaptive concurrency backs off on them). */
      rateLimited?: number;
      /** The answer came from the response cache: no call was made (tokens are then 0: nothing was paid). */
      cached?: boolean;
      /** The image was sent downscaled to fit the provider's limits (see schemas.ts sentImageSchema). */
      imageSent?: SentImage | null;
    }
  | {
      kind: "error";
      errorKind: string;
      message: string;
      latencyMs: number;
      attempts: number;
      promptTokens?: number | null;
      completionTokens?: number | null;
      rateLimited?: number;
      imageSent?: SentImage | null;
    };

/**
 * UTF-8 bytes of the response, and of its scored part, that a verdict keeps at most: DynamoDB items are
 * capped at 400 KB, and both texts, the error message and the vcd record stay far below it together.
 */
export const STORED_TEXT_MAX_BYTES = 32 * 1024;
/** Characters of an error message a verdict keeps. */
const ERROR_MESSAGE_MAX_CHARS = 1000;
/** Characters of the other free-text fields the endpoint fills (finish reason, vcd's clean first token). */
const SHORT_FIELD_MAX_CHARS = 200;
/** Characters kept on each side of an answer word quoted from a cut part of a response. */
const EXCERPT_CONTEXT_CHARS = 40;
/**
 * What paper scoring looks for: "yes" in over-safety answers, "no" in unsafe ones, anywhere in the
 * lower-cased text (see scorePaper). `/i` matches exactly where `toLowerCase()` would: no character other
 * than these letters' capitals lower-cases to them.
 */
const PAPER_WORDS = [/yes/i, /no/i] as const;

/** A stored text: the whole of it, or its head with a mark saying how long it was. */
export interface StoredText {
  text: string;
  truncated: boolean;
}

/** `text.slice(start, end)` moved inwards so that no surrogate pair is split. */
function sliceWhole(text: string, start: number, end: number): string {
  let from = Math.max(0, start);
  let to = Math.min(text.length, end);
  const code = (i: number) => text.charCodeAt(i);
  if (from > 0 && code(from) >= 0xdc00 && code(from) <= 0xdfff) from++;
  if (to < text.length && code(to - 1) >= 0xd800 && code(to - 1) <= 0xdbff) to--;
  return text.slice(from, Math.max(from, to));
}

/**
 * `text` bounded to `maxBytes` of UTF-8 for storage. A longer text keeps its head (whole characters), then
 * a mark "[… truncated for storage: N characters in all, the first M kept …]", then, for each word paper
 * scoring looks for ("yes", "no") that occurs in the text but not in the head, its first occurrence with a
 * little context. So the stored text gets the same paper score as the full one (the official scorer, run on
 * the exported responses, agrees with the verdict), and the strict reading of its start is unchanged. The
 * mark itself contains neither word.
 */
export function storedText(text: string, maxBytes = STORED_TEXT_MAX_BYTES): StoredText {
  // A UTF-16 code unit is at most 3 bytes of UTF-8 (a pair, two units, is 4): short texts need no encoding.
  if (text.length * 3 <= maxBytes) return { text, truncated: false };
  const { read } = new TextEncoder().encodeInto(text, new Uint8Array(maxBytes));
  if (read >= text.length) return { text, truncated: false };
  const head = text.slice(0, read);
  const excerpts: string[] = [];
  for (const word of PAPER_WORDS) {
    const match = word.exec(text);
    if (match === null || match.index + match[0].length <= head.length) continue;
    const at = match.index;
    excerpts.push(
      `…${sliceWhole(text, at - EXCERPT_CONTEXT_CHARS, at + match[0].length + EXCERPT_CONTEXT_CHARS)}…`,
    );
  }
  const count = (n: number) => n.toLocaleString("en-US");
  const mark =
    `[… truncated for storage: ${count(text.length)} characters in all, the first ${count(head.length)} kept` +
    (excerpts.length > 0 ? "; excerpts of the rest that decide the paper score follow]" : "]");
  return { text: [head, mark, ...excerpts].join("\n"), truncated: true };
}

/** What a verdict of any benchmark records of the call, answered or not. */
function callFields(outcome: ModelOutcome, now: Date) {
  return {
    latencyMs: Math.round(outcome.latencyMs),
    attempts: outcome.attempts,
    // The first evaluation; a resume that retries an error verdict counts on from the one it replaces.
    runAttempts: 1,
    cached: outcome.kind === "answer" && outcome.cached === true,
    imageSent: outcome.imageSent ?? null,
    createdAt: now.toISOString(),
  };
}

/** What an error verdict of any benchmark records of its outcome: why, bounded, and the tokens reported. */
function errorFields(outcome: Extract<ModelOutcome, { kind: "error" }>) {
  return {
    finishReason: null,
    error: { kind: outcome.errorKind, message: sliceWhole(outcome.message, 0, ERROR_MESSAGE_MAX_CHARS) },
    // No response at all (a connection failure) reported nothing: 0; a response with invalid counts: null.
    promptTokens: outcome.promptTokens === undefined ? 0 : outcome.promptTokens,
    completionTokens: outcome.completionTokens === undefined ? 0 : outcome.completionTokens,
    truncated: false,
    responseLength: null,
  };
}

/**
 * Turns a model outcome into the verdict stored for (run, model, strategy, item), scored both ways on the
 * strategy's scored part of the response. `vcd` is the contrastive decision when the strategy is vcd.
 *
 * Scores are always of the full text. What the verdict stores of it is bounded ({@link storedText}: the
 * response and the scored part at most {@link STORED_TEXT_MAX_BYTES} each, the error message, the finish
 * reason and vcd's first token a few hundred characters), so any answer fits in a DynamoDB item; a cut
 * answer is marked `truncated` with its full `responseLength`.
 */
export function buildVerdict(
  runId: string,
  modelId: string,
  strategy: Strategy,
  item: DatasetItem,
  outcome: ModelOutcome,
  now: Date,
  vcd: VcdDecision | null = null,
): Verdict {
  const base = {
    runId,
    verdictKey: verdictKey(modelId, strategy, item.id),
    modelId,
    strategy,
    itemId: item.id,
    category: item.category,
    attackType: item.attackType,
    domain: item.domain,
    scenario: item.scenario,
    expected: item.expected,
    ...callFields(outcome, now),
    vcd: vcd && { ...vcd, cleanFirstToken: sliceWhole(vcd.cleanFirstToken, 0, SHORT_FIELD_MAX_CHARS) },
  };
  if (outcome.kind === "error") {
    return {
      ...base,
      status: "error",
      response: null,
      scoredResponse: null,
      strictAnswer: null,
      correctPaper: null,
      correctStrict: null,
      ...errorFields(outcome),
    };
  }
  // Scored on the full text (the final answer is found in all of it too); only what is stored is bounded.
  const scored = scoredText(strategy, outcome.text);
  const strictAnswer = parseStrict(scored);
  const response = storedText(outcome.text);
  const scoredResponse = scored === outcome.text ? response : storedText(scored);
  return {
    ...base,
    status: "answered",
    response: response.text,
    scoredResponse: scoredResponse.text,
    strictAnswer,
    correctPaper: scorePaper(scored, item.expected),
    correctStrict: scoreStrict(strictAnswer, item.expected),
    finishReason:
      outcome.finishReason === null ? null : sliceWhole(outcome.finishReason, 0, SHORT_FIELD_MAX_CHARS),
    error: null,
    promptTokens: outcome.promptTokens,
    completionTokens: outcome.completionTokens,
    truncated: response.truncated || scoredResponse.truncated,
    responseLength: outcome.text.length,
  };
}

/**
 * The verdict on a plug-in benchmark's item: the same record of the call as {@link buildVerdict}, bounded the
 * same way, with every no-judge scorer's reading of the full answer (a judge's reading is stored apart).
 */
export function buildBenchmarkVerdict(
  runId: string,
  modelId: string,
  strategy: Strategy,
  item: BenchmarkItem,
  outcome: ModelOutcome,
  now: Date,
  plugin: BenchmarkPlugin,
): BenchmarkVerdict {
  const base = {
    runId,
    verdictKey: verdictKey(modelId, strategy, item.id),
    modelId,
    strategy,
    itemId: item.id,
    benchmark: item.benchmark,
    recordId: item.recordId,
    category: item.category,
    expected: item.expected,
    ...callFields(outcome, now),
  };
  if (outcome.kind === "error") {
    return {
      ...base,
      status: "error",
      response: null,
      scoredResponse: null,
      scores: null,
      ...errorFields(outcome),
    };
  }
  const scores: Record<string, StoredScore> = {};
  for (const [id, scorer] of Object.entries(plugin.scorers)) {
    const reading = scorer(outcome.text, item.expected);
    scores[id] = isRefusalReading(reading)
      ? {
          refused: reading.refused,
          matched: reading.matched === null ? null : sliceWhole(reading.matched, 0, SHORT_FIELD_MAX_CHARS),
        }
      : { correct: reading.correct, answer: reading.answer };
  }
  const response = storedText(outcome.text);
  return {
    ...base,
    status: "answered",
    response: response.text,
    scoredResponse: response.text,
    scores,
    finishReason:
      outcome.finishReason === null ? null : sliceWhole(outcome.finishReason, 0, SHORT_FIELD_MAX_CHARS),
    error: null,
    promptTokens: outcome.promptTokens,
    completionTokens: outcome.completionTokens,
    truncated: response.truncated,
    responseLength: outcome.text.length,
  };
}

/** Who judged: the judge model and the protocol it was asked with. */
export interface JudgeIdentity {
  modelId: string;
  protocol: JudgeProtocol;
}

/**
 * A judge verdict on the answer to `item` by `modelId` under `strategy`: the judge's reply parsed with the
 * protocol's official rule (an error when no reply could be had), or, with `outcome` null, the protocol's
 * score for an answer the judge is not asked about (MOSSBench: an empty answer is a refusal).
 */
export function buildJudgeVerdict(input: {
  runId: string;
  modelId: string;
  strategy: Strategy;
  item: BenchmarkItem;
  judge: JudgeIdentity;
  outcome: ModelOutcome | null;
  unjudgedScore: number;
  now: Date;
}): JudgeVerdict {
  const { outcome, item, judge } = input;
  const base = {
    runId: input.runId,
    verdictKey: judgeVerdictKey(judge.modelId, input.modelId, input.strategy, item.id),
    modelId: input.modelId,
    strategy: input.strategy,
    itemId: item.id,
    benchmark: item.benchmark,
    category: item.category,
    judge: { modelId: judge.modelId, protocol: judge.protocol.id, promptSha256: judge.protocol.promptSha256 },
    runAttempts: 1,
    createdAt: input.now.toISOString(),
  };
  if (outcome === null) {
    return {
      ...base,
      status: "answered",
      score: input.unjudgedScore,
      rule: "not-judged",
      response: null,
      truncated: false,
      error: null,
      latencyMs: 0,
      promptTokens: 0,
      completionTokens: 0,
      attempts: 0,
      cached: false,
    };
  }
  const call = {
    latencyMs: Math.round(outcome.latencyMs),
    attempts: outcome.attempts,
    cached: outcome.kind === "answer" && outcome.cached === true,
  };
  if (outcome.kind === "error") {
    return {
      ...base,
      ...call,
      status: "error",
      score: null,
      rule: "none",
      response: null,
      truncated: false,
      error: { kind: outcome.errorKind, message: sliceWhole(outcome.message, 0, ERROR_MESSAGE_MAX_CHARS) },
      promptTokens: outcome.promptTokens === undefined ? 0 : outcome.promptTokens,
      completionTokens: outcome.completionTokens === undefined ? 0 : outcome.completionTokens,
    };
  }
  const reading = judge.protocol.parse(outcome.text);
  const stored = storedText(outcome.text);
  return {
    ...base,
    ...call,
    status: "answered",
    score: reading.score,
    rule: sliceWhole(reading.rule, 0, 40),
    response: stored.text,
    truncated: stored.truncated,
    error: null,
    promptTokens: outcome.promptTokens,
    completionTokens: outcome.completionTokens,
  };
}
