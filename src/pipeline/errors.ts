/**
 * Errors the pipeline raises on purpose. Their `name` becomes the Step Functions error name (the Lambda
 * errorType), so the state machine and the console show what went wrong and retriers can match them.
 */
export class InvalidExecutionInputError extends Error {
  override readonly name = "InvalidExecutionInput";
}

export class DatasetNotFoundError extends Error {
  override readonly name = "DatasetNotFound";
}

export class NoModelsConfiguredError extends Error {
  override readonly name = "NoModelsConfigured";
}

export class InvalidShardError extends Error {
  override readonly name = "InvalidShard";
}

/** A shard stopped early to stay within its time budget; the state machine's retry resumes it. */
export class ShardIncompleteError extends Error {
  override readonly name = "ShardIncomplete";
}

export class RunNotFoundError extends Error {
  override readonly name = "RunNotFound";
}

/** Verdicts could not be stored after retries; those written are kept and a resume redoes the rest. */
export class VerdictWriteError extends Error {
  override readonly name = "VerdictWriteFailed";
}

/** The start-of-run probe found a model that cannot be asked (unreachable, key refused, unknown model). */
export class ModelUnavailableError extends Error {
  override readonly name = "ModelUnavailable";
}
