/**
 * One local "Lambda container" for evaluate-shard: a process of its own that loads the very handler module
 * deployed to Lambda and runs one invocation at a time, as the parent (src/local/shard-processes.ts) sends
 * them over IPC. Its environment points the handler at the embedded servers and at the shared budgets table,
 * so its model calls are bounded only by the run-wide budgets, as on AWS.
 */
import { randomBytes } from "node:crypto";
import type { Context } from "aws-lambda";
import { z } from "zod";

const message = z.discriminatedUnion("type", [
  z.object({ type: z.literal("invoke"), id: z.number(), event: z.unknown() }),
  z.object({ type: z.literal("stop") }),
]);

/** What a local shard is told it has left: more than any call needs (a finite number, as Lambda's is). */
const MAX_REMAINING_MS = 2 ** 31 - 1;

let stopped = false;
const entry = process.argv[2];
if (!entry || !process.send) throw new Error("shard-process-main: run by src/local/shard-processes.ts only");
const { handler } = (await import(entry)) as {
  handler: (event: unknown, context: Context) => Promise<unknown>;
};

const send = (value: unknown) => process.send?.(value);

process.on("message", (raw: unknown) => {
  const parsed = message.safeParse(raw);
  if (!parsed.success) return;
  const msg = parsed.data;
  if (msg.type === "stop") {
    // As a Lambda near its timeout: no new call starts; the calls in flight finish and are written.
    stopped = true;
    return;
  }
  const context = {
    functionName: "mmsafe-evaluateShard",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:us-east-1:000000000000:function:mmsafe-evaluateShard",
    memoryLimitInMB: "1024",
    awsRequestId: randomBytes(16).toString("hex"),
    logGroupName: "/aws/lambda/mmsafe-evaluateShard",
    logStreamName: `local-process-${process.pid}`,
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => (stopped ? 0 : MAX_REMAINING_MS),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  } satisfies Context;
  handler(msg.event, context).then(
    (value) => send({ type: "result", id: msg.id, value }),
    (error: unknown) =>
      send({
        type: "error",
        id: msg.id,
        name: error instanceof Error ? error.name : "Error",
        message: error instanceof Error ? error.message : String(error),
      }),
  );
});
// The parent's IPC channel closing means it is gone: nothing is left to do here.
process.on("disconnect", () => process.exit(0));
send({ type: "ready" });
