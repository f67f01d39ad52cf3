#!/usr/bin/env node
// The `mmsafe` command: runs the TypeScript CLI through tsx's loader (no build step).
import { register } from "tsx/esm/api";

// The local runner runs on the machine's Node; Lambda runs Node 22. The SDK's notice about its own
// future Node 20 support is not actionable per command, so it is silenced here (README states the Node support).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
register();
const { main } = await import("../src/cli/main.ts");
await main(process.argv);
