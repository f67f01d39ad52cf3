#!/usr/bin/env node
/**
 * CDK app entry (`cdk.json` runs it with tsx): the whole pipeline is one stack, shaped by a deploy config.
 *
 * The deploy config is `config/deploy.json`, or the file named by the `mmsafe:config` context
 * (`npx cdk deploy -c mmsafe:config=config/prod.json`, relative to the working directory). It is validated
 * by `deployConfigSchema` (src/deployment/deploy-config.ts), which rejects unknown fields, so it holds no comments.
 * Every field is optional (`{}` deploys the pipeline alone):
 *
 * - `stackName` — CloudFormation stack name, default `"Mmsafe"`.
 * - `schedules` — runs started by EventBridge Scheduler, each
 *   `{ "name", "expression", "timezone"?, "description"?, "enabled"?, "input"? }`:
 *   `name` 1–48 letters, digits, `_` or `-`, unique (also the `schedule` field of the runs it starts, so a run
 *   is compared with the previous run of its schedule); `expression` a Scheduler expression such as
 *   `"cron(0 3 ? * MON *)"`, `"rate(7 days)"` or `"at(2030-01-01T03:00:00)"`; `timezone` an IANA name,
 *   default `"UTC"`; `enabled` default `true` (a disabled schedule is deployed in state DISABLED); `input` the
 *   execution input of each run (the fields of a console run except `runId` and `schedule`).
 * - `notificationEmail` — subscribed by e-mail (confirm the first message) to the run notification topic:
 *   completed runs (summary), failed runs (error and cause) and alarms.
 * - `alarms.modelErrorRatePercent` — alarm when more than this percentage of verdicts in 15 minutes are model
 *   errors, default 10.
 * - `evaluateShard.reservedConcurrency` — Lambda concurrency reserved for (and capping) evaluate-shard across
 *   all runs, a whole number ≥ 1; default `null`, none (see README "Deploying to AWS" for the trade-off).
 *
 * Example:
 *
 * ```json
 * {
 *   "schedules": [
 *     {
 *       "name": "weekly",
 *       "expression": "cron(0 3 ? * MON *)",
 *       "timezone": "Europe/Berlin",
 *       "input": { "models": ["gpt-4o-mini"], "strategies": ["baseline", "vcd"] }
 *     }
 *   ],
 *   "notificationEmail": "safety-team@example.com",
 *   "alarms": { "modelErrorRatePercent": 10 }
 * }
 * ```
 *
 * Synthesis also runs the cdk-nag AWS Solutions checks: an unacknowledged finding fails `cdk synth`.
 */
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { DEPLOY_CONFIG_CONTEXT_KEY, loadDeployConfig } from "../lib/deploy-config-file.ts";
import { MmsafeStack } from "../lib/mmsafe-stack.ts";

const app = new App();
const config = loadDeployConfig(app.node.tryGetContext(DEPLOY_CONFIG_CONTEXT_KEY));
new MmsafeStack(app, config.stackName, {
  description: "mmsafe: serverless benchmark of multimodal LLM safety awareness",
  config,
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
