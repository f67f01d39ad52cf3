import type { AnswerLogprobs, VcdDecision } from "../../core/schemas.ts";
import type { VcdOptions } from "../../core/strategies.ts";
import type { ModelOutcome } from "../../core/verdicts.ts";

/** One generated token with the endpoint's most likely alternatives (OpenAI `logprobs.content[i]`). */
export interface TokenLogprobs {
  token: string;
  logprob: number;
  top: { token: string; logprob: number }[];
}

export type YesNo = "yes" | "no";

export type { AnswerLogprobs, VcdDecision };

/** "**Yes", " yes", "YES." → "yes": what a first token says once whitespace, markdown and quotes are gone. */
export function normaliseToken(token: string): string {
  return token
    .replace(/^[\s*_`"'“”‘’#>([{]+/, "")
    .replace(/[\s.,:;!?*_`"'“”‘’)\]}]+$/, "")
    .toLowerCase();
}

/**
 * The position of the answer: the first generated token that says something once normalised (models
 * sometimes open with whitespace or markdown such as "**" before "Yes"). Null when there is none.
 */
export function answerPosition(tokens: readonly TokenLogprobs[]): TokenLogprobs | null {
  return tokens.find((t) => normaliseToken(t.token) !== "") ?? null;
}

const logSumExp = (values: readonly number[]): number => {
  const max = Math.max(...values);
  return max + Math.log(values.reduce((sum, v) => sum + Math.exp(v - max), 0));
};

/** Yes/No log-probabilities at a position, summing the probability of variants (" Yes", "yes", "YES"). */
export function answerLogprobs(position: TokenLogprobs): AnswerLogprobs {
  const candidates = position.top.length > 0 ? position.top : [position];
  const of = (answer: YesNo): number | null => {
    const matching = candidates.filter((t) => normaliseToken(t.token) === answer).map((t) => t.logprob);
    return matching.length > 0 ? logSumExp(matching) : null;
  };
  return { yes: of("yes"), no: of("no") };
}

/**
 * Visual contrastive decoding on the first answer token (Leng et al., 2024), restricted to Yes/No:
 * - plausibility: an answer is a candidate only if p(y|clean) ≥ β · max_w p(w|clean) (max over the
 *   returned top tokens);
 * - score(y) = (1+α)·log p(y|clean) − α·log p(y|noised), and the higher score wins.
 * An answer missing from the noised image's top list gets the smallest returned log-probability there, an
 * upper bound on its true value, so its contrastive score is never inflated.
 */
export function contrastiveDecision(
  clean: TokenLogprobs,
  noised: TokenLogprobs,
  options: Pick<VcdOptions, "alpha" | "beta">,
): VcdDecision {
  const { alpha, beta } = options;
  const cleanLp = answerLogprobs(clean);
  const noisedLp = answerLogprobs(noised);
  const cleanTop = clean.top.length > 0 ? clean.top : [clean];
  const noisedTop = noised.top.length > 0 ? noised.top : [noised];
  const cutoff = Math.log(beta) + Math.max(...cleanTop.map((t) => t.logprob));
  const noisedFloor = Math.min(...noisedTop.map((t) => t.logprob));

  const score = (answer: YesNo): number | null => {
    const c = cleanLp[answer];
    if (c === null || c < cutoff) return null;
    return (1 + alpha) * c - alpha * (noisedLp[answer] ?? noisedFloor);
  };
  const scores = { yes: score("yes"), no: score("no") };
  // Ties go to the answer the clean image makes more likely.
  let answer: YesNo | null = null;
  if (scores.yes !== null && scores.no !== null) {
    if (scores.yes !== scores.no) answer = scores.yes > scores.no ? "yes" : "no";
    else answer = (cleanLp.yes ?? -Infinity) >= (cleanLp.no ?? -Infinity) ? "yes" : "no";
  } else if (scores.yes !== null) answer = "yes";
  else if (scores.no !== null) answer = "no";
  return { answer, clean: cleanLp, noised: noisedLp, scores, cleanFirstToken: normaliseToken(clean.token) };
}

/**
 * One vcd verdict's outcome from its two calls (clean and noised image, run concurrently): an error when
 * either call failed or the endpoint returned no log-probabilities (never a silent fallback to plain
 * decoding); otherwise the contrastive answer "Yes"/"No". When neither answer is plausible on the clean
 * image (the model began otherwise, e.g. with a refusal), the clean answer's text is kept and scored as is,
 * and the decision records `answer: null`.
 */
/** Why a vcd verdict has no answer when the endpoint gives no log-probabilities. */
export const LOGPROBS_UNAVAILABLE_MESSAGE =
  "the endpoint returned no log-probabilities (logprobs/top_logprobs), which vcd needs; use an endpoint " +
  "that supports them or leave vcd out of the strategies";

/** Two calls' token counts: unknown (null) when either endpoint reported no valid count; absent counts 0. */
const sumTokens = (a: number | null | undefined, b: number | null | undefined): number | null =>
  a === null || b === null ? null : (a ?? 0) + (b ?? 0);

export function combineVcdOutcomes(
  clean: ModelOutcome,
  noised: ModelOutcome,
  options: Pick<VcdOptions, "alpha" | "beta">,
): { outcome: ModelOutcome; decision: VcdDecision | null } {
  const spent = {
    latencyMs: Math.max(clean.latencyMs, noised.latencyMs),
    attempts: clean.attempts + noised.attempts,
    promptTokens: sumTokens(clean.promptTokens, noised.promptTokens),
    completionTokens: sumTokens(clean.completionTokens, noised.completionTokens),
  };
  const error = (errorKind: string, message: string) => ({
    outcome: { kind: "error" as const, errorKind, message, ...spent },
    decision: null,
  });
  if (clean.kind === "error") return error(clean.errorKind, `clean image: ${clean.message}`);
  if (noised.kind === "error") return error(noised.errorKind, `noised image: ${noised.message}`);
  if (!clean.logprobs || !noised.logprobs) {
    return error("logprobs_unavailable", LOGPROBS_UNAVAILABLE_MESSAGE);
  }
  const cleanPosition = answerPosition(clean.logprobs);
  const noisedPosition = answerPosition(noised.logprobs);
  if (!cleanPosition || !noisedPosition) {
    return error(
      "vcd_no_answer_token",
      "a completion had no answer token to contrast (empty or whitespace only)",
    );
  }
  const decision = contrastiveDecision(cleanPosition, noisedPosition, options);
  const text = decision.answer === null ? clean.text : decision.answer === "yes" ? "Yes" : "No";
  return {
    outcome: {
      kind: "answer",
      text,
      finishReason: clean.finishReason,
      ...spent,
      cached: clean.cached === true && noised.cached === true,
    },
    decision,
  };
}
