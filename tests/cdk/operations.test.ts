/**
 * Checks what makes MmsafeStack deployable to production: schedules from the deploy config, run
 * notifications, the model-secret grant, observability (tracing, dashboard, alarms), log retention, bucket
 * hardening and IAM without wildcard actions.
 *
 * Run: node --import tsx --test tests/cdk/operations.test.ts
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { Validations } from "aws-cdk-lib";
import { Match } from "aws-cdk-lib/assertions";
import * as iam from "aws-cdk-lib/aws-iam";
import { z } from "zod";
import { EVALUATION_ASL_PATH, MmsafeStack, MODEL_SECRETS_PREFIX } from "../../lib/mmsafe-stack.ts";
import { MODEL_ERROR_RATE_PERIOD } from "../../lib/pipeline-monitoring.ts";
import { executionInputSchema, modelConfigSchema } from "../../src/core/schemas.ts";
import { type DeployConfig, parseDeployConfig } from "../../src/deployment/deploy-config.ts";
import { METRICS, RUN_EVENTS } from "../../src/deployment/observability.ts";
import { responseCacheKey, S3_PREFIXES } from "../../src/deployment/storage-layout.ts";
import {
  actionsOf,
  allowStatementsOfRole,
  documentStatements,
  identityStatements,
  resourcesOf,
  type Synthesized,
  schemaValidation,
  synthesize,
  synthesizeConfig,
  testApp,
} from "./support.ts";

/** A config with every optional part: two schedules (one disabled), an e-mail address, a custom threshold. */
const FULL_CONFIG = {
  stackName: "MmsafeProd",
  schedules: [
    {
      name: "nightly",
      expression: "cron(0 3 * * ? *)",
      timezone: "Europe/Berlin",
      description: "Nightly regression check",
      input: { models: ["gpt-4o-mini"], strategies: ["baseline", "vcd"], limit: 50 },
    },
    { name: "weekly-full", expression: "rate(7 days)", enabled: false },
  ],
  notificationEmail: "safety-team@example.com",
  alarms: { modelErrorRatePercent: 7.5 },
};

// Schema-validated: a property CloudFormation would reject fails here (the default config is validated by
// stack.test.ts).
const full = synthesize(FULL_CONFIG, { validateSchema: true });
const minimal = synthesize({});

const ref = (synthesized: Synthesized, construct: Parameters<Synthesized["logicalId"]>[0]) => ({
  Ref: synthesized.logicalId(construct),
});
const getAtt = (
  synthesized: Synthesized,
  construct: Parameters<Synthesized["logicalId"]>[0],
  attribute: string,
) => ({
  "Fn::GetAtt": [synthesized.logicalId(construct), attribute],
});

describe("schedules", () => {
  const scheduleSchema = z.object({
    Description: z.string(),
    ScheduleExpression: z.string(),
    ScheduleExpressionTimezone: z.string(),
    State: z.enum(["ENABLED", "DISABLED"]),
    FlexibleTimeWindow: z.unknown(),
    Target: z.object({ Arn: z.unknown(), RoleArn: z.unknown(), Input: z.string() }),
  });
  const schedules = full
    .resourcesOfType("AWS::Scheduler::Schedule")
    .map(([, properties]) => scheduleSchema.parse(properties));
  const byName = new Map(
    schedules.map((schedule) => [
      z.object({ schedule: z.string() }).passthrough().parse(JSON.parse(schedule.Target.Input)).schedule,
      schedule,
    ]),
  );
  const parsedConfig = parseDeployConfig(FULL_CONFIG, "FULL_CONFIG");

  it("creates one EventBridge Scheduler schedule per configured schedule", () => {
    assert.equal(schedules.length, 2);
    assert.deepEqual([...byName.keys()].sort(), ["nightly", "weekly-full"]);
  });

  it("uses each schedule's expression, time zone and state, without a flexible window", () => {
    assert.deepEqual(
      Object.fromEntries(
        [...byName].map(([name, schedule]) => [
          name,
          {
            expression: schedule.ScheduleExpression,
            timezone: schedule.ScheduleExpressionTimezone,
            state: schedule.State,
            window: schedule.FlexibleTimeWindow,
          },
        ]),
      ),
      {
        nightly: {
          expression: "cron(0 3 * * ? *)",
          timezone: "Europe/Berlin",
          state: "ENABLED",
          window: { Mode: "OFF" },
        },
        "weekly-full": {
          expression: "rate(7 days)",
          timezone: "UTC",
          state: "DISABLED",
          window: { Mode: "OFF" },
        },
      },
    );
    assert.equal(byName.get("nightly")?.Description, "Nightly regression check");
  });

  it("starts the state machine with the configured input plus the schedule's name, a valid execution input", () => {
    for (const config of parsedConfig.schedules) {
      const input = byName.get(config.name)?.Target.Input ?? "";
      assert.ok(input.includes(`"schedule":"${config.name}"`), input);
      assert.deepEqual(JSON.parse(input), { ...config.input, schedule: config.name });
      assert.ok(executionInputSchema.safeParse(JSON.parse(input)).success, input);
    }
    const nightly = z
      .object({ models: z.array(z.string()), strategies: z.array(z.string()), limit: z.number() })
      .passthrough()
      .parse(JSON.parse(byName.get("nightly")?.Target.Input ?? "{}"));
    assert.deepEqual(
      { models: nightly.models, strategies: nightly.strategies, limit: nightly.limit },
      { models: ["gpt-4o-mini"], strategies: ["baseline", "vcd"], limit: 50 },
    );
    for (const schedule of schedules) {
      assert.deepEqual(schedule.Target.Arn, ref(full, full.stack.stateMachine));
    }
  });

  it("assumes a role that may only start executions of this state machine", () => {
    const role = full.stack.schedules.role;
    assert.ok(role, "no scheduler role");
    for (const schedule of schedules) assert.deepEqual(schedule.Target.RoleArn, getAtt(full, role, "Arn"));
    const allows = allowStatementsOfRole(full, full.logicalId(role));
    assert.deepEqual(
      allows.map((statement) => ({ actions: actionsOf(statement), resources: resourcesOf(statement) })),
      [{ actions: ["states:StartExecution"], resources: [ref(full, full.stack.stateMachine)] }],
    );
    assert.deepEqual(full.propertiesOf(full.logicalId(role)).AssumeRolePolicyDocument, {
      Version: "2012-10-17",
      Statement: [
        {
          Effect: "Allow",
          Principal: { Service: "scheduler.amazonaws.com" },
          Action: "sts:AssumeRole",
          Condition: { StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" } } },
        },
      ],
    });
  });

  it("adds no schedule and no scheduler role when none are configured", () => {
    minimal.template.resourceCountIs("AWS::Scheduler::Schedule", 0);
    assert.equal(minimal.stack.schedules.role, undefined);
  });

  it("fails synth on a schedule whose input is not a valid execution input", () => {
    const config: DeployConfig = {
      ...parseDeployConfig({}, "empty"),
      schedules: [
        {
          name: "broken",
          expression: "rate(1 day)",
          timezone: "UTC",
          enabled: true,
          input: { shardSize: 0 },
        },
      ],
    };
    assert.throws(() => synthesizeConfig(config), /schedule "broken"[\s\S]*shardSize/);
  });

  it("fails synth on an unknown time zone", () => {
    const config = parseDeployConfig(
      { schedules: [{ name: "mars", expression: "cron(0 3 * * ? *)", timezone: "Mars/Olympus_Mons" }] },
      "config",
    );
    assert.throws(
      () => new MmsafeStack(testApp(schemaValidation(false)), "Mmsafe", { config }),
      /schedule "mars": unknown time zone "Mars\/Olympus_Mons"/,
    );
  });
});

/** Applies an EventBridge input transformer whose template is a JSON string, as EventBridge does. */
function transform(transformer: unknown, event: unknown): string {
  const { InputPathsMap, InputTemplate } = z
    .object({ InputPathsMap: z.record(z.string(), z.string()), InputTemplate: z.string() })
    .parse(transformer);
  const valueAt = (jsonPath: string): unknown =>
    jsonPath
      .replace(/^\$\./, "")
      .split(".")
      .reduce<unknown>((value, key) => z.record(z.string(), z.unknown()).parse(value)[key], event);
  const filled = InputTemplate.replace(/<([A-Za-z0-9_.-]+)>/g, (_match, name: string) => {
    const jsonPath = InputPathsMap[name];
    assert.ok(jsonPath, `template variable ${name} has no path`);
    // Inside a JSON string, EventBridge inserts a string value escaped.
    return JSON.stringify(String(valueAt(jsonPath))).slice(1, -1);
  });
  return z.string().parse(JSON.parse(filled));
}

describe("run notifications", () => {
  const aslStates = z
    .object({ States: z.record(z.string(), z.unknown()) })
    .parse(JSON.parse(readFileSync(EVALUATION_ASL_PATH, "utf8"))).States;
  const topic = ref(full, full.stack.notifications.topic);

  it("matches the events the ASL publishes (PublishCompleted, PublishFailed) to RUN_EVENTS", () => {
    const entry = (state: string) =>
      z
        .object({ Parameters: z.object({ Entries: z.tuple([z.record(z.string(), z.unknown())]) }) })
        .parse(aslStates[state]).Parameters.Entries[0];
    assert.deepEqual(
      ["PublishCompleted", "PublishFailed"].map((state) => {
        const published = entry(state);
        return [published.EventBusName, published.Source, published.DetailType];
      }),
      [
        [`\${EventBusName}`, RUN_EVENTS.source, RUN_EVENTS.completed],
        [`\${EventBusName}`, RUN_EVENTS.source, RUN_EVENTS.failed],
      ],
    );
  });

  const ruleSchema = z.object({
    EventBusName: z.unknown(),
    EventPattern: z.unknown(),
    State: z.string(),
    Targets: z.array(z.object({ Arn: z.unknown(), InputTransformer: z.unknown() })),
  });
  const rules = full.resourcesOfType("AWS::Events::Rule").map(([id, properties]) => ({
    id,
    rule: ruleSchema.parse(properties),
  }));

  it("routes both detail-types of the stack's bus to the topic, nothing else", () => {
    assert.deepEqual(
      rules.map(({ rule }) => rule.EventPattern),
      [
        { source: [RUN_EVENTS.source], "detail-type": [RUN_EVENTS.completed] },
        { source: [RUN_EVENTS.source], "detail-type": [RUN_EVENTS.failed] },
      ],
    );
    for (const { rule } of rules) {
      assert.deepEqual(rule.EventBusName, ref(full, full.stack.eventBus));
      assert.equal(rule.State, "ENABLED");
      assert.deepEqual(
        rule.Targets.map((target) => target.Arn),
        [topic],
      );
    }
  });

  const messageOf = (detailType: string, detail: unknown): string => {
    const rule = rules.find(({ rule }) =>
      isDeepStrictEqual(
        z.object({ "detail-type": z.unknown() }).passthrough().parse(rule.EventPattern)["detail-type"],
        [detailType],
      ),
    );
    assert.ok(rule, `no rule for ${detailType}`);
    const event = { source: RUN_EVENTS.source, "detail-type": detailType, detail };
    return transform(rule.rule.Targets[0]?.InputTransformer, event);
  };

  it("sends a completed run's summary", () => {
    const summary =
      "mmsafe run r-1: 2 models × 1 strategy, safety awareness 81.2% (−2.1 pts), regression detected";
    assert.equal(
      messageOf(RUN_EVENTS.completed, { runId: "r-1", summary, regression: { detected: true } }),
      summary,
    );
  });

  it("sends a failed run's id, error and cause", () => {
    const cause = JSON.stringify({ Error: "States.TaskFailed", Cause: 'shard 3: "quota exceeded"' });
    assert.equal(
      messageOf(RUN_EVENTS.failed, { runId: "r-2", status: "FAILED", error: "States.TaskFailed", cause }),
      `mmsafe run r-2 FAILED: States.TaskFailed — ${cause}`,
    );
  });

  it("encrypts the topic with a rotated customer managed key and denies publishing without TLS", () => {
    const [key] = full.resourcesOfType("AWS::KMS::Key");
    assert.ok(key);
    assert.equal(key[1].EnableKeyRotation, true);
    full.template.hasResourceProperties("AWS::SNS::Topic", {
      KmsMasterKeyId: getAtt(full, full.stack.notifications.key, "Arn"),
    });
    full.template.hasResourceProperties("AWS::SNS::TopicPolicy", {
      Topics: [topic],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: "Deny",
            Action: "sns:Publish",
            Condition: { Bool: { "aws:SecureTransport": "false" } },
          }),
        ]),
      },
    });
  });

  it("lets only the two rules and the stack's alarms publish, and both services use the key", () => {
    const [policy] = full.resourcesOfType("AWS::SNS::TopicPolicy");
    assert.ok(policy);
    const allows = documentStatements(policy[1].PolicyDocument).filter((s) => s.Effect === "Allow");
    const sourceArns = (service: string): unknown[] =>
      allows
        .filter((s) => isDeepStrictEqual(s.Principal, { Service: service }))
        .flatMap((s) => {
          assert.deepEqual(actionsOf(s), ["sns:Publish"]);
          const condition = z
            .object({
              ArnEquals: z.object({ "aws:SourceArn": z.unknown() }).strict().optional(),
              ArnLike: z
                .object({ "aws:SourceArn": z.array(z.unknown()) })
                .strict()
                .optional(),
              StringEquals: z.object({ "aws:SourceAccount": z.unknown() }).strict().optional(),
            })
            .strict()
            .parse(s.Condition);
          return condition.ArnEquals
            ? [condition.ArnEquals["aws:SourceArn"]]
            : (condition.ArnLike?.["aws:SourceArn"] ?? []);
        });
    assert.equal(allows.length, 3, JSON.stringify(allows));
    assert.deepEqual(
      sourceArns("events.amazonaws.com"),
      rules.map(({ id }) => ({ "Fn::GetAtt": [id, "Arn"] })),
    );
    assert.deepEqual(
      sourceArns("cloudwatch.amazonaws.com"),
      full.stack.monitoring.alarms.map((alarm) => getAtt(full, alarm, "Arn")),
    );

    const [key] = full.resourcesOfType("AWS::KMS::Key");
    const keyUsers = documentStatements(key?.[1].KeyPolicy)
      .filter(
        (s) =>
          s.Effect === "Allow" && isDeepStrictEqual(actionsOf(s), ["kms:Decrypt", "kms:GenerateDataKey*"]),
      )
      .map((s) => s.Principal);
    assert.deepEqual(keyUsers, [
      { Service: "events.amazonaws.com" },
      { Service: "cloudwatch.amazonaws.com" },
    ]);
  });

  it("subscribes the configured e-mail address, and no one when none is configured", () => {
    const subscriptions = full.resourcesOfType("AWS::SNS::Subscription").map(([, properties]) => properties);
    assert.deepEqual(subscriptions, [
      { Protocol: "email", Endpoint: FULL_CONFIG.notificationEmail, TopicArn: topic },
    ]);
    minimal.template.resourceCountIs("AWS::SNS::Subscription", 0);
    minimal.template.resourceCountIs("AWS::SNS::Topic", 1);
  });

  it("outputs the topic ARN", () => {
    full.template.hasOutput("NotificationTopicArn", { Value: topic });
  });
});

describe("model API key secrets", () => {
  it("are readable by evaluate-shard only, GetSecretValue only, under mmsafe/ only", () => {
    for (const synthesized of [full, minimal]) {
      const secretStatements = identityStatements(synthesized).filter(({ statement }) =>
        actionsOf(statement).some((action) => action.toLowerCase().startsWith("secretsmanager:")),
      );
      assert.deepEqual(
        secretStatements.map(({ roles, statement }) => ({
          roles,
          effect: statement.Effect,
          actions: actionsOf(statement),
          resources: resourcesOf(statement),
        })),
        [
          {
            roles: [synthesized.logicalId(synthesized.stack.evaluateShardFunction.role)],
            effect: "Allow",
            actions: ["secretsmanager:GetSecretValue"],
            resources: [
              {
                "Fn::Join": [
                  "",
                  [
                    "arn:",
                    { Ref: "AWS::Partition" },
                    ":secretsmanager:",
                    { Ref: "AWS::Region" },
                    ":",
                    { Ref: "AWS::AccountId" },
                    `:secret:${MODEL_SECRETS_PREFIX}*`,
                  ],
                ],
              },
            ],
          },
        ],
      );
    }
  });

  it("prefix is the one model configs must name their secrets under", () => {
    const model = { id: "m", baseURL: "https://api.example.com/v1", model: "m" };
    assert.ok(
      modelConfigSchema.safeParse({ ...model, apiKeySecret: `${MODEL_SECRETS_PREFIX}openai` }).success,
    );
    assert.equal(modelConfigSchema.safeParse({ ...model, apiKeySecret: "openai" }).success, false);
    assert.equal(modelConfigSchema.safeParse({ ...model, apiKeySecret: "other/openai" }).success, false);
  });
});

describe("response cache", () => {
  /** An object the cache writes: cache/responses/ab/ab00…0.json. */
  const cacheObject = responseCacheKey(`ab${"0".repeat(62)}`);

  /**
   * "<role> <action>" for every identity-policy S3 action reaching `key`: an object ARN pattern of the data
   * bucket covering it, s3:ListBucket on the bucket with an s3:prefix covering it, or a bare "*".
   */
  const accessTo = (synthesized: Synthesized, key: string): string[] => {
    const bucketArn = getAtt(synthesized, synthesized.stack.bucket, "Arn");
    const covers = (pattern: string) =>
      new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*")}$`).test(key);
    const patterns = (statement: Parameters<typeof resourcesOf>[0], action: string): string[] =>
      resourcesOf(statement).flatMap((resource) => {
        if (resource === "*") return ["*"];
        if (action === "s3:ListBucket" && isDeepStrictEqual(resource, bucketArn)) {
          const prefixes = z
            .object({ StringLike: z.object({ "s3:prefix": z.union([z.string(), z.array(z.string())]) }) })
            .safeParse(statement.Condition);
          return prefixes.success ? [prefixes.data.StringLike["s3:prefix"]].flat() : ["*"];
        }
        const join = z
          .object({ "Fn::Join": z.tuple([z.literal(""), z.tuple([z.unknown(), z.string()])]) })
          .safeParse(resource);
        if (join.success && isDeepStrictEqual(join.data["Fn::Join"][1][0], bucketArn))
          return [join.data["Fn::Join"][1][1].replace(/^\//, "")];
        return [];
      });
    return identityStatements(synthesized)
      .filter(({ statement }) => statement.Effect === "Allow")
      .flatMap(({ roles, statement }) =>
        actionsOf(statement)
          .filter((action) => action.startsWith("s3:"))
          .filter((action) => patterns(statement, action).some(covers))
          .flatMap((action) => roles.map((role) => `${role} ${action}`)),
      )
      .sort();
  };

  it("evaluate-shard, and no other role, may read, list and write cache/*", () => {
    for (const synthesized of [full, minimal]) {
      const evaluateShard = synthesized.logicalId(synthesized.stack.evaluateShardFunction.role);
      assert.deepEqual(accessTo(synthesized, cacheObject), [
        `${evaluateShard} s3:GetObject`,
        `${evaluateShard} s3:ListBucket`,
        `${evaluateShard} s3:PutObject`,
      ]);
    }
  });

  it("the walk above does see the other functions' grants (control: reports/ is aggregate's)", () => {
    assert.deepEqual(accessTo(minimal, `${S3_PREFIXES.reports}run-1/report.json`), [
      `${minimal.logicalId(minimal.stack.aggregateFunction.role)} s3:PutObject`,
    ]);
  });

  it("acknowledges IAM5 for exactly <bucket>/cache/* on evaluate-shard's role, with its own reason", () => {
    const resource = `<${minimal.logicalId(minimal.stack.bucket)}.Arn>/${S3_PREFIXES.cache}*`;
    const acks = minimal.app.node.findAll().flatMap((construct) =>
      construct.node.metadata
        .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((entry) => Object.entries(entry.data as Record<string, string>))
        .filter(([id]) => id.endsWith(`AwsSolutions-IAM5[Resource::${resource}]`))
        .map(([, reason]) => ({ path: construct.node.path, reason })),
    );
    assert.ok(acks.length > 0, "no acknowledgement of the cache/ wildcard");
    for (const { path, reason } of acks) {
      assert.equal(path, minimal.stack.evaluateShardFunction.role.node.path);
      assert.match(reason, /response cache/);
    }
  });

  it("is never expired: the data bucket's lifecycle rules leave cache/ alone", () => {
    const rules = z
      .object({ LifecycleConfiguration: z.object({ Rules: z.array(z.object({ Prefix: z.string() })) }) })
      .parse(full.propertiesOf(full.logicalId(full.stack.bucket))).LifecycleConfiguration.Rules;
    assert.ok(rules.length > 0);
    for (const rule of rules) {
      assert.ok(rule.Prefix.length > 0 && !cacheObject.startsWith(rule.Prefix), `rule on "${rule.Prefix}"`);
    }
  });
});

describe("observability", () => {
  const alarmSchema = z.object({
    AlarmActions: z.array(z.unknown()),
    ComparisonOperator: z.string(),
    Threshold: z.number(),
    TreatMissingData: z.string(),
    EvaluationPeriods: z.number(),
    MetricName: z.string().optional(),
    Namespace: z.string().optional(),
    Dimensions: z.unknown().optional(),
    Statistic: z.string().optional(),
    Period: z.number().optional(),
    Metrics: z.unknown().optional(),
  });
  const alarmOf = (construct: Parameters<Synthesized["logicalId"]>[0]) =>
    alarmSchema.parse(full.propertiesOf(full.logicalId(construct)));
  const topic = ref(full, full.stack.notifications.topic);

  for (const [metricName, alarm] of [
    ["ExecutionsFailed", full.stack.monitoring.executionsFailedAlarm],
    ["ExecutionsTimedOut", full.stack.monitoring.executionsTimedOutAlarm],
  ] as const) {
    it(`alarms on ${metricName} >= 1 and notifies the topic`, () => {
      assert.deepEqual(alarmOf(alarm), {
        AlarmActions: [topic],
        ComparisonOperator: "GreaterThanOrEqualToThreshold",
        Threshold: 1,
        TreatMissingData: "notBreaching",
        EvaluationPeriods: 1,
        MetricName: metricName,
        Namespace: "AWS/States",
        Dimensions: [{ Name: "StateMachineArn", Value: ref(full, full.stack.stateMachine) }],
        Statistic: "Sum",
        Period: 300,
      });
    });
  }

  it("alarms when 100 × ModelErrors / Verdicts over 15 minutes exceeds the configured percentage", () => {
    const alarm = alarmOf(full.stack.monitoring.modelErrorRateAlarm);
    assert.deepEqual(alarm.AlarmActions, [topic]);
    assert.equal(alarm.ComparisonOperator, "GreaterThanThreshold");
    assert.equal(alarm.Threshold, FULL_CONFIG.alarms.modelErrorRatePercent);
    assert.equal(alarm.TreatMissingData, "notBreaching");
    const metric = (id: string, metricName: string) => ({
      Id: id,
      MetricStat: {
        Metric: {
          Namespace: METRICS.namespace,
          MetricName: metricName,
          Dimensions: [{ Name: "service", Value: METRICS.service }],
        },
        Period: MODEL_ERROR_RATE_PERIOD.toSeconds(),
        Stat: "Sum",
      },
      ReturnData: false,
    });
    assert.equal(MODEL_ERROR_RATE_PERIOD.toMinutes(), 15);
    assert.deepEqual(alarm.Metrics, [
      {
        Id: "expr_1",
        Expression: "100 * errors / verdicts",
        Label: "Model error rate (%)",
        ReturnData: true,
      },
      metric("errors", METRICS.modelErrors),
      metric("verdicts", METRICS.verdicts),
    ]);
  });

  it("uses the default threshold of 10% without configuration", () => {
    const alarm = alarmSchema.parse(
      minimal.propertiesOf(minimal.logicalId(minimal.stack.monitoring.modelErrorRateAlarm)),
    );
    assert.equal(alarm.Threshold, 10);
  });

  it("has a dashboard of executions, Lambda health and the handlers' custom metrics", () => {
    const [dashboard] = full.resourcesOfType("AWS::CloudWatch::Dashboard");
    assert.ok(dashboard);
    const body = JSON.stringify(dashboard[1].DashboardBody);
    for (const name of [
      "ExecutionsStarted",
      "ExecutionsSucceeded",
      "ExecutionsFailed",
      "ExecutionsTimedOut",
      "ExecutionTime",
      "Errors",
      "Throttles",
      "Duration",
      METRICS.verdicts,
      METRICS.modelErrors,
      METRICS.modelLatency,
      METRICS.promptTokens,
      METRICS.completionTokens,
    ]) {
      assert.ok(body.includes(`\\"${name}\\"`), `dashboard lacks ${name}`);
    }
    for (const fn of [
      full.stack.planFunction,
      full.stack.evaluateShardFunction,
      full.stack.aggregateFunction,
    ]) {
      assert.ok(body.includes(`{"Ref":"${full.logicalId(fn.function)}"}`), `dashboard lacks ${fn.node.id}`);
    }
    assert.ok(
      body.includes(
        `\\"${METRICS.namespace}\\",\\"${METRICS.modelLatency}\\",\\"service\\",\\"${METRICS.service}\\"`,
      ),
    );
    assert.ok(body.includes('\\"stat\\":\\"p50\\"') && body.includes('\\"stat\\":\\"p95\\"'));
  });

  it("keeps every log group for a bounded time, and every log destination is such a group", () => {
    const logGroups = full.resourcesOfType("AWS::Logs::LogGroup");
    assert.equal(logGroups.length, 4);
    for (const [id, properties] of logGroups) {
      assert.equal(typeof properties.RetentionInDays, "number", `${id} keeps logs forever`);
    }
    full.template.resourceCountIs("Custom::LogRetention", 0);
    const destinations = [
      ...full
        .resourcesOfType("AWS::Lambda::Function")
        .map(
          ([, properties]) =>
            z.object({ LogGroup: z.object({ Ref: z.string() }) }).parse(properties.LoggingConfig).LogGroup
              .Ref,
        ),
      ...full.resourcesOfType("AWS::StepFunctions::StateMachine").flatMap(([, properties]) =>
        z
          .object({
            Destinations: z.array(
              z.object({
                CloudWatchLogsLogGroup: z.object({
                  LogGroupArn: z.object({ "Fn::GetAtt": z.tuple([z.string(), z.literal("Arn")]) }),
                }),
              }),
            ),
          })
          .parse(properties.LoggingConfiguration)
          .Destinations.map((destination) => destination.CloudWatchLogsLogGroup.LogGroupArn["Fn::GetAtt"][0]),
      ),
    ];
    assert.deepEqual(new Set(destinations), new Set(logGroups.map(([id]) => id)));
  });

  it("logs every state machine event under /aws/vendedlogs/ without execution data", () => {
    full.template.hasResourceProperties("AWS::StepFunctions::StateMachine", {
      LoggingConfiguration: Match.objectLike({ Level: "ALL", IncludeExecutionData: false }),
      TracingConfiguration: { Enabled: true },
    });
    assert.equal(
      full.propertiesOf(full.logicalId(full.stack.stateMachineLogGroup)).LogGroupName,
      `/aws/vendedlogs/states/${FULL_CONFIG.stackName}-evaluation`,
    );
  });
});

describe("storage", () => {
  it("has point-in-time recovery on every table but the ephemeral budgets table", () => {
    const tables = full.resourcesOfType("AWS::DynamoDB::Table");
    assert.equal(tables.length, 3);
    const budgets = full.logicalId(full.stack.budgetsTable);
    for (const [id, properties] of tables) {
      assert.deepEqual(properties.PointInTimeRecoverySpecification, {
        PointInTimeRecoveryEnabled: id !== budgets,
      });
    }
  });

  it("denies requests without TLS on every bucket", () => {
    const buckets = full.resourcesOfType("AWS::S3::Bucket").map(([id]) => id);
    assert.equal(buckets.length, 2);
    for (const bucket of buckets) {
      full.template.hasResourceProperties("AWS::S3::BucketPolicy", {
        Bucket: { Ref: bucket },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: "Deny",
              Action: "s3:*",
              Principal: { AWS: "*" },
              Condition: { Bool: { "aws:SecureTransport": "false" } },
            }),
          ]),
        },
      });
    }
  });

  it("logs data bucket access to a private, encrypted log bucket that expires logs", () => {
    const dataBucket = full.propertiesOf(full.logicalId(full.stack.bucket));
    const logBucketId = full.logicalId(full.stack.accessLogBucket);
    assert.deepEqual(dataBucket.LoggingConfiguration, {
      DestinationBucketName: { Ref: logBucketId },
      LogFilePrefix: "data-bucket/",
    });
    const logBucket = full.propertiesOf(logBucketId);
    assert.deepEqual(logBucket.BucketEncryption, {
      ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
    });
    assert.deepEqual(logBucket.PublicAccessBlockConfiguration, {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    assert.deepEqual(logBucket.LifecycleConfiguration, {
      Rules: [{ Id: "ExpireAccessLogs", ExpirationInDays: 365, Status: "Enabled" }],
    });
    full.template.hasResourceProperties("AWS::S3::BucketPolicy", {
      Bucket: { Ref: logBucketId },
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Effect: "Allow",
            Principal: { Service: "logging.s3.amazonaws.com" },
            Action: "s3:PutObject",
            Resource: { "Fn::Join": ["", [{ "Fn::GetAtt": [logBucketId, "Arn"] }, "/data-bucket/*"]] },
            Condition: {
              ArnLike: { "aws:SourceArn": getAtt(full, full.stack.bucket, "Arn") },
              StringEquals: { "aws:SourceAccount": { Ref: "AWS::AccountId" } },
            },
          },
        ]),
      },
    });
  });
});

describe("IAM", () => {
  for (const [name, synthesized] of [
    ["full config", full],
    ["empty config", minimal],
  ] as const) {
    it(`${name}: no identity policy allows an action containing '*', and no role has a managed policy`, () => {
      const statements = identityStatements(synthesized);
      assert.ok(statements.length > 10, "expected the stack's policies to be found");
      assert.deepEqual(
        statements.flatMap(({ source, statement }) =>
          actionsOf(statement)
            .filter((action) => action.includes("*"))
            .map((action) => `${source}: ${action}`),
        ),
        [],
      );
      for (const [id, properties] of synthesized.resourcesOfType("AWS::IAM::Role")) {
        assert.equal(properties.ManagedPolicyArns, undefined, `${id} has managed policies`);
      }
      synthesized.template.resourceCountIs("AWS::IAM::ManagedPolicy", 0);
    });
  }

  it("the walk above does see role inline policies and wildcard actions (control)", () => {
    const control = synthesizeConfig(parseDeployConfig({}, "empty"), {
      customize: (stack) => {
        new iam.Role(stack, "ControlRole", {
          assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com"),
          inlinePolicies: {
            Control: new iam.PolicyDocument({
              statements: [new iam.PolicyStatement({ actions: ["s3:Get*"], resources: ["*"] })],
            }),
          },
        });
      },
    });
    const wildcards = identityStatements(control).flatMap(({ source, statement }) =>
      actionsOf(statement)
        .filter((action) => action.includes("*"))
        .map((action) => `${source}: ${action}`),
    );
    assert.equal(wildcards.length, 1);
    assert.match(wildcards[0] ?? "", /^ControlRole\w+ inline Control: s3:Get\*$/);
  });
});
