import type { SecretsProvider } from "@aws-lambda-powertools/parameters/secrets";
import type { SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import type { OpenAIModelConfig as ModelConfig } from "../../core/schemas.ts";
import { ModelConfigError } from "../model-client.ts";

export { ModelConfigError };

/** Where a model's API key comes from. Keys are returned to the caller only, never logged or stored. */
export interface ApiKeySource {
  /** The key for a model, or undefined for an endpoint without auth. Throws ModelConfigError when missing. */
  keyFor(model: ModelConfig): Promise<string | undefined>;
}

/** Seconds a secret is reused before Secrets Manager is asked again (rotation is picked up within this). */
const SECRET_MAX_AGE_SECONDS = 300;

/**
 * Keys from the environment variable a model names (`apiKeyEnv`, for local runs) or, when that variable is
 * not set, from the AWS Secrets Manager secret it names (`apiKeySecret`, for runs on AWS). Secrets are read
 * through Powertools Parameters with a cache, so a shard Lambda asks once per secret, not once per call.
 * A secret may hold the key as its whole string or as JSON `{"apiKey": "..."}`.
 */
export class EnvOrSecretsKeySource implements ApiKeySource {
  private secrets: SecretsProvider | undefined;
  /** Reads in flight, so concurrent shards waiting on the same secret share one request. */
  private readonly inflight = new Map<string, Promise<string>>();

  constructor(
    private readonly env: Readonly<Record<string, string | undefined>>,
    private readonly secretsClient?: SecretsManagerClient,
  ) {}

  async keyFor(model: ModelConfig): Promise<string | undefined> {
    const fromEnv = model.apiKeyEnv ? this.env[model.apiKeyEnv] : undefined;
    if (fromEnv) return fromEnv;
    if (model.apiKeySecret) {
      const name = model.apiKeySecret;
      let read = this.inflight.get(name);
      if (!read) {
        read = this.fromSecret(model, name).finally(() => this.inflight.delete(name));
        this.inflight.set(name, read);
      }
      return read;
    }
    if (model.apiKeyEnv) {
      throw new ModelConfigError(
        `model "${model.id}": environment variable ${model.apiKeyEnv} (its apiKeyEnv) is not set; set it to the API key`,
      );
    }
    return undefined;
  }

  private async fromSecret(model: ModelConfig, name: string): Promise<string> {
    // Loaded on first use: runs whose keys come from the environment never load the Secrets Manager SDK.
    if (!this.secrets) {
      const { SecretsProvider } = await import("@aws-lambda-powertools/parameters/secrets");
      this.secrets ??= new SecretsProvider(this.secretsClient ? { awsSdkV3Client: this.secretsClient } : {});
    }
    let value: unknown;
    try {
      value = await this.secrets.get(name, { maxAge: SECRET_MAX_AGE_SECONDS });
    } catch (error: unknown) {
      // The provider's message names the secret and the AWS error, never a value.
      throw new ModelConfigError(
        `model "${model.id}": cannot read its API key from secret ${name} (${error instanceof Error ? error.message : String(error)}); ` +
          "check the secret exists under mmsafe/ in this account and region, or set apiKeyEnv for local runs",
        { cause: error },
      );
    }
    const key = typeof value === "string" ? parseSecretString(value) : undefined;
    if (!key) {
      throw new ModelConfigError(
        `model "${model.id}": secret ${name} holds no key: store the key as the secret string, or JSON {"apiKey": "..."}`,
      );
    }
    return key;
  }
}

function parseSecretString(text: string): string | undefined {
  const trimmed = text.trim();
  if (!trimmed.startsWith("{")) return trimmed || undefined;
  try {
    const json: unknown = JSON.parse(trimmed);
    if (typeof json === "object" && json !== null && "apiKey" in json && typeof json.apiKey === "string")
      return json.apiKey.trim() || undefined;
  } catch {
    // Not JSON after all: a key that happens to start with "{" is used as it is.
    return trimmed;
  }
  return undefined;
}
