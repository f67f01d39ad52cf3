/**
 * The model endpoint of a benchmark run: the reference model server (scripts/reference-model-server.ts) in
 * a process of its own, started fresh for every run so its counters describe that run alone.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { z } from "zod";
import { CLOCK_TICKS_PER_SECOND, parseProcStat } from "./process-tree.ts";
import type { EndpointObservations } from "./results.ts";

/**
 * The part of the server's `GET /stats` the benchmark reads. `maxInFlight` and the request times are only
 * reported by newer servers; without them the table says n/a.
 */
const statsSchema = z.looseObject({
  requests: z.number().int(),
  byPrompt: z.record(z.string(), z.number()),
  maxInFlight: z.number().int().optional(),
  firstRequestAt: z.number().nullable().optional(),
  lastRequestAt: z.number().nullable().optional(),
});

/** A running reference server. */
export interface Endpoint {
  baseURL: string;
  pid: number;
  /** What it saw since it started (it is started per run), and its CPU time since it listened. */
  observe(): Promise<EndpointObservations>;
  stop(): Promise<void>;
}

/** Starts `scripts/reference-model-server.ts --latency-ms <latencyMs>` and waits for its base URL. */
export async function startEndpoint(repoRoot: string, latencyMs: number): Promise<Endpoint> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "scripts/reference-model-server.ts", "--latency-ms", String(latencyMs)],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const baseURL = await new Promise<string>((resolve, reject) => {
    child.once("error", reject);
    void exited.then(() => reject(new Error(`the reference server exited before listening: ${stderr}`)));
    if (child.stdout === null) return reject(new Error("the reference server has no stdout"));
    createInterface({ input: child.stdout }).once("line", resolve);
  });
  const pid = child.pid ?? -1;
  const origin = new URL(baseURL).origin;
  // Start-up (loading its modules) is not part of any run.
  const cpuAtStart = await ownCpuMs(pid);
  return {
    baseURL,
    pid,
    observe: async () => {
      const response = await fetch(`${origin}/stats`);
      if (!response.ok) throw new Error(`reference server /stats: HTTP ${response.status}`);
      const stats = statsSchema.parse(await response.json());
      const first = stats.firstRequestAt ?? null;
      const last = stats.lastRequestAt ?? null;
      return {
        requests: stats.requests,
        maxInFlight: stats.maxInFlight ?? null,
        requestSpanMs: first === null || last === null ? null : last - first,
        cpuMs: (await ownCpuMs(pid)) - cpuAtStart,
        questionsDigest: questionsDigest(Object.keys(stats.byPrompt)),
      };
    },
    stop: () => stopProcess(child, exited),
  };
}

/** A process's own CPU time (user + system) so far, ms. */
async function ownCpuMs(pid: number): Promise<number> {
  const stat = parseProcStat(await readFile(`/proc/${pid}/stat`, "utf8"));
  return ((stat.utime + stat.stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** sha256 over the sorted question keys, one per line. */
export function questionsDigest(keys: readonly string[]): string {
  return createHash("sha256")
    .update([...keys].sort().join("\n"))
    .digest("hex");
}

async function stopProcess(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  await exited;
}
