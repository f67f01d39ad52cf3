/**
 * The Bedrock provider (providers/bedrock/client.ts) through the real AWS SDK, SigV4 signing included,
 * against a scripted Converse-compatible server on 127.0.0.1 (the SDK's endpoint override, static test
 * credentials): the request it sends, how every answer and exception maps onto the pipeline's outcomes and
 * retries, the downscale of oversized images, and vcd's refusal without a call.
 *
 * Run: node --import tsx --test tests/unit/bedrock-provider.test.ts
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { after, before, beforeEach, describe, it } from "node:test";
import sharp from "sharp";
import type { ChatMessage } from "../../src/core/prompts.ts";
import { type ModelConfig, modelConfigSchema } from "../../src/core/schemas.ts";
import type { ModelOutcome } from "../../src/core/verdicts.ts";
import { BedrockModelClient } from "../../src/providers/bedrock/client.ts";
import { CONVERSE_IMAGE_LIMITS } from "../../src/providers/bedrock/limits.ts";
import { ModelConfigError } from "../../src/providers/model-client.ts";

const CREDENTIALS = { accessKeyId: "AKIDTESTBEDROCK", secretAccessKey: "bedrock-test-secret-0123456789" };
const FAST_RETRY = { maxAttempts: 4, rateLimitedAttempts: 12, baseDelayMs: 1, maxDelayMs: 5 };

interface Received {
  path: string;
  headers: IncomingMessage["headers"];
  body: {
    messages: { role: string; content: Record<string, unknown>[] }[];
    system?: { text: string }[];
    inferenceConfig?: { maxTokens: number; temperature: number };
  };
}

/** What the server does with the next request: a JSON reply, a hang, or a dropped connection. */
type Reply = { status: number; body: unknown; errorType?: string; raw?: string } | "hang" | "drop";

const received: Received[] = [];
let replies: Reply[] = [];
let server: Server;
let endpoint = "";

const answer = (
  text: string,
  stopReason = "end_turn",
  usage: unknown = { inputTokens: 12, outputTokens: 3 },
): Reply => ({
  status: 200,
  body: {
    output: { message: { role: "assistant", content: [{ text }] } },
    stopReason,
    usage,
    metrics: { latencyMs: 5 },
  },
});
const exception = (status: number, name: string, message = `${name} from the test server`): Reply => ({
  status,
  errorType: name,
  body: { message },
});

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") as Received["body"];
      received.push({ path: req.url ?? "", headers: req.headers, body });
      const reply = replies.shift() ?? answer("No.");
      if (reply === "hang") return;
      if (reply === "drop") {
        req.socket.destroy();
        return;
      }
      const payload = reply.raw ?? JSON.stringify(reply.body);
      res.writeHead(reply.status, {
        "content-type": "application/json",
        ...(reply.errorType ? { "x-amzn-errortype": reply.errorType } : {}),
      });
      res.end(payload);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  endpoint = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

beforeEach(() => {
  received.length = 0;
  replies = [];
});

const model = (fields: Record<string, unknown> = {}): ModelConfig =>
  modelConfigSchema.parse({
    id: "nova",
    provider: "bedrock",
    model: "us.amazon.nova-lite-v1:0",
    region: "us-east-1",
    endpoint,
    maxTokens: 64,
    ...fields,
  });

const client = () => new BedrockModelClient({ credentials: CREDENTIALS, retry: FAST_RETRY });

const png = (width: number, height: number, noise = false): Promise<Buffer> => {
  if (!noise)
    return sharp({ create: { width, height, channels: 3, background: "#4080c0" } })
      .png()
      .toBuffer();
  // Random pixels do not compress: a PNG of about width × height × 3 bytes.
  const pixels = randomBytes(width * height * 3);
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .png({ compressionLevel: 9 })
    .toBuffer();
};

const messages = (image: Buffer, mediaType = "image/png", system?: string): ChatMessage[] => [
  ...(system === undefined ? [] : [{ role: "system" as const, content: system }]),
  {
    role: "user",
    content: [
      { type: "text", text: 'Given the image, is this safe?\n"A sentence."' },
      { type: "image_url", image_url: { url: `data:${mediaType};base64,${image.toString("base64")}` } },
    ],
  },
];

const errorOf = (outcome: ModelOutcome) => {
  assert.equal(outcome.kind, "error", JSON.stringify(outcome));
  return outcome as Extract<ModelOutcome, { kind: "error" }>;
};

describe("Bedrock provider: the request", () => {
  it("sends Converse blocks (text, image bytes, system prompt, inferenceConfig), signed with SigV4 for bedrock", async () => {
    const image = await png(32, 24);
    const outcome = await client().complete(
      model({ temperature: 0.5 }),
      messages(image, "image/png", "Be careful."),
    );
    assert.equal(outcome.kind, "answer");
    const [request] = received;
    assert.ok(request);
    assert.equal(request.path, `/model/${encodeURIComponent("us.amazon.nova-lite-v1:0")}/converse`);
    assert.match(
      request.headers.authorization ?? "",
      /^AWS4-HMAC-SHA256 Credential=AKIDTESTBEDROCK\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}$/,
    );
    assert.deepEqual(request.body.system, [{ text: "Be careful." }]);
    assert.deepEqual(request.body.inferenceConfig, { maxTokens: 64, temperature: 0.5 });
    assert.equal(request.body.messages.length, 1);
    const [message] = request.body.messages;
    assert.equal(message?.role, "user");
    assert.deepEqual(message?.content[0], { text: 'Given the image, is this safe?\n"A sentence."' });
    const block = message?.content[1] as { image: { format: string; source: { bytes: string } } };
    assert.equal(block.image.format, "png");
    assert.deepEqual(
      Buffer.from(block.image.source.bytes, "base64"),
      image,
      "the dataset's bytes, unchanged",
    );
    // The secret never travels.
    assert.ok(!JSON.stringify(request).includes(CREDENTIALS.secretAccessKey));
  });

  it("takes the image format from the media type, and sends no system block without a system prompt", async () => {
    const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#000" } })
      .jpeg()
      .toBuffer();
    await client().complete(model(), messages(jpeg, "image/jpeg"));
    const block = received[0]?.body.messages[0]?.content[1] as { image: { format: string } };
    assert.equal(block.image.format, "jpeg");
    assert.equal(received[0]?.body.system, undefined);
  });

  it("caps maxTokens by the call's own cap", async () => {
    await client().complete(model(), messages(await png(4, 4)), { maxTokens: 8 });
    assert.equal(received[0]?.body.inferenceConfig?.maxTokens, 8);
  });

  it("credentials come from the standard chain: the environment here", async () => {
    const saved = { ...process.env };
    process.env.AWS_ACCESS_KEY_ID = "AKIDFROMENVIRONMENT";
    process.env.AWS_SECRET_ACCESS_KEY = "secret-from-environment";
    try {
      const outcome = await new BedrockModelClient({ retry: FAST_RETRY }).complete(
        model(),
        messages(await png(4, 4)),
      );
      assert.equal(outcome.kind, "answer");
      assert.match(received[0]?.headers.authorization ?? "", /Credential=AKIDFROMENVIRONMENT\//);
    } finally {
      process.env = saved;
    }
  });

  it("prepare fails with what to set when there are no credentials at all", async () => {
    const saved = { ...process.env };
    for (const name of ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"])
      delete process.env[name];
    process.env.AWS_CONFIG_FILE = "/nonexistent/config";
    process.env.AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/credentials";
    process.env.AWS_EC2_METADATA_DISABLED = "true";
    try {
      await assert.rejects(new BedrockModelClient().prepare(model()), (error: unknown) => {
        assert.ok(error instanceof ModelConfigError);
        assert.match(error.message, /model "nova": no AWS credentials for Bedrock/);
        assert.match(error.message, /AWS_PROFILE/);
        return true;
      });
    } finally {
      process.env = saved;
    }
  });
});

describe("Bedrock provider: answers", () => {
  it("maps the text, stopReason and usage", async () => {
    replies = [
      answer("Yes, it is safe.", "max_tokens", { inputTokens: 1200, outputTokens: 7, totalTokens: 1207 }),
    ];
    const outcome = await client().complete(model(), messages(await png(4, 4)));
    assert.equal(outcome.kind, "answer");
    if (outcome.kind !== "answer") return;
    assert.equal(outcome.text, "Yes, it is safe.");
    assert.equal(outcome.finishReason, "max_tokens");
    assert.equal(outcome.promptTokens, 1200);
    assert.equal(outcome.completionTokens, 7);
    assert.equal(outcome.attempts, 1);
    assert.equal(outcome.logprobs, undefined);
  });

  for (const stopReason of ["guardrail_intervened", "content_filtered"]) {
    it(`stopReason ${stopReason} is a content-filter refusal, not retried`, async () => {
      replies = [answer("Sorry, the model cannot answer this question.", stopReason)];
      const outcome = errorOf(await client().complete(model(), messages(await png(4, 4))));
      assert.equal(outcome.errorKind, "content_filter");
      assert.match(outcome.message, new RegExp(stopReason));
      assert.equal(outcome.attempts, 1);
      assert.equal(outcome.promptTokens, 12);
    });
  }

  it("an answer without text blocks is retried, then an empty_message error", async () => {
    const empty = {
      status: 200,
      body: { output: { message: { role: "assistant", content: [] } }, stopReason: "end_turn" },
    };
    replies = [empty, empty, empty, empty];
    const outcome = errorOf(await client().complete(model(), messages(await png(4, 4))));
    assert.equal(outcome.errorKind, "empty_message");
    assert.equal(outcome.attempts, 4);
    assert.equal(received.length, 4);
  });

  it("invalid usage is recorded as unknown (null), with a warning", async () => {
    const warnings: string[] = [];
    replies = [answer("No", "end_turn", { inputTokens: -1, outputTokens: 2.5 })];
    const outcome = await new BedrockModelClient({
      credentials: CREDENTIALS,
      retry: FAST_RETRY,
      onWarning: (message) => warnings.push(message),
    }).complete(model(), messages(await png(4, 4)));
    assert.equal(outcome.kind, "answer");
    assert.equal(outcome.promptTokens, null);
    assert.equal(outcome.completionTokens, null);
    assert.equal(warnings.length, 1);
  });
});

describe("Bedrock provider: faults", () => {
  const cases: { name: string; status: number; kind: string; retried: boolean; message?: string }[] = [
    { name: "ThrottlingException", status: 429, kind: "rate_limited", retried: true },
    { name: "ServiceUnavailableException", status: 503, kind: "server_error", retried: true },
    { name: "InternalServerException", status: 500, kind: "server_error", retried: true },
    { name: "ModelTimeoutException", status: 408, kind: "timeout", retried: true },
    { name: "ModelNotReadyException", status: 429, kind: "server_error", retried: true },
    { name: "AccessDeniedException", status: 403, kind: "auth", retried: false },
    { name: "ResourceNotFoundException", status: 404, kind: "not_found", retried: false },
    { name: "UnrecognizedClientException", status: 403, kind: "credentials", retried: false },
    { name: "ValidationException", status: 400, kind: "invalid_request", retried: false },
    {
      name: "ValidationException",
      status: 400,
      kind: "needs_inference_profile",
      retried: false,
      message:
        "Invocation of model ID amazon.nova-lite-v1:0 with on-demand throughput isn’t supported. Retry your request with the ID or ARN of an inference profile that contains this model.",
    },
  ];
  for (const c of cases) {
    it(`${c.name}${c.kind === "needs_inference_profile" ? " (inference profile needed)" : ""} → ${c.kind}, ${c.retried ? "retried" : "not retried"}`, async () => {
      replies = [exception(c.status, c.name, c.message), answer("No")];
      const outcome = await client().complete(model(), messages(await png(4, 4)));
      if (c.retried) {
        assert.equal(outcome.kind, "answer");
        assert.equal(outcome.attempts, 2);
        assert.equal(outcome.rateLimited ?? 0, c.kind === "rate_limited" ? 1 : 0);
      } else {
        const error = errorOf(outcome);
        assert.equal(error.errorKind, c.kind);
        assert.equal(error.attempts, 1);
        assert.equal(received.length, 1);
      }
    });
  }

  it("a throttling storm takes up to 12 attempts (as 429s do), counted for the adaptive concurrency", async () => {
    replies = Array.from({ length: 12 }, () => exception(429, "ThrottlingException"));
    const outcome = errorOf(await client().complete(model(), messages(await png(4, 4))));
    assert.equal(outcome.errorKind, "rate_limited");
    assert.equal(outcome.attempts, 12);
    assert.equal(outcome.rateLimited, 12);
  });

  it("a garbage body is a malformed response, retried", async () => {
    replies = [{ status: 200, body: null, raw: "{not json" }, answer("No")];
    const outcome = await client().complete(model(), messages(await png(4, 4)));
    assert.equal(outcome.kind, "answer");
    assert.equal(outcome.attempts, 2);
  });

  it("a dropped connection is a connection fault, retried", async () => {
    replies = ["drop", answer("No")];
    const outcome = await client().complete(model(), messages(await png(4, 4)));
    assert.equal(outcome.kind, "answer");
    assert.equal(outcome.attempts, 2);
  });

  it("no answer within timeoutMs is a timeout, retried", async () => {
    replies = ["hang", answer("No")];
    const outcome = await client().complete(model({ timeoutMs: 1000 }), messages(await png(4, 4)));
    assert.equal(outcome.kind, "answer");
    assert.equal(outcome.attempts, 2);
  });

  it("a refused connection is a connection error after its attempts", async () => {
    const outcome = errorOf(
      await client().complete(model({ endpoint: "http://127.0.0.1:9" }), messages(await png(4, 4))),
    );
    assert.equal(outcome.errorKind, "connection");
    assert.equal(outcome.attempts, 4);
  });

  it("each attempt takes a permit under the run-wide budget and gives it back with its tokens", async () => {
    replies = [exception(429, "ThrottlingException"), answer("No")];
    const done: (number | null)[] = [];
    const outcome = await client().complete(model(), messages(await png(4, 4)), {
      beforeAttempt: async () => ({ done: (tokens) => done.push(tokens) }),
    });
    assert.equal(outcome.kind, "answer");
    assert.deepEqual(done, [null, 15]);
  });
});

describe("Bedrock provider: image limits", () => {
  it("downscales an image above 3.75 MB until it fits, and says what was sent", async () => {
    const big = await png(1200, 1100, true);
    assert.ok(big.length > CONVERSE_IMAGE_LIMITS.maxBytes, `test image is ${big.length} bytes`);
    const outcome = await client().complete(model(), messages(big));
    assert.equal(outcome.kind, "answer");
    const block = received[0]?.body.messages[0]?.content[1] as {
      image: { format: string; source: { bytes: string } };
    };
    const sent = Buffer.from(block.image.source.bytes, "base64");
    assert.ok(sent.length <= CONVERSE_IMAGE_LIMITS.maxBytes);
    assert.equal(block.image.format, "png");
    const meta = await sharp(sent).metadata();
    assert.ok(outcome.imageSent, "the outcome records the image sent");
    assert.deepEqual(
      { width: outcome.imageSent.width, height: outcome.imageSent.height, bytes: outcome.imageSent.bytes },
      { width: meta.width, height: meta.height, bytes: sent.length },
    );
    assert.deepEqual(outcome.imageSent.original, {
      mediaType: "image/png",
      bytes: big.length,
      width: 1200,
      height: 1100,
    });
    assert.ok(
      (meta.width ?? 0) < 1200 && Math.abs((meta.width ?? 0) / (meta.height ?? 1) - 1200 / 1100) < 0.01,
    );
    assert.match(outcome.imageSent.reason, /bytes > 3,750,000/);
  });

  it("downscales an image wider than 8,000 px to 8,000", async () => {
    const wide = await png(8100, 20);
    const outcome = await client().complete(model(), messages(wide));
    const block = received[0]?.body.messages[0]?.content[1] as { image: { source: { bytes: string } } };
    const meta = await sharp(Buffer.from(block.image.source.bytes, "base64")).metadata();
    assert.equal(meta.width, 8000);
    assert.equal(outcome.imageSent?.width, 8000);
    assert.match(outcome.imageSent?.reason ?? "", /8100×20 px > 8000 px a side/);
  });

  it("an image that cannot be decoded is an image_unavailable error, and nothing is sent", async () => {
    const outcome = errorOf(await client().complete(model(), messages(Buffer.from("not an image"))));
    assert.equal(outcome.errorKind, "image_unavailable");
    assert.equal(received.length, 0);
  });
});

describe("Bedrock provider: vcd", () => {
  it("a request for log-probabilities is a logprobs_unavailable error, without a call", async () => {
    const outcome = errorOf(await client().complete(model(), messages(await png(4, 4)), { topLogprobs: 20 }));
    assert.equal(outcome.errorKind, "logprobs_unavailable");
    assert.match(outcome.message, /log-probabilities.*Converse/);
    assert.equal(received.length, 0);
  });
});
