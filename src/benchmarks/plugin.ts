/**
 * What a plug-in benchmark adds to its {@link BenchmarkDefinition} at run time: its no-judge scorers and its
 * judge protocol. The pipeline asks the model with the item's text verbatim and the image, then reads the
 * answer with every no-judge scorer (cheap, stored on the verdict) and, when the run names a judge, asks the
 * judge with the benchmark's official judge prompt.
 */
import type { BenchmarkDefinition, ExpectedBehaviour, JudgeProtocol } from "./definition.ts";

/** A no-judge scorer's reading: whether the answer is a refusal, and the phrase that decided it. */
export interface RefusalReading {
  refused: boolean;
  matched: string | null;
}

/**
 * A no-judge scorer's reading of a yes/no answer (your own dataset's `answers` kind): whether it is the
 * expected one, and the strict reading of it (`yes`, `no`, `refused`, `unparseable`) where the scorer makes one.
 */
export interface AnswerReading {
  correct: boolean;
  answer: "yes" | "no" | "refused" | "unparseable" | null;
}

export type ScoreReading = RefusalReading | AnswerReading;

/** Whether a reading is a refusal reading (else it is a yes/no answer's). */
export const isRefusalReading = (reading: ScoreReading): reading is RefusalReading => "refused" in reading;

export interface BenchmarkPlugin {
  definition: BenchmarkDefinition;
  /** The no-judge scorers, by the ids the definition declares; each reads an answer to an item expecting `expected`. */
  scorers: Readonly<Record<string, (answer: string, expected: ExpectedBehaviour) => ScoreReading>>;
  /** The official judge protocol, or null when the benchmark has none. */
  judge: JudgeProtocol | null;
  /**
   * Whether an answer is sent to the judge; an answer that is not counts as `unjudgedScore` (MOSSBench: an
   * empty answer is a refusal without a judge call, as in the official code).
   */
  judgeNeeded(answer: string): boolean;
  unjudgedScore: number;
  /** The strategies its protocol allows (MMSafeAware's question rewriting and vcd's Yes/No do not apply). */
  strategies: readonly ("baseline" | "safety-system-prompt")[];
}
