/**
 * Amazon Bedrock in the stack, from `bedrock.models` in the deploy config: evaluate-shard's role alone gets
 * `bedrock:InvokeModel`, on exactly the listed foundation models and inference profiles (plus, for a profile,
 * its foundation model in any region, acknowledged to cdk-nag), and nothing while the list is empty; plan
 * learns the list from its environment; the config rejects what IAM could not express.
 *
 * Run: node --import tsx --test tests/cdk/bedrock-grants.test.ts
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Stack, Validations } from "aws-cdk-lib";
import * as iam from "aws-cdk-lib/aws-iam";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { z } from "zod";
import { MmsafeStack, type PipelineFunction } from "../../lib/mmsafe-stack.ts";
import { bedrockGrant, parseDeployConfig } from "../../src/deployment/deploy-config.ts";
import { HANDLER_ENV } from "../../src/deployment/storage-layout.ts";
import {
  actionsOf,
  allowStatementsOfRole,
  identityStatements,
  resourcesOf,
  type Statement,
  type Synthesized,
  schemaValidation,
  synthesize,
  testApp,
} from "./support.ts";

const FOUNDATION_MODEL = { id: "amazon.nova-lite-v1:0", region: "us-east-1" };
const INFERENCE_PROFILE = { id: "us.anthropic.claude-3-5-sonnet-20241022-v2:0", region: "us-west-2" };
const PROFILE_MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0";
const BEDROCK_CONFIG = { bedrock: { models: [FOUNDATION_MODEL, INFERENCE_PROFILE] } };

const partition = { Ref: "AWS::Partition" };
const join = (...parts: unknown[]): unknown => ({ "Fn::Join": ["", parts] });
/** The three resources BEDROCK_CONFIG must grant, as CloudFormation renders them. */
const EXPECTED_RESOURCES = [
  // A foundation model belongs to AWS: its ARN has no account.
  join("arn:", partition, ":bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"),
  // The profile is exact: its region and this account.
  join(
    "arn:",
    partition,
    ":bedrock:us-west-2:",
    { Ref: "AWS::AccountId" },
    ":inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0",
  ),
  // The profile's model, in whichever region of its geography a request is routed to.
  join("arn:", partition, `:bedrock:*::foundation-model/${PROFILE_MODEL}`),
];

const isBedrockAction = (action: string): boolean => action.toLowerCase().startsWith("bedrock:");
const bedrockStatements = (statements: readonly Statement[]): Statement[] =>
  statements.filter((statement) => actionsOf(statement).some(isBedrockAction));
const roleOf = (synthesized: Synthesized, fn: PipelineFunction): string => synthesized.logicalId(fn.role);

/** Sorted by their JSON, so resource lists compare regardless of order. */
const sortedJson = (values: readonly unknown[]): string[] => values.map((v) => JSON.stringify(v)).sort();

/** A function's environment variables in the template. */
function environmentOf(synthesized: Synthesized, fn: PipelineFunction): Record<string, unknown> {
  return z
    .object({ Variables: z.record(z.string(), z.unknown()) })
    .parse(synthesized.propertiesOf(synthesized.logicalId(fn.function)).Environment).Variables;
}

/** Every acknowledgement id recorded on a construct or below it (without the `Annotation::` CDK records it under). */
function acknowledgedIds(root: IConstruct): string[] {
  return root.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) => Object.keys(entry.data as Record<string, string>))
      .map((id) => id.replace(/^Annotation::/, "")),
  );
}

describe("Bedrock grants: none configured", () => {
  const synthesized = synthesize({});

  it("no policy, and nothing else in the template, mentions bedrock:", () => {
    for (const { source, statement } of identityStatements(synthesized)) {
      assert.deepEqual(actionsOf(statement).filter(isBedrockAction), [], source);
    }
    // Also catches a Bedrock ARN under some other action, or a resource policy.
    assert.doesNotMatch(JSON.stringify(synthesized.template.toJSON()), /bedrock:/i);
  });

  it("plan and evaluate-shard are told the empty list; aggregate is not told anything", () => {
    const { stack } = synthesized;
    assert.equal(environmentOf(synthesized, stack.planFunction)[HANDLER_ENV.bedrockModels], "[]");
    assert.equal(environmentOf(synthesized, stack.evaluateShardFunction)[HANDLER_ENV.bedrockModels], "[]");
    assert.equal(environmentOf(synthesized, stack.aggregateFunction)[HANDLER_ENV.bedrockModels], undefined);
  });
});

describe("Bedrock grants: a foundation model and an inference profile", () => {
  const synthesized = synthesize(BEDROCK_CONFIG);
  const { stack } = synthesized;

  it("evaluate-shard's role has one bedrock:InvokeModel statement on exactly the three resources", () => {
    const statements = bedrockStatements(
      allowStatementsOfRole(synthesized, roleOf(synthesized, stack.evaluateShardFunction)),
    );
    assert.equal(statements.length, 1, JSON.stringify(statements));
    const [statement] = statements;
    assert.ok(statement);
    assert.deepEqual(actionsOf(statement), ["bedrock:InvokeModel"]);
    assert.equal(statement.Condition, undefined);
    assert.deepEqual(sortedJson(resourcesOf(statement)), sortedJson(EXPECTED_RESOURCES));
  });

  it("plan, aggregate and the state machine get no Bedrock action", () => {
    for (const role of [
      roleOf(synthesized, stack.planFunction),
      roleOf(synthesized, stack.aggregateFunction),
      synthesized.logicalId(stack.stateMachine.role),
    ]) {
      assert.deepEqual(bedrockStatements(allowStatementsOfRole(synthesized, role)), [], role);
    }
  });

  it("no statement anywhere allows a wildcard Bedrock action, or any Bedrock action but InvokeModel", () => {
    const evaluateShardRole = roleOf(synthesized, stack.evaluateShardFunction);
    for (const { roles, source, statement } of identityStatements(synthesized)) {
      for (const action of actionsOf(statement)) {
        assert.notEqual(action, "*", source);
        if (!isBedrockAction(action)) continue;
        assert.equal(action, "bedrock:InvokeModel", source);
        assert.deepEqual(roles, [evaluateShardRole], source);
      }
    }
  });

  it("the region of the profile's foundation model is the only wildcard in a Bedrock resource", () => {
    const [statement] = bedrockStatements(
      allowStatementsOfRole(synthesized, roleOf(synthesized, stack.evaluateShardFunction)),
    );
    assert.ok(statement);
    const wildcards = resourcesOf(statement)
      .map((resource) => JSON.stringify(resource))
      .filter((text) => text.includes("*"));
    assert.deepEqual(wildcards, [JSON.stringify(EXPECTED_RESOURCES[2])]);
    assert.equal([...(wildcards[0] ?? "")].filter((char) => char === "*").length, 1);
  });

  it("plan (and evaluate-shard) get the list as a JSON array of {id, region}", () => {
    for (const fn of [stack.planFunction, stack.evaluateShardFunction]) {
      const value = environmentOf(synthesized, fn)[HANDLER_ENV.bedrockModels];
      assert.equal(typeof value, "string");
      assert.deepEqual(JSON.parse(String(value)), [FOUNDATION_MODEL, INFERENCE_PROFILE]);
    }
    assert.equal(environmentOf(synthesized, stack.aggregateFunction)[HANDLER_ENV.bedrockModels], undefined);
  });

  it("profiles of one model in two geographies share one any-region foundation-model resource", () => {
    const twoGeographies = synthesize({
      bedrock: {
        models: [INFERENCE_PROFILE, { id: `eu.${PROFILE_MODEL}`, region: "eu-central-1" }],
      },
    });
    const [statement, ...others] = bedrockStatements(
      allowStatementsOfRole(
        twoGeographies,
        roleOf(twoGeographies, twoGeographies.stack.evaluateShardFunction),
      ),
    );
    assert.ok(statement);
    assert.deepEqual(others, []);
    const resources = resourcesOf(statement).map((resource) => JSON.stringify(resource));
    assert.equal(resources.length, 3, resources.join("\n"));
    assert.equal(resources.filter((text) => text.includes("*")).length, 1);
  });
});

describe("Bedrock grants: cdk-nag", () => {
  const anyRegionAck = `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/${PROFILE_MODEL}]`;

  it("stays clean with the profile's wildcard, acknowledged for exactly that resource", () => {
    const app = testApp(schemaValidation(false));
    const stack = new MmsafeStack(app, "Mmsafe", {
      config: parseDeployConfig(BEDROCK_CONFIG, "bedrock test config"),
    });
    const checks = new AwsSolutionsChecks(app, { verbose: true });
    Validations.of(app).addPlugins(checks);
    app.synth();
    const report = checks.validateScope(stack);
    assert.deepEqual(
      report.violations.map((violation) => violation.ruleName),
      [],
    );
    assert.equal(report.success, true);
    const bedrockAcks = acknowledgedIds(stack).filter((id) => id.includes("bedrock"));
    assert.deepEqual(bedrockAcks, [anyRegionAck]);
    // On evaluate-shard's role, the one that holds the grant.
    assert.ok(acknowledgedIds(stack.evaluateShardFunction.role).includes(anyRegionAck));
  });

  it("acknowledges nothing for Bedrock when only foundation models are listed", () => {
    const app = testApp(schemaValidation(false));
    const stack = new MmsafeStack(app, "Mmsafe", {
      config: parseDeployConfig({ bedrock: { models: [FOUNDATION_MODEL] } }, "bedrock test config"),
    });
    assert.deepEqual(
      acknowledgedIds(stack).filter((id) => id.includes("bedrock")),
      [],
    );
  });

  it("does flag the same wildcard without the acknowledgement (control), under the acknowledged id", () => {
    const app = testApp(schemaValidation(false));
    const stack = new Stack(app, "Control");
    const role = new iam.Role(stack, "Role", { assumedBy: new iam.ServicePrincipal("lambda.amazonaws.com") });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ["bedrock:InvokeModel"],
        resources: [
          stack.formatArn({
            service: "bedrock",
            region: "*",
            account: "",
            resource: "foundation-model",
            resourceName: PROFILE_MODEL,
          }),
        ],
      }),
    );
    const checks = new AwsSolutionsChecks(app, { verbose: true });
    Validations.of(app).addPlugins(checks);
    assert.throws(() => app.synth());
    const findings = checks
      .validateScope(stack)
      .violations.filter((violation) => violation.ruleName.startsWith("AwsSolutions-IAM5"));
    assert.ok(findings.length > 0, "IAM5 did not flag the any-region foundation model");
    // The finding id the stack acknowledges is the one cdk-nag reports, so the acknowledgement is not a no-op.
    assert.match(JSON.stringify(findings), /foundation-model\/anthropic\.claude-3-5-sonnet-20241022-v2:0/);
    Validations.of(role).acknowledge({
      id: anyRegionAck,
      reason: "control: acknowledged like the stack does",
    });
    const acknowledged = new AwsSolutionsChecks(app, { verbose: true });
    assert.deepEqual(
      acknowledged.validateScope(stack).violations.filter((v) => v.ruleName.startsWith("AwsSolutions-IAM5")),
      [],
    );
  });
});

describe("Bedrock deploy config", () => {
  it("defaults to no models, so {}-style deploy files stay valid", () => {
    assert.deepEqual(parseDeployConfig({}, "test").bedrock, { models: [] });
    assert.deepEqual(parseDeployConfig({ bedrock: {} }, "test").bedrock, { models: [] });
    assert.deepEqual(
      parseDeployConfig({ schedules: [], evaluateShard: { reservedConcurrency: null } }, "test").bedrock,
      { models: [] },
    );
  });

  it("accepts foundation-model and inference-profile ids of every geography", () => {
    const models = [
      { id: "amazon.nova-lite-v1:0", region: "us-east-1" },
      { id: "anthropic.claude-3-5-sonnet-20240620-v1:0", region: "eu-central-1" },
      { id: "meta.llama3-2-11b-instruct-v1:0", region: "us-west-2" },
      ...["us", "eu", "apac", "us-gov", "jp", "au", "ca", "global"].map((geography) => ({
        id: `${geography}.anthropic.claude-3-5-sonnet-20240620-v1:0`,
        region: "us-gov-west-1",
      })),
    ];
    assert.deepEqual(parseDeployConfig({ bedrock: { models } }, "test").bedrock.models, models);
  });

  it("bedrockGrant tells a profile from a foundation model by its geography prefix", () => {
    assert.deepEqual(bedrockGrant(FOUNDATION_MODEL), {
      kind: "foundation-model",
      foundationModelId: "amazon.nova-lite-v1:0",
      profileId: null,
      region: "us-east-1",
    });
    assert.deepEqual(bedrockGrant(INFERENCE_PROFILE), {
      kind: "inference-profile",
      foundationModelId: PROFILE_MODEL,
      profileId: INFERENCE_PROFILE.id,
      region: "us-west-2",
    });
    // "us-gov." is not "us." followed by a model named "gov.…".
    assert.deepEqual(
      bedrockGrant({ id: "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0", region: "us-gov-west-1" }),
      {
        kind: "inference-profile",
        foundationModelId: "anthropic.claude-3-5-sonnet-20240620-v1:0",
        profileId: "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0",
        region: "us-gov-west-1",
      },
    );
    assert.equal(
      bedrockGrant({ id: `global.${PROFILE_MODEL}`, region: "us-east-1" }).kind,
      "inference-profile",
    );
  });

  it("rejects a bad region, a bad id, a duplicate and unknown fields, naming the field and what to write", () => {
    const cases: Array<[unknown, RegExp]> = [
      [
        { models: [{ id: "amazon.nova-lite-v1:0", region: "us-east" }] },
        /bedrock\.models\.0\.region: an AWS Region code such as us-east-1/,
      ],
      [
        { models: [{ id: "amazon.nova-lite-v1:0", region: "US-EAST-1" }] },
        /bedrock\.models\.0\.region: an AWS Region code/,
      ],
      [
        { models: [{ id: "arn:aws:bedrock:us-east-1::foundation-model/x", region: "us-east-1" }] },
        /bedrock\.models\.0\.id: a Bedrock model id \(not an ARN\): 1–200 letters, digits/,
      ],
      [{ models: [{ id: "", region: "us-east-1" }] }, /bedrock\.models\.0\.id: a Bedrock model id/],
      [
        { models: [{ id: `amazon.${"x".repeat(200)}`, region: "us-east-1" }] },
        /bedrock\.models\.0\.id: .*1–200/,
      ],
      [
        { models: [{ id: "nova-lite", region: "us-east-1" }] },
        /bedrock\.models\.0\.id: a foundation-model id is <provider>\.<model>/,
      ],
      [{ models: [{ id: "us.", region: "us-east-1" }] }, /bedrock\.models\.0\.id: a foundation-model id is/],
      [
        { models: [FOUNDATION_MODEL, INFERENCE_PROFILE, { ...FOUNDATION_MODEL }] },
        /bedrock\.models\.2: duplicate of entry 0 \(amazon\.nova-lite-v1:0 in us-east-1\)/,
      ],
      [
        { models: [{ ...FOUNDATION_MODEL, model: "nova" }] },
        /bedrock\.models\.0: unknown field "model": an entry has only "id" and "region"/,
      ],
      [{ models: ["amazon.nova-lite-v1:0"] }, /bedrock\.models\.0: each entry is \{ "id"/],
      [{ models: [], allow: [] }, /bedrock: unknown field "allow": bedrock has only "models"/],
      [{ models: [{ id: "amazon.nova-lite-v1:0" }] }, /bedrock\.models\.0\.region: an AWS Region code/],
    ];
    for (const [bedrock, message] of cases) {
      assert.throws(
        () => parseDeployConfig({ bedrock }, "config/deploy.json"),
        (error: unknown) => {
          assert.ok(error instanceof Error);
          assert.match(error.message, /^config\/deploy\.json is invalid:/);
          assert.match(error.message, message);
          return true;
        },
        JSON.stringify(bedrock),
      );
    }
  });

  it("allows one model in two regions (not a duplicate)", () => {
    const models = [FOUNDATION_MODEL, { ...FOUNDATION_MODEL, region: "us-west-2" }];
    assert.equal(parseDeployConfig({ bedrock: { models } }, "test").bedrock.models.length, 2);
  });
});
