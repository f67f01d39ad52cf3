import { parseStrict, scorePaper, scoreStrict } from "./answer-parsing.ts";
import type { DatasetItem, Strategy, VcdDecision, Verdict } from "./schemas.ts";
import { verdictKey } from "./storage-layout.ts";
import { scoredText } from "./strategies.ts";
import type { TokenLogprobs } from "./vcd.ts";

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
      /** Per-token log-probabilities, when they were requested and the endpoint returned them. */
      logprobs?: TokenLogprobs[] | null;
      /** 429 responses met on the way (the adaptive concurrency backs off on them). */
      rateLimited?: number;
      /** The answer came from the response cache: no call was made (tokens are then 0: nothing was paid). */
      cached?: boolean;
    }
  | {
      kind: "error";
      errorKind: string;
      message: string;
      latencyMs: number;
      attempts: number;
      promptTokens?: number;
      completionTokens?: number;
      rateLimited?: number;
    };

/**
 * Turns a model outcome into the verdict stored for (run, model, strategy, item), scored both ways on the
 * strategy's scored part of the response. `vcd` is the contrastive decision when the strategy is vcd.
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
    latencyMs: Math.round(outcome.latencyMs),
    attempts: outcome.attempts,
    cached: outcome.kind === "answer" && outcome.cached === true,
    vcd,
    createdAt: now.toISOString(),
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
      finishReason: null,
      error: { kind: outcome.errorKind, message: outcome.message.slice(0, 1000) },
      promptTokens: outcome.promptTokens ?? 0,
      completionTokens: outcome.completionTokens ?? 0,
    };
  }
  const scored = scoredText(strategy, outcome.text);
  const strictAnswer = parseStrict(scored);
  return {
    ...base,
    status: "answered",
    response: outcome.text,
    scoredResponse: scored,
    strictAnswer,
    correctPaper: scorePaper(scored, item.expected),
    correctStrict: scoreStrict(strictAnswer, item.expected),
    finishReason: outcome.finishReason,
    error: null,
    promptTokens: outcome.promptTokens,
    completionTokens: outcome.completionTokens,
  };
}
