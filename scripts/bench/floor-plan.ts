/**
 * Builds the floor's plan ({@link FloorPlan}) from a dataset folder with mmsafe's own importer and prompt
 * builder, so the floor asks exactly what mmsafe asks: same items, same messages, same media types.
 */
import { writeFile } from "node:fs/promises";
import { readOfficialDataset, storedImageType } from "../../src/benchmarks/mmsafeaware/layout.ts";
import { buildChatMessages } from "../../src/core/prompts.ts";
import type { DatasetItem } from "../../src/core/schemas.ts";
import { type FloorPlan, IMAGE_PLACEHOLDER } from "./floor-protocol.ts";

/** Writes the plan for every runnable item of `datasetDir` to `file`; returns how many items it holds. */
export async function writeFloorPlan(datasetDir: string, file: string): Promise<number> {
  const dataset = await readOfficialDataset(datasetDir);
  const items = [...dataset.items].sort((a, b) => a.id - b.id);
  const plan: FloorPlan = {
    items: items.map((local) => {
      const stored = storedImageType(local.imageType);
      // The item as the upload stores it (src/dataset/upload.ts); only its text reaches the messages.
      const item: DatasetItem = {
        id: local.id,
        subset: local.label.subset,
        category: local.label.category,
        attackType: local.label.attackType,
        domain: local.scenario.domain,
        scenario: local.scenario.scenario,
        expected: local.label.expected,
        instruction: local.instruction,
        sentence: local.sentence,
        image: { key: "", mediaType: stored.mediaType, bytes: local.imageBytes, sha256: local.imageSha256 },
      };
      return {
        id: local.id,
        imagePath: local.imagePath,
        mediaType: stored.mediaType,
        messages: buildChatMessages(item, "baseline", IMAGE_PLACEHOLDER),
      };
    }),
  };
  await writeFile(file, JSON.stringify(plan));
  return plan.items.length;
}
