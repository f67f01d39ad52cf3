import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { mockClient } from "aws-sdk-client-mock";
import { modelConfigSchema, type OpenAIModelConfig, openAIModelSchema } from "../../src/core/model-config.ts";
import { EnvOrSecretsKeySource, ModelConfigError } from "../../src/providers/openai/api-keys.ts";

const KEY = "sk-test-0123456789-recognisable";

const model = (fields: Partial<OpenAIModelConfig>): OpenAIModelConfig =>
  openAIModelSchema.parse({ id: "m", baseURL: "https://example.invalid/v1", model: "x", ...fields });

function secretsReturning(secretString: string | undefined, error?: Error) {
  const client = new SecretsManagerClient({
    region: "us-east-1",
    credentials: { accessKeyId: "a", secretAccessKey: "b" },
  });
  const mock = mockClient(client);
  if (error) mock.on(GetSecretValueCommand).rejects(error);
  else mock.on(GetSecretValueCommand).resolves({ Name: "mmsafe/openai", SecretString: secretString });
  return { client, mock };
}

describe("API keys", () => {
  it("uses the model's environment variable when it is set, without asking Secrets Manager", async () => {
    const { client, mock } = secretsReturning("other");
    const source = new EnvOrSecretsKeySource({ OPENAI_API_KEY: KEY }, client);
    assert.equal(
      await source.keyFor(model({ apiKeyEnv: "OPENAI_API_KEY", apiKeySecret: "mmsafe/openai" })),
      KEY,
    );
    assert.equal(mock.commandCalls(GetSecretValueCommand).length, 0);
  });

  it("reads the named secret (plain string or JSON apiKey) once and caches it", async () => {
    for (const stored of [KEY, JSON.stringify({ apiKey: KEY })]) {
      const { client, mock } = secretsReturning(stored);
      const source = new EnvOrSecretsKeySource({}, client);
      const m = model({ apiKeySecret: "mmsafe/openai" });
      assert.equal(await source.keyFor(m), KEY);
      assert.equal(await source.keyFor(m), KEY);
      const calls = mock.commandCalls(GetSecretValueCommand);
      assert.equal(calls.length, 1, "the second read comes from the cache");
      assert.equal(calls[0]?.args[0].input.SecretId, "mmsafe/openai");
    }
  });

  it("explains a missing secret or variable without revealing anything", async () => {
    const { client } = secretsReturning(
      undefined,
      Object.assign(new Error("Secrets Manager can't find the specified secret."), {
        name: "ResourceNotFoundException",
      }),
    );
    const source = new EnvOrSecretsKeySource({}, client);
    await assert.rejects(source.keyFor(model({ apiKeySecret: "mmsafe/missing" })), (error: unknown) => {
      assert.ok(error instanceof ModelConfigError);
      assert.match(error.message, /cannot read its API key from secret mmsafe\/missing/);
      assert.match(error.message, /set apiKeyEnv for local runs/);
      return true;
    });
    await assert.rejects(
      new EnvOrSecretsKeySource({}, client).keyFor(model({ apiKeyEnv: "UNSET_KEY_VAR" })),
      /environment variable UNSET_KEY_VAR \(its apiKeyEnv\) is not set/,
    );
    const empty = secretsReturning(JSON.stringify({ token: KEY }));
    await assert.rejects(
      new EnvOrSecretsKeySource({}, empty.client).keyFor(model({ apiKeySecret: "mmsafe/x" })),
      (error: unknown) => {
        assert.ok(error instanceof ModelConfigError);
        assert.ok(!error.message.includes(KEY), "the message never echoes the secret's content");
        return true;
      },
    );
  });

  it("needs no key for an endpoint without auth", async () => {
    assert.equal(await new EnvOrSecretsKeySource({}).keyFor(model({})), undefined);
  });

  it("accepts only secret names under mmsafe/ in a model config", () => {
    assert.equal(
      modelConfigSchema.safeParse({
        id: "m",
        baseURL: "https://a.b/v1",
        model: "x",
        apiKeySecret: "prod/openai",
      }).success,
      false,
    );
    assert.equal(
      modelConfigSchema.safeParse({
        id: "m",
        baseURL: "https://a.b/v1",
        model: "x",
        apiKeySecret: "mmsafe/openai",
      }).success,
      true,
    );
  });
});

describe("keys in endpoint errors", () => {
  it("never reach an error verdict's message", async () => {
    const { createServer } = await import("node:http");
    const { OpenAIModelClient } = await import("../../src/providers/openai/client.ts");
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(401, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          error: {
            message: `Incorrect API key provided: ${KEY.slice(0, 7)}***${KEY.slice(-4)} (${KEY})`,
            type: "invalid_request_error",
            code: "invalid_api_key",
          },
        }),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : 0;
    try {
      const client = new OpenAIModelClient(new EnvOrSecretsKeySource({ TEST_KEY: KEY }));
      const outcome = await client.complete(
        model({ baseURL: `http://127.0.0.1:${port}/v1`, apiKeyEnv: "TEST_KEY" }),
        [{ role: "user", content: [{ type: "text", text: "hi" }] }],
      );
      assert.equal(outcome.kind, "error");
      const message = outcome.kind === "error" ? outcome.message : "";
      assert.equal(outcome.kind === "error" ? outcome.errorKind : "", "auth");
      assert.ok(!message.includes(KEY), message);
      assert.ok(!message.includes(KEY.slice(0, 7)), message);
      assert.match(message, /\[redacted\]/);
    } finally {
      server.close();
    }
  });
});
