import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import {
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from "@aws-sdk/client-dynamodb";
import { GetObjectCommand, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import aslValidator from "asl-validator";
import {
  ExecutionAbortedError,
  ExecutionError,
  StateMachine,
  type StateMachineDefinition,
} from "aws-local-stepfunctions";
import pLimit from "p-limit";

// aws-local-stepfunctions 3 calls Promise.withResolvers (Node 22+). Kept so that a run on an unsupported
// Node 20, which the CLI warns about, still works.
if (!("withResolvers" in Promise)) {
  Object.defineProperty(Promise, "withResolvers", {
    value<T>() {
      let resolve!: (value: T | PromiseLike<T>) => void;
      let reject!: (reason?: unknown) => void;
      const promise = new Promise<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

/** JSON as Step Functions passes it between states. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** A Lambda handler bound to a function ARN, invoked in-process. */
export type LocalLambda = (event: Json) => Promise<Json>;

export interface LocalServiceBindings {
  /** Handlers by the function ARN written into the definition. */
  lambdas: ReadonlyMap<string, LocalLambda>;
  s3: S3Client;
  dynamodb: DynamoDBClient;
  /** Receives what `events:putEvents` tasks publish (locally there is no event bus to deliver to). */
  publishEvent?: (event: PublishedEvent) => Promise<void>;
}

/** One entry of an `events:putEvents` task, as the local runner records it. */
export interface PublishedEvent {
  eventBusName: string;
  source: string;
  detailType: string;
  detail: Json;
}

export interface ExecutionResult {
  status: "SUCCEEDED" | "FAILED" | "ABORTED";
  output: Json | null;
  error: string | null;
  cause: string | null;
  executionArn: string;
}

/** Replaces every `${Name}` of an ASL text; an unknown or unused name is an error, so nothing drifts. */
export function substituteDefinition(text: string, substitutions: Readonly<Record<string, string>>): string {
  const used = new Set<string>();
  const result = text.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_, name: string) => {
    const value = substitutions[name];
    if (value === undefined)
      throw new Error(`the definition uses \${${name}} but no substitution was given for it`);
    used.add(name);
    return value;
  });
  const unused = Object.keys(substitutions).filter((n) => !used.has(n));
  if (unused.length > 0) throw new Error(`substitutions not used by the definition: ${unused.join(", ")}`);
  return result;
}

export async function loadDefinition(
  file: string,
  substitutions: Readonly<Record<string, string>>,
): Promise<JsonObject> {
  return JSON.parse(substituteDefinition(await readFile(file, "utf8"), substitutions)) as JsonObject;
}

const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Error thrown from a local task with the name Step Functions would report (used by Retry/Catch). */
export class StatesError extends Error {
  constructor(name: string, cause: string) {
    super(cause);
    this.name = name;
  }
}

/** Resolves a payload template (Parameters/ItemSelector/...) with aws-local-stepfunctions' own engine. */
async function resolveTemplate(template: Json, input: Json, context: JsonObject): Promise<Json> {
  // Validation compiles a JSON schema (~0.1 s); this one-state machine is built per item, so skip it.
  const machine = new StateMachine(
    { StartAt: "Resolve", States: { Resolve: { Type: "Pass", Parameters: template as never, End: true } } },
    { validationOptions: { noValidate: true } },
  );
  return (await machine.run(input as never, { context: context as never }).result) as Json;
}

async function readStream(body: { transformToString(): Promise<string> } | undefined): Promise<string> {
  return body ? body.transformToString() : "";
}

interface RunContext {
  bindings: LocalServiceBindings;
  execution: JsonObject;
  overrides: Record<string, (input: Json) => Promise<Json>>;
  /** Aborts the execution and its Map's child executions. */
  signal?: AbortSignal;
}

/** Runs an execution until it ends or `signal` aborts it (its result then rejects with ExecutionAbortedError). */
function runAbortably(
  machine: StateMachine,
  input: Json,
  options: Parameters<StateMachine["run"]>[1],
  signal: AbortSignal | undefined,
): Promise<unknown> {
  const execution = machine.run(input as never, options);
  if (!signal) return execution.result;
  const abort = () => execution.abort();
  if (signal.aborted) abort();
  else signal.addEventListener("abort", abort, { once: true });
  return execution.result.finally(() => signal.removeEventListener("abort", abort));
}

/** Service integrations the workflow uses, executed against local handlers and the embedded servers. */
function taskHandler(resource: string, stateName: string, ctx: RunContext): (input: Json) => Promise<Json> {
  const { bindings } = ctx;
  if (resource === "arn:aws:states:::lambda:invoke") {
    return async (input) => {
      if (!isObject(input) || typeof input.FunctionName !== "string")
        throw new StatesError("States.Runtime", `${stateName}: lambda:invoke needs FunctionName`);
      const handler = bindings.lambdas.get(input.FunctionName);
      if (!handler)
        throw new StatesError(
          "Lambda.ResourceNotFoundException",
          `no local handler for ${input.FunctionName}`,
        );
      // Payloads cross a JSON boundary, as they do on AWS.
      const payload = JSON.parse(JSON.stringify(input.Payload ?? null)) as Json;
      try {
        const result = await handler(payload);
        return {
          ExecutedVersion: "$LATEST",
          StatusCode: 200,
          Payload: JSON.parse(JSON.stringify(result ?? null)) as Json,
        };
      } catch (error: unknown) {
        const errorType = error instanceof Error ? error.name : "Error";
        const errorMessage = error instanceof Error ? error.message : String(error);
        // On AWS the Error is the function's errorType and the Cause its JSON error document.
        throw new StatesError(errorType, JSON.stringify({ errorType, errorMessage }));
      }
    };
  }
  const dynamo = /^arn:aws:states:::dynamodb:(getItem|putItem|updateItem|deleteItem)$/.exec(resource);
  if (dynamo) {
    const { dynamodb } = bindings;
    const commands: Record<string, (input: never) => Promise<{ $metadata: unknown }>> = {
      getItem: (i) => dynamodb.send(new GetItemCommand(i)),
      putItem: (i) => dynamodb.send(new PutItemCommand(i)),
      updateItem: (i) => dynamodb.send(new UpdateItemCommand(i)),
      deleteItem: (i) => dynamodb.send(new DeleteItemCommand(i)),
    };
    const send = commands[dynamo[1] ?? ""];
    if (!send) throw new Error(`${stateName}: unsupported DynamoDB action ${resource}`);
    return async (input) => {
      try {
        const { $metadata: _, ...output } = await send(input as never);
        return JSON.parse(JSON.stringify(output)) as Json;
      } catch (error: unknown) {
        const name = error instanceof Error ? error.name : "Error";
        throw new StatesError(`DynamoDB.${name}`, error instanceof Error ? error.message : String(error));
      }
    };
  }
  if (resource === "arn:aws:states:::events:putEvents") {
    return async (input) => {
      const entries = isObject(input) && Array.isArray(input.Entries) ? input.Entries : null;
      if (!entries || entries.length === 0)
        throw new StatesError("States.Runtime", `${stateName}: events:putEvents needs Entries`);
      const results: Json[] = [];
      for (const entry of entries) {
        if (!isObject(entry) || typeof entry.Source !== "string" || typeof entry.DetailType !== "string")
          throw new StatesError(
            "EventBridge.ValidationException",
            `${stateName}: an entry needs Source and DetailType`,
          );
        // On AWS, Detail is a JSON string or (in Parameters) an object that Step Functions serialises.
        const detail =
          typeof entry.Detail === "string" ? (JSON.parse(entry.Detail) as Json) : (entry.Detail ?? {});
        await bindings.publishEvent?.({
          eventBusName: typeof entry.EventBusName === "string" ? entry.EventBusName : "default",
          source: entry.Source,
          detailType: entry.DetailType,
          detail: JSON.parse(JSON.stringify(detail)) as Json,
        });
        results.push({ EventId: randomUUID() });
      }
      return { Entries: results, FailedEntryCount: 0 };
    };
  }
  throw new Error(`${stateName}: the local runner does not support the resource ${resource}`);
}

const LOCAL_DISTRIBUTED_MAP = "arn:aws:states:::mmsafe:local-distributed-map";

/**
 * Carries out a Distributed Map the way Step Functions does — ItemReader (S3 JSON/JSONL), ItemSelector,
 * ItemBatcher, MaxConcurrency(Path), one child execution per item, ToleratedFailurePercentage/Count(Path)
 * and ResultWriter — because aws-local-stepfunctions ignores those fields.
 */
function distributedMapHandler(
  stateName: string,
  map: JsonObject,
  ctx: RunContext,
): (input: Json) => Promise<Json> {
  const processor = map.ItemProcessor;
  if (!isObject(processor)) throw new Error(`${stateName}: a Map needs an ItemProcessor`);
  const { ProcessorConfig: _, ...childDefinition } = processor;
  // The whole definition, children included, was validated once in executeLocally.
  const child = new StateMachine(childDefinition as unknown as StateMachineDefinition, {
    validationOptions: { noValidate: true },
  });

  const number = async (field: string, input: Json, fallback: number): Promise<number> => {
    if (typeof map[field] === "number") return map[field] as number;
    const pathField = map[`${field}Path`];
    if (typeof pathField !== "string") return fallback;
    const value = await resolveTemplate({ "v.$": pathField }, input, ctx.execution);
    const n = isObject(value) ? value.v : null;
    if (typeof n !== "number")
      throw new StatesError("States.Runtime", `${stateName}: ${field}Path ${pathField} is not a number`);
    return n;
  };

  return async (input) => {
    // 1. Items: from S3 (ItemReader) or the input (ItemsPath).
    let items: Json[];
    const reader = map.ItemReader;
    if (isObject(reader)) {
      if (reader.Resource !== "arn:aws:states:::s3:getObject")
        throw new Error(`${stateName}: ItemReader ${String(reader.Resource)} is not supported locally`);
      const params = await resolveTemplate(reader.Parameters ?? {}, input, ctx.execution);
      if (!isObject(params) || typeof params.Bucket !== "string" || typeof params.Key !== "string") {
        throw new StatesError("States.ItemReaderFailed", `${stateName}: ItemReader needs Bucket and Key`);
      }
      let text: string;
      try {
        text = await readStream(
          (await ctx.bindings.s3.send(new GetObjectCommand({ Bucket: params.Bucket, Key: params.Key }))).Body,
        );
      } catch (error: unknown) {
        throw new StatesError(
          "States.ItemReaderFailed",
          `${stateName}: cannot read s3://${params.Bucket}/${params.Key}: ${String(error)}`,
        );
      }
      const inputType = isObject(reader.ReaderConfig) ? reader.ReaderConfig.InputType : "JSON";
      items =
        inputType === "JSONL"
          ? text
              .split("\n")
              .filter((l) => l.trim())
              .map((l) => JSON.parse(l) as Json)
          : (JSON.parse(text) as Json[]);
      if (!Array.isArray(items))
        throw new StatesError(
          "States.ItemReaderFailed",
          `${stateName}: s3://${params.Bucket}/${params.Key} is not a JSON array`,
        );
    } else {
      const selected = await resolveTemplate(
        { "v.$": typeof map.ItemsPath === "string" ? map.ItemsPath : "$" },
        input,
        ctx.execution,
      );
      const value = isObject(selected) ? selected.v : null;
      if (!Array.isArray(value))
        throw new StatesError("States.Runtime", `${stateName}: ItemsPath does not select an array`);
      items = value;
    }

    // 2. ItemSelector, then ItemBatcher.
    let executionsInput: Json[] = [];
    for (let index = 0; index < items.length; index++) {
      const item = items[index] ?? null;
      executionsInput.push(
        map.ItemSelector === undefined
          ? item
          : await resolveTemplate(map.ItemSelector, input, {
              ...ctx.execution,
              Map: { Item: { Index: index, Value: item } },
            }),
      );
    }
    const batcher = map.ItemBatcher;
    if (isObject(batcher)) {
      const size =
        typeof batcher.MaxItemsPerBatch === "number" ? batcher.MaxItemsPerBatch : executionsInput.length;
      const batchInput =
        batcher.BatchInput === undefined
          ? null
          : await resolveTemplate(batcher.BatchInput, input, ctx.execution);
      const batches: Json[] = [];
      for (let i = 0; i < executionsInput.length; i += size) {
        batches.push({
          Items: executionsInput.slice(i, i + size),
          ...(batchInput === null ? {} : { BatchInput: batchInput }),
        });
      }
      executionsInput = batches;
    }

    // 3. Child executions, bounded, with the failure tolerance.
    const maxConcurrency = await number("MaxConcurrency", input, 0);
    const toleratedPercent = await number("ToleratedFailurePercentage", input, 0);
    const toleratedCount = await number("ToleratedFailureCount", input, 0);
    const total = executionsInput.length;
    const tolerated = Math.max(toleratedCount, Math.floor((toleratedPercent / 100) * total));
    const succeeded: JsonObject[] = [];
    const outputs = new Map<number, Json>();
    const failed: JsonObject[] = [];
    const limit = pLimit(maxConcurrency > 0 ? maxConcurrency : 10_000);
    await Promise.all(
      executionsInput.map((childInput, index) =>
        limit(async () => {
          if (failed.length > tolerated) return; // the Map run is already failing: start no more children
          if (ctx.signal?.aborted) return; // the execution was stopped
          const name = `${String(ctx.execution.Name)}-${stateName}-${index}`;
          try {
            const output = (await runAbortably(
              child,
              childInput,
              {
                overrides: { taskResourceLocalHandlers: ctx.overrides as never },
                context: {
                  Execution: { ...(ctx.execution.Execution as JsonObject), Name: name, Input: childInput },
                } as never,
              },
              ctx.signal,
            )) as Json;
            outputs.set(index, output);
            succeeded.push({
              Name: name,
              Input: JSON.stringify(childInput),
              Output: JSON.stringify(output),
              Status: "SUCCEEDED",
            });
          } catch (error: unknown) {
            const cause =
              error instanceof ExecutionError && error.cause instanceof Error ? error.cause : error;
            failed.push({
              Name: name,
              Input: JSON.stringify(childInput),
              Status: "FAILED",
              Error: cause instanceof Error ? cause.name : "Error",
              Cause: cause instanceof Error ? cause.message : String(cause),
            });
          }
        }),
      ),
    );

    // 4. ResultWriter, or the results inline.
    const writer = map.ResultWriter;
    let output: Json;
    if (isObject(writer)) {
      const params = await resolveTemplate(writer.Parameters ?? {}, input, ctx.execution);
      if (!isObject(params) || typeof params.Bucket !== "string")
        throw new StatesError("States.ResultWriterFailed", `${stateName}: ResultWriter needs a Bucket`);
      const mapRunId = randomUUID();
      const prefix = `${typeof params.Prefix === "string" ? params.Prefix : ""}/${mapRunId}`;
      const put = (key: string, body: Json) =>
        ctx.bindings.s3.send(
          new PutObjectCommand({
            Bucket: params.Bucket as string,
            Key: key,
            Body: JSON.stringify(body),
            ContentType: "application/json",
          }),
        );
      const files: JsonObject[] = [];
      for (const [status, list] of [
        ["SUCCEEDED", succeeded],
        ["FAILED", failed],
      ] as const) {
        if (list.length === 0) continue;
        const key = `${prefix}/${status}_0.json`;
        await put(key, list);
        files.push({ Key: key, Size: JSON.stringify(list).length });
      }
      const manifestKey = `${prefix}/manifest.json`;
      await put(manifestKey, {
        DestinationBucket: params.Bucket,
        MapRunArn: `${String((ctx.execution.Execution as JsonObject).Id)}:${mapRunId}`,
        ResultFiles: {
          SUCCEEDED: files.filter((f) => String(f.Key).includes("SUCCEEDED")),
          FAILED: files.filter((f) => String(f.Key).includes("FAILED")),
          PENDING: [],
        },
      });
      output = {
        MapRunArn: `${String((ctx.execution.Execution as JsonObject).Id)}:${mapRunId}`,
        ResultWriterDetails: { Bucket: params.Bucket, Key: manifestKey },
      };
    } else {
      // Inline results come back in item order, whatever order the children finished in.
      output = [...outputs.entries()].sort(([a], [b]) => a - b).map(([, value]) => value);
    }

    if (failed.length > tolerated) {
      const first = failed[0];
      throw new StatesError(
        "States.ExceedToleratedFailureThreshold",
        `${failed.length} of ${total} child executions failed (tolerated: ${tolerated}); first: ${String(first?.Error)}: ${String(first?.Cause)}`,
      );
    }
    return output;
  };
}

/**
 * A local child Task's TimeoutSeconds: 23 days, in effect none (Node's timers hold at most 2^31 − 1 ms, about
 * 24.8 days; a longer one would fire at once).
 */
const UNTIMED_SECONDS = 2_000_000;

/**
 * Rewrites a definition for aws-local-stepfunctions: each Task gets a local handler for its service
 * integration, and each Distributed Map becomes a Task (same I/O processing, Retry and Catch) whose
 * handler carries out the Distributed Map.
 *
 * Inside a Distributed Map's item processor (`inChild`), a Task's TimeoutSeconds is lifted: locally every
 * child runs in one process and shares its model gates, so a child's wall time includes waiting for slots
 * that other children hold, which is not its own work (on AWS each child has its Lambda to itself).
 */
function prepare(states: JsonObject, ctx: RunContext, inChild = false): JsonObject {
  const out: JsonObject = {};
  for (const [name, state] of Object.entries(states)) {
    if (!isObject(state)) continue;
    if (name in ctx.overrides)
      throw new Error(`state name ${name} is used twice; the local runner needs unique state names`);
    if (state.Type === "Task" && typeof state.Resource === "string") {
      ctx.overrides[name] = taskHandler(state.Resource, name, ctx);
      // Not left out: aws-local-stepfunctions would then apply its own default of 60 s (AWS's is none).
      out[name] = inChild ? { ...state, TimeoutSeconds: UNTIMED_SECONDS } : state;
    } else if (
      state.Type === "Map" &&
      isObject(state.ItemProcessor) &&
      isObject(state.ItemProcessor.ProcessorConfig) &&
      state.ItemProcessor.ProcessorConfig.Mode === "DISTRIBUTED"
    ) {
      const processor = state.ItemProcessor;
      const preparedChild: JsonObject = {
        ...processor,
        States: prepare(processor.States as JsonObject, ctx, true),
      };
      ctx.overrides[name] = distributedMapHandler(name, { ...state, ItemProcessor: preparedChild }, ctx);
      const kept = [
        "Comment",
        "InputPath",
        "ResultSelector",
        "ResultPath",
        "OutputPath",
        "Retry",
        "Catch",
        "Next",
        "End",
      ];
      const task: JsonObject = { Type: "Task", Resource: LOCAL_DISTRIBUTED_MAP, TimeoutSeconds: 604_800 };
      for (const field of kept) if (field in state) task[field] = state[field] as Json;
      out[name] = task;
    } else if (state.Type === "Map" || state.Type === "Parallel") {
      throw new Error(
        `${name}: inline ${state.Type} states are not used by mmsafe's workflow and not bound locally`,
      );
    } else {
      out[name] = state;
    }
  }
  return out;
}

const validated = new Set<string>();

/**
 * Validates a definition as written (Distributed Map fields included) with asl-validator, once per process
 * per definition: compiling the validator costs a few hundred milliseconds.
 */
export function assertValidDefinition(definition: JsonObject): void {
  const text = JSON.stringify(definition);
  if (validated.has(text)) return;
  const { isValid, errorsText } = aslValidator(definition as never);
  if (!isValid) throw new Error(`the state machine definition is invalid:\n${errorsText("\n")}`);
  validated.add(text);
}

/**
 * Executes a state machine definition locally: the very ASL file CDK deploys, with Lambda tasks bound to
 * in-process handlers and S3/DynamoDB integrations pointed at the embedded servers.
 */
export async function executeLocally(
  definition: JsonObject,
  input: Json,
  bindings: LocalServiceBindings,
  executionName: string,
  /** Aborts the execution (as StopExecution does): no state starts after it, and it ends ABORTED. */
  signal?: AbortSignal,
): Promise<ExecutionResult> {
  const executionArn = `arn:aws:states:us-east-1:000000000000:execution:mmsafe-local:${executionName}`;
  const ctx: RunContext = {
    bindings,
    overrides: {},
    ...(signal ? { signal } : {}),
    execution: {
      Name: executionName,
      Execution: {
        Id: executionArn,
        Name: executionName,
        Input: input,
        StartTime: new Date().toISOString(),
        RoleArn: "arn:aws:iam::000000000000:role/local",
      },
      StateMachine: {
        Id: "arn:aws:states:us-east-1:000000000000:stateMachine:mmsafe-local",
        Name: "mmsafe-local",
      },
    },
  };
  const prepared = { ...definition, States: prepare(definition.States as JsonObject, ctx) };
  assertValidDefinition(definition);
  const machine = new StateMachine(prepared as unknown as StateMachineDefinition, {
    validationOptions: { noValidate: true },
  });
  try {
    const output = (await runAbortably(
      machine,
      input,
      {
        overrides: { taskResourceLocalHandlers: ctx.overrides as never },
        context: { Execution: ctx.execution.Execution, StateMachine: ctx.execution.StateMachine } as never,
      },
      signal,
    )) as Json;
    return { status: "SUCCEEDED", output, error: null, cause: null, executionArn };
  } catch (error: unknown) {
    if (error instanceof ExecutionAbortedError)
      return { status: "ABORTED", output: null, error: "States.Aborted", cause: "stopped", executionArn };
    const cause = error instanceof ExecutionError && error.cause instanceof Error ? error.cause : error;
    return {
      status: "FAILED",
      output: null,
      error: cause instanceof Error ? cause.name : "Error",
      cause: cause instanceof Error ? cause.message : String(cause),
      executionArn,
    };
  }
}
