/**
 * Shared by the CDK tests: synthesizes MmsafeStack for a deploy config with the feature flags deployments
 * use (cdk.json) and without bundling, and reads the template's resources and IAM statements.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { App, CfnElement } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import type { IConstruct } from "constructs";
import { z } from "zod";
import { MmsafeStack } from "../../lib/mmsafe-stack.ts";
import { type DeployConfig, parseDeployConfig } from "../../src/deployment/deploy-config.ts";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The context of cdk.json, so flag-dependent output (policy merging, access log policies, ...) matches. */
export const CDK_CONTEXT = z
  .object({ context: z.record(z.string(), z.unknown()) })
  .parse(JSON.parse(readFileSync(path.join(REPO_ROOT, "cdk.json"), "utf8"))).context;

/** An app with cdk.json's context that skips bundling (Lambda code is an empty placeholder asset). */
export function testApp(extraContext: Record<string, unknown> = {}): App {
  return new App({ context: { ...CDK_CONTEXT, "aws:cdk:bundling-stacks": [], ...extraContext } });
}

/** Context turning CDK's CloudFormation schema validation into synth errors, or off. */
export function schemaValidation(enabled: boolean): Record<string, unknown> {
  return enabled
    ? { "@aws-cdk/core:validateAgainstDefaultRules": true, "@aws-cdk/core:strictCfnValidateErrors": true }
    : { "@aws-cdk/core:validateAgainstDefaultRules": false };
}

const resourceSchema = z.object({
  Type: z.string(),
  Properties: z.record(z.string(), z.unknown()).optional(),
  DeletionPolicy: z.string().optional(),
});
export type Resource = z.infer<typeof resourceSchema>;

/** A synthesized stack with lookups by construct. */
export interface Synthesized {
  readonly app: App;
  readonly stack: MmsafeStack;
  readonly template: Template;
  readonly resources: Readonly<Record<string, Resource>>;
  /** The logical id of a construct's CloudFormation resource. */
  logicalId(construct: IConstruct | undefined): string;
  /** Properties of the resource with that logical id (fails if absent). */
  propertiesOf(logicalId: string): Record<string, unknown>;
  /** Logical ids and properties of every resource of a type. */
  resourcesOfType(type: string): Array<[string, Record<string, unknown>]>;
}

/** Options of {@link synthesize}. */
export interface SynthOptions {
  /** Changes the stack before synthesis (control tests). */
  readonly customize?: (stack: MmsafeStack) => void;
  /**
   * Validate the template against the CloudFormation schema (cdk.json's validateAgainstDefaultRules) and fail
   * on any finding. Most of a synth's time (~7 s), so only where a template is checked resource by resource.
   */
  readonly validateSchema?: boolean;
}

/** Synthesizes MmsafeStack for a deploy config given as JSON (parsed like config/deploy.json). */
export function synthesize(configJson: unknown = {}, options: SynthOptions = {}): Synthesized {
  return synthesizeConfig(parseDeployConfig(configJson, "test deploy config"), options);
}

/** Synthesizes MmsafeStack for an already parsed deploy config. */
export function synthesizeConfig(config: DeployConfig, options: SynthOptions = {}): Synthesized {
  const app = testApp(schemaValidation(options.validateSchema ?? false));
  const stack = new MmsafeStack(app, config.stackName, { config });
  options.customize?.(stack);
  const template = Template.fromStack(stack);
  const resources = z.record(z.string(), resourceSchema).parse(template.toJSON().Resources);
  const logicalId = (construct: IConstruct | undefined): string => {
    const resource = construct?.node.defaultChild ?? construct;
    assert.ok(resource instanceof CfnElement, `${construct?.node.path} is not a CloudFormation resource`);
    return stack.getLogicalId(resource);
  };
  const propertiesOf = (id: string): Record<string, unknown> => {
    const properties = resources[id]?.Properties;
    assert.ok(properties, `no resource ${id} with properties in the template`);
    return properties;
  };
  const resourcesOfType = (type: string): Array<[string, Record<string, unknown>]> =>
    Object.entries(resources)
      .filter(([, resource]) => resource.Type === type)
      .map(([id, resource]) => [id, resource.Properties ?? {}]);
  return { app, stack, template, resources, logicalId, propertiesOf, resourcesOfType };
}

export const statementSchema = z.object({
  Sid: z.string().optional(),
  Effect: z.enum(["Allow", "Deny"]),
  Principal: z.unknown().optional(),
  Action: z.union([z.string(), z.array(z.string())]),
  Resource: z.unknown(),
  Condition: z.unknown().optional(),
});
export type Statement = z.infer<typeof statementSchema>;
const documentSchema = z.object({ Statement: z.array(statementSchema) });

export const asArray = <T>(value: T | T[]): T[] => (Array.isArray(value) ? value : [value]);
export const actionsOf = (statement: Statement): string[] => asArray(statement.Action);
export const resourcesOf = (statement: Statement): unknown[] => asArray(statement.Resource);

/** A statement of an identity policy, with the logical ids of the roles it applies to. */
export interface IdentityStatement {
  readonly roles: string[];
  /** Where it is: "<policy logical id>" or "<role logical id> inline <policy name>". */
  readonly source: string;
  readonly statement: Statement;
}

/**
 * Every statement of every identity policy in the template: AWS::IAM::Policy and ManagedPolicy resources and
 * the inline policies of roles.
 */
export function identityStatements(synthesized: Synthesized): IdentityStatement[] {
  const roleRefs = (value: unknown): string[] =>
    z
      .array(z.object({ Ref: z.string() }))
      .optional()
      .parse(value)
      ?.map((ref) => ref.Ref) ?? [];
  const fromPolicies = ["AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"].flatMap((type) =>
    synthesized.resourcesOfType(type).flatMap(([id, properties]) =>
      documentSchema.parse(properties.PolicyDocument).Statement.map((statement) => ({
        roles: roleRefs(properties.Roles),
        source: id,
        statement,
      })),
    ),
  );
  const fromRoles = synthesized.resourcesOfType("AWS::IAM::Role").flatMap(
    ([id, properties]) =>
      z
        .array(z.object({ PolicyName: z.string(), PolicyDocument: documentSchema }))
        .optional()
        .parse(properties.Policies)
        ?.flatMap((policy) =>
          policy.PolicyDocument.Statement.map((statement) => ({
            roles: [id],
            source: `${id} inline ${policy.PolicyName}`,
            statement,
          })),
        ) ?? [],
  );
  return [...fromPolicies, ...fromRoles];
}

/** The Allow statements that apply to one role. */
export function allowStatementsOfRole(synthesized: Synthesized, role: string): Statement[] {
  return identityStatements(synthesized)
    .filter((entry) => entry.roles.includes(role) && entry.statement.Effect === "Allow")
    .map((entry) => entry.statement);
}

/** Statements of a resource policy property (KeyPolicy, PolicyDocument of a topic or bucket policy). */
export function documentStatements(document: unknown): Statement[] {
  return documentSchema.parse(document).Statement;
}
