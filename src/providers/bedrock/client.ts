/**
 * The Bedrock provider: Amazon Bedrock models through the Converse API (`@aws-sdk/client-bedrock-runtime`
 * ConverseCommand), with the standard AWS credentials chain (the function's role on AWS, the user's profile
 * or environment locally). There is no key.
 *
 * The chat messages the pipeline builds become Converse blocks: the system message becomes `system`, the
 * user's text and image become `{ text }` and `{ image: { format, source: { bytes } } }` blocks. An image
 * above Converse's limits is downscaled first (./images.ts) and the outcome says so. Answers and faults map
 * onto what the pipeline knows: ThrottlingException is a rate limit (backoff, adaptive concurrency, the
 * run-wide budget), 5xx-like exceptions are retried, a guardrail or content filter is a content-filter
 * refusal, and the exceptions that mean the model cannot be used at all (access, unknown model, inference
 * profile needed, credentials) get kinds the start-of-run probe explains (../hints.ts).
 */

import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import {
  BedrockRuntimeClient,
  type BedrockRuntimeClientConfig,
  type ContentBlock,
  ConverseCommand,
  type ConverseCommandOutput,
  type SystemContentBlock,
} from "@aws-sdk/client-bedrock-runtime";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { LOGPROBS_UNAVAILABLE_MESSAGE } from "../../benchmarks/mmsafeaware/vcd.ts";
import type { ImageMediaType } from "../../core/image-type.ts";
import type { ChatMessage } from "../../core/prompts.ts";
import { redactSecret } from "../../core/redaction.ts";
import { type BedrockModelConfig, isBedrock, type ModelConfig } from "../../core/schemas.ts";
import type { ModelOutcome } from "../../core/verdicts.ts";
import { type AttemptResult, attemptCall, DEFAULT_RETRY, type Fault, type RetryPolicy } from "../attempts.ts";
import {
  type CompletionOptions,
  type ModelClient,
  ModelConfigError,
  type ModelWarning,
  usageCounts,
} from "../model-client.ts";
import { type ConverseImage, fitForConverse, ImageFitError } from "./images.ts";

/** Options of {@link BedrockModelClient}. */
export interface BedrockClientOptions {
  retry?: RetryPolicy;
  sleep?: (ms: number) => Promise<void>;
  /** Told when a response's token counts were missing or invalid (recorded as null: unknown). */
  onWarning?: ModelWarning;
  /** Credentials to use instead of the default chain (tests). */
  credentials?: BedrockRuntimeClientConfig["credentials"];
}

type Credentials = Awaited<ReturnType<BedrockRuntimeClient["config"]["credentials"]>>;

/** Connections per region and endpoint at most: a model's maxConcurrency is at most 256. */
const MAX_SOCKETS = 256;

/** Images prepared for Converse, kept for the calls about the same item (models × strategies share them). */
const IMAGE_CACHE_ENTRIES = 32;

/** Node's errors for a connection that could not be made or was lost. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "UND_ERR_SOCKET",
]);

/** Exceptions whose credentials (not the model's access) are the problem. */
const CREDENTIAL_ERRORS = new Set([
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "ExpiredTokenException",
  "IncompleteSignatureException",
  "MissingAuthenticationTokenException",
  "CredentialsProviderError",
]);

/** Classifies what a Converse call threw (by the exception's name: stable across SDK versions). */
export function classifyBedrockError(error: unknown): Fault {
  const message = error instanceof Error ? error.message : String(error);
  const name = error instanceof Error ? error.name : "";
  const fields = typeof error === "object" && error !== null ? (error as Record<string, unknown>) : {};
  const code = typeof fields.code === "string" ? fields.code : "";
  const metadata = fields.$metadata as { httpStatusCode?: number } | undefined;
  const status = metadata?.httpStatusCode ?? 0;
  const fault = (kind: string, retryable: boolean): Fault => ({
    kind,
    retryable,
    retryAfterMs: null,
    message,
  });
  switch (name) {
    case "ThrottlingException":
    case "ServiceQuotaExceededException":
      return fault("rate_limited", true);
    case "ServiceUnavailableException":
    case "InternalServerException":
    case "ModelNotReadyException":
    case "ModelErrorException":
      return fault("server_error", true);
    case "ModelTimeoutException":
    case "TimeoutError":
    case "AbortError":
      return fault("timeout", true);
    case "AccessDeniedException":
      return fault("auth", false);
    case "ResourceNotFoundException":
      return fault("not_found", false);
    case "ValidationException":
      return /inference profile/i.test(message)
        ? fault("needs_inference_profile", false)
        : fault("invalid_request", false);
  }
  if (CREDENTIAL_ERRORS.has(name)) return fault("credentials", false);
  if (CONNECTION_CODES.has(code) || /socket hang up|ECONNRESET|ECONNREFUSED/.test(message))
    return fault("connection", true);
  if (status >= 500) return fault("server_error", true);
  if (status === 429) return fault("rate_limited", true);
  if (status === 403) return fault("auth", false);
  if (status >= 400) return fault(`http_${status}`, false);
  // A body that is not the Converse shape (garbage JSON and the like) surfaces as a plain error.
  return fault("malformed_response", true);
}

/** A data URL's media type and bytes. */
function decodeDataUrl(url: string): { mediaType: ImageMediaType; bytes: Uint8Array } {
  const match = /^data:(image\/(?:jpeg|png|gif|webp));base64,/.exec(url);
  if (!match?.[1]) throw new ImageFitError("the image is not a data: URL of a JPEG, PNG, GIF or WebP image");
  return {
    mediaType: match[1] as ImageMediaType,
    bytes: Buffer.from(url.slice(match[0].length), "base64"),
  };
}

/** The answer's text: its text blocks joined (reasoning blocks and others are not the answer). */
function answerText(output: ConverseCommandOutput): string | null {
  const content = output.output?.message?.content;
  if (!Array.isArray(content)) return null;
  const texts = content.flatMap((block) => (typeof block.text === "string" ? [block.text] : []));
  return texts.length === 0 ? null : texts.join("");
}

/**
 * Amazon Bedrock through the Converse API. One SDK client per region and endpoint, created once; retries are
 * done here (the SDK makes one attempt) so each verdict records its attempts.
 */
export class BedrockModelClient implements ModelClient {
  private readonly clients = new Map<string, BedrockRuntimeClient>();
  private readonly images = new Map<string, Promise<ConverseImage>>();
  private readonly retry: RetryPolicy;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly onWarning: ModelWarning;
  /** The secret parts of the credentials in use, so no trace of them reaches a verdict. */
  private readonly secrets = new Set<string>();

  constructor(private readonly options: BedrockClientOptions = {}) {
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.onWarning = options.onWarning ?? (() => undefined);
  }

  private client(model: BedrockModelConfig): BedrockRuntimeClient {
    const key = `${model.region}\u0000${model.endpoint ?? ""}`;
    let client = this.clients.get(key);
    if (!client) {
      client = new BedrockRuntimeClient({
        region: model.region,
        ...(model.endpoint === undefined ? {} : { endpoint: model.endpoint }),
        ...(this.options.credentials === undefined ? {} : { credentials: this.options.credentials }),
        // One attempt per send: the attempt loop retries, counts and paces every attempt.
        maxAttempts: 1,
        // HTTP/1.1 on kept-alive connections, up to a model's largest maxConcurrency at once. The client's
        // default is one HTTP/2 session (made for the bidirectional streaming commands), whose stream limit
        // the server sets; Converse is a plain request and response, and works the same over either.
        requestHandler: new NodeHttpHandler({
          httpAgent: new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
          httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
        }),
      });
      this.clients.set(key, client);
    }
    return client;
  }

  /**
   * Resolves the AWS credentials the model's calls will be signed with, so a missing profile or expired
   * session stops the run before any call, saying what to set.
   */
  async prepare(config: ModelConfig): Promise<void> {
    const model = bedrockModel(config);
    let identity: Credentials;
    try {
      identity = await this.client(model).config.credentials();
    } catch (error: unknown) {
      throw new ModelConfigError(
        `model "${model.id}": no AWS credentials for Bedrock (${error instanceof Error ? error.message : String(error)}). ` +
          "Locally, set AWS_PROFILE (after `aws sso login` or `aws configure`) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; " +
          "on AWS the function's role provides them.",
        { cause: error },
      );
    }
    this.secrets.add(identity.secretAccessKey);
    if (identity.sessionToken) this.secrets.add(identity.sessionToken);
  }

  private redact(text: string): string {
    let out = text;
    for (const secret of this.secrets) out = redactSecret(out, secret);
    return out;
  }

  /** The image of a call, fitted to Converse's limits; shared by the calls about the same image. */
  private image(url: string): Promise<ConverseImage> {
    let image = this.images.get(url);
    if (!image) {
      const { mediaType, bytes } = decodeDataUrl(url);
      image = fitForConverse(bytes, mediaType);
      // A failed fit is not kept: each call reports it on its own verdict.
      image.catch(() => this.images.delete(url));
      if (this.images.size >= IMAGE_CACHE_ENTRIES) {
        const oldest = this.images.keys().next().value;
        if (oldest !== undefined) this.images.delete(oldest);
      }
      this.images.set(url, image);
    }
    return image;
  }

  /** The Converse request's system and user blocks, and the image sent when it is not the dataset's. */
  private async request(
    messages: readonly ChatMessage[],
  ): Promise<{ system: SystemContentBlock[]; content: ContentBlock[]; sent: ConverseImage["sent"] }> {
    const system: SystemContentBlock[] = [];
    const content: ContentBlock[] = [];
    let sent: ConverseImage["sent"] = null;
    for (const message of messages) {
      if (message.role === "system") {
        system.push({ text: message.content });
        continue;
      }
      for (const part of message.content) {
        if (part.type === "text") content.push({ text: part.text });
        else {
          const image = await this.image(part.image_url.url);
          sent ??= image.sent;
          content.push({ image: { format: image.format, source: { bytes: image.bytes } } });
        }
      }
    }
    return { system, content, sent };
  }

  async complete(
    config: ModelConfig,
    messages: ChatMessage[],
    options: CompletionOptions = {},
  ): Promise<ModelOutcome> {
    const model = bedrockModel(config);
    if (options.topLogprobs !== undefined) {
      // Converse returns no token log-probabilities: no call is made, and vcd says why it has no answer.
      return {
        kind: "error",
        errorKind: "logprobs_unavailable",
        message: `${LOGPROBS_UNAVAILABLE_MESSAGE} (Bedrock's Converse API does not return them)`,
        latencyMs: 0,
        attempts: 1,
      };
    }
    let request: Awaited<ReturnType<BedrockModelClient["request"]>>;
    try {
      request = await this.request(messages);
    } catch (error: unknown) {
      return {
        kind: "error",
        errorKind: "image_unavailable",
        message: `the image could not be prepared for Bedrock: ${error instanceof Error ? error.message : String(error)}`,
        latencyMs: 0,
        attempts: 1,
      };
    }
    const client = this.client(model);
    const maxTokens = Math.min(model.maxTokens, options.maxTokens ?? model.maxTokens);
    const spec = {
      modelId: model.id,
      options,
      policy: this.retry,
      sleep: this.sleep,
      classify: classifyBedrockError,
      redact: (message: string) => this.redact(message),
    };
    const outcome = await attemptCall(spec, async (): Promise<AttemptResult> => {
      const output = await client.send(
        new ConverseCommand({
          modelId: model.model,
          messages: [{ role: "user", content: request.content }],
          ...(request.system.length > 0 ? { system: request.system } : {}),
          inferenceConfig: { maxTokens, temperature: model.temperature },
        }),
        { abortSignal: AbortSignal.timeout(model.timeoutMs) },
      );
      const usage = usageCounts(output.usage, { prompt: "inputTokens", completion: "outputTokens" });
      if (usage.problem !== null)
        this.onWarning("Bedrock reported no valid token counts; recorded as unknown (null)", {
          model: model.id,
          problem: usage.problem,
        });
      const { promptTokens, completionTokens } = usage;
      const tokens = (promptTokens ?? 0) + (completionTokens ?? 0);
      const stopReason = typeof output.stopReason === "string" ? output.stopReason : null;
      if (stopReason === "guardrail_intervened" || stopReason === "content_filtered") {
        return {
          outcome: {
            kind: "error",
            errorKind: "content_filter",
            message: `Bedrock withheld the answer (stopReason ${stopReason})`,
            promptTokens,
            completionTokens,
          },
          tokens,
        };
      }
      const text = answerText(output);
      if (text === null) {
        // No text at all: a glitch (like an empty choices list), tried again.
        return {
          outcome: {
            kind: "error",
            errorKind: "empty_message",
            message: `the answer had no text content (stopReason ${stopReason ?? "missing"})`,
            promptTokens,
            completionTokens,
          },
          tokens,
          retry: true,
        };
      }
      return {
        outcome: {
          kind: "answer",
          text: this.redact(text),
          finishReason: stopReason,
          promptTokens,
          completionTokens,
        },
        tokens,
      };
    });
    return request.sent === null ? outcome : { ...outcome, imageSent: request.sent };
  }
}

/** The config of a model this client can call; another provider's model reaching it is a wiring bug. */
function bedrockModel(model: ModelConfig): BedrockModelConfig {
  if (!isBedrock(model))
    throw new ModelConfigError(`model "${model.id}": not a Bedrock model, given to the Bedrock client`);
  return model;
}
