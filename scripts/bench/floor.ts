/**
 * The floor: the benchmark's calls made by a bare `openai` SDK loop and nothing else, in a process of its
 * own. For each model, `--concurrency` workers take the next item, read its image file, put it in the
 * messages as a base64 `data:` URL and make the call; all models at once. It prints a {@link FloorOutcome}
 * as JSON on stdout.
 *
 * Run by Node's own TypeScript support (no loader), so it loads nothing but `openai`: only erasable syntax
 * here, and only types from the rest of the project.
 *
 * Usage: node scripts/bench/floor.ts --plan <file> --base-url <url> --models a,b --concurrency 16
 *   [--max-tokens 16] [--temperature 0] [--timeout-ms 60000]
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import OpenAI from "openai";
import type { ChatMessage } from "../../src/core/prompts.ts";
import type { FloorItem, FloorOutcome, FloorPlan } from "./floor-protocol.ts";

// A value import would load the module through the project's import graph; the placeholder is repeated.
const IMAGE_PLACEHOLDER = "mmsafe-bench:image";

function positiveNumber(flag: string, value: string | undefined, fallback: number): number {
  const parsed = value === undefined ? fallback : Number(value);
  if (!Number.isFinite(parsed) || parsed < 0) throw new Error(`--${flag} must be a number ≥ 0, got ${value}`);
  return parsed;
}

/** Checks the fields the loop uses; the plan is written by the benchmark a moment before. */
function parsePlan(json: unknown, source: string): FloorPlan {
  const items = (json as { items?: unknown } | null)?.items;
  if (!Array.isArray(items)) throw new Error(`${source}: no items array`);
  for (const [index, item] of items.entries()) {
    const candidate = item as Partial<Record<keyof FloorItem, unknown>> | null;
    if (
      typeof candidate?.imagePath !== "string" ||
      typeof candidate.mediaType !== "string" ||
      !Array.isArray(candidate.messages)
    ) {
      throw new Error(`${source}: item ${index} lacks imagePath, mediaType or messages`);
    }
  }
  return { items: items as FloorItem[] };
}

/** The messages with the image placeholder replaced by the data URL. */
function withImage(messages: readonly ChatMessage[], url: string): ChatMessage[] {
  return messages.map((message) =>
    message.role === "user"
      ? {
          ...message,
          content: message.content.map((part) =>
            part.type === "image_url" && part.image_url.url === IMAGE_PLACEHOLDER
              ? { ...part, image_url: { ...part.image_url, url } }
              : part,
          ),
        }
      : message,
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      plan: { type: "string" },
      "base-url": { type: "string" },
      models: { type: "string" },
      concurrency: { type: "string" },
      "max-tokens": { type: "string" },
      temperature: { type: "string" },
      "timeout-ms": { type: "string" },
    },
    strict: true,
  });
  if (values.plan === undefined || values["base-url"] === undefined || values.models === undefined) {
    throw new Error("--plan, --base-url and --models are required");
  }
  const plan = parsePlan(JSON.parse(await readFile(values.plan, "utf8")), values.plan);
  const models = values.models.split(",").filter(Boolean);
  const concurrency = positiveNumber("concurrency", values.concurrency, 16);
  const maxTokens = positiveNumber("max-tokens", values["max-tokens"], 16);
  const temperature = positiveNumber("temperature", values.temperature, 0);
  const timeout = positiveNumber("timeout-ms", values["timeout-ms"], 60_000);
  // As mmsafe's client: no key needed by the endpoint, no SDK retries.
  const client = new OpenAI({ baseURL: values["base-url"], apiKey: "no-key-configured", maxRetries: 0 });

  let calls = 0;
  let errors = 0;
  let firstError: string | null = null;
  const started = performance.now();
  const evaluate = async (model: string): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < plan.items.length) {
        const item = plan.items[next++];
        if (item === undefined) continue;
        const bytes = await readFile(item.imagePath);
        const url = `data:${item.mediaType};base64,${bytes.toString("base64")}`;
        try {
          await client.chat.completions.create(
            { model, messages: withImage(item.messages, url), max_tokens: maxTokens, temperature },
            { timeout },
          );
        } catch (error: unknown) {
          errors++;
          firstError ??= error instanceof Error ? error.message : String(error);
        }
        calls++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
  };
  await Promise.all(models.map(evaluate));
  const outcome: FloorOutcome = { calls, errors, firstError, loopMs: performance.now() - started };
  process.stdout.write(`${JSON.stringify(outcome)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`floor: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
