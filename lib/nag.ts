import { CfnElement, Stack, Validations } from "aws-cdk-lib";
import type { IConstruct } from "constructs";

/**
 * cdk-nag (v3) acknowledgements. cdk-nag 3 reports through CDK's policy validation, and a finding is
 * acknowledged with `Validations.of(construct).acknowledge(...)` on the resource or one of its ancestors
 * (v3's replacement for v2's `NagSuppressions`). Multi-finding rules are acknowledged one finding at a time,
 * `RuleId[FindingId]` (v2's `appliesTo`), so every wildcard resource is listed exactly.
 */

/** Acknowledges one cdk-nag rule (or one `Rule[finding]`) on `scope` and everything below it. */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/**
 * Acknowledges AwsSolutions-IAM5 for exactly these wildcard resources, written the way cdk-nag renders them
 * (`<LogicalId.Arn>/runs/*`, `arn:<AWS::Partition>:...`); build references with {@link nagRef}.
 */
export function acknowledgeWildcardResources(
  scope: IConstruct,
  resources: readonly string[],
  reason: string,
): void {
  for (const resource of resources) acknowledge(scope, `AwsSolutions-IAM5[Resource::${resource}]`, reason);
}

/** How cdk-nag renders `Fn::GetAtt` of a construct's CloudFormation resource: `<LogicalId.Attribute>`. */
export function nagRef(construct: IConstruct, attribute: "Arn" | "Name"): string {
  const resource = construct.node.defaultChild ?? construct;
  if (!(resource instanceof CfnElement)) {
    throw new Error(`${construct.node.path} is not a CloudFormation resource`);
  }
  return `<${Stack.of(resource).getLogicalId(resource)}.${attribute}>`;
}

/** How cdk-nag renders an ARN built with `Stack.formatArn` in an environment-agnostic stack. */
export function nagArn(service: string, resource: string): string {
  return `arn:<AWS::Partition>:${service}:<AWS::Region>:<AWS::AccountId>:${resource}`;
}

/**
 * How cdk-nag renders a Bedrock foundation-model ARN built with `Stack.formatArn` and an empty account
 * (foundation models are owned by AWS, not by an account): `arn:<AWS::Partition>:bedrock:<region>::foundation-model/<id>`.
 */
export function nagFoundationModelArn(region: string, foundationModelId: string): string {
  return `arn:<AWS::Partition>:bedrock:${region}::foundation-model/${foundationModelId}`;
}

/** Why the foundation model behind a cross-region inference profile is granted in every region (`bedrock:*`). */
export const CROSS_REGION_INFERENCE_REASON =
  "A cross-region inference profile sends each request to its model in any region of the profile's " +
  "geography, chosen by Bedrock per request, and IAM must allow the foundation model in each of them; the " +
  "region is the only wildcard, the model is the one the configured profile names, and the profile ARN " +
  "itself (region and account) is granted exactly.";

/**
 * Acknowledges AwsSolutions-IAM5 for exactly the any-region foundation-model resources
 * (`bedrock:*::foundation-model/<id>`) that cross-region inference profiles need, one per model id.
 */
export function acknowledgeCrossRegionFoundationModels(
  scope: IConstruct,
  foundationModelIds: readonly string[],
): void {
  acknowledgeWildcardResources(
    scope,
    foundationModelIds.map((id) => nagFoundationModelArn("*", id)),
    CROSS_REGION_INFERENCE_REASON,
  );
}
