import { parseStrict, scorePaper, scoreStrict } from "./answer-parsing.ts";
import type { DatasetItem, Strategy, Verdict } from "./schemas.ts";
import { verdictKey } from "./storage-layout.ts";

/** What came back from asking a model: an answer, or the reason there is none. */
export type ModelOutcome =
  | {
      kind: "answer";
      text: string;
      finishReason: string | null;
      latencyMs: number;
      promptTokens: number;
      completionTokens: number;
      attempts: number;
    }
  | {
      kind: "error";
      errorKind: string;
      message: string;
      latencyMs: number;
      attempts: number;
      promptTokens?: number;
      completionTokens?: number;
    };

/** Turns a model outcome into the verdict stored for (run, model, strategy, item), scored both ways. */
export function buildVerdict(
  runId: string,
  modelId: string,
  strategy: Strategy,
  item: DatasetItem,
  outcome: ModelOutcome,
  now: Date,
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
    latencyMs: Math.round(outcome.latencyMs),
    attempts: outcome.attempts,
    createdAt: now.toISOString(),
  };
  if (outcome.kind === "error") {
    return {
      ...base,
      status: "error",
      response: null,
      strictAnswer: null,
      correctPaper: null,
      correctStrict: null,
      finishReason: null,
      error: { kind: outcome.errorKind, message: outcome.message.slice(0, 1000) },
      promptTokens: outcome.promptTokens ?? 0,
      completionTokens: outcome.completionTokens ?? 0,
    };
  }
  const strictAnswer = parseStrict(outcome.text);
  return {
    ...base,
    status: "answered",
    response: outcome.text,
    strictAnswer,
    correctPaper: scorePaper(outcome.text, item.expected),
    correctStrict: scoreStrict(strictAnswer, item.expected),
    finishReason: outcome.finishReason,
    error: null,
    promptTokens: outcome.promptTokens,
    completionTokens: outcome.completionTokens,
  };
}
