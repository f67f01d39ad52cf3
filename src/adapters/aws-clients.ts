import { DynamoDBClient, type DynamoDBClientConfig } from "@aws-sdk/client-dynamodb";
import { S3Client, type S3ClientConfig } from "@aws-sdk/client-s3";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";

/**
 * `"true"` when the endpoints verify no signature: set by local/embedded-aws.ts for the embedded servers
 * (s3rver serves unsigned requests as anonymous ones; dynalite checks only that an Authorization header
 * is present), never on AWS. SigV4 signing, and s3rver checking it, is about a tenth of the CPU of each
 * local storage request, and a local run makes two such requests per verdict.
 */
export const UNSIGNED_REQUESTS_ENV = "MMSAFE_UNSIGNED_REQUESTS";

const unsignedRequests = (): boolean => process.env[UNSIGNED_REQUESTS_ENV] === "true";

/** Sends S3 requests as they are (anonymous). */
const UNSIGNED_S3: S3ClientConfig["signer"] = { sign: async (request) => request };

/**
 * The Authorization header dynalite insists on (it parses the header's shape and never checks the
 * signature), with a fixed date: a placeholder, not a signature.
 */
const PLACEHOLDER_DYNAMODB_AUTH: DynamoDBClientConfig["signer"] = {
  sign: async (request) => {
    request.headers.authorization =
      "AWS4-HMAC-SHA256 Credential=local/20000101/local/dynamodb/aws4_request, SignedHeaders=host, Signature=0";
    request.headers["x-amz-date"] = "20000101T000000Z";
    return request;
  },
};

/**
 * Credentials of the embedded servers' clients. They never reach the environment: a local run keeps the
 * user's own AWS credentials (profile, variables) for what needs them, Bedrock models.
 */
const EMBEDDED_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

/** What an embedded-server client needs beyond the standard environment: no signing, placeholder credentials. */
const embedded = (signer: S3ClientConfig["signer"] | DynamoDBClientConfig["signer"]) =>
  unsignedRequests() ? { signer, credentials: EMBEDDED_CREDENTIALS } : {};

/**
 * SDK clients configured only from the standard environment (AWS_REGION, AWS_ENDPOINT_URL_S3,
 * AWS_ENDPOINT_URL_DYNAMODB, credentials chain), so the same handler code reaches AWS or the embedded
 * local servers without a code branch; the one local setting is {@link UNSIGNED_REQUESTS_ENV}.
 * `forcePathStyle` is a setting: path-style addressing works on AWS too, and local S3 servers need it.
 */
export function createS3Client(forcePathStyle: boolean): S3Client {
  return new S3Client({ forcePathStyle, ...embedded(UNSIGNED_S3) });
}

export function createDynamoClient(): DynamoDBClient {
  return new DynamoDBClient(embedded(PLACEHOLDER_DYNAMODB_AUTH));
}

export function createDocumentClient(): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(createDynamoClient(), {
    marshallOptions: { removeUndefinedValues: true },
  });
}
