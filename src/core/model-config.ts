import { z } from "zod";

/** The model providers mmsafe speaks: any OpenAI-compatible chat-completions endpoint, and Amazon Bedrock. */
export const PROVIDERS = ["openai", "bedrock"] as const;
export type Provider = (typeof PROVIDERS)[number];

const modelId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, "model id must be 1–64 letters, digits, '.', '_', ':' or '-'")
  .describe("Name used in verdicts and reports");

/** The fields every provider's models have: what a run does with a model, whatever protocol reaches it. */
const sharedFields = {
  id: modelId,
  kind: z.enum(["model", "baseline"]).default("model"),
  maxConcurrency: z
    .number()
    .int()
    .min(1)
    .max(256)
    .default(8)
    .describe("Calls in flight to this model at most, across the whole run (every shard)"),
  requestsPerMinute: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .optional()
    .describe("Requests per minute at most, across the whole run (retries count); default: no limit"),
  tokensPerMinute: z
    .number()
    .int()
    .min(1)
    .max(1_000_000_000)
    .optional()
    .describe("Tokens (prompt + completion) per minute at most, across the whole run; default: no limit"),
  maxTokens: z.number().int().min(1).max(8192).default(512),
  temperature: z.number().min(0).max(2).default(0),
  timeoutMs: z.number().int().min(1000).max(600_000).default(60_000),
  pricing: z
    .object({
      inputPerMillionTokens: z.number().min(0),
      outputPerMillionTokens: z.number().min(0),
    })
    .strict()
    .optional()
    .describe("USD per million tokens, for the report's cost"),
};

/** Defaults of the shared fields, for estimates made without a models file. */
export const MODEL_DEFAULTS = {
  maxConcurrency: sharedFields.maxConcurrency.parse(undefined),
  timeoutMs: sharedFields.timeoutMs.parse(undefined),
} as const;

/** A model behind an OpenAI-compatible chat-completions endpoint (the default provider). Never holds a key. */
export const openAIModelSchema = z
  .object({
    provider: z.literal("openai").optional().describe("openai (the default): an OpenAI-compatible endpoint"),
    baseURL: z.url({
      protocol: /^https?$/,
      error: "baseURL must be an http(s) URL, e.g. https://api.openai.com/v1",
    }),
    model: z.string().min(1).describe("Model name sent to the endpoint"),
    apiKeyEnv: z
      .string()
      .regex(
        /^[A-Z_][A-Z0-9_]*$/,
        "apiKeyEnv names an environment variable (e.g. OPENAI_API_KEY), never the key",
      )
      .optional()
      .describe("Environment variable holding the API key (local runs); omit for endpoints without auth"),
    apiKeySecret: z
      .string()
      .regex(
        /^mmsafe\/[A-Za-z0-9/_+=.@-]{1,200}$/,
        "apiKeySecret names an AWS Secrets Manager secret under mmsafe/ (e.g. mmsafe/openai), never the key",
      )
      .optional()
      .describe(
        "Secrets Manager secret holding the API key (runs on AWS): the secret string, or JSON with an apiKey field",
      ),
    ...sharedFields,
  })
  .strict();
export type OpenAIModelConfig = z.infer<typeof openAIModelSchema>;

/** An AWS region name: us-east-1, eu-central-1, us-gov-west-1, ap-southeast-2. */
export const AWS_REGION_PATTERN = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;

/**
 * A model on Amazon Bedrock, asked through the Converse API with the standard AWS credentials (the
 * function's role on AWS, the user's profile locally): there is no key.
 */
export const bedrockModelSchema = z
  .object({
    provider: z.literal("bedrock"),
    model: z
      .string()
      .regex(
        /^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,2047}$/,
        "model is a Bedrock model id (e.g. amazon.nova-lite-v1:0) or inference-profile id (e.g. us.anthropic.claude-3-5-sonnet-20241022-v2:0)",
      )
      .describe("Bedrock model id or inference-profile id"),
    region: z
      .string({ error: "region is required for a Bedrock model: the AWS region to call, e.g. us-east-1" })
      .regex(AWS_REGION_PATTERN, "region is an AWS region name, e.g. us-east-1")
      .describe("AWS region of the Bedrock runtime to call"),
    endpoint: z
      .url({ protocol: /^https?$/, error: "endpoint must be an http(s) URL" })
      .optional()
      .describe(
        "Bedrock runtime endpoint to use instead of the region's (a VPC endpoint); requests are still signed for the region",
      ),
    ...sharedFields,
  })
  .strict();
export type BedrockModelConfig = z.infer<typeof bedrockModelSchema>;

/** One model to evaluate. `provider` picks the protocol: "openai" (the default) or "bedrock". */
export const modelConfigSchema = z.discriminatedUnion("provider", [openAIModelSchema, bedrockModelSchema], {
  error: (issue) =>
    issue.code === "invalid_union" && "discriminator" in issue
      ? `provider must be one of ${PROVIDERS.join(", ")} (default openai)`
      : undefined,
});
export type ModelConfig = z.infer<typeof modelConfigSchema>;

/** The model's provider ("openai" when the config leaves it out). */
export const providerOf = (model: ModelConfig): Provider => model.provider ?? "openai";

export const isBedrock = (model: ModelConfig): model is BedrockModelConfig => model.provider === "bedrock";

/**
 * Where a model is asked, for reports, logs and messages: the baseURL of an OpenAI-compatible endpoint, or
 * `bedrock:<region>/<model id>`. Never holds a key.
 */
export function modelEndpoint(model: ModelConfig): string {
  return isBedrock(model) ? `bedrock:${model.region}/${model.model}` : model.baseURL;
}

/** Whether the model's provider can return token log-probabilities (vcd needs them; Converse has none). */
export const returnsLogprobs = (model: ModelConfig): boolean => !isBedrock(model);
