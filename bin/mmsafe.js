#!/usr/bin/env node
// The `mmsafe` command: runs the TypeScript CLI through tsx's loader (no build step).
import { register } from "tsx/esm/api";

// The local runner runs on the machine's Node; Lambda runs Node 22. The SDK's notice about its own
// Node support is not actionable per command, so it is silenced here (README states the Node support).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  // Still runs (tested on 20 too), but nothing older than package.json's engines range is supported.
  process.stderr.write(
    `mmsafe: warning: Node.js ${process.version} is not supported (22.12 or newer; Node 20 reached end of life on 2026-04-30)\n`,
  );
}
register();
const { main } = await import("../src/cli/main.ts");
await main(process.argv);
