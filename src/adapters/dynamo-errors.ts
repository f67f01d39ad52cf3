import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";

/**
 * True when a conditional write was refused because its condition did not hold. Checked by class and by
 * name: a second copy of the SDK (as in a bundle beside the runtime's) breaks `instanceof`.
 */
export function isConditionalCheckFailed(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error instanceof Error && error.name === "ConditionalCheckFailedException")
  );
}
