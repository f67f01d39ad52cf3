import { Logger } from "@aws-lambda-powertools/logger";
import { z } from "zod";
import { describeZodError } from "../core/schemas.ts";
import { invocationCounters, type PipelineFunctionName } from "../deployment/run-usage.ts";
import { HANDLER_ENV } from "../deployment/storage-layout.ts";
import { createDocumentClient, createS3Client } from "./aws-clients.ts";
import { type BudgetStore, DynamoBudgetStore, MemoryBudgetStore } from "./budget-store.ts";
import { S3ObjectStore } from "./object-store.ts";
import { DynamoRunStore } from "./run-store.ts";
import { UsageMeter } from "./usage-meter.ts";
import { DynamoVerdictStore } from "./verdict-store.ts";

const handlerEnvSchema = z.object({
  [HANDLER_ENV.bucket]: z.string().min(1),
  [HANDLER_ENV.runsTable]: z.string().min(1),
  [HANDLER_ENV.verdictsTable]: z.string().min(1),
  [HANDLER_ENV.s3ForcePathStyle]: z.enum(["true", "false"]).default("false"),
  [HANDLER_ENV.budgetsTable]: z.string().min(1).optional(),
});

/**
 * Everything a handler needs, built once per container (cold start) from the validated environment.
 * Fails fast, naming the missing variable.
 */
export function createHandlerRuntime(env: NodeJS.ProcessEnv = process.env) {
  const parsed = handlerEnvSchema.safeParse(env);
  if (!parsed.success) throw new Error(describeZodError(parsed.error, "the handler's environment"));
  const vars = parsed.data;
  const documents = createDocumentClient();
  const s3 = createS3Client(vars[HANDLER_ENV.s3ForcePathStyle] === "true");
  // Every S3 and DynamoDB request of this function is counted for the run's cost estimate.
  const meter = new UsageMeter();
  meter.attach(s3);
  meter.attach(documents);
  const runs = new DynamoRunStore(documents, vars[HANDLER_ENV.runsTable]);
  const logger = new Logger({ serviceName: "mmsafe" });
  return {
    store: new S3ObjectStore(s3, vars[HANDLER_ENV.bucket]),
    runs,
    meter,
    /**
     * Adds this invocation's billed duration and the requests counted since the last record to the run's
     * usage. Never fails the invocation: the estimate is worth less than the run.
     */
    recordUsage: async (fn: PipelineFunctionName, runId: string, startedMs: number): Promise<void> => {
      try {
        await runs.addUsage(runId, invocationCounters(fn, performance.now() - startedMs, meter.drain()));
      } catch (error: unknown) {
        logger.warn("could not record usage", {
          runId,
          error: error instanceof Error ? error.message : String(error),
        });
      }
    },
    verdicts: new DynamoVerdictStore(documents, vars[HANDLER_ENV.verdictsTable]),
    /** Run-wide model budgets: the shared table when there is one (AWS, local shard processes), else memory. */
    budgetStore: ((table): BudgetStore =>
      table === undefined ? new MemoryBudgetStore() : new DynamoBudgetStore(documents, table))(
      vars[HANDLER_ENV.budgetsTable],
    ),
    logger,
    now: () => new Date(),
  };
}
