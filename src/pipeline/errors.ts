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
