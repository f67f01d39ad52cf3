/**
 * The usage meter against the real embedded servers (s3rver, dynalite): a known sequence of calls gives
 * known counts. dynalite returns ConsumedCapacity (its units follow DynamoDB's rules: 1 KB per write unit,
 * 4 KB per read unit, halved when eventually consistent), so these units are the reported ones, except
 * where a test says they are estimated.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { DescribeTableCommand, DynamoDBClient, PutItemCommand } from "@aws-sdk/client-dynamodb";
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import {
  BatchGetCommand,
  BatchWriteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from "@aws-sdk/lib-dynamodb";
import { createDocumentClient, createS3Client } from "../../src/adapters/aws-clients.ts";
import { isConditionalCheckFailed } from "../../src/adapters/dynamo-errors.ts";
import { S3ObjectStore } from "../../src/adapters/object-store.ts";
import { addUsage, itemBytes, UsageMeter } from "../../src/adapters/usage-meter.ts";
import { type EmbeddedAws, LOCAL_RESOURCES, startEmbeddedAws } from "../../src/local/embedded-aws.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

let home: string;
let aws: EmbeddedAws;
let s3: S3Client;
let doc: DynamoDBDocumentClient;
let raw: DynamoDBClient;
const meter = new UsageMeter();
const { bucket, runsTable, verdictsTable } = LOCAL_RESOURCES;

before(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-meter-"));
  aws = await startEmbeddedAws(path.join(home, "aws"));
  Object.assign(process.env, aws.handlerEnv);
  s3 = createS3Client(true);
  doc = createDocumentClient();
  raw = new DynamoDBClient({
    endpoint: aws.dynamodbEndpoint,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  meter.attach(s3);
  meter.attach(doc);
  meter.attach(raw);
});

after(async () => {
  s3?.destroy();
  doc?.destroy();
  raw?.destroy();
  await aws?.close();
  await rm(home, { recursive: true, force: true });
});

beforeEach(() => meter.reset());

describe("UsageMeter on S3", () => {
  it("counts GET, PUT, LIST and other requests, failed ones included", async () => {
    const store = new S3ObjectStore(s3, bucket);
    await store.put("meter/a.txt", "a", "text/plain"); // put
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: "meter/b.txt", Body: "b" })); // put
    assert.equal(await store.getText("meter/a.txt"), "a"); // get
    assert.equal(await store.exists("meter/a.txt"), true); // other (HEAD)
    assert.equal(await store.exists("meter/missing.txt"), false); // other (HEAD, 404)
    assert.equal(await store.getTextIfExists("meter/missing.txt"), null); // get (404)
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "meter/" })); // list
    assert.equal(listed.KeyCount, 2);

    assert.deepEqual(meter.snapshot().s3, { get: 2, put: 2, list: 1, other: 2 });
    assert.deepEqual(meter.byOperation(), {
      "S3.GetObject": 2,
      "S3.HeadObject": 2,
      "S3.ListObjectsV2": 1,
      "S3.PutObject": 2,
    });
    assert.deepEqual(meter.snapshot().dynamodb, { readUnits: 0, writeUnits: 0, requests: 0 });
  });

  it("starts again from zero after reset", async () => {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: "meter/a.txt" })).catch(() => undefined);
    assert.deepEqual(meter.snapshot().s3, { get: 0, put: 0, list: 0, other: 1 });
    meter.reset();
    assert.deepEqual(meter.snapshot().s3, { get: 0, put: 0, list: 0, other: 0 });
    assert.deepEqual(meter.byOperation(), {});
  });
});

describe("UsageMeter on DynamoDB", () => {
  // "runId" (5) + "meter#small" (11) = 16 bytes: 1 write unit, 1 strongly consistent read unit.
  const small = { runId: "meter#small" };
  // 5 + 9 + "blob" (4) + 1,500 = 1,518 bytes: 2 write units, one 4 KB read unit.
  const big = { runId: "meter#big", blob: "x".repeat(1500) };

  it("measures item sizes by DynamoDB's rules", () => {
    assert.equal(itemBytes({ runId: { S: "meter#small" } }), 16);
    assert.equal(itemBytes({ runId: { S: "meter#big" }, blob: { S: "x".repeat(1500) } }), 1518);
  });

  it("sums the consumed capacity of a known sequence of calls", async () => {
    await doc.send(new PutCommand({ TableName: runsTable, Item: small })); // 1 WRU
    await doc.send(new PutCommand({ TableName: runsTable, Item: big })); // 2 WRU
    await assert.rejects(
      doc.send(
        new PutCommand({
          TableName: runsTable,
          Item: small,
          ConditionExpression: "attribute_not_exists(runId)",
        }),
      ),
      isConditionalCheckFailed,
    ); // refused: 1 WRU, estimated
    await doc.send(new GetCommand({ TableName: runsTable, Key: small, ConsistentRead: true })); // 1 RRU
    await doc.send(new GetCommand({ TableName: runsTable, Key: { runId: big.runId } })); // 0.5 RRU
    const got = await doc.send(
      new BatchGetCommand({
        RequestItems: { [runsTable]: { Keys: [{ runId: small.runId }, { runId: big.runId }] } },
      }),
    ); // 0.5 + 0.5 RRU (eventually consistent, each item rounded to 4 KB)
    assert.equal(got.Responses?.[runsTable]?.length, 2);
    await doc.send(
      new BatchWriteCommand({
        RequestItems: {
          [verdictsTable]: [
            { PutRequest: { Item: { runId: "meter", verdictKey: "a" } } },
            { PutRequest: { Item: { runId: "meter", verdictKey: "b" } } },
          ],
        },
      }),
    ); // 1 + 1 WRU
    const queried = await doc.send(
      new QueryCommand({
        TableName: verdictsTable,
        KeyConditionExpression: "runId = :run",
        ExpressionAttributeValues: { ":run": "meter" },
      }),
    ); // 2 × 21 bytes read: one 4 KB unit, eventually consistent = 0.5 RRU
    assert.equal(queried.Count, 2);
    await raw.send(new DescribeTableCommand({ TableName: runsTable })); // a request, no units

    assert.deepEqual(meter.snapshot().dynamodb, {
      writeUnits: 1 + 2 + 1 + 2,
      readUnits: 1 + 0.5 + 1 + 0.5,
      requests: 9,
    });
    assert.equal(meter.estimatedRequests(), 1, "only the refused conditional write is estimated");
    assert.deepEqual(meter.byOperation(), {
      "DynamoDB.BatchGetItem": 1,
      "DynamoDB.BatchWriteItem": 1,
      "DynamoDB.DescribeTable": 1,
      "DynamoDB.GetItem": 2,
      "DynamoDB.PutItem": 3,
      "DynamoDB.Query": 1,
    });
    assert.deepEqual(meter.snapshot().s3, { get: 0, put: 0, list: 0, other: 0 });
  });

  it("keeps a ReturnConsumedCapacity the caller chose, and estimates the units DynamoDB did not report", async () => {
    const out = await raw.send(
      new PutItemCommand({
        TableName: runsTable,
        Item: { runId: { S: big.runId }, blob: { S: big.blob } },
        ReturnConsumedCapacity: "NONE",
      }),
    );
    assert.equal(out.ConsumedCapacity, undefined, "the caller's NONE was kept");
    assert.deepEqual(meter.snapshot().dynamodb, { writeUnits: 2, readUnits: 0, requests: 1 });
    assert.equal(meter.estimatedRequests(), 1);
  });

  it("counts a client once when attached twice, and adds usages", async () => {
    meter.attach(doc);
    meter.attach(raw);
    await doc.send(new GetCommand({ TableName: runsTable, Key: small, ConsistentRead: true }));
    const once = meter.snapshot();
    assert.deepEqual(once.dynamodb, { readUnits: 1, writeUnits: 0, requests: 1 });
    assert.deepEqual(addUsage(once, once).dynamodb, { readUnits: 2, writeUnits: 0, requests: 2 });
  });
});
