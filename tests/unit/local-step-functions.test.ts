import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { ASL_SUBSTITUTIONS, WORKFLOW_DEFINITION } from "../../src/deployment/storage-layout.ts";
import {
  executeLocally,
  type Json,
  type LocalLambda,
  loadDefinition,
  StatesError,
  substituteDefinition,
} from "../../src/local/step-functions.ts";

/** An in-memory stand-in for the two S3 calls the executor makes (ItemReader, ResultWriter). */
function memoryS3(objects: Map<string, string>): S3Client {
  return {
    async send(command: unknown) {
      if (command instanceof GetObjectCommand) {
        const text = objects.get(`${command.input.Bucket}/${command.input.Key}`);
        if (text === undefined) throw Object.assign(new Error("NoSuchKey"), { name: "NoSuchKey" });
        return { Body: { transformToString: async () => text } };
      }
      if (command instanceof PutObjectCommand) {
        objects.set(`${command.input.Bucket}/${command.input.Key}`, String(command.input.Body));
        return {};
      }
      throw new Error("unexpected S3 command");
    },
  } as unknown as S3Client;
}

const noDynamo = {} as DynamoDBClient;
const FN = "arn:aws:lambda:us-east-1:000000000000:function:work";

/** A Distributed Map over one Task; `work` adds fields to the Task (a Retry). */
function mapDefinition(map: Record<string, Json>, work: Record<string, Json> = {}): Record<string, Json> {
  return {
    StartAt: "Fan",
    States: {
      Fan: {
        Type: "Map",
        ItemProcessor: {
          ProcessorConfig: { Mode: "DISTRIBUTED", ExecutionType: "EXPRESS" },
          StartAt: "Work",
          States: {
            Work: {
              Type: "Task",
              Resource: "arn:aws:states:::lambda:invoke",
              Parameters: { FunctionName: FN, "Payload.$": "$" },
              OutputPath: "$.Payload",
              ...work,
              End: true,
            },
          },
        },
        ...map,
        End: true,
      },
    },
  };
}

describe("definition substitutions", () => {
  it("replaces every placeholder and rejects unknown or unused names", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ASL placeholders, not template literals
    assert.equal(substituteDefinition('{"a":"${X}","b":"${X}"}', { X: "1" }), '{"a":"1","b":"1"}');
    // biome-ignore lint/suspicious/noTemplateCurlyInString: ASL placeholders, not template literals
    assert.throws(() => substituteDefinition('{"a":"${Y}"}', { X: "1" }), /uses \$\{Y\} but no substitution/);
    assert.throws(() => substituteDefinition('{"a":"1"}', { X: "1" }), /not used by the definition: X/);
  });

  it("the workflow file uses exactly the shared placeholder names", async () => {
    const names = Object.fromEntries(
      ASL_SUBSTITUTIONS.map((n) => [n, `arn:aws:lambda:us-east-1:000000000000:function:${n}`]),
    );
    const definition = await loadDefinition(WORKFLOW_DEFINITION, names);
    assert.equal(definition.StartAt, "Plan");
  });
});

describe("lambda:invoke integration", () => {
  it("returns the Lambda integration's shape and reports a handler's error as Step Functions does", async () => {
    const lambdas = new Map<string, LocalLambda>([
      [
        FN,
        async (event) => {
          if (event === "boom") throw Object.assign(new Error("it broke"), { name: "ShardIncomplete" });
          return { echoed: event };
        },
      ],
    ]);
    const definition: Record<string, Json> = {
      StartAt: "Call",
      States: {
        Call: {
          Type: "Task",
          Resource: "arn:aws:states:::lambda:invoke",
          Parameters: { FunctionName: FN, "Payload.$": "$.value" },
          Catch: [{ ErrorEquals: ["ShardIncomplete"], ResultPath: "$.caught", Next: "Caught" }],
          End: true,
        },
        Caught: { Type: "Pass", End: true },
      },
    };
    const ok = await executeLocally(
      definition,
      { value: 7 },
      { lambdas, s3: memoryS3(new Map()), dynamodb: noDynamo },
      "ok",
    );
    assert.deepEqual(ok.output, { ExecutedVersion: "$LATEST", StatusCode: 200, Payload: { echoed: 7 } });

    const caught = await executeLocally(
      definition,
      { value: "boom" },
      { lambdas, s3: memoryS3(new Map()), dynamodb: noDynamo },
      "c",
    );
    assert.equal(caught.status, "SUCCEEDED");
    const error = (caught.output as { caught: { Error: string; Cause: string } }).caught;
    assert.equal(error.Error, "ShardIncomplete");
    assert.deepEqual(JSON.parse(error.Cause), { errorType: "ShardIncomplete", errorMessage: "it broke" });
  });
});

describe("Distributed Map, carried out locally", () => {
  it("stops on abort: no child starts and no retry is made after it, and the execution ends ABORTED", async () => {
    const objects = new Map([["b/items.json", JSON.stringify([1, 2, 3, 4, 5, 6])]]);
    const stop = new AbortController();
    const invoked: Json[] = [];
    const lambdas = new Map<string, LocalLambda>([
      [
        FN,
        async (event) => {
          invoked.push(event);
          // The first invocation stops the execution, then fails as a shard told to stop does.
          stop.abort();
          throw Object.assign(new Error("stopped early"), { name: "ShardIncomplete" });
        },
      ],
    ]);
    const definition = mapDefinition(
      {
        ItemReader: {
          Resource: "arn:aws:states:::s3:getObject",
          ReaderConfig: { InputType: "JSON" },
          Parameters: { Bucket: "b", Key: "items.json" },
        },
        MaxConcurrency: 1,
      },
      { Retry: [{ ErrorEquals: ["ShardIncomplete"], IntervalSeconds: 1, MaxAttempts: 5 }] },
    );
    const result = await executeLocally(
      definition,
      {},
      { lambdas, s3: memoryS3(objects), dynamodb: noDynamo },
      "stopped",
      stop.signal,
    );
    assert.equal(result.status, "ABORTED");
    assert.deepEqual(invoked, [1], "one invocation: no retry of it, and no other child started");
  });

  it("gives a child's Task no time limit: locally a child's wall time includes waiting for shared slots", async () => {
    const objects = new Map([["b/items.json", JSON.stringify([1, 2])]]);
    const lambdas = new Map<string, LocalLambda>([
      [
        FN,
        async () => {
          // Longer than the child Task's TimeoutSeconds of 1 below.
          await new Promise((r) => setTimeout(r, 1500));
          return { done: true };
        },
      ],
    ]);
    const definition = mapDefinition({
      ItemReader: {
        Resource: "arn:aws:states:::s3:getObject",
        ReaderConfig: { InputType: "JSON" },
        Parameters: { "Bucket.$": "$.bucket", Key: "items.json" },
      },
    });
    const work = (
      ((definition.States as Record<string, Json>).Fan as Record<string, Json>).ItemProcessor as Record<
        string,
        Json
      >
    ).States as Record<string, Record<string, Json>>;
    if (work.Work) work.Work.TimeoutSeconds = 1;
    const result = await executeLocally(
      definition,
      { bucket: "b" },
      { lambdas, s3: memoryS3(objects), dynamodb: noDynamo },
      "untimed",
    );
    assert.equal(result.status, "SUCCEEDED", String(result.cause));
  });

  it("reads items from S3, applies ItemSelector, bounds concurrency and writes results like ResultWriter", async () => {
    const objects = new Map([["b/items.json", JSON.stringify([10, 20, 30, 40, 50])]]);
    let inFlight = 0;
    let maxInFlight = 0;
    const seen: Json[] = [];
    const lambdas = new Map<string, LocalLambda>([
      [
        FN,
        async (event) => {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await new Promise((r) => setTimeout(r, 20));
          inFlight--;
          seen.push(event);
          return { doubled: Number((event as { value: number }).value) * 2 };
        },
      ],
    ]);
    const definition = mapDefinition({
      ItemReader: {
        Resource: "arn:aws:states:::s3:getObject",
        ReaderConfig: { InputType: "JSON" },
        Parameters: { "Bucket.$": "$.bucket", Key: "items.json" },
      },
      ItemSelector: { "value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "tag.$": "$.tag" },
      MaxConcurrencyPath: "$.concurrency",
      ResultWriter: {
        Resource: "arn:aws:states:::s3:putObject",
        Parameters: { "Bucket.$": "$.bucket", Prefix: "out" },
      },
    });
    const result = await executeLocally(
      definition,
      { bucket: "b", tag: "t", concurrency: 2 },
      { lambdas, s3: memoryS3(objects), dynamodb: noDynamo },
      "map",
    );
    assert.equal(result.status, "SUCCEEDED", String(result.cause));
    assert.equal(maxInFlight, 2);
    assert.deepEqual(seen.map((e) => (e as { index: number }).index).sort(), [0, 1, 2, 3, 4]);
    assert.deepEqual(
      seen.find((e) => (e as { index: number }).index === 3),
      { value: 40, index: 3, tag: "t" },
    );
    const details = (result.output as { ResultWriterDetails: { Bucket: string; Key: string } })
      .ResultWriterDetails;
    assert.equal(details.Bucket, "b");
    const manifest = JSON.parse(objects.get(`b/${details.Key}`) ?? "{}") as {
      ResultFiles: { SUCCEEDED: { Key: string }[] };
    };
    const succeeded = JSON.parse(objects.get(`b/${manifest.ResultFiles.SUCCEEDED[0]?.Key}`) ?? "[]") as {
      Output: string;
    }[];
    assert.deepEqual(
      succeeded.map((s) => JSON.parse(s.Output).doubled).sort((a, b) => a - b),
      [20, 40, 60, 80, 100],
    );
  });

  it("fails the map when more children fail than ToleratedFailurePercentage allows, and tolerates up to it", async () => {
    const lambdas = new Map<string, LocalLambda>([
      [
        FN,
        async (event) => {
          if (event === 3) throw new StatesError("Boom", "item 3");
          return event;
        },
      ],
    ]);
    const items = Array.from({ length: 10 }, (_, i) => i + 1);
    const run = (tolerated: number) =>
      executeLocally(
        mapDefinition({ ItemsPath: "$.items", ToleratedFailurePercentage: tolerated }),
        { items },
        { lambdas, s3: memoryS3(new Map()), dynamodb: noDynamo },
        `tolerate-${tolerated}`,
      );
    const strict = await run(0);
    assert.equal(strict.status, "FAILED");
    assert.equal(strict.error, "States.ExceedToleratedFailureThreshold");
    assert.match(strict.cause ?? "", /1 of 10 child executions failed/);
    const lenient = await run(10);
    assert.equal(lenient.status, "SUCCEEDED");
    assert.deepEqual(lenient.output, [1, 2, 4, 5, 6, 7, 8, 9, 10]);
  });

  it("batches items with ItemBatcher", async () => {
    const batches: Json[] = [];
    const lambdas = new Map<string, LocalLambda>([
      [
        FN,
        async (event) => {
          batches.push(event);
          return null;
        },
      ],
    ]);
    await executeLocally(
      mapDefinition({
        ItemsPath: "$.items",
        ItemBatcher: { MaxItemsPerBatch: 2, BatchInput: { "run.$": "$.run" } },
        MaxConcurrency: 1,
      }),
      { items: ["a", "b", "c"], run: "r1" },
      { lambdas, s3: memoryS3(new Map()), dynamodb: noDynamo },
      "batch",
    );
    assert.deepEqual(batches, [
      { Items: ["a", "b"], BatchInput: { run: "r1" } },
      { Items: ["c"], BatchInput: { run: "r1" } },
    ]);
  });
});
