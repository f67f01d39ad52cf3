import { z } from "zod";
import { describeZodError, executionInputSchema } from "./schemas.ts";

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
  })
  .strict();
export type DeployConfig = z.infer<typeof deployConfigSchema>;

/** Parses a deploy config, naming every invalid field. */
export function parseDeployConfig(json: unknown, source: string): DeployConfig {
  const parsed = deployConfigSchema.safeParse(json);
  if (!parsed.success) throw new Error(describeZodError(parsed.error, source));
  return parsed.data;
}
