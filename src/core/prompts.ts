import { benchmarkPromptText } from "./prompt-file.ts";
import type { DatasetItem, Strategy } from "./schemas.ts";

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
 * The messages for one item under one strategy. `baseline` is the paper's setting: the instruction and
 * the quoted sentence verbatim, with the image, and no system prompt.
 */
export function buildChatMessages(
  item: DatasetItem,
  strategy: Strategy,
  imageDataUrl: string,
): ChatMessage[] {
  switch (strategy) {
    case "baseline":
      return [
        {
          role: "user",
          content: [
            { type: "text", text: benchmarkPromptText(item.instruction, item.sentence) },
            { type: "image_url", image_url: { url: imageDataUrl } },
          ],
        },
      ];
  }
}
