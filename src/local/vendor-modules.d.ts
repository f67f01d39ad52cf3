// Typings for a package that ships none.

declare module "asl-validator" {
  interface AslValidationResult {
    isValid: boolean;
    errorsText(separator?: string): string;
  }
  function aslValidator(
    definition: unknown,
    options?: { checkArn?: boolean; checkPaths?: boolean },
  ): AslValidationResult;
  export default aslValidator;
}
