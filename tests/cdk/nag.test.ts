/**
 * cdk-nag AWS Solutions checks of MmsafeStack: no unacknowledged error or warning, and every acknowledgement
 * is specific (IAM5 per wildcard resource) and explains itself.
 *
 * cdk-nag 3 is a CDK policy validation plugin (`Validations.of(app).addPlugins(...)`), not an Aspect, and
 * reports violations instead of annotations; findings are acknowledged with `Validations.of(x).acknowledge`.
 *
 * Run: node --import tsx --test tests/cdk/nag.test.ts
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Stack, Validations } from "aws-cdk-lib";
import * as s3 from "aws-cdk-lib/aws-s3";
import { AwsSolutionsChecks } from "cdk-nag";
import type { IConstruct } from "constructs";
import { MmsafeStack } from "../../lib/mmsafe-stack.ts";
import { parseDeployConfig } from "../../src/deployment/deploy-config.ts";
import { schemaValidation, testApp } from "./support.ts";

const FULL_CONFIG = parseDeployConfig(
  {
    schedules: [
      { name: "nightly", expression: "cron(0 3 * * ? *)", timezone: "Europe/Berlin" },
      { name: "weekly", expression: "rate(7 days)", enabled: false },
    ],
    notificationEmail: "safety-team@example.com",
    // A cross-region inference profile brings the one Bedrock wildcard (its model in any region).
    bedrock: {
      models: [
        { id: "amazon.nova-lite-v1:0", region: "us-east-1" },
        { id: "us.anthropic.claude-3-5-sonnet-20241022-v2:0", region: "us-east-1" },
      ],
    },
  },
  "nag test config",
);

/** Violations as "rule (severity): construct paths", for a readable failure. */
function describeViolations(report: ReturnType<AwsSolutionsChecks["validateScope"]>): string[] {
  return report.violations.map(
    (violation) =>
      `${violation.ruleName} (${violation.severity ?? "?"}): ${violation.violatingResources
        .map((resource) =>
          "constructPath" in resource ? resource.constructPath : resource.resourceLogicalId,
        )
        .join(", ")}`,
  );
}

/** Every acknowledgement recorded in the tree: rule id, reason and the construct it was recorded on. */
function acknowledgements(root: IConstruct): Array<{ path: string; id: string; reason: string }> {
  return root.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) =>
        Object.entries(entry.data as Record<string, string>).map(([id, reason]) => ({
          path: construct.node.path,
          id,
          reason,
        })),
      ),
  );
}

describe("cdk-nag AwsSolutions", () => {
  for (const [name, config] of [
    ["empty config", parseDeployConfig({}, "empty")],
    ["full config", FULL_CONFIG],
  ] as const) {
    it(`${name}: no unacknowledged error or warning, and synth with the plugin succeeds`, () => {
      const app = testApp(schemaValidation(false));
      const stack = new MmsafeStack(app, "Mmsafe", { config });
      const checks = new AwsSolutionsChecks(app, { verbose: true });
      Validations.of(app).addPlugins(checks);
      // With the plugin registered, any violation makes synth throw (as `cdk synth` would fail).
      app.synth();
      const report = checks.validateScope(stack);
      const errors = report.violations.filter((v) => v.severity === "error");
      const warnings = report.violations.filter((v) => v.severity !== "error");
      assert.deepEqual(describeViolations({ ...report, violations: errors }), []);
      assert.deepEqual(describeViolations({ ...report, violations: warnings }), []);
      assert.equal(report.success, true);
    });
  }

  it("does report findings (control: a bare bucket fails S1 and S10, and synth throws)", () => {
    const app = testApp(schemaValidation(false));
    const stack = new Stack(app, "Control");
    new s3.Bucket(stack, "Bare");
    const checks = new AwsSolutionsChecks(app);
    Validations.of(app).addPlugins(checks);
    assert.throws(() => app.synth());
    const rules = checks.validateScope(stack).violations.map((v) => v.ruleName);
    assert.ok(rules.includes("AwsSolutions-S1"), rules.join(", "));
    assert.ok(rules.includes("AwsSolutions-S10"), rules.join(", "));
  });

  it("acknowledges IAM5 only per wildcard resource, never a rule as a whole, each with a reason", () => {
    const app = testApp(schemaValidation(false));
    new MmsafeStack(app, "Mmsafe", { config: FULL_CONFIG });
    const acks = acknowledgements(app);
    assert.ok(acks.length > 0);
    for (const { path, id, reason } of acks) {
      assert.ok(reason.length >= 80, `${path} ${id}: reason too short to explain anything: "${reason}"`);
      if (id.includes("AwsSolutions-IAM5")) {
        assert.match(
          id,
          /AwsSolutions-IAM5\[Resource::[^\]]+\]$/,
          `${path}: blanket IAM5 acknowledgement ${id}`,
        );
      }
      assert.doesNotMatch(id, /IAM5\[Action::/, `${path}: wildcard actions must be fixed, not acknowledged`);
    }
    // The acknowledged rules, so a new one shows up in review.
    const rules = new Set(acks.map(({ id }) => id.replace(/^[^:]*::/, "").replace(/\[.*$/, "")));
    assert.deepEqual([...rules].sort(), [
      "AwsSolutions-DDB3",
      "AwsSolutions-IAM5",
      "AwsSolutions-L1",
      "AwsSolutions-S1",
    ]);
  });
});
