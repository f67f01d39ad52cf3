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
  type AslSubstitution,
  HANDLER_ENV,
  PIPELINE_FUNCTIONS,
  RUNS_TABLE_KEYS,
  S3_PREFIXES,
  VERDICTS_TABLE_KEYS,
  WORKFLOW_DEFINITION,
} from "../src/core/storage-layout.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The one workflow definition, shared with the local runner. */
export const EVALUATION_ASL_PATH = path.join(REPO_ROOT, WORKFLOW_DEFINITION);

/** Props of {@link PipelineFunction}. */
export interface PipelineFunctionProps {
  /** Entry, memory (which also buys CPU) and timeout, shared with the local runner. */
  readonly settings: (typeof PIPELINE_FUNCTIONS)[keyof typeof PIPELINE_FUNCTIONS];
  /** Handler environment; `POWERTOOLS_SERVICE_NAME` is added here. */
  readonly environment: Readonly<Record<string, string>>;
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
 * local esbuild (no Docker), the AWS SDK left to the runtime, and a log group with bounded retention.
 */
export class PipelineFunction extends Construct {
  /** The function; grant access with {@link PipelineFunction.allowRead}, `allowWrite` or a table's `grant*`. */
  readonly function: NodejsFunction;

  constructor(scope: Construct, id: string, props: PipelineFunctionProps) {
    super(scope, id);
    // An explicit log group instead of the implicit /aws/lambda one, so retention is set without the
    // LogRetention custom resource (an extra Lambda in the stack).
    const logGroup = new logs.LogGroup(this, "LogGroup", { retention: logs.RetentionDays.ONE_MONTH });
    this.function = new NodejsFunction(this, "Function", {
      entry: path.join(REPO_ROOT, props.settings.entry),
      handler: "handler",
      projectRoot: REPO_ROOT,
      depsLockFilePath: path.join(REPO_ROOT, "package-lock.json"),
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.settings.memoryMb,
      timeout: Duration.seconds(props.settings.timeoutSeconds),
      logGroup,
      environment: { ...props.environment, POWERTOOLS_SERVICE_NAME: "mmsafe" },
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
  }

  /** Allows reading the objects under each of `prefixes` (values of `S3_PREFIXES`) and nowhere else. */
  allowRead(bucket: s3.IBucket, prefixes: readonly string[]): void {
    this.function.addToRolePolicy(objectStatement(bucket, ["s3:GetObject"], prefixes));
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
  allowWrite(bucket: s3.IBucket, prefixes: readonly string[]): void {
    this.function.addToRolePolicy(objectStatement(bucket, ["s3:PutObject"], prefixes));
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

/**
 * The mmsafe pipeline: a bucket for datasets, run scratch data and reports; tables for runs and verdicts;
 * the plan, evaluate-shard and aggregate Lambdas; and the Step Functions workflow from
 * `statemachines/evaluation.asl.json` that runs them.
 */
export class MmsafeStack extends Stack {
  readonly bucket: s3.Bucket;
  readonly runsTable: dynamodb.Table;
  readonly verdictsTable: dynamodb.Table;
  readonly planFunction: PipelineFunction;
  readonly evaluateShardFunction: PipelineFunction;
  readonly aggregateFunction: PipelineFunction;
  readonly stateMachine: sfn.StateMachine;
  readonly eventBus: events.EventBus;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);

    this.bucket = new s3.Bucket(this, "Bucket", {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: s3.BucketEncryption.S3_MANAGED,
      // runs/ holds per-run scratch data (manifest, shards, map results) that the report supersedes.
      lifecycleRules: [
        { id: "ExpireRunScratchData", prefix: S3_PREFIXES.runs, expiration: Duration.days(30) },
      ],
      // Datasets and reports outlive the stack: reports cost model calls to reproduce.
      removalPolicy: RemovalPolicy.RETAIN,
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

    const environment = {
      [HANDLER_ENV.bucket]: this.bucket.bucketName,
      [HANDLER_ENV.runsTable]: this.runsTable.tableName,
      [HANDLER_ENV.verdictsTable]: this.verdictsTable.tableName,
    };

    this.planFunction = new PipelineFunction(this, "Plan", {
      settings: PIPELINE_FUNCTIONS.plan,
      environment,
    });
    this.planFunction.allowRead(this.bucket, [S3_PREFIXES.datasets, S3_PREFIXES.config]);
    this.planFunction.allowWrite(this.bucket, [S3_PREFIXES.runs]);
    this.runsTable.grantReadWriteData(this.planFunction.function);

    this.evaluateShardFunction = new PipelineFunction(this, "EvaluateShard", {
      settings: PIPELINE_FUNCTIONS.evaluateShard,
      environment,
    });
    this.evaluateShardFunction.allowRead(this.bucket, [S3_PREFIXES.datasets, S3_PREFIXES.runs]);
    this.verdictsTable.grantReadWriteData(this.evaluateShardFunction.function);

    this.aggregateFunction = new PipelineFunction(this, "Aggregate", {
      settings: PIPELINE_FUNCTIONS.aggregate,
      environment,
    });
    this.aggregateFunction.allowRead(this.bucket, [S3_PREFIXES.datasets, S3_PREFIXES.runs]);
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

    this.stateMachine = new sfn.StateMachine(this, "EvaluationStateMachine", {
      stateMachineType: sfn.StateMachineType.STANDARD,
      // DefinitionBody.fromFile would upload the file as an S3 asset (DefinitionS3Location); inlining the
      // text keeps the definition in the template, so `cdk diff` shows workflow changes.
      definitionBody: sfn.DefinitionBody.fromString(readAslDefinition(EVALUATION_ASL_PATH)),
      definitionSubstitutions,
      tracingEnabled: true,
      logs: {
        destination: new logs.LogGroup(this, "StateMachineLogGroup", {
          retention: logs.RetentionDays.ONE_MONTH,
        }),
        level: sfn.LogLevel.ERROR,
        // Execution data carries model prompts and answers, which have no place in operational logs.
        includeExecutionData: false,
      },
    });

    // CDK infers no grants from a definition it did not build, so every service call in the ASL is
    // granted here by hand.
    for (const fn of [this.planFunction, this.evaluateShardFunction, this.aggregateFunction]) {
      fn.function.grantInvoke(this.stateMachine);
    }
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
    new iam.Policy(this, "StateMachineChildExecutionsPolicy", {
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

    new CfnOutput(this, "StateMachineArn", { value: this.stateMachine.stateMachineArn });
    new CfnOutput(this, "BucketName", { value: this.bucket.bucketName });
    new CfnOutput(this, "RunsTableName", { value: this.runsTable.tableName });
    new CfnOutput(this, "VerdictsTableName", { value: this.verdictsTable.tableName });
    new CfnOutput(this, "EventBusName", { value: this.eventBus.eventBusName });
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
