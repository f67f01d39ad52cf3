import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from "aws-cdk-lib";
import * as dynamodb from "aws-cdk-lib/aws-dynamodb";
import * as events from "aws-cdk-lib/aws-events";
import * as iam from "aws-cdk-lib/aws-iam";
import * as lambda from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import * as logs from "aws-cdk-lib/aws-logs";
import * as s3 from "aws-cdk-lib/aws-s3";
import * as sfn from "aws-cdk-lib/aws-stepfunctions";
import { Construct } from "constructs";
import {
  type AllowedBedrockModel,
  bedrockGrant,
  type DeployConfig,
  parseDeployConfig,
} from "../src/deployment/deploy-config.ts";
import { METRICS } from "../src/deployment/observability.ts";
import {
  type AslSubstitution,
  BUDGETS_TABLE_KEYS,
  HANDLER_ENV,
  PIPELINE_FUNCTIONS,
  RUN_SUMMARIES_PREFIX,
  RUNS_TABLE_KEYS,
  S3_PREFIXES,
  VERDICTS_TABLE_KEYS,
  WORKFLOW_DEFINITION,
} from "../src/deployment/storage-layout.ts";
import {
  acknowledge,
  acknowledgeCrossRegionFoundationModels,
  acknowledgeWildcardResources,
  nagArn,
  nagRef,
} from "./nag.ts";
import { PipelineMonitoring } from "./pipeline-monitoring.ts";
import { RunNotifications } from "./run-notifications.ts";
import { RunSchedules } from "./run-schedules.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The one workflow definition, shared with the local runner. */
export const EVALUATION_ASL_PATH = path.join(REPO_ROOT, WORKFLOW_DEFINITION);

/**
 * Secrets Manager names of model API keys: a model config's `apiKeySecret` must start with this (the schema
 * enforces it), and only evaluate-shard may read secrets under it.
 */
export const MODEL_SECRETS_PREFIX = "mmsafe/";

/** Days the server access logs of the data bucket are kept. */
export const ACCESS_LOG_RETENTION_DAYS = 365;

/** The budgets table's TTL attribute: epoch seconds, set on every item (src/adapters/budget-store.ts). */
export const BUDGETS_TTL_ATTRIBUTE = "ttl";

/** Props of {@link PipelineFunction}. */
export interface PipelineFunctionProps {
  /** Entry, memory (which also buys CPU) and timeout, shared with the local runner. */
  readonly settings: (typeof PIPELINE_FUNCTIONS)[keyof typeof PIPELINE_FUNCTIONS];
  /** Handler environment; the Powertools service name and metrics namespace are added here. */
  readonly environment: Readonly<Record<string, string>>;
  /** Concurrency reserved for (and capping) the function; unset: none, it draws on the account's pool. */
  readonly reservedConcurrentExecutions?: number | undefined;
}

/**
 * Modules with native code are installed next to the bundle (not bundled), with npm told the Lambda's
 * platform (Linux, glibc, arm64) so the right prebuilt binaries come down whatever machine synthesizes.
 */
function nativeModules(settings: PipelineFunctionProps["settings"]) {
  if (!("nodeModules" in settings)) return {};
  return {
    nodeModules: [...settings.nodeModules],
    environment: { npm_config_os: "linux", npm_config_cpu: "arm64", npm_config_libc: "glibc" },
  };
}

/**
 * One pipeline Lambda with the settings every mmsafe handler shares: Node 22 on ARM, an ESM bundle built by
 * local esbuild (no Docker), the AWS SDK left to the runtime, X-Ray tracing, a log group with bounded
 * retention, and a role of its own that starts with nothing but writing to that log group.
 */
export class PipelineFunction extends Construct {
  /** The function; grant access with {@link PipelineFunction.allowRead}, `allowWrite` or a table's `grant*`. */
  readonly function: NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: PipelineFunctionProps) {
    super(scope, id);
    // An explicit log group instead of the implicit /aws/lambda one, so retention is set without the
    // LogRetention custom resource (an extra Lambda in the stack).
    this.logGroup = new logs.LogGroup(this, "LogGroup", { retention: logs.RetentionDays.ONE_MONTH });
    // Instead of the default role with the AWS managed AWSLambdaBasicExecutionRole (logs:CreateLogGroup and
    // writes to every log group in the account): writes to this function's log group only.
    this.role = new iam.Role(this, "Role", {
      description: `Runs the mmsafe ${id} Lambda function`,
      assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
    });
    this.logGroup.grantWrite(this.role);
    this.function = new NodejsFunction(this, "Function", {
      entry: path.join(REPO_ROOT, props.settings.entry),
      handler: "handler",
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, "package-lock.json"),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.settings.memoryMb,
      timeout: Duration.seconds(props.settings.timeoutSeconds),
      ...(props.reservedConcurrentExecutions === undefined
        ? {}
        : { reservedConcurrentExecutions: props.reservedConcurrentExecutions }),
      role: this.role,
      logGroup: this.logGroup,
      tracing: lambda.Tracing.ACTIVE,
      environment: {
        ...props.environment,
        POWERTOOLS_SERVICE_NAME: METRICS.service,
        POWERTOOLS_METRICS_NAMESPACE: METRICS.namespace,
      },
      bundling: {
        forceDockerBundling: false,
        format: OutputFormat.ESM,
        // Prefer the ESM build of dependencies that ship both.
        mainFields: ["module", "main"],
        // CommonJS dependencies bundled into an ESM file still call `require`, which ESM does not define.
        banner: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
        // The nodejs22.x runtime provides AWS SDK v3.
        externalModules: ["@aws-sdk/*"],
        ...nativeModules(props.settings),
      },
    });
    acknowledge(
      this.function,
      "AwsSolutions-L1",
      "nodejs22.x is pinned on purpose: the handlers, their esbuild target and the prebuilt sharp binaries are " +
        "tested on Node 22; moving to a newer runtime is a tested change of its own, not a synth-time default.",
    );
    acknowledgeWildcardResources(
      this.role,
      ["*"],
      "Active tracing adds xray:PutTraceSegments and xray:PutTelemetryRecords, which support no resource-level " +
        "permissions (the X-Ray service authorization reference lists no resource types for them).",
    );
  }

  /** Allows reading the objects under each of `prefixes` (values of `S3_PREFIXES`) and nowhere else. */
  allowRead(bucket: s3.Bucket, prefixes: readonly string[]): void {
    this.function.addToRolePolicy(objectStatement(bucket, ["s3:GetObject"], prefixes));
    acknowledgePrefixWildcards(this.role, bucket, prefixes);
    // Without s3:ListBucket, S3 answers a missing key with 403 AccessDenied instead of 404 NoSuchKey, and the
    // handlers treat "not found" as a normal case (no config/models.json, an unknown dataset). S3 checks that
    // permission with the key as s3:prefix, so listing can stay limited to the same prefixes.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ["s3:ListBucket"],
        resources: [bucket.bucketArn],
        conditions: { StringLike: { "s3:prefix": prefixes.map((prefix) => `${prefix}*`) } },
      }),
    );
  }

  /** Allows writing objects under each of `prefixes` (values of `S3_PREFIXES`) and nowhere else. */
  allowWrite(bucket: s3.Bucket, prefixes: readonly string[]): void {
    this.function.addToRolePolicy(objectStatement(bucket, ["s3:PutObject"], prefixes));
    acknowledgePrefixWildcards(this.role, bucket, prefixes);
  }

  /** Allows reading the model API keys stored in Secrets Manager under {@link MODEL_SECRETS_PREFIX}. */
  allowReadModelSecrets(): void {
    const stack = Stack.of(this);
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ["secretsmanager:GetSecretValue"],
        resources: [
          stack.formatArn({
            service: "secretsmanager",
            resource: "secret",
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            resourceName: `${MODEL_SECRETS_PREFIX}*`,
          }),
        ],
      }),
    );
    acknowledgeWildcardResources(
      this.role,
      [nagArn("secretsmanager", `secret:${MODEL_SECRETS_PREFIX}*`)],
      "Model API keys are secrets the operator creates after deploying, named by each model config's " +
        "apiKeySecret (mmsafe/<name>, enforced by the schema); Secrets Manager appends a random suffix to every " +
        "secret ARN, so the grant names the mmsafe/ prefix and no other secret.",
    );
  }

  /**
   * Allows `bedrock:InvokeModel` (all that the Converse API needs) on exactly the given Bedrock models and
   * inference profiles; with none, adds no statement at all.
   */
  allowInvokeBedrockModels(models: readonly AllowedBedrockModel[]): void {
    if (models.length === 0) return;
    const { resources, anyRegionFoundationModels } = bedrockInvokeResources(Stack.of(this), models);
    this.function.addToRolePolicy(new iam.PolicyStatement({ actions: ["bedrock:InvokeModel"], resources }));
    acknowledgeCrossRegionFoundationModels(this.role, anyRegionFoundationModels);
  }
}

/**
 * The resources `bedrock:InvokeModel` needs for the allowed models (config/deploy.json `bedrock.models`),
 * each once: a foundation model in its region (no account: foundation models belong to AWS); an inference
 * profile in its region and this account, plus its foundation model in any region (`bedrock:*`), since the
 * profile routes each request to a region of its geography. Also returns the model ids granted that way.
 */
function bedrockInvokeResources(
  stack: Stack,
  models: readonly AllowedBedrockModel[],
): { resources: string[]; anyRegionFoundationModels: string[] } {
  const foundationModelArn = (region: string, id: string): string =>
    stack.formatArn({
      service: "bedrock",
      region,
      account: "",
      resource: "foundation-model",
      resourceName: id,
    });
  // Keyed by region and id (plain strings), because the ARNs hold tokens whose strings are not comparable.
  const resources = new Map<string, string>();
  const anyRegionFoundationModels = new Set<string>();
  for (const model of models) {
    const grant = bedrockGrant(model);
    if (grant.kind === "foundation-model") {
      const key = `foundation-model ${grant.region} ${grant.foundationModelId}`;
      resources.set(key, foundationModelArn(grant.region, grant.foundationModelId));
      continue;
    }
    resources.set(
      `inference-profile ${grant.region} ${grant.profileId}`,
      stack.formatArn({
        service: "bedrock",
        region: grant.region,
        resource: "inference-profile",
        resourceName: grant.profileId,
      }),
    );
    resources.set(
      `foundation-model * ${grant.foundationModelId}`,
      foundationModelArn("*", grant.foundationModelId),
    );
    anyRegionFoundationModels.add(grant.foundationModelId);
  }
  return { resources: [...resources.values()], anyRegionFoundationModels: [...anyRegionFoundationModels] };
}

/** Why the objects below a prefix can only be granted by wildcard, where the general reason does not fit. */
const PREFIX_WILDCARD_REASONS: Readonly<Record<string, string>> = {
  [S3_PREFIXES.cache]:
    "The response cache stores each model answer under cache/responses/<2 hex>/<SHA-256 of the request>.json; " +
    "the keys are content hashes computed at run time, so the grant is the cache/ prefix, given to " +
    "evaluate-shard only (the one step that calls models), and nothing else in the bucket.",
};

/** cdk-nag: object access below a prefix needs `<bucket>/<prefix>*`; each prefix is a pipeline area. */
function acknowledgePrefixWildcards(role: iam.IRole, bucket: s3.Bucket, prefixes: readonly string[]): void {
  for (const prefix of prefixes) {
    acknowledgeWildcardResources(
      role,
      [`${nagRef(bucket, "Arn")}/${prefix}*`],
      PREFIX_WILDCARD_REASONS[prefix] ??
        "Object keys below the prefix are per dataset and per run, unknown at deploy time; access is limited to " +
          "the prefixes of S3_PREFIXES this role's step reads or writes (asserted in tests/cdk/stack.test.ts).",
    );
  }
}

/** A statement allowing `actions` on `<bucket>/<prefix>*` for each prefix. */
function objectStatement(
  bucket: s3.IBucket,
  actions: readonly string[],
  prefixes: readonly string[],
): iam.PolicyStatement {
  return new iam.PolicyStatement({
    actions: [...actions],
    resources: prefixes.map((prefix) => bucket.arnForObjects(`${prefix}*`)),
  });
}

/** Props of {@link MmsafeStack}. */
export interface MmsafeStackProps extends StackProps {
  /** The deploy config (`config/deploy.json`, see bin/app.ts); default: the defaults of an empty config. */
  readonly config?: DeployConfig;
}

/**
 * The mmsafe pipeline: a bucket for datasets, run scratch data and reports; tables for runs, verdicts and
 * the run-wide model budgets; the plan, evaluate-shard and aggregate Lambdas; the Step Functions workflow
 * from `statemachines/evaluation.asl.json` that runs them; and around it, schedules that start runs, an
 * event bus and SNS topic that announce them, and a dashboard and alarms.
 */
export class MmsafeStack extends Stack {
  readonly config: DeployConfig;
  readonly accessLogBucket: s3.Bucket;
  readonly bucket: s3.Bucket;
  readonly runsTable: dynamodb.Table;
  readonly verdictsTable: dynamodb.Table;
  readonly budgetsTable: dynamodb.Table;
  readonly planFunction: PipelineFunction;
  readonly evaluateShardFunction: PipelineFunction;
  readonly aggregateFunction: PipelineFunction;
  readonly stateMachine: sfn.StateMachine;
  readonly eventBus: events.EventBus;
  readonly stateMachineLogGroup: logs.LogGroup;
  readonly notifications: RunNotifications;
  readonly schedules: RunSchedules;
  readonly monitoring: PipelineMonitoring;

  constructor(scope: Construct, id: string, props?: MmsafeStackProps) {
    super(scope, id, props);
    this.config = props?.config ?? parseDeployConfig({}, "the default deploy config");

    // Server access logs of the data bucket: who read or wrote datasets and reports.
    this.accessLogBucket = new s3.Bucket(this, "AccessLogBucket", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      // S3 server access logging delivers only to buckets with S3-managed (not KMS) default encryption.
      encryption: s3.BucketEncryption.S3_MANAGED,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: "ExpireAccessLogs", expiration: Duration.days(ACCESS_LOG_RETENTION_DAYS) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledge(
      this.accessLogBucket,
      "AwsSolutions-S1",
      "This is the server access log destination; logging its own log deliveries would log into itself " +
        "or need yet another log bucket, without adding any record of data access.",
    );

    this.bucket = new s3.Bucket(this, "Bucket", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      // runs/ holds per-run scratch data (manifest, shards, map results) that the report supersedes.
      // cache/ (the response cache) has no expiry on purpose: it is shared by every run, and an expired answer
      // would be paid for again; delete cache/ to start afresh.
      lifecycleRules: [
        { id: "ExpireRunScratchData", prefix: S3_PREFIXES.runs, expiration: Duration.days(30) },
      ],
      // Datasets and reports outlive the stack: reports cost model calls to reproduce.
      removalPolicy: RemovalPolicy.RETAIN,
      serverAccessLogsBucket: this.accessLogBucket,
      serverAccessLogsPrefix: "data-bucket/",
    });

    this.runsTable = new dynamodb.Table(this, "RunsTable", {
      partitionKey: { name: RUNS_TABLE_KEYS.partitionKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    });
    this.verdictsTable = new dynamodb.Table(this, "VerdictsTable", {
      partitionKey: { name: VERDICTS_TABLE_KEYS.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: VERDICTS_TABLE_KEYS.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    });

    // Run-wide model budgets (src/pipeline/run-budgets.ts): slot leases and pacing counters that the shards
    // of the runs in progress share. It is ephemeral coordination state, every item expiring by TTL a day
    // after its last use, and a restored lease or count would be wrong, not useful: so no point-in-time
    // recovery, and it goes with the stack.
    this.budgetsTable = new dynamodb.Table(this, "BudgetsTable", {
      partitionKey: { name: BUDGETS_TABLE_KEYS.partitionKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: BUDGETS_TTL_ATTRIBUTE,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: false },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    acknowledge(
      this.budgetsTable,
      "AwsSolutions-DDB3",
      "The budgets table holds only the slot leases and pacing counters of runs in progress, each expiring by " +
        "TTL a day after its last use; nothing in it is worth restoring (a restored lease or count would be " +
        "wrong), so point-in-time recovery would be paid for and never used.",
    );

    const environment = {
      [HANDLER_ENV.bucket]: this.bucket.bucketName,
      [HANDLER_ENV.runsTable]: this.runsTable.tableName,
      [HANDLER_ENV.verdictsTable]: this.verdictsTable.tableName,
    };
    // Plan and evaluate-shard use the run-wide model budgets, and both learn which Bedrock models IAM lets
    // evaluate-shard call, so plan can refuse a run naming another before anything runs. Aggregate calls no model.
    const withModels = {
      ...environment,
      [HANDLER_ENV.budgetsTable]: this.budgetsTable.tableName,
      [HANDLER_ENV.bedrockModels]: JSON.stringify(
        this.config.bedrock.models.map(({ id, region }) => ({ id, region })),
      ),
    };

    this.planFunction = new PipelineFunction(this, "Plan", {
      settings: PIPELINE_FUNCTIONS.plan,
      environment: withModels,
    });
    this.planFunction.allowRead(this.bucket, [S3_PREFIXES.datasets, S3_PREFIXES.config]);
    this.planFunction.allowWrite(this.bucket, [S3_PREFIXES.runs]);
    this.runsTable.grantReadWriteData(this.planFunction.function);
    this.budgetsTable.grantReadWriteData(this.planFunction.function);

    this.evaluateShardFunction = new PipelineFunction(this, "EvaluateShard", {
      settings: PIPELINE_FUNCTIONS.evaluateShard,
      environment: withModels,
      // Unreserved by default (config/deploy.json evaluateShard.reservedConcurrency; README "Deploying to AWS").
      reservedConcurrentExecutions: this.config.evaluateShard.reservedConcurrency ?? undefined,
    });
    this.evaluateShardFunction.allowRead(this.bucket, [
      S3_PREFIXES.datasets,
      S3_PREFIXES.runs,
      S3_PREFIXES.cache,
    ]);
    // The response cache: answers are looked up before a model call and stored after one.
    this.evaluateShardFunction.allowWrite(this.bucket, [S3_PREFIXES.cache]);
    this.verdictsTable.grantReadWriteData(this.evaluateShardFunction.function);
    this.budgetsTable.grantReadWriteData(this.evaluateShardFunction.function);
    // Only evaluate-shard calls models, so only it may read their API keys and invoke Bedrock models.
    this.evaluateShardFunction.allowReadModelSecrets();
    this.evaluateShardFunction.allowInvokeBedrockModels(this.config.bedrock.models);

    this.aggregateFunction = new PipelineFunction(this, "Aggregate", {
      settings: PIPELINE_FUNCTIONS.aggregate,
      environment,
    });
    // The run summaries too: Aggregate lists and reads them all to rebuild reports/index.html.
    this.aggregateFunction.allowRead(this.bucket, [
      S3_PREFIXES.datasets,
      S3_PREFIXES.runs,
      RUN_SUMMARIES_PREFIX,
    ]);
    this.aggregateFunction.allowWrite(this.bucket, [S3_PREFIXES.reports]);
    this.verdictsTable.grantReadData(this.aggregateFunction.function);
    this.runsTable.grantReadWriteData(this.aggregateFunction.function);

    // Run announcements (completed with headline and regression flag, or failed) go to a bus of their own,
    // so teams can route them without seeing unrelated events.
    this.eventBus = new events.EventBus(this, "EventBus", { eventBusName: `${this.stackName}-events` });

    // Typed as a full record so a placeholder added to ASL_SUBSTITUTIONS fails to compile until wired here.
    const definitionSubstitutions: Record<AslSubstitution, string> = {
      PlanFunctionArn: this.planFunction.function.functionArn,
      EvaluateShardFunctionArn: this.evaluateShardFunction.function.functionArn,
      AggregateFunctionArn: this.aggregateFunction.function.functionArn,
      RunsTableName: this.runsTable.tableName,
      EventBusName: this.eventBus.eventBusName,
    };

    this.stateMachineLogGroup = new logs.LogGroup(this, "StateMachineLogGroup", {
      // Under /aws/vendedlogs/ Step Functions needs no CloudWatch Logs resource policy entry per log group
      // (that account-wide policy has a size limit).
      logGroupName: `/aws/vendedlogs/states/${this.stackName}-evaluation`,
      retention: logs.RetentionDays.ONE_MONTH,
    });
    this.stateMachine = new sfn.StateMachine(this, "EvaluationStateMachine", {
      stateMachineType: sfn.StateMachineType.STANDARD,
      // DefinitionBody.fromFile would upload the file as an S3 asset (DefinitionS3Location); inlining the
      // text keeps the definition in the template, so `cdk diff` shows workflow changes.
      definitionBody: sfn.DefinitionBody.fromString(readAslDefinition(EVALUATION_ASL_PATH)),
      definitionSubstitutions,
      tracingEnabled: true,
      logs: {
        destination: this.stateMachineLogGroup,
        // Every state transition, so a run's path can be followed from the logs alone ...
        level: sfn.LogLevel.ALL,
        // ... but not its data: execution data carries model prompts and answers, which have no place in
        // operational logs.
        includeExecutionData: false,
      },
    });

    // CDK infers no grants from a definition it did not build, so every service call in the ASL is
    // granted here by hand.
    for (const fn of [this.planFunction, this.evaluateShardFunction, this.aggregateFunction]) {
      fn.function.grantInvoke(this.stateMachine);
      acknowledgeWildcardResources(
        this.stateMachine.role,
        [`${nagRef(fn.function, "Arn")}:*`],
        "grantInvoke also covers the function's versions and aliases (<function ARN>:*), still this one " +
          "function; the workflow invokes it through the lambda:invoke integration.",
      );
    }
    acknowledgeWildcardResources(
      this.stateMachine.role,
      ["*"],
      "Tracing (xray:PutTraceSegments, PutTelemetryRecords, GetSamplingRules, GetSamplingTargets) and log " +
        "delivery to CloudWatch Logs (logs:CreateLogDelivery, GetLogDelivery, UpdateLogDelivery, " +
        "DeleteLogDelivery, ListLogDeliveries, PutResourcePolicy, DescribeResourcePolicies, DescribeLogGroups) " +
        "support no resource-level permissions; Step Functions documents Resource * for them.",
    );
    // Evaluate's ItemReader reads the run manifest; its ResultWriter writes runs/<id>/map-results, uploading
    // large result files in parts.
    this.stateMachine.addToRolePolicy(objectStatement(this.bucket, ["s3:GetObject"], [S3_PREFIXES.runs]));
    this.stateMachine.addToRolePolicy(
      objectStatement(
        this.bucket,
        ["s3:PutObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
        [S3_PREFIXES.runs],
      ),
    );
    acknowledgeWildcardResources(
      this.stateMachine.role,
      [`${nagRef(this.bucket, "Arn")}/${S3_PREFIXES.runs}*`],
      "The Distributed Map reads runs/<runId>/manifest.json and writes runs/<runId>/map-results; run ids are " +
        "chosen per execution, so the grant is the runs/ prefix and nothing else in the bucket.",
    );
    // MarkRunFailed.
    this.runsTable.grant(this.stateMachine, "dynamodb:UpdateItem");
    // PublishCompleted and PublishFailed.
    this.eventBus.grantPutEventsTo(this.stateMachine);

    // The Distributed Map starts child executions of this very state machine. Granting that in the role's
    // default policy would make the state machine depend on a policy that depends on its own ARN, a cycle;
    // a separate policy depends on the state machine instead (the pattern CDK uses for its own DistributedMap).
    const executionsOfThisStateMachine = (separator: string): string =>
      this.formatArn({
        service: "states",
        resource: "execution",
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        resourceName: `${this.stateMachine.stateMachineName}${separator}*`,
      });
    const childExecutionsPolicy = new iam.Policy(this, "StateMachineChildExecutionsPolicy", {
      roles: [this.stateMachine.role],
      statements: [
        new iam.PolicyStatement({
          actions: ["states:StartExecution"],
          resources: [this.stateMachine.stateMachineArn],
        }),
        new iam.PolicyStatement({
          actions: ["states:DescribeExecution", "states:StopExecution"],
          // AWS documents "<name>/*" for Map Run child executions; CDK's own DistributedMap grants "<name>:*".
          // Both stay scoped to this state machine.
          resources: [executionsOfThisStateMachine("/"), executionsOfThisStateMachine(":")],
        }),
      ],
    });
    acknowledgeWildcardResources(
      childExecutionsPolicy,
      ["/", ":"].map((separator) =>
        nagArn("states", `execution:${nagRef(this.stateMachine, "Name")}${separator}*`),
      ),
      "Distributed Map child executions get names chosen by Step Functions at run time; the grant is limited " +
        "to executions of this state machine.",
    );

    this.notifications = new RunNotifications(this, "Notifications", {
      eventBus: this.eventBus,
      email: this.config.notificationEmail,
    });

    this.schedules = new RunSchedules(this, "Schedules", {
      stateMachine: this.stateMachine,
      schedules: this.config.schedules,
    });

    this.monitoring = new PipelineMonitoring(this, "Monitoring", {
      stateMachine: this.stateMachine,
      functions: {
        plan: this.planFunction.function,
        "evaluate-shard": this.evaluateShardFunction.function,
        aggregate: this.aggregateFunction.function,
      },
      modelErrorRatePercent: this.config.alarms.modelErrorRatePercent,
    });
    this.notifications.notifyOnAlarm(this.monitoring.alarms);

    new CfnOutput(this, "StateMachineArn", { value: this.stateMachine.stateMachineArn });
    new CfnOutput(this, "BucketName", { value: this.bucket.bucketName });
    new CfnOutput(this, "RunsTableName", { value: this.runsTable.tableName });
    new CfnOutput(this, "VerdictsTableName", { value: this.verdictsTable.tableName });
    new CfnOutput(this, "BudgetsTableName", { value: this.budgetsTable.tableName });
    new CfnOutput(this, "EventBusName", { value: this.eventBus.eventBusName });
    new CfnOutput(this, "NotificationTopicArn", { value: this.notifications.topic.topicArn });
    new CfnOutput(this, "DashboardName", { value: this.monitoring.dashboard.dashboardName });
  }
}

/** Reads the ASL file, failing synth with the file's name if it is not JSON. */
function readAslDefinition(aslPath: string): string {
  const text = readFileSync(aslPath, "utf8");
  try {
    JSON.parse(text);
  } catch (error: unknown) {
    throw new Error(`${aslPath} is not valid JSON; fix the workflow definition before synthesizing`, {
      cause: error,
    });
  }
  return text;
}
