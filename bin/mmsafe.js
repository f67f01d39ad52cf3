#!/usr/bin/env node
// The `mmsafe` command: runs the TypeScript CLI through tsx's loader (no build step).
import { setFlagsFromString } from "node:v8";
import { register } from "tsx/esm/api";

// On a machine with much memory V8 lets the old generation grow up to fourfold between full collections,
// so a run's garbage piles up (a second run of the full-size sample peaked at ~360 MB resident with ~60 MB
// live). Growing by at most 1.5× keeps that peak ~65 MB (18%) lower for ~3% more CPU in this process. The
// flag is read at each full collection, so setting it at start-up works; flags fixed when the heap is
// created (semi-space sizes) would need a command-line flag.
setFlagsFromString("--heap-growing-percent=50");

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
