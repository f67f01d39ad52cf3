/**
 * What the benchmark hands the floor process (scripts/bench/floor.ts): the calls to make, with the messages
 * exactly as mmsafe builds them and a placeholder where each image's data URL goes. Types and constants
 * only, so the floor can load it without loading mmsafe.
 */
import type { ChatMessage } from "../../src/core/prompts.ts";

/** Stands for the image's `data:` URL in {@link FloorItem.messages}; the floor puts the URL in its place. */
export const IMAGE_PLACEHOLDER = "mmsafe-bench:image";

/** One call of the floor: an item's messages and the image file whose bytes they carry. */
export interface FloorItem {
  id: number;
  /** Absolute path of the image file in the dataset folder. */
  imagePath: string;
  /** The media type mmsafe sends for it (detected from its bytes, whatever its extension). */
  mediaType: string;
  messages: ChatMessage[];
}

export interface FloorPlan {
  items: FloorItem[];
}

/** What the floor prints as its one line of stdout when it is done. */
export interface FloorOutcome {
  calls: number;
  errors: number;
  /** The first error's message, if any. */
  firstError: string | null;
  /** From the first call's start to the last call's end, ms. */
  loopMs: number;
}
