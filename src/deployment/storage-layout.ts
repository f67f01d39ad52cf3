/**
 * Where mmsafe keeps things: S3 key layout and DynamoDB key names.
 *
 * Shared by the CDK stack (grants scoped to these prefixes), the handlers and the local runner, so a
 * prefix can never differ between the deployed pipeline and a local run.
 */

/** Attribute names of the runs table (one item per run). */
export const RUNS_TABLE_KEYS = { partitionKey: "runId" } as const;

/** Attribute names of the verdicts table (one item per run × model × strategy × item). */
export const VERDICTS_TABLE_KEYS = { partitionKey: "runId", sortKey: "verdictKey" } as const;

/** Attribute names of the budgets table (slot leases and pacing counters of run-wide model budgets). */
export const BUDGETS_TABLE_KEYS = { partitionKey: "pk" } as const;

/** Top-level S3 prefixes; every object mmsafe writes lives under one of them. */
export const S3_PREFIXES = {
  datasets: "datasets/",
  config: "config/",
  runs: "runs/",
  reports: "reports/",
  /** Model answers by content-addressed request key, shared by every run (see adapters/response-cache.ts). */
  cache: "cache/",
} as const;

/** Default dataset name (the S3 prefix under `datasets/`). */
export const DEFAULT_DATASET = "mmsafeaware";

/** Object holding the default model list used when an execution input names no models. */
export const MODELS_CONFIG_KEY = `${S3_PREFIXES.config}models.json`;

export const datasetPrefix = (dataset: string): string => `${S3_PREFIXES.datasets}${dataset}/`;
export const datasetManifestKey = (dataset: string): string => `${datasetPrefix(dataset)}dataset.json`;
export const datasetShardKey = (dataset: string, index: number): string =>
  `${datasetPrefix(dataset)}shards/${String(index).padStart(5, "0")}.jsonl`;
export const datasetImageKey = (dataset: string, id: number, extension: string): string =>
  `${datasetPrefix(dataset)}images/${id}.${extension}`;

export const runPrefix = (runId: string): string => `${S3_PREFIXES.runs}${runId}/`;
export const runManifestKey = (runId: string): string => `${runPrefix(runId)}manifest.json`;
export const runShardKey = (runId: string, index: number): string =>
  `${runPrefix(runId)}shards/${String(index).padStart(5, "0")}.jsonl`;
/** Your own dataset's configuration (columns, kind, judge prompt), as the run was planned with it. */
export const runCustomConfigKey = (runId: string): string => `${runPrefix(runId)}custom.json`;
export const runMapResultsPrefix = (runId: string): string => `${runPrefix(runId)}map-results`;

export const reportPrefix = (runId: string): string => `${S3_PREFIXES.reports}${runId}/`;
export const reportJsonKey = (runId: string): string => `${reportPrefix(runId)}report.json`;
export const reportMarkdownKey = (runId: string): string => `${reportPrefix(runId)}report.md`;
export const reportHtmlKey = (runId: string): string => `${reportPrefix(runId)}report.html`;
export const responsesKey = (runId: string, modelId: string, strategy: string): string =>
  `${reportPrefix(runId)}responses/${modelId}.${strategy}.jsonl`;

/**
 * The history of runs: one small summary per run, each written only by its own run's Aggregate (so no two
 * writers ever share a key), under a prefix of their own so that listing them reads summaries only. A run id
 * starts with a letter or digit, so `_summaries/` can never be a run's folder.
 */
export const RUN_SUMMARIES_PREFIX = `${S3_PREFIXES.reports}_summaries/`;
export const runSummaryKey = (runId: string): string => `${RUN_SUMMARIES_PREFIX}${runId}.json`;
/** The index of every run, rebuilt from the summaries by each Aggregate (see core/history.ts). */
export const REPORTS_INDEX_JSON_KEY = `${S3_PREFIXES.reports}index.json`;
/** index.json as a page, beside the run folders so that its links to `./<runId>/report.html` resolve. */
export const REPORTS_INDEX_HTML_KEY = `${S3_PREFIXES.reports}index.html`;

/** A cached answer: fanned out by the first two hex digits of its key. */
export const responseCacheKey = (key: string): string =>
  `${S3_PREFIXES.cache}responses/${key.slice(0, 2)}/${key}.json`;

/** Sort key of a verdict: groups a model × strategy together, items in id order. */
export const verdictKey = (modelId: string, strategy: string, itemId: number): string =>
  `${modelId}#${strategy}#${String(itemId).padStart(6, "0")}`;

/** A judge's reading of the answer stored under `verdictKey(modelId, strategy, itemId)`. */
export const judgeVerdictKey = (judgeId: string, modelId: string, strategy: string, itemId: number): string =>
  `judge#${judgeId}#${verdictKey(modelId, strategy, itemId)}`;

/** Environment variables every handler reads (set by CDK on AWS, by the local runner locally). */
export const HANDLER_ENV = {
  bucket: "MMSAFE_BUCKET",
  runsTable: "MMSAFE_RUNS_TABLE",
  verdictsTable: "MMSAFE_VERDICTS_TABLE",
  s3ForcePathStyle: "MMSAFE_S3_FORCE_PATH_STYLE",
  /**
   * "false" (set by the local runner, whose progress display sums errors up): no WARN line per error verdict,
   * nor per shard stopped early (locally only a halted run stops one, and the runner says so).
   */
  logErrorVerdicts: "MMSAFE_LOG_ERROR_VERDICTS",
  /**
   * The table of run-wide model budgets (slot leases, pacing), shared by every shard's process. Unset (a local
   * run in one process): the budgets are kept in memory.
   */
  budgetsTable: "MMSAFE_BUDGETS_TABLE",
  /**
   * The Bedrock models this deployment's IAM allows evaluate-shard to invoke: a JSON array of `{"id","region"}`
   * (config/deploy.json `bedrock.models`, see `bedrockModelListSchema` in deploy-config.ts), `[]` for none. Set
   * on plan (and evaluate-shard) so a run naming another Bedrock model is refused before it starts, instead of
   * every call failing with AccessDenied. Only the CDK stack sets it.
   */
  bedrockModels: "MMSAFE_BEDROCK_MODELS",
} as const;

/** Names of the `${…}` placeholders in the ASL definition, substituted by CDK and by the local runner. */
export const ASL_SUBSTITUTIONS = [
  "PlanFunctionArn",
  "EvaluateShardFunctionArn",
  "AggregateFunctionArn",
  "RunsTableName",
  "EventBusName",
] as const;
export type AslSubstitution = (typeof ASL_SUBSTITUTIONS)[number];

/** The three functions: handler entry, limits, and the ASL placeholder of their ARN. CDK and the local runner both read this. */
export const PIPELINE_FUNCTIONS = {
  plan: {
    entry: "lambdas/plan/index.ts",
    memoryMb: 512,
    timeoutSeconds: 60,
    substitution: "PlanFunctionArn",
  },
  // A shard that runs short of this time stops starting calls (ShardIncomplete); its child execution retries it.
  evaluateShard: {
    entry: "lambdas/evaluate-shard/index.ts",
    memoryMb: 1024,
    timeoutSeconds: 240,
    substitution: "EvaluateShardFunctionArn",
    // sharp (the vcd strategy's image noise) has native binaries: installed for the Lambda platform, not bundled.
    nodeModules: ["sharp"],
  },
  aggregate: {
    entry: "lambdas/aggregate/index.ts",
    memoryMb: 1024,
    timeoutSeconds: 300,
    substitution: "AggregateFunctionArn",
    // sharp makes report.html's thumbnails (native binaries, installed like evaluate-shard's).
    nodeModules: ["sharp"],
  },
} as const satisfies Record<
  string,
  {
    entry: string;
    memoryMb: number;
    timeoutSeconds: number;
    substitution: AslSubstitution;
    nodeModules?: readonly string[];
  }
>;

/** The workflow definition, relative to the repository root. */
export const WORKFLOW_DEFINITION = "statemachines/evaluation.asl.json";
