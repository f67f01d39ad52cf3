import { z } from "zod";
import { describeZodError, executionInputSchema } from "../core/schemas.ts";

/**
 * A schedule that starts the state machine: an EventBridge Scheduler expression and the execution input.
 * `runId` is left to the execution name (unique per start) and `schedule` is set to the schedule's name.
 */
export const scheduleSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$/, "schedule name: 1–48 letters, digits, '_' or '-'"),
    expression: z
      .string()
      .regex(
        /^(cron\(.+\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\)|at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\))$/,
        'expression: an EventBridge Scheduler expression, e.g. "cron(0 3 * * ? *)" or "rate(7 days)"',
      ),
    timezone: z.string().min(1).default("UTC").describe("IANA time zone of a cron expression"),
    description: z.string().max(512).optional(),
    enabled: z.boolean().default(true),
    input: executionInputSchema
      .omit({ runId: true, schedule: true })
      .partial()
      .strict()
      .default({})
      .describe("Execution input of each scheduled run (same fields as a console run)"),
  })
  .strict();
export type ScheduleConfig = z.infer<typeof scheduleSchema>;

/**
 * Settings of the evaluate-shard function. `reservedConcurrency`: Lambda concurrency set aside for it and
 * also its ceiling, or `null` (the default) for none. Unreserved, a run's fan-out is bounded by its
 * `mapConcurrency` (default 40) alone, and every run at once adds its own; reserving N caps all runs
 * together at N shards (more are throttled and retried, then fail their child), but takes N out of the
 * account's unreserved pool for good, and Lambda keeps at least 100 of an account's concurrency unreserved:
 * on an account with the new-account limit of 10, or any limit below N + 100, the deployment fails.
 */
export const evaluateShardSettingsSchema = z
  .object({
    reservedConcurrency: z
      .number({ error: "a whole number ≥ 1, or null for none" })
      .int("a whole number ≥ 1, or null for none")
      .min(1, "0 would throttle every shard (Lambda's off switch); use null for none")
      .nullable()
      .default(null)
      .describe("Concurrency reserved for (and capping) evaluate-shard across all runs; null: none"),
  })
  .strict();
export type EvaluateShardSettings = z.infer<typeof evaluateShardSettingsSchema>;

/**
 * Geography prefixes of Bedrock cross-region inference profiles: `us.anthropic.claude-3-5-sonnet-20241022-v2:0`
 * is the profile of `anthropic.claude-3-5-sonnet-20241022-v2:0` that routes within the US. No foundation-model
 * provider is named like one of these, so the prefix alone tells a profile from a model.
 */
export const INFERENCE_PROFILE_GEOGRAPHIES = [
  "us",
  "eu",
  "apac",
  "us-gov",
  "jp",
  "au",
  "ca",
  "global",
] as const;
/** One of {@link INFERENCE_PROFILE_GEOGRAPHIES}. */
export type InferenceProfileGeography = (typeof INFERENCE_PROFILE_GEOGRAPHIES)[number];

// Longest first, so a prefix that starts like a shorter one ("us-gov." and "us.") is never cut short.
const GEOGRAPHY_PREFIXES = [...INFERENCE_PROFILE_GEOGRAPHIES]
  .sort((a, b) => b.length - a.length)
  .map((geography) => `${geography}.`);

/**
 * What IAM must allow for one allowed Bedrock model: the foundation model itself, or a cross-region
 * inference profile (`profileId`, the configured id) and the foundation model it routes to.
 */
export type BedrockGrant =
  | { kind: "foundation-model"; foundationModelId: string; profileId: null; region: string }
  | { kind: "inference-profile"; foundationModelId: string; profileId: string; region: string };

/**
 * Tells a foundation-model id from a cross-region inference-profile id (a foundation-model id with a
 * geography prefix, {@link INFERENCE_PROFILE_GEOGRAPHIES}) and names the foundation model either way. Pure;
 * the one place that prefix is recognized, for the stack's grants, its tests and the runtime.
 */
export function bedrockGrant(entry: { readonly id: string; readonly region: string }): BedrockGrant {
  const prefix = GEOGRAPHY_PREFIXES.find((candidate) => entry.id.startsWith(candidate));
  if (prefix === undefined) {
    return { kind: "foundation-model", foundationModelId: entry.id, profileId: null, region: entry.region };
  }
  return {
    kind: "inference-profile",
    foundationModelId: entry.id.slice(prefix.length),
    profileId: entry.id,
    region: entry.region,
  };
}

const BEDROCK_ID_EXAMPLES =
  "e.g. amazon.nova-lite-v1:0, or the inference profile us.anthropic.claude-3-5-sonnet-20241022-v2:0";

/**
 * One Bedrock model this deployment may call: `id` is a foundation-model id or a cross-region
 * inference-profile id (not an ARN), `region` the Region the runtime calls Bedrock in (the models file's
 * `region` of that model).
 */
export const allowedBedrockModelSchema = z.strictObject(
  {
    id: z
      .string({ error: `a Bedrock model id, ${BEDROCK_ID_EXAMPLES}` })
      .regex(/^[A-Za-z0-9.:_-]{1,200}$/, {
        message: `a Bedrock model id (not an ARN): 1–200 letters, digits, '.', '-', ':' or '_', ${BEDROCK_ID_EXAMPLES}`,
        // One message per mistake: the structure check below means nothing for an id of the wrong characters.
        abort: true,
      })
      // Every foundation-model id is <provider>.<model>; this catches a bare model name or a lone prefix ("us.").
      .refine(
        (id) => /^[a-z0-9-]+\.[A-Za-z0-9]/.test(bedrockGrant({ id, region: "" }).foundationModelId),
        `a foundation-model id is <provider>.<model>, optionally after a geography prefix (${INFERENCE_PROFILE_GEOGRAPHIES.map((geography) => `${geography}.`).join(", ")}), ${BEDROCK_ID_EXAMPLES}`,
      ),
    region: z
      .string({ error: "an AWS Region code such as us-east-1, eu-central-1 or us-gov-west-1" })
      .regex(
        /^[a-z]{2}(-[a-z]+)+-\d$/,
        "an AWS Region code such as us-east-1, eu-central-1 or us-gov-west-1 (where the runtime calls Bedrock)",
      ),
  },
  {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? `unknown field ${issue.keys.map((key) => JSON.stringify(key)).join(", ")}: an entry has only "id" and "region"`
        : issue.code === "invalid_type"
          ? 'each entry is { "id": "<Bedrock model id>", "region": "<AWS Region>" }'
          : undefined,
  },
);
/** A parsed {@link allowedBedrockModelSchema} entry. */
export type AllowedBedrockModel = z.infer<typeof allowedBedrockModelSchema>;

/**
 * The Bedrock models this deployment may call, each once per Region. Also the format of the
 * `MMSAFE_BEDROCK_MODELS` handler variable (a JSON array of these entries).
 */
export const bedrockModelListSchema = z.array(allowedBedrockModelSchema).superRefine((list, context) => {
  const seen = new Map<string, number>();
  list.forEach((entry, index) => {
    const key = `${entry.region} ${entry.id}`;
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, index);
      return;
    }
    context.addIssue({
      code: "custom",
      path: [index],
      message: `duplicate of entry ${first} (${entry.id} in ${entry.region}); list each model once per region`,
    });
  });
});

/**
 * Amazon Bedrock: `models` lists the models (and cross-region inference profiles) evaluate-shard may invoke;
 * its role gets `bedrock:InvokeModel` on exactly those, and none at all while the list is empty.
 */
export const bedrockSettingsSchema = z.strictObject(
  {
    models: bedrockModelListSchema
      .default([])
      .describe("Bedrock models (id and region) this deployment may call; empty: none"),
  },
  {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? `unknown field ${issue.keys.map((key) => JSON.stringify(key)).join(", ")}: bedrock has only "models"`
        : undefined,
  },
);
/** The parsed `bedrock` section of the deploy config. */
export type BedrockSettings = z.infer<typeof bedrockSettingsSchema>;

/** `config/deploy.json`: what the CDK app deploys besides the pipeline itself. */
export const deployConfigSchema = z
  .object({
    stackName: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9-]{0,127}$/)
      .default("Mmsafe"),
    schedules: z
      .array(scheduleSchema)
      .default([])
      .refine(
        (list) => new Set(list.map((s) => s.name)).size === list.length,
        "schedule names must be unique",
      ),
    notificationEmail: z
      .email("notificationEmail: an e-mail address for run notifications")
      .optional()
      .describe("Subscribed (after confirmation) to run completed/failed notifications and alarms"),
    alarms: z
      .object({
        modelErrorRatePercent: z.number().min(0).max(100).default(10),
      })
      .strict()
      .default({ modelErrorRatePercent: 10 }),
    evaluateShard: evaluateShardSettingsSchema.default({ reservedConcurrency: null }),
    bedrock: bedrockSettingsSchema.default({ models: [] }),
  })
  .strict();
export type DeployConfig = z.infer<typeof deployConfigSchema>;

/** Parses a deploy config, naming every invalid field. */
export function parseDeployConfig(json: unknown, source: string): DeployConfig {
  const parsed = deployConfigSchema.safeParse(json);
  if (!parsed.success) throw new Error(describeZodError(parsed.error, source));
  return parsed.data;
}
