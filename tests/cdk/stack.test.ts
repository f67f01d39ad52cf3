/**
 * Checks the synthesized MmsafeStack template: the workflow is the ASL file, resources are configured as
 * documented, and every role can do what its handler needs and nothing broader.
 *
 * Run: node --import tsx --test tests/cdk/stack.test.ts
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { App, CfnElement } from "aws-cdk-lib";
import { Match, Template } from "aws-cdk-lib/assertions";
import type { IConstruct } from "constructs";
import { z } from "zod";
import { EVALUATION_ASL_PATH, MmsafeStack, type PipelineFunction } from "../../lib/mmsafe-stack.ts";
import { METRICS } from "../../src/deployment/observability.ts";
import {
  ASL_SUBSTITUTIONS,
  HANDLER_ENV,
  RUN_SUMMARIES_PREFIX,
  reportJsonKey,
  S3_PREFIXES,
} from "../../src/deployment/storage-layout.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

// Synthesize with the feature flags deployments use, so flag-dependent output (policy merging, ...) matches.
const cdkJson = z
  .object({ context: z.record(z.string(), z.unknown()) })
  .parse(JSON.parse(readFileSync(path.join(REPO_ROOT, "cdk.json"), "utf8")));
const app = new App({
  context: {
    ...cdkJson.context,
    "aws:cdk:bundling-stacks": [],
    // CDK's built-in CloudFormation validation reports schema findings as warnings; strict mode makes any
    // finding fail synthesis, and so every test. It is most of this file's run time.
    "@aws-cdk/core:strictCfnValidateErrors": true,
  },
});
const stack = new MmsafeStack(app, "Mmsafe");
// Template.fromStack also refuses a template with a dependency cycle (e.g. the state machine role's default
// policy naming the state machine), so every test fails if one appears.
const template = Template.fromStack(stack);
const resources = z
  .record(
    z.string(),
    z.object({ Type: z.string(), Properties: z.record(z.string(), z.unknown()).optional() }),
  )
  .parse(template.toJSON().Resources);

const aslText = readFileSync(EVALUATION_ASL_PATH, "utf8");

function logicalId(construct: IConstruct | undefined): string {
  const resource = construct?.node.defaultChild ?? construct;
  assert.ok(resource instanceof CfnElement, `${construct?.node.path} is not a CloudFormation resource`);
  return stack.getLogicalId(resource);
}

function propertiesOf(id: string): Record<string, unknown> {
  const properties = resources[id]?.Properties;
  assert.ok(properties, `no resource ${id} with properties in the template`);
  return properties;
}

const ids = {
  bucket: logicalId(stack.bucket),
  runsTable: logicalId(stack.runsTable),
  verdictsTable: logicalId(stack.verdictsTable),
  budgetsTable: logicalId(stack.budgetsTable),
  stateMachine: logicalId(stack.stateMachine),
  stateMachineRole: logicalId(stack.stateMachine.role),
};
const pipelineFunctions = {
  plan: stack.planFunction,
  "evaluate-shard": stack.evaluateShardFunction,
  aggregate: stack.aggregateFunction,
} as const satisfies Record<string, PipelineFunction>;
const functionId = (fn: PipelineFunction): string => logicalId(fn.function);
const roleId = (fn: PipelineFunction): string => logicalId(fn.function.role);

const statementSchema = z.object({
  Effect: z.enum(["Allow", "Deny"]),
  Action: z.union([z.string(), z.array(z.string())]),
  Resource: z.unknown(),
  Condition: z.unknown().optional(),
});
type Statement = z.infer<typeof statementSchema>;
const policySchema = z.object({
  Roles: z.array(z.unknown()),
  PolicyDocument: z.object({ Statement: z.array(statementSchema) }),
});

const asArray = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);
const actionsOf = (statement: Statement): string[] => asArray(statement.Action);
const resourcesOf = (statement: Statement): unknown[] => asArray(statement.Resource);

/** Every statement of every AWS::IAM::Policy, with the role logical ids it is attached to. */
const policies = Object.values(resources)
  .filter((resource) => resource.Type === "AWS::IAM::Policy")
  .map((resource) => policySchema.parse(resource.Properties));

function allowStatementsOfRole(role: string): Statement[] {
  return policies
    .filter((policy) => policy.Roles.some((ref) => isDeepStrictEqual(ref, { Ref: role })))
    .flatMap((policy) => policy.PolicyDocument.Statement)
    .filter((statement) => statement.Effect === "Allow");
}

/** `<bucket>/<pattern>` resources as `pattern` ("runs/*"); anything else as its JSON, so it shows up in diffs. */
function bucketObjectPattern(resource: unknown): string {
  const join = z
    .object({ "Fn::Join": z.tuple([z.literal(""), z.tuple([z.unknown(), z.string()])]) })
    .safeParse(resource);
  if (join.success) {
    const [bucketArn, suffix] = join.data["Fn::Join"][1];
    if (isDeepStrictEqual(bucketArn, { "Fn::GetAtt": [ids.bucket, "Arn"] }) && suffix.startsWith("/")) {
      return suffix.slice(1);
    }
  }
  return JSON.stringify(resource);
}

const listPrefixCondition = z.object({
  StringLike: z.object({ "s3:prefix": z.union([z.string(), z.array(z.string())]) }).strict(),
});

/** Where a statement reaches: object patterns, or for s3:ListBucket on the bucket, the listable prefixes. */
function s3Patterns(statement: Statement): string[] {
  const bucketArn = { "Fn::GetAtt": [ids.bucket, "Arn"] };
  const listsPrefixes =
    isDeepStrictEqual(actionsOf(statement), ["s3:ListBucket"]) &&
    isDeepStrictEqual(resourcesOf(statement), [bucketArn]) &&
    listPrefixCondition.safeParse(statement.Condition).success;
  if (listsPrefixes) return asArray(listPrefixCondition.parse(statement.Condition).StringLike["s3:prefix"]);
  return resourcesOf(statement).map(bucketObjectPattern);
}

/** "action pattern" pairs for every S3 action a role is allowed, sorted. */
function s3Access(role: string): string[] {
  return allowStatementsOfRole(role)
    .flatMap((statement) =>
      actionsOf(statement)
        .filter((action) => action.startsWith("s3:"))
        .flatMap((action) => s3Patterns(statement).map((pattern) => `${action} ${pattern}`)),
    )
    .sort();
}

/** DynamoDB actions a role is allowed on one table. */
function tableActions(role: string, table: string): Set<string> {
  const tableArn = { "Fn::GetAtt": [table, "Arn"] };
  return new Set(
    allowStatementsOfRole(role)
      .filter((statement) => resourcesOf(statement).some((resource) => isDeepStrictEqual(resource, tableArn)))
      .flatMap(actionsOf)
      .filter((action) => action.startsWith("dynamodb:")),
  );
}

const objects = (prefix: string): string => `${prefix}*`;

const READ_ACTIONS = new Set(["s3:GetObject", "s3:ListBucket"]);

const TABLE_WRITES = [
  "dynamodb:PutItem",
  "dynamodb:UpdateItem",
  "dynamodb:DeleteItem",
  "dynamodb:BatchWriteItem",
];

/** Whether an entry's resource pattern from {@link s3Access} reaches `key`; a bare "*" reaches everything. */
function patternCovers(pattern: string, key: string): boolean {
  if (pattern === JSON.stringify("*")) return true;
  const glob = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*");
  return new RegExp(`^${glob}$`).test(key);
}

type AslValidator = (definition: unknown) => { isValid: boolean; errorsText: () => string };

/** asl-validator ships no type declarations, so it is loaded untyped and its shape checked once. */
async function loadAslValidator(): Promise<AslValidator> {
  const specifier: string = "asl-validator";
  const module: unknown = await import(specifier);
  const validate: unknown = z.object({ default: z.unknown() }).parse(module).default;
  if (typeof validate !== "function") throw new Error("asl-validator has no default export function");
  const resultSchema = z
    .object({ isValid: z.boolean(), errorsText: z.function() })
    .transform(({ isValid, errorsText }) => ({ isValid, errorsText: () => String(errorsText()) }));
  return (definition) => resultSchema.parse(validate(definition));
}

function synthesizedDefinition(): Record<string, unknown> {
  const definitionString = propertiesOf(ids.stateMachine).DefinitionString;
  assert.equal(typeof definitionString, "string", "DefinitionString should be inline text, not an asset");
  return z.record(z.string(), z.unknown()).parse(JSON.parse(String(definitionString)));
}

describe("state machine", () => {
  it("is the ASL file, unchanged", () => {
    assert.deepEqual(synthesizedDefinition(), JSON.parse(aslText));
  });

  it("has a substitution for every placeholder in the ASL file and no others", () => {
    const placeholders = new Set([...aslText.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((match) => match[1]));
    const substitutions = z
      .record(z.string(), z.unknown())
      .parse(propertiesOf(ids.stateMachine).DefinitionSubstitutions);
    assert.deepEqual(new Set(Object.keys(substitutions)), placeholders);
    assert.deepEqual(placeholders, new Set(ASL_SUBSTITUTIONS), "ASL file and ASL_SUBSTITUTIONS disagree");
  });

  it("substitutes each placeholder with the resource it names", () => {
    assert.deepEqual(propertiesOf(ids.stateMachine).DefinitionSubstitutions, {
      PlanFunctionArn: { "Fn::GetAtt": [functionId(stack.planFunction), "Arn"] },
      EvaluateShardFunctionArn: { "Fn::GetAtt": [functionId(stack.evaluateShardFunction), "Arn"] },
      AggregateFunctionArn: { "Fn::GetAtt": [functionId(stack.aggregateFunction), "Arn"] },
      RunsTableName: { Ref: ids.runsTable },
      EventBusName: { Ref: Object.keys(template.findResources("AWS::Events::EventBus"))[0] },
    });
  });

  it("evaluates shards in a Distributed Map of STANDARD child executions that retry a shard short of time", () => {
    const retrier = z.object({ ErrorEquals: z.array(z.string()), MaxAttempts: z.number() });
    const evaluate = z
      .object({
        States: z.object({
          Evaluate: z.object({
            Type: z.string(),
            ItemProcessor: z.object({
              ProcessorConfig: z.unknown(),
              StartAt: z.string(),
              States: z.record(z.string(), z.object({ Retry: z.array(retrier).optional() })),
            }),
          }),
        }),
      })
      .parse(synthesizedDefinition()).States.Evaluate;
    assert.equal(evaluate.Type, "Map");
    const { ProcessorConfig, StartAt, States } = evaluate.ItemProcessor;
    assert.deepEqual(ProcessorConfig, { Mode: "DISTRIBUTED", ExecutionType: "STANDARD" });
    // A STANDARD child has no 5-minute cap, so a shard that ran short of Lambda time is resumed in it.
    const retries = new Map(
      (States[StartAt]?.Retry ?? []).flatMap((r) => r.ErrorEquals.map((error) => [error, r.MaxAttempts])),
    );
    assert.equal(retries.get("ShardIncomplete"), 20);
    assert.equal(retries.get("VerdictWriteFailed"), 2);
  });

  it("checks the models with the evaluate-shard function before the fan-out, failing into DescribeFailure", () => {
    const { Plan, CheckModels: check } = z
      .object({
        States: z.object({
          Plan: z.object({ Next: z.string() }),
          CheckModels: z.object({
            Type: z.string(),
            Next: z.string(),
            Resource: z.string(),
            Parameters: z.object({ FunctionName: z.string() }),
            Catch: z.array(z.object({ ErrorEquals: z.array(z.string()), Next: z.string() })),
          }),
        }),
      })
      .parse(synthesizedDefinition()).States;
    assert.equal(Plan.Next, "CheckModels");
    assert.equal(check.Type, "Task");
    assert.equal(check.Next, "Evaluate");
    assert.equal(check.Resource, "arn:aws:states:::lambda:invoke");
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an ASL placeholder, not a template literal
    assert.equal(check.Parameters.FunctionName, "${EvaluateShardFunctionArn}");
    const substitutions = z
      .record(z.string(), z.unknown())
      .parse(propertiesOf(ids.stateMachine).DefinitionSubstitutions);
    assert.deepEqual(substitutions.EvaluateShardFunctionArn, {
      "Fn::GetAtt": [functionId(stack.evaluateShardFunction), "Arn"],
    });
    assert.deepEqual(check.Catch, [{ ErrorEquals: ["States.ALL"], Next: "DescribeFailure" }]);
  });

  it("passes asl-validator once placeholders hold real ARNs and names", async () => {
    const validate = await loadAslValidator();
    const resolved = aslText.replace(/\$\{([A-Za-z0-9_]+)\}/g, (_match, name: string) =>
      name === "RunsTableName"
        ? "Mmsafe-RunsTable"
        : name === "EventBusName"
          ? "Mmsafe-events"
          : `arn:aws:lambda:us-east-1:123456789012:function:${name}`,
    );
    const definition: unknown = JSON.parse(resolved);
    const result = validate(definition);
    assert.ok(result.isValid, result.errorsText());

    // Control: the validator does reject a broken definition, so the check above is not vacuous.
    const broken = z.object({ StartAt: z.string() }).passthrough().parse(JSON.parse(resolved));
    assert.equal(validate({ ...broken, StartAt: "NoSuchState" }).isValid, false);
  });

  it("is a STANDARD workflow with tracing and logs of every event without execution data", () => {
    template.hasResourceProperties("AWS::StepFunctions::StateMachine", {
      StateMachineType: "STANDARD",
      TracingConfiguration: { Enabled: true },
      LoggingConfiguration: Match.objectLike({ Level: "ALL", IncludeExecutionData: false }),
    });
  });
});

describe("lambda functions", () => {
  it("are exactly the three pipeline handlers", () => {
    template.resourceCountIs("AWS::Lambda::Function", 3);
  });

  // Plan and evaluate-shard share the run-wide model budgets and know the allowed Bedrock models (none in the
  // default config: "[]"); aggregate calls no model.
  const expected = [
    { name: "plan", fn: pipelineFunctions.plan, memorySize: 512, timeout: 60, budgets: true },
    {
      name: "evaluate-shard",
      fn: pipelineFunctions["evaluate-shard"],
      memorySize: 1024,
      timeout: 240,
      budgets: true,
    },
    { name: "aggregate", fn: pipelineFunctions.aggregate, memorySize: 1024, timeout: 300, budgets: false },
  ];
  for (const { name, fn, memorySize, timeout, budgets } of expected) {
    it(`${name}: nodejs22.x on arm64, ${memorySize} MB, ${timeout} s, X-Ray, handler env vars`, () => {
      const properties = propertiesOf(functionId(fn));
      assert.equal(properties.Runtime, "nodejs22.x");
      assert.deepEqual(properties.Architectures, ["arm64"]);
      assert.equal(properties.Handler, "index.handler");
      assert.equal(properties.MemorySize, memorySize);
      assert.equal(properties.Timeout, timeout);
      assert.deepEqual(properties.TracingConfig, { Mode: "Active" });
      assert.deepEqual(properties.Environment, {
        Variables: {
          [HANDLER_ENV.bucket]: { Ref: ids.bucket },
          [HANDLER_ENV.runsTable]: { Ref: ids.runsTable },
          [HANDLER_ENV.verdictsTable]: { Ref: ids.verdictsTable },
          ...(budgets
            ? { [HANDLER_ENV.budgetsTable]: { Ref: ids.budgetsTable }, [HANDLER_ENV.bedrockModels]: "[]" }
            : {}),
          POWERTOOLS_SERVICE_NAME: METRICS.service,
          POWERTOOLS_METRICS_NAMESPACE: METRICS.namespace,
        },
      });
    });

    it(`${name}: logs to its own log group kept one month`, () => {
      const logGroup = z
        .object({ LogGroup: z.object({ Ref: z.string() }) })
        .parse(propertiesOf(functionId(fn)).LoggingConfig).LogGroup.Ref;
      assert.equal(resources[logGroup]?.Type, "AWS::Logs::LogGroup");
      assert.equal(propertiesOf(logGroup).RetentionInDays, 30);
    });
  }

  it("reserve no concurrency by default: evaluate-shard draws on the account's pool like the others", () => {
    for (const fn of Object.values(pipelineFunctions)) {
      assert.equal(propertiesOf(functionId(fn)).ReservedConcurrentExecutions, undefined);
    }
  });

  it("each have a different log group", () => {
    const logGroups = Object.values(pipelineFunctions).map((fn) =>
      JSON.stringify(propertiesOf(functionId(fn)).LoggingConfig),
    );
    assert.equal(new Set(logGroups).size, 3);
  });
});

describe("bucket", () => {
  it("blocks public access and is encrypted with S3-managed keys", () => {
    assert.deepEqual(propertiesOf(ids.bucket).PublicAccessBlockConfiguration, {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    assert.deepEqual(propertiesOf(ids.bucket).BucketEncryption, {
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
    });
  });

  it("denies requests without TLS", () => {
    template.hasResourceProperties("AWS::S3::BucketPolicy", {
      Bucket: { Ref: ids.bucket },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Deny",
            Principal: { AWS: "*" },
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ]),
      },
    });
  });

  it("expires runs/ after 30 days and survives stack deletion", () => {
    assert.deepEqual(propertiesOf(ids.bucket).LifecycleConfiguration, {
      Rules: [
        { Id: "ExpireRunScratchData", Prefix: S3_PREFIXES.runs, ExpirationInDays: 30, Status: "Enabled" },
      ],
    });
    template.hasResource("AWS::S3::Bucket", { DeletionPolicy: "Retain", UpdateReplacePolicy: "Retain" });
  });
});

describe("tables", () => {
  for (const [name, id, keySchema] of [
    ["runs", ids.runsTable, [{ AttributeName: "runId", KeyType: "HASH" }]],
    [
      "verdicts",
      ids.verdictsTable,
      [
        { AttributeName: "runId", KeyType: "HASH" },
        { AttributeName: "verdictKey", KeyType: "RANGE" },
      ],
    ],
  ] as const) {
    it(`${name}: keys, on-demand billing, point-in-time recovery`, () => {
      const properties = propertiesOf(id);
      assert.deepEqual(properties.KeySchema, keySchema);
      assert.equal(properties.BillingMode, "PAY_PER_REQUEST");
      assert.deepEqual(properties.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true });
    });
  }

  it("budgets: pk only, on demand, items expire by ttl, no point-in-time recovery, deleted with the stack", () => {
    const matching = template.findResources("AWS::DynamoDB::Table", {
      Properties: {
        KeySchema: [{ AttributeName: "pk", KeyType: "HASH" }],
        AttributeDefinitions: [{ AttributeName: "pk", AttributeType: "S" }],
        BillingMode: "PAY_PER_REQUEST",
        TimeToLiveSpecification: { AttributeName: "ttl", Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: false },
      },
      DeletionPolicy: "Delete",
      UpdateReplacePolicy: "Delete",
    });
    assert.deepEqual(Object.keys(matching), [ids.budgetsTable]);
    assert.match(ids.budgetsTable, /^BudgetsTable[0-9A-F]{8}$/);
  });
});

describe("IAM", () => {
  it("allows no action containing '*' anywhere", () => {
    // Every grant lives in an AWS::IAM::Policy (checked below), not inline in a role or a managed policy.
    template.resourceCountIs("AWS::IAM::ManagedPolicy", 0);
    for (const role of Object.values(template.findResources("AWS::IAM::Role"))) {
      assert.equal(role.Properties?.Policies, undefined);
      // Nor any AWS managed policy (AWSLambdaBasicExecutionRole would allow writing to every log group).
      assert.equal(role.Properties?.ManagedPolicyArns, undefined);
    }
    const allows = policies
      .flatMap((policy) => policy.PolicyDocument.Statement)
      .filter((s) => s.Effect === "Allow");
    assert.ok(allows.length > 10, "expected the stack's policies to be found");
    assert.deepEqual(
      allows.flatMap(actionsOf).filter((action) => action.includes("*")),
      [],
    );
  });

  it("lets the state machine invoke exactly the three functions", () => {
    const invokable = allowStatementsOfRole(ids.stateMachineRole)
      .filter((statement) => actionsOf(statement).includes("lambda:InvokeFunction"))
      .flatMap(resourcesOf);
    const invokedFunctions = new Set(
      invokable.map((resource) => JSON.stringify(resource).match(/"Fn::GetAtt":\["([^"]+)","Arn"\]/)?.[1]),
    );
    assert.deepEqual(invokedFunctions, new Set(Object.values(pipelineFunctions).map(functionId)));
  });

  it("lets the state machine mark runs failed and nothing else on the tables", () => {
    assert.deepEqual(tableActions(ids.stateMachineRole, ids.runsTable), new Set(["dynamodb:UpdateItem"]));
    assert.deepEqual(tableActions(ids.stateMachineRole, ids.verdictsTable), new Set());
  });

  it("lets the state machine read the manifest and write map results under runs/ only", () => {
    assert.deepEqual(s3Access(ids.stateMachineRole), [
      `s3:AbortMultipartUpload ${objects(S3_PREFIXES.runs)}`,
      `s3:GetObject ${objects(S3_PREFIXES.runs)}`,
      `s3:ListMultipartUploadParts ${objects(S3_PREFIXES.runs)}`,
      `s3:PutObject ${objects(S3_PREFIXES.runs)}`,
    ]);
  });

  it("lets the state machine start, describe and stop its own child executions", () => {
    const statements = allowStatementsOfRole(ids.stateMachineRole);
    const resourcesFor = (action: string): unknown[] =>
      statements.filter((statement) => actionsOf(statement).includes(action)).flatMap(resourcesOf);
    assert.deepEqual(resourcesFor("states:StartExecution"), [{ Ref: ids.stateMachine }]);
    for (const action of ["states:DescribeExecution", "states:StopExecution"]) {
      const scoped = resourcesFor(action);
      assert.ok(scoped.length > 0, `${action} not granted`);
      for (const resource of scoped) {
        const text = JSON.stringify(resource);
        assert.match(text, /:execution:/);
        assert.ok(
          text.includes(`"Fn::GetAtt":["${ids.stateMachine}","Name"]`),
          `${action} not scoped: ${text}`,
        );
      }
    }
  });

  it("scopes each function's S3 access to the prefixes it needs", () => {
    const access = (fn: PipelineFunction): string[] => s3Access(roleId(fn));
    // Reading a prefix includes listing it, so a missing key is a 404 the handler can tell from a denial.
    const reads = (...prefixes: string[]): string[] =>
      prefixes.flatMap((prefix) => [`s3:GetObject ${objects(prefix)}`, `s3:ListBucket ${objects(prefix)}`]);
    const writes = (prefix: string): string => `s3:PutObject ${objects(prefix)}`;
    const sorted = (entries: string[]): string[] => [...entries].sort();
    assert.deepEqual(
      access(pipelineFunctions.plan),
      sorted([...reads(S3_PREFIXES.datasets, S3_PREFIXES.config), writes(S3_PREFIXES.runs)]),
    );
    assert.deepEqual(
      access(pipelineFunctions["evaluate-shard"]),
      sorted([
        ...reads(S3_PREFIXES.datasets, S3_PREFIXES.runs, S3_PREFIXES.cache),
        writes(S3_PREFIXES.cache),
      ]),
    );
    assert.deepEqual(
      access(pipelineFunctions.aggregate),
      // The run summaries too: Aggregate lists and reads them all to rebuild the history (reports/index.html).
      sorted([
        ...reads(S3_PREFIXES.datasets, S3_PREFIXES.runs, RUN_SUMMARIES_PREFIX),
        writes(S3_PREFIXES.reports),
      ]),
    );
  });

  it("gives evaluate-shard no write access to reports/", () => {
    const report = reportJsonKey("run-1");
    /** S3 access other than reading or listing that reaches the report key. */
    const reportWrites = (fn: PipelineFunction): string[] =>
      s3Access(roleId(fn)).filter((entry) => {
        const [action = "", pattern = ""] = entry.split(" ");
        return !READ_ACTIONS.has(action) && patternCovers(pattern, report);
      });
    assert.deepEqual(reportWrites(pipelineFunctions["evaluate-shard"]), []);
    // Control: the same check does catch the function that publishes reports.
    assert.deepEqual(reportWrites(pipelineFunctions.aggregate), [
      `s3:PutObject ${objects(S3_PREFIXES.reports)}`,
    ]);
  });

  it("scopes each function's table access to its role in the pipeline", () => {
    const plan = roleId(pipelineFunctions.plan);
    const evaluateShard = roleId(pipelineFunctions["evaluate-shard"]);
    const aggregate = roleId(pipelineFunctions.aggregate);
    const writes = (actions: Set<string>): string[] => TABLE_WRITES.filter((action) => actions.has(action));

    assert.deepEqual(writes(tableActions(plan, ids.runsTable)), TABLE_WRITES);
    assert.deepEqual(tableActions(plan, ids.verdictsTable), new Set());

    assert.deepEqual(writes(tableActions(evaluateShard, ids.verdictsTable)), TABLE_WRITES);
    assert.deepEqual(tableActions(evaluateShard, ids.runsTable), new Set());

    const aggregateVerdicts = tableActions(aggregate, ids.verdictsTable);
    assert.ok(aggregateVerdicts.has("dynamodb:Query"), "aggregate cannot query verdicts");
    assert.deepEqual(writes(aggregateVerdicts), []);
    assert.deepEqual(writes(tableActions(aggregate, ids.runsTable)), TABLE_WRITES);

    // The run-wide model budgets: read and written by plan and evaluate-shard, untouched by aggregate.
    for (const role of [plan, evaluateShard]) {
      const budgets = tableActions(role, ids.budgetsTable);
      assert.deepEqual(writes(budgets), TABLE_WRITES);
      assert.ok(budgets.has("dynamodb:GetItem"), "budgets table not readable");
    }
    assert.deepEqual(tableActions(aggregate, ids.budgetsTable), new Set());
    assert.deepEqual(tableActions(ids.stateMachineRole, ids.budgetsTable), new Set());
  });
});

describe("outputs", () => {
  it("exports the state machine ARN, bucket and table names and the notification topic ARN", () => {
    template.hasOutput("StateMachineArn", { Value: { Ref: ids.stateMachine } });
    template.hasOutput("BucketName", { Value: { Ref: ids.bucket } });
    template.hasOutput("RunsTableName", { Value: { Ref: ids.runsTable } });
    template.hasOutput("VerdictsTableName", { Value: { Ref: ids.verdictsTable } });
    template.hasOutput("BudgetsTableName", { Value: { Ref: ids.budgetsTable } });
    template.hasOutput("NotificationTopicArn", { Value: { Ref: logicalId(stack.notifications.topic) } });
  });
});
