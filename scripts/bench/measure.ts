/**
 * Runs one command as a measured process: wall time from spawn to exit, CPU time and peak memory of its
 * whole process tree (see process-tree.ts for how, and why two CPU measurements).
 */
import { spawn } from "node:child_process";
import { ProcessTreeSampler, reapedChildrenCpuMs, type TreeUsage } from "./process-tree.ts";

/** How long descendants that outlive the measured process are still followed, ms. */
export const ORPHAN_WAIT_MS = 30_000;

/** What {@link runMeasured} measured. */
export interface MeasuredProcess {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  wallMs: number;
  /** The larger of the reaped and the sampled CPU time, ms. */
  cpuMs: number;
  cpuSource: "reaped" | "sampled";
  reapedCpuMs: number;
  tree: TreeUsage;
  /** False when a descendant was still running {@link ORPHAN_WAIT_MS} after the root exited. */
  orphansEnded: boolean;
  stdout: string;
  /** The last 8 KB of stderr. */
  stderrTail: string;
}

/**
 * Spawns `command args` and measures it until it exits. Only one measured process may run at a time: the
 * reaped CPU time is the difference in this process's `cutime + cstime`, to which every child it waits
 * for contributes (the caller's other children must not exit meanwhile).
 */
export async function runMeasured(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<MeasuredProcess> {
  const reapedBefore = await reapedChildrenCpuMs();
  const started = performance.now();
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const sampler = new ProcessTreeSampler(child.pid ?? -1);
  sampler.start();
  let stdout = "";
  let stderrTail = "";
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.stdout.on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk: string) => {
    stderrTail = (stderrTail + chunk).slice(-8192);
  });
  // "exit" comes once the child has been waited for, so its tree's CPU time is in this process's counters.
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.once("error", reject);
      child.once("exit", (exitCode, exitSignal) => resolve({ code: exitCode, signal: exitSignal }));
    },
  );
  const wallMs = performance.now() - started;
  const reapedCpuMs = (await reapedChildrenCpuMs()) - reapedBefore;
  const orphansEnded = await sampler.allEnded(ORPHAN_WAIT_MS);
  const tree = await sampler.stop();
  // Let the pipes drain: the last lines of output can arrive after "exit".
  if (child.stdout.readableEnded === false) await new Promise((resolve) => child.once("close", resolve));
  const sampledWins = tree.sampledCpuMs > reapedCpuMs;
  return {
    exitCode: code,
    signal,
    wallMs,
    cpuMs: Math.max(reapedCpuMs, tree.sampledCpuMs),
    cpuSource: sampledWins ? "sampled" : "reaped",
    reapedCpuMs,
    tree,
    orphansEnded,
    stdout,
    stderrTail,
  };
}
