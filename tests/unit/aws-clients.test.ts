/**
 * The SDK clients sign their requests, except when MMSAFE_UNSIGNED_REQUESTS=true (the embedded local
 * servers): then S3 requests go unsigned and DynamoDB requests carry only the placeholder Authorization
 * header dynalite requires. Each request is captured after signing and stopped before it is sent: no network.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { GetObjectCommand } from "@aws-sdk/client-s3";
import { GetCommand } from "@aws-sdk/lib-dynamodb";
import {
  createDocumentClient,
  createS3Client,
  UNSIGNED_REQUESTS_ENV,
} from "../../src/adapters/aws-clients.ts";

const ENV = {
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
  AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  AWS_ENDPOINT_URL_S3: "http://127.0.0.1:9",
  AWS_ENDPOINT_URL_DYNAMODB: "http://127.0.0.1:9",
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
};
let saved: NodeJS.ProcessEnv;

beforeEach(() => {
  saved = { ...process.env };
  Object.assign(process.env, ENV);
  delete process.env[UNSIGNED_REQUESTS_ENV];
});
afterEach(() => {
  process.env = saved;
});

class Captured extends Error {
  constructor(readonly headers: Record<string, string>) {
    super("captured");
  }
}

/** At the deserialize step a request is signed and about to be sent: its headers are taken, and it is not. */
const CAPTURE = { step: "deserialize", name: "captureRequest", priority: "low" } as const;
function capture(args: { request: unknown }): never {
  throw new Captured({ ...(args.request as { headers: Record<string, string> }).headers });
}

async function headersOf(send: () => Promise<unknown>): Promise<Record<string, string>> {
  try {
    await send();
  } catch (error: unknown) {
    if (error instanceof Captured) return error.headers;
    throw error;
  }
  throw new Error("the request was not captured");
}

const s3Get = async () => {
  const s3 = createS3Client(true);
  s3.middlewareStack.add(() => async (args) => capture(args), CAPTURE);
  try {
    return await headersOf(() => s3.send(new GetObjectCommand({ Bucket: "b", Key: "k" })));
  } finally {
    s3.destroy();
  }
};
const dynamoGet = async () => {
  const doc = createDocumentClient();
  doc.middlewareStack.add(() => async (args) => capture(args), CAPTURE);
  try {
    return await headersOf(() => doc.send(new GetCommand({ TableName: "t", Key: { id: "1" } })));
  } finally {
    doc.destroy();
  }
};

describe("aws-clients", () => {
  it("signs S3 and DynamoDB requests with SigV4 by default", async () => {
    assert.match(
      (await s3Get()).authorization ?? "",
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/.*Signature=[0-9a-f]{64}$/,
    );
    assert.match(
      (await dynamoGet()).authorization ?? "",
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/.*\/dynamodb\/aws4_request.*Signature=[0-9a-f]{64}$/,
    );
  });

  it(`sends S3 requests unsigned and DynamoDB ones with a placeholder when ${UNSIGNED_REQUESTS_ENV}=true`, async () => {
    process.env[UNSIGNED_REQUESTS_ENV] = "true";
    const s3 = await s3Get();
    assert.equal(s3.authorization, undefined);
    assert.equal(s3["x-amz-content-sha256"], undefined);
    const dynamo = await dynamoGet();
    assert.match(dynamo.authorization ?? "", /^AWS4-HMAC-SHA256 Credential=local\/.* Signature=0$/);
    assert.ok(dynamo["x-amz-date"], "dynalite requires a date header beside the Authorization header");
  });
});
