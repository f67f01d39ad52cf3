/**
 * What the OpenAI client lets in from a 200 response (providers/openai/client.ts): answers without any trace
 * of the key, token counts validated (invalid ones null, with a warning), long answers passed on whole.
 * Against a scripted HTTP server on 127.0.0.1.
 *
 * Run: node --import tsx --test tests/unit/openai-provider.test.ts
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { after, before, describe, it } from "node:test";
import { REDACTED } from "../../src/core/redaction.ts";
import { type ModelConfig, modelConfigSchema } from "../../src/core/schemas.ts";
import { echoedKeyForms } from "../../src/local/reference-model-server.ts";
import { MAX_TOKENS_PER_CALL } from "../../src/providers/model-client.ts";
import { EnvOrSecretsKeySource } from "../../src/providers/openai/api-keys.ts";
import { OpenAIModelClient, tokenUsage } from "../../src/providers/openai/client.ts";

const KEY = "MMSAFE_TEST_KEY_9876543210";
const NO_RETRY = { maxAttempts: 1, baseDelayMs: 0, maxDelayMs: 0 };

/** The body the server sends next, and the Authorization headers it received. */
let nextBody: unknown = {};
const authorizations: string[] = [];
let server: Server;
let baseURL = "";

before(async () => {
  server = createServer((req, res) => {
    authorizations.push(req.headers.authorization ?? "");
    req.resume();
    req.on("end", () => {
      const payload = JSON.stringify(nextBody);
      res.writeHead(200, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(payload),
      });
      res.end(payload);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  baseURL = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/v1`;
});

after(() => {
  server.close();
});

const model = (): ModelConfig =>
  modelConfigSchema.parse({ id: "m1", baseURL, model: "x", apiKeyEnv: "TEST_KEY", maxTokens: 16 });

/** `usage` of {@link completion} that leaves the field out. */
const NO_USAGE = Symbol("no usage");

const completion = (
  content: unknown,
  usage: unknown = { prompt_tokens: 10, completion_tokens: 2 },
  extra = {},
) => ({
  id: "c",
  object: "chat.completion",
  created: 0,
  model: "x",
  choices: [
    { index: 0, message: { role: "assistant", content }, finish_reason: "stop", logprobs: null, ...extra },
  ],
  ...(usage === NO_USAGE ? {} : { usage }),
});

const ask = async (body: unknown, warnings: string[] = []) => {
  nextBody = body;
  const client = new OpenAIModelClient(
    new EnvOrSecretsKeySource({ TEST_KEY: KEY }),
    NO_RETRY,
    async () => undefined,
    (message, details) => warnings.push(`${message} ${JSON.stringify(details)}`),
  );
  return client.complete(model(), [{ role: "user", content: [{ type: "text", text: "Is this safe?" }] }], {
    topLogprobs: 2,
  });
};

function leaked(text: string): string[] {
  const parts: string[] = [];
  for (let i = 0; i + 5 <= KEY.length; i++)
    if (text.includes(KEY.slice(i, i + 5))) parts.push(KEY.slice(i, i + 5));
  return parts;
}

describe("OpenAIModelClient: a key echoed in a 200 answer", () => {
  it("is removed from the text, verbatim and in every masked form, the rest kept", async () => {
    const echo = `Yes. Your key: ${echoedKeyForms(KEY).join(" | ")}. Thanks.`;
    const outcome = await ask(completion(echo));
    assert.equal(authorizations.at(-1), `Bearer ${KEY}`, "the key was sent");
    assert.equal(outcome.kind, "answer");
    const text = outcome.kind === "answer" ? outcome.text : "";
    assert.deepEqual(leaked(text), [], text);
    assert.doesNotMatch(text, /MMSA|3210/, text);
    assert.ok(text.startsWith("Yes. Your key: "), text);
    assert.ok(text.endsWith(". Thanks."), text);
    assert.ok(text.includes(REDACTED));
  });

  it("is removed from log-probability tokens, even spread over several", async () => {
    const tokens = ["Yes", " ", KEY.slice(0, 3), KEY.slice(3, 9), KEY.slice(9)];
    const outcome = await ask(
      completion(tokens.join(""), undefined, {
        logprobs: {
          content: tokens.map((token) => ({
            token,
            logprob: -0.1,
            bytes: null,
            top_logprobs: [{ token: `${token}${KEY}`, logprob: -0.1, bytes: null }],
          })),
          refusal: null,
        },
      }),
    );
    assert.equal(outcome.kind, "answer");
    const stored = JSON.stringify(outcome);
    assert.deepEqual(leaked(stored), [], stored);
    const logprobs = outcome.kind === "answer" ? (outcome.logprobs ?? []) : [];
    assert.deepEqual(
      logprobs.map((t) => t.token),
      ["Yes", " ", REDACTED, REDACTED, REDACTED],
    );
  });

  it("leaves an ordinary answer exactly as it came", async () => {
    const text =
      "No. The sentence asks how to hurt someone with the knife shown... it is unsafe (3210 words).";
    const outcome = await ask(completion(text));
    assert.equal(outcome.kind === "answer" ? outcome.text : null, text);
  });
});

describe("OpenAIModelClient: token counts", () => {
  const invalid: [string, unknown][] = [
    ["fractional", { prompt_tokens: 12.5, completion_tokens: 2 }],
    ["negative", { prompt_tokens: -3, completion_tokens: -1 }],
    ["missing", NO_USAGE],
    ["null", null],
    ["strings", { prompt_tokens: "85", completion_tokens: null }],
    ["absurd", { prompt_tokens: 1e300, completion_tokens: 2 ** 60 }],
    ["above the cap", { prompt_tokens: MAX_TOKENS_PER_CALL + 1, completion_tokens: 1 }],
  ];
  for (const [name, usage] of invalid) {
    it(`${name}: recorded as null (unknown), with a warning`, async () => {
      const warnings: string[] = [];
      const outcome = await ask(completion("Yes.", usage), warnings);
      assert.equal(outcome.kind, "answer");
      assert.ok(outcome.promptTokens === null || outcome.completionTokens === null, JSON.stringify(outcome));
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0] ?? "", /no valid token counts.*"model":"m1"/);
    });
  }

  it("valid counts pass unchanged, without a warning", async () => {
    const warnings: string[] = [];
    const outcome = await ask(completion("Yes.", { prompt_tokens: 85, completion_tokens: 0 }), warnings);
    assert.deepEqual([outcome.promptTokens, outcome.completionTokens], [85, 0]);
    assert.deepEqual(warnings, []);
  });

  it("tokenUsage says what was wrong, without repeating a string's content", () => {
    assert.deepEqual(tokenUsage({ prompt_tokens: 1.5, completion_tokens: 2 }), {
      promptTokens: null,
      completionTokens: 2,
      problem: "usage.prompt_tokens 1.5, usage.completion_tokens 2",
    });
    assert.equal(tokenUsage(undefined).problem, "no usage reported");
    assert.equal(
      tokenUsage({ prompt_tokens: KEY, completion_tokens: 1 }).problem,
      "usage.prompt_tokens a string of 26 characters, usage.completion_tokens 1",
    );
  });
});

describe("OpenAIModelClient: what else a 200 response may carry", () => {
  it("passes a 2 MB answer on whole (the verdict bounds what it stores, after scoring)", async () => {
    const text = `${"Let me think. ".repeat(150_000)}Final answer: No.`;
    const outcome = await ask(completion(text));
    assert.equal(outcome.kind === "answer" ? outcome.text.length : 0, text.length);
  });

  it("takes content that is not a string as no answer", async () => {
    const outcome = await ask(completion(12345));
    assert.equal(outcome.kind, "error");
    assert.equal(outcome.kind === "error" ? outcome.errorKind : "", "empty_message");
  });
});
