#!/usr/bin/env node
/**
 * CDK app entry (`cdk.json` runs it with tsx): the whole pipeline is one stack.
 */
import { App } from "aws-cdk-lib";
import { MmsafeStack } from "../lib/mmsafe-stack.ts";

const app = new App();
new MmsafeStack(app, "Mmsafe", {
  description: "mmsafe: serverless benchmark of multimodal LLM safety awareness",
});
