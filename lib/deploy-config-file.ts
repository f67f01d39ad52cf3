import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type DeployConfig, parseDeployConfig } from "../src/deployment/deploy-config.ts";

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The deploy config used when the `mmsafe:config` context names no other file. */
export const DEFAULT_DEPLOY_CONFIG_PATH = path.join(REPO_ROOT, "config", "deploy.json");

/** CDK context key naming another deploy config file: `cdk deploy -c mmsafe:config=config/prod.json`. */
export const DEPLOY_CONFIG_CONTEXT_KEY = "mmsafe:config";

/**
 * Reads and validates the deploy config. `contextValue` (the `mmsafe:config` context, relative to the
 * working directory) must name an existing file; without it `defaultPath` (`config/deploy.json`) is read,
 * and if that does not exist either, the defaults of `{}` apply. Fails with the file name and every invalid field.
 */
export function loadDeployConfig(
  contextValue: unknown,
  defaultPath: string = DEFAULT_DEPLOY_CONFIG_PATH,
): DeployConfig {
  if (contextValue !== undefined && (typeof contextValue !== "string" || contextValue === "")) {
    throw new Error(
      `context ${DEPLOY_CONFIG_CONTEXT_KEY} must be a file path, got ${JSON.stringify(contextValue)}`,
    );
  }
  const file = contextValue === undefined ? defaultPath : path.resolve(contextValue);
  if (contextValue === undefined && !existsSync(file))
    return parseDeployConfig({}, "the default deploy config");
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, "utf8"));
  } catch (error: unknown) {
    throw new Error(
      `cannot read deploy config ${file}: ${error instanceof Error ? error.message : String(error)}`,
      {
        cause: error,
      },
    );
  }
  return parseDeployConfig(json, file);
}
