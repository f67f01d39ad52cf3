import { benchmarkPromptText } from "../benchmarks/mmsafeaware/prompt-file.ts";
import { isBenchmarkItem, type ShardItem } from "./schemas.ts";
import {
  CONTEXTUAL_REASONING_REQUEST,
  contextualQuestion,
  SAFETY_SYSTEM_PROMPT,
  type Strategy,
} from "./strategies.ts";

/** A chat message in the OpenAI chat-completions shape, limited to what mmsafe sends. */
export type ChatMessage =
  | { role: "system"; content: string }
  | {
      role: "user";
      content: (
        | { type: "text"; text: string }
        | { type: "image_url"; image_url: { url: string; detail?: "auto" | "low" | "high" } }
      )[];
    };

/**
 * The messages for one item under one strategy. A plug-in benchmark's item (MOSSBench, VLGuard) is its text
 * verbatim with the image, as their authors send it; under `safety-system-prompt` with the safety system
 * prompt before it (Plan allows no other strategy for them). For MMSafeAware, `baseline` is the paper's setting: the instruction and
 * the quoted sentence verbatim, with the image, and no system prompt. `vcd` asks the baseline question (the
 * contrast is in the decoding, not the prompt); `imageDataUrl` is then the clean or the noised image.
 */
export function buildChatMessages(item: ShardItem, strategy: Strategy, imageDataUrl: string): ChatMessage[] {
  const user = (text: string): ChatMessage => ({
    role: "user",
    content: [
      { type: "text", text },
      { type: "image_url", image_url: { url: imageDataUrl } },
    ],
  });
  if (isBenchmarkItem(item)) {
    if (strategy === "baseline") return [user(item.text)];
    if (strategy === "safety-system-prompt")
      return [{ role: "system", content: SAFETY_SYSTEM_PROMPT }, user(item.text)];
    throw new RangeError(`strategy ${strategy} does not apply to ${item.benchmark} items`);
  }
  const baselineText = benchmarkPromptText(item.instruction, item.sentence);
  switch (strategy) {
    case "baseline":
    case "vcd":
      return [user(baselineText)];
    case "safety-system-prompt":
      return [{ role: "system", content: SAFETY_SYSTEM_PROMPT }, user(baselineText)];
    case "contextual-reasoning":
      return [
        user(
          `${benchmarkPromptText(contextualQuestion(item.instruction), item.sentence)}\n${CONTEXTUAL_REASONING_REQUEST}`,
        ),
      ];
  }
}
