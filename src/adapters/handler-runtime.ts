import { Logger } from "@aws-lambda-powertools/logger";
import { z } from "zod";
import { describeZodError } from "../core/schemas.ts";
import { HANDLER_ENV } from "../core/storage-layout.ts";
import { createDocumentClient, createS3Client } from "./aws-clients.ts";
import { S3ObjectStore } from "./object-store.ts";
import { DynamoRunStore } from "./run-store.ts";
import { DynamoVerdictStore } from "./verdict-store.ts";

const handlerEnvSchema = z.object({
  [HANDLER_ENV.bucket]: z.string().min(1),
  [HANDLER_ENV.runsTable]: z.string().min(1),
  [HANDLER_ENV.verdictsTable]: z.string().min(1),
  [HANDLER_ENV.s3ForcePathStyle]: z.enum(["true", "false"]).default("false"),
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
  return {
    store: new S3ObjectStore(
      createS3Client(vars[HANDLER_ENV.s3ForcePathStyle] === "true"),
      vars[HANDLER_ENV.bucket],
    ),
    runs: new DynamoRunStore(documents, vars[HANDLER_ENV.runsTable]),
    verdicts: new DynamoVerdictStore(documents, vars[HANDLER_ENV.verdictsTable]),
    logger: new Logger({ serviceName: "mmsafe" }),
    now: () => new Date(),
  };
}
