/**
 * What to tell a user when the start-of-run probe (CheckModels) finds that a model cannot be asked at all,
 * per provider and error kind. Anything not listed (an answer, a timeout, a 5xx, a rate limit, an empty or
 * filtered answer) shows an endpoint that is there: the run goes on, and its retries, backoff and circuit
 * breaker deal with it. Pure text, no I/O.
 */

import type { BedrockModelConfig, ModelConfig, OpenAIModelConfig } from "../core/schemas.ts";
import { isBedrock } from "../core/schemas.ts";
import { bedrockGrant } from "../deployment/deploy-config.ts";

const OPENAI_UNUSABLE: Readonly<Record<string, (model: OpenAIModelConfig) => string>> = {
  connection: (m) =>
    `cannot connect to ${m.baseURL}: is the server running, and is baseURL right (OpenAI-compatible servers usually end in /v1)?`,
  auth: (m) =>
    `${m.baseURL} refused the key (401/403): check ${m.apiKeyEnv ?? m.apiKeySecret ?? "the key"} and the account's access to "${m.model}"`,
  not_found: (m) =>
    `${m.baseURL} has no model "${m.model}" (404), or baseURL is wrong: check the model name, and that baseURL ends where the API starts (e.g. /v1)`,
  malformed_response: (m) =>
    `${m.baseURL} does not answer like an OpenAI-compatible chat completions API: is baseURL right (e.g. …/v1)?`,
};

/** The geography prefix of cross-region inference profiles called from a region (us-east-1 → "us"). */
export function profilePrefix(region: string): string {
  if (region.startsWith("us-gov-")) return "us-gov";
  if (region.startsWith("ap-")) return "apac";
  const geography = region.split("-")[0];
  return geography === "eu" || geography === "us" ? geography : "us";
}

/** Whether a Bedrock model id already names a cross-region inference profile (it has a geography prefix). */
const isInferenceProfileId = (id: string): boolean =>
  bedrockGrant({ id, region: "" }).kind === "inference-profile";

const deployHint =
  "on AWS, also list it under bedrock.models in config/deploy.json and redeploy, so the function may call it";

const BEDROCK_UNUSABLE: Readonly<Record<string, (model: BedrockModelConfig) => string>> = {
  connection: (m) =>
    `cannot connect to the Bedrock runtime ${m.endpoint ?? `in ${m.region}`}: check the region${m.endpoint === undefined ? "" : " and endpoint"} and the network`,
  credentials: (m) =>
    `Bedrock in ${m.region} did not accept the AWS credentials: set AWS_PROFILE (after \`aws sso login\`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY locally; on AWS the function's role is used`,
  auth: (m) =>
    `enable access to ${m.model} in the Bedrock console in ${m.region} (Model access), and make sure your role may call bedrock:InvokeModel on it; ${deployHint}`,
  not_found: (m) =>
    isInferenceProfileId(m.model)
      ? `Bedrock in ${m.region} has no model or inference profile "${m.model}": check the id, and that the profile's geography serves ${m.region}`
      : `Bedrock in ${m.region} has no model "${m.model}": check the id (e.g. amazon.nova-lite-v1:0); if this model needs an inference profile, use e.g. ${profilePrefix(m.region)}.${m.model}`,
  needs_inference_profile: (m) =>
    `this model needs an inference profile, e.g. ${profilePrefix(m.region)}.${m.model} (set it as the model's "model", and ${deployHint.replace("on AWS, also list", "on AWS list")})`,
  invalid_request: (m) =>
    `Bedrock refused the request to ${m.model} in ${m.region} (ValidationException): does the model take images through the Converse API?`,
  malformed_response: (m) =>
    `the Bedrock runtime ${m.endpoint ?? `in ${m.region}`} does not answer like the Converse API: check the endpoint`,
};

/** What to fix when a model's first question failed with this error kind; undefined when the run may go on. */
export function unusableModelHint(model: ModelConfig, errorKind: string): string | undefined {
  if (isBedrock(model)) return BEDROCK_UNUSABLE[errorKind]?.(model);
  return OPENAI_UNUSABLE[errorKind]?.(model);
}
