import {
  type CloudFormationClient,
  DescribeStacksCommand,
  type DescribeStacksCommandOutput,
} from "@aws-sdk/client-cloudformation";

/** What the CLI needs from a deployed mmsafe stack: the CfnOutputs of lib/mmsafe-stack.ts. */
export interface StackOutputs {
  stateMachineArn: string;
  bucketName: string;
  runsTableName: string;
  verdictsTableName: string;
}

/** The output keys (CfnOutput ids in lib/mmsafe-stack.ts) behind each field. */
export const STACK_OUTPUT_KEYS = {
  stateMachineArn: "StateMachineArn",
  bucketName: "BucketName",
  runsTableName: "RunsTableName",
  verdictsTableName: "VerdictsTableName",
} as const satisfies Record<keyof StackOutputs, string>;

/** The stack does not exist, is not usable yet, or lacks an output; the message says which and what to do. */
export class StackOutputsError extends Error {
  override readonly name = "StackOutputsError";
}

const isMissingStack = (error: unknown): boolean =>
  error instanceof Error && error.name === "ValidationError" && /does not exist/i.test(error.message);

/** Reads the stack's outputs with DescribeStacks; fails naming the stack or the missing outputs. */
export async function readStackOutputs(cfn: CloudFormationClient, stackName: string): Promise<StackOutputs> {
  let stacks: DescribeStacksCommandOutput["Stacks"];
  try {
    stacks = (await cfn.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks;
  } catch (error: unknown) {
    if (isMissingStack(error)) {
      throw new StackOutputsError(
        `stack "${stackName}" does not exist in this account and region (deploy it with \`mmsafe deploy\`, ` +
          "or check --stack, AWS_REGION and AWS_PROFILE)",
        { cause: error },
      );
    }
    throw error;
  }
  const stack = stacks?.[0];
  if (!stack) throw new StackOutputsError(`stack "${stackName}" does not exist in this account and region`);
  const status = stack.StackStatus ?? "UNKNOWN";
  if (status === "CREATE_IN_PROGRESS" || status === "REVIEW_IN_PROGRESS")
    throw new StackOutputsError(`stack "${stackName}" is ${status}: wait until the deployment finishes`);
  if (status === "ROLLBACK_COMPLETE" || status.startsWith("DELETE_")) {
    throw new StackOutputsError(
      `stack "${stackName}" is ${status}: it has no usable resources (delete it and deploy again)`,
    );
  }

  const values = new Map<string, string>();
  for (const output of stack.Outputs ?? []) {
    if (output.OutputKey && output.OutputValue) values.set(output.OutputKey, output.OutputValue);
  }
  const missing = Object.values(STACK_OUTPUT_KEYS).filter((key) => !values.has(key));
  if (missing.length > 0) {
    throw new StackOutputsError(
      `stack "${stackName}" has no output ${missing.join(", ")}: is it the mmsafe stack, deployed with this ` +
        "version (mmsafe deploy)?",
    );
  }
  const get = (key: string) => values.get(key) ?? "";
  return {
    stateMachineArn: get(STACK_OUTPUT_KEYS.stateMachineArn),
    bucketName: get(STACK_OUTPUT_KEYS.bucketName),
    runsTableName: get(STACK_OUTPUT_KEYS.runsTableName),
    verdictsTableName: get(STACK_OUTPUT_KEYS.verdictsTableName),
  };
}
