/**
 * Counts the AWS requests made through SDK v3 clients, for the cost of a run (deployment/cost.ts): S3 requests
 * grouped as S3 bills them, DynamoDB requests and the read/write request units they consumed.
 *
 * It attaches two middlewares to a client's stack:
 * - `initialize`: asks DynamoDB for `ReturnConsumedCapacity: "TOTAL"` on the operations that accept it,
 *   unless the caller chose a value;
 * - `deserialize`, high priority (so it wraps the deserializer and sits inside the retry loop): counts
 *   every attempt, successful or not, and sums the `ConsumedCapacity` DynamoDB returns.
 *
 * Where DynamoDB reports no capacity the units are estimated from the request (see `estimateUnits`).
 */
import { type AwsUsage, emptyAwsUsage } from "../deployment/cost.ts";

export { type AwsUsage, addUsage } from "../deployment/cost.ts";

/** The middleware arguments the meter reads: the operation input (marshalled, at the deserialize step). */
interface MeterArgs {
  input: object;
}
type MeterHandler = (args: MeterArgs) => Promise<{ output?: unknown }>;
type MeterMiddleware = (
  next: MeterHandler,
  context: { clientName?: string; commandName?: string },
) => MeterHandler;

/** The middleware stack calls the meter makes (a subset of @smithy/types' MiddlewareStack). */
interface MeterStack {
  add(middleware: MeterMiddleware, options: { step: "initialize"; name: string }): void;
  add(middleware: MeterMiddleware, options: { step: "deserialize"; name: string; priority: "high" }): void;
}

/**
 * Any SDK v3 client (S3Client, DynamoDBClient, DynamoDBDocumentClient…). Typed loosely: the SDK's
 * per-service generic stacks are not assignable to one middleware type, and the meter only reads
 * `commandName`, `clientName`, the input and the output.
 */
export interface MeterableClient {
  middlewareStack: { add: (...args: never[]) => void };
}

/** DynamoDB operations that read, and those that write (for a `CapacityUnits` without read/write split). */
const DYNAMODB_READS = new Set(["GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems"]);
const DYNAMODB_WRITES = new Set([
  "PutItem",
  "UpdateItem",
  "DeleteItem",
  "BatchWriteItem",
  "TransactWriteItems",
]);
/** PartiQL operations also accept ReturnConsumedCapacity; mmsafe does not use them, so they are not metered. */

const S3_GETS = new Set(["GetObject"]);
const S3_PUTS = new Set([
  "PutObject",
  "CopyObject",
  "PostObject",
  "CreateMultipartUpload",
  "UploadPart",
  "UploadPartCopy",
  "CompleteMultipartUpload",
]);
const S3_LISTS = new Set([
  "ListObjectsV2",
  "ListObjects",
  "ListObjectVersions",
  "ListBuckets",
  "ListMultipartUploads",
  "ListParts",
]);

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const num = (value: unknown): number | undefined => (typeof value === "number" ? value : undefined);

/** Read and write units of a ConsumedCapacity (an object, or an array for batch and transact operations). */
function consumedUnits(
  consumed: unknown,
  operation: string,
): { read: number; write: number; reported: boolean } {
  const entries = Array.isArray(consumed) ? consumed : consumed === undefined ? [] : [consumed];
  let read = 0;
  let write = 0;
  let reported = false;
  for (const entry of entries) {
    if (!isRecord(entry)) continue;
    const r = num(entry.ReadCapacityUnits);
    const w = num(entry.WriteCapacityUnits);
    const total = num(entry.CapacityUnits);
    if (r !== undefined || w !== undefined) {
      read += r ?? 0;
      write += w ?? 0;
      reported = true;
    } else if (total !== undefined) {
      if (DYNAMODB_WRITES.has(operation)) write += total;
      else read += total;
      reported = true;
    }
  }
  return { read, write, reported };
}

const utf8Bytes = (s: string): number => Buffer.byteLength(s, "utf8");

/** Size of a marshalled attribute value by DynamoDB's item-size rules (numbers approximated). */
function attributeBytes(value: unknown): number {
  if (!isRecord(value)) return 0;
  if (typeof value.S === "string") return utf8Bytes(value.S);
  if (typeof value.N === "string") return Math.ceil(value.N.replace(/[-.]|e.*$/gi, "").length / 2) + 1;
  if (value.B instanceof Uint8Array) return value.B.byteLength;
  if (value.BOOL !== undefined || value.NULL !== undefined) return 1;
  if (Array.isArray(value.SS)) return value.SS.reduce((s: number, v: unknown) => s + utf8Bytes(String(v)), 0);
  if (Array.isArray(value.NS)) return value.NS.reduce((s: number, v: unknown) => s + String(v).length, 0);
  if (Array.isArray(value.BS))
    return value.BS.reduce((s: number, v: unknown) => s + (v instanceof Uint8Array ? v.byteLength : 0), 0);
  if (Array.isArray(value.L))
    return 3 + value.L.reduce((s: number, v: unknown) => s + 1 + attributeBytes(v), 0);
  if (isRecord(value.M)) return 3 + Object.keys(value.M).length + itemBytes(value.M);
  return 0;
}

/** Size of a marshalled DynamoDB item: attribute names plus values (DynamoDB's item-size rules). */
export function itemBytes(item: unknown): number {
  if (!isRecord(item)) return 0;
  let bytes = 0;
  for (const [name, value] of Object.entries(item)) bytes += utf8Bytes(name) + attributeBytes(value);
  return bytes;
}

/** Write units of writing one marshalled item: 1 per KB started, at least 1. */
const writeUnitsOf = (item: unknown): number => Math.max(1, Math.ceil(itemBytes(item) / 1024));

/**
 * Units of a request DynamoDB reported no capacity for (ReturnConsumedCapacity "NONE" chosen by the caller,
 * or an emulator that does not report it): estimated from the request alone.
 * - writes: ceil(item bytes / 1 KB) per put item, 1 per update or delete (the stored size is unknown);
 * - reads: per key 1 unit of 4 KB, halved when eventually consistent; a Query or Scan counts one such unit
 *   (its items are unknown here), so reads are a lower bound.
 */
function estimateUnits(operation: string, input: Record<string, unknown>): { read: number; write: number } {
  const factor = (consistent: unknown) => (consistent === true ? 1 : 0.5);
  switch (operation) {
    case "PutItem":
      return { read: 0, write: writeUnitsOf(input.Item) };
    case "UpdateItem":
    case "DeleteItem":
      return { read: 0, write: 1 };
    case "BatchWriteItem": {
      let write = 0;
      for (const requests of Object.values(isRecord(input.RequestItems) ? input.RequestItems : {})) {
        for (const request of Array.isArray(requests) ? requests : []) {
          if (isRecord(request) && isRecord(request.PutRequest))
            write += writeUnitsOf(request.PutRequest.Item);
          else write += 1;
        }
      }
      return { read: 0, write };
    }
    case "GetItem":
    case "Query":
    case "Scan":
      return { read: factor(input.ConsistentRead), write: 0 };
    case "BatchGetItem": {
      let read = 0;
      for (const table of Object.values(isRecord(input.RequestItems) ? input.RequestItems : {})) {
        if (!isRecord(table) || !Array.isArray(table.Keys)) continue;
        read += table.Keys.length * factor(table.ConsistentRead);
      }
      return { read, write: 0 };
    }
    default:
      return { read: 0, write: 0 };
  }
}

const isConditionalCheckFailed = (error: unknown): boolean =>
  error instanceof Error && error.name === "ConditionalCheckFailedException";

let nextMeterId = 0;

/**
 * Counts the requests of the clients it is attached to. One meter may watch several clients; attaching
 * twice to the same client (or to a DynamoDBDocumentClient and the DynamoDBClient it wraps, which share a
 * stack) counts once.
 */
export class UsageMeter {
  private usage: AwsUsage = emptyAwsUsage();
  private operations = new Map<string, number>();
  private estimated = 0;
  private readonly attached = new WeakSet<object>();
  private readonly name = `mmsafeUsageMeter${nextMeterId++}`;

  attach(client: MeterableClient): void {
    const stack = client.middlewareStack as unknown as MeterStack;
    if (this.attached.has(stack)) return;
    this.attached.add(stack);

    stack.add(
      (next, context) => async (args) => {
        const operation = operationOf(context.commandName);
        if (
          context.clientName === "DynamoDBClient" &&
          (DYNAMODB_READS.has(operation) || DYNAMODB_WRITES.has(operation)) &&
          (args.input as { ReturnConsumedCapacity?: unknown }).ReturnConsumedCapacity === undefined
        ) {
          return next({ ...args, input: { ...args.input, ReturnConsumedCapacity: "TOTAL" } });
        }
        return next(args);
      },
      { step: "initialize", name: `${this.name}Capacity` },
    );

    stack.add(
      (next, context) => async (args) => {
        const operation = operationOf(context.commandName);
        const client = context.clientName ?? "";
        if (client === "S3Client") {
          try {
            return await next(args);
          } finally {
            this.countS3(operation); // S3 bills failed requests (a 404 on GET or HEAD) too
          }
        }
        if (client !== "DynamoDBClient") return next(args);
        const input = args.input as Record<string, unknown>;
        this.count(`DynamoDB.${operation}`);
        this.usage.dynamodb.requests++;
        let result: Awaited<ReturnType<MeterHandler>>;
        try {
          result = await next(args);
        } catch (error: unknown) {
          if (isConditionalCheckFailed(error) && DYNAMODB_WRITES.has(operation)) {
            // A refused conditional write still consumes write units: the size of the larger of the
            // stored item and the one written, at least 1. DynamoDB returns no ConsumedCapacity with the
            // error (ReturnValuesOnConditionCheckFailure returns the stored item, not the units), so the
            // written item's size is used: exact when a retry re-writes the same item (mmsafe's case,
            // verdicts of ≤1 KB → 1 WRU), a lower bound otherwise.
            this.usage.dynamodb.writeUnits += estimateUnits(operation, input).write;
            this.estimated++;
          }
          // Throttled, invalid and failed requests consume no capacity.
          throw error;
        }
        const output = isRecord(result.output) ? result.output : {};
        const units = consumedUnits(output.ConsumedCapacity, operation);
        if (units.reported) {
          this.usage.dynamodb.readUnits += units.read;
          this.usage.dynamodb.writeUnits += units.write;
        } else if (DYNAMODB_READS.has(operation) || DYNAMODB_WRITES.has(operation)) {
          const estimate = estimateUnits(operation, input);
          this.usage.dynamodb.readUnits += estimate.read;
          this.usage.dynamodb.writeUnits += estimate.write;
          this.estimated++;
        }
        return result;
      },
      { step: "deserialize", name: `${this.name}Count`, priority: "high" },
    );
  }

  /** The usage counted since the meter was created or last reset. */
  snapshot(): AwsUsage {
    return { s3: { ...this.usage.s3 }, dynamodb: { ...this.usage.dynamodb } };
  }

  /** Requests per "Service.Operation" (e.g. "S3.GetObject", "DynamoDB.PutItem"), attempts included. */
  byOperation(): Record<string, number> {
    return Object.fromEntries([...this.operations.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }

  /**
   * DynamoDB requests whose units were estimated rather than reported: refused conditional writes, and
   * responses without ConsumedCapacity.
   */
  estimatedRequests(): number {
    return this.estimated;
  }

  /** The usage counted since the last drain (or reset), and starts counting afresh. */
  drain(): AwsUsage {
    const usage = this.snapshot();
    this.usage = emptyAwsUsage();
    return usage;
  }

  reset(): void {
    this.usage = emptyAwsUsage();
    this.operations = new Map();
    this.estimated = 0;
  }

  private count(key: string): void {
    this.operations.set(key, (this.operations.get(key) ?? 0) + 1);
  }

  private countS3(operation: string): void {
    this.count(`S3.${operation}`);
    if (S3_GETS.has(operation)) this.usage.s3.get++;
    else if (S3_PUTS.has(operation)) this.usage.s3.put++;
    else if (S3_LISTS.has(operation)) this.usage.s3.list++;
    else this.usage.s3.other++;
  }
}

const operationOf = (commandName: string | undefined): string => (commandName ?? "").replace(/Command$/, "");
