/**
 * Names shared by the handlers that emit metrics and events and the stack that alarms and routes on them.
 * The event names also appear literally in statemachines/evaluation.asl.json (a CDK test keeps them equal).
 */

/** CloudWatch custom metrics (embedded metric format, Powertools Metrics). */
export const METRICS = {
  namespace: "mmsafe",
  /** Powertools' default dimension: `service` = this value, on every metric. */
  service: "mmsafe",
  /** Verdicts written (answered or errored). */
  verdicts: "Verdicts",
  /** Verdicts that are errors (the pipeline could not get an answer). */
  modelErrors: "ModelErrors",
  /** Latency of each answered model call, milliseconds. */
  modelLatency: "ModelLatency",
  promptTokens: "PromptTokens",
  completionTokens: "CompletionTokens",
  /** Extra dimension on per-model copies of Verdicts and ModelErrors. */
  modelDimension: "model",
} as const;

/** EventBridge events the workflow publishes on the stack's bus. */
export const RUN_EVENTS = {
  source: "mmsafe",
  completed: "mmsafe run completed",
  failed: "mmsafe run failed",
} as const;
