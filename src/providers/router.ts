/**
 * One {@link ModelClient} over every provider: each call goes to the client of its model's provider. The
 * Bedrock client (and the AWS SDK module it needs) is created on the first Bedrock model only, so runs
 * without one never load it.
 */
import type { ChatMessage } from "../core/prompts.ts";
import { type ModelConfig, providerOf } from "../core/schemas.ts";
import type { ModelOutcome } from "../core/verdicts.ts";
import type { CompletionOptions, ModelAnswer, ModelClient } from "./model-client.ts";

/** The clients of each provider; `bedrock` is made when first needed. */
export interface ProviderClients {
  openai: ModelClient;
  bedrock: () => Promise<ModelClient>;
}

export class ProviderModelClient implements ModelClient {
  private bedrock: Promise<ModelClient> | null = null;

  constructor(private readonly clients: ProviderClients) {}

  private clientFor(model: ModelConfig): Promise<ModelClient> | ModelClient {
    if (providerOf(model) === "openai") return this.clients.openai;
    this.bedrock ??= this.clients.bedrock();
    return this.bedrock;
  }

  async prepare(model: ModelConfig): Promise<void> {
    await (await this.clientFor(model)).prepare(model);
  }

  async complete(
    model: ModelConfig,
    messages: ChatMessage[],
    options?: CompletionOptions,
  ): Promise<ModelOutcome> {
    return (await this.clientFor(model)).complete(model, messages, options);
  }

  async redactAnswer(model: ModelConfig, answer: ModelAnswer): Promise<ModelAnswer> {
    const client = await this.clientFor(model);
    return client.redactAnswer ? client.redactAnswer(model, answer) : answer;
  }
}
