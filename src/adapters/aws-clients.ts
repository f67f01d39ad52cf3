import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";

/**
 * SDK clients configured only from the standard environment (AWS_REGION, AWS_ENDPOINT_URL_S3,
 * AWS_ENDPOINT_URL_DYNAMODB, credentials chain), so the same handler code reaches AWS or the embedded
 * local servers without a code branch. `forcePathStyle` is a setting: path-style addressing works on AWS
 * too, and local S3 servers need it.
 */
export function createS3Client(forcePathStyle: boolean): S3Client {
  return new S3Client({ forcePathStyle });
}

export function createDocumentClient(): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient({}), {
    marshallOptions: { removeUndefinedValues: true },
  });
}
