/**
 * CPU time and memory of a process and all of its descendants, read from Linux's /proc.
 *
 * Two measurements, because neither is complete on its own:
 *
 * - Sampled: every ~50 ms the tree under the root is walked (`/proc/<pid>/task/<tid>/children`), and each
 *   member's own CPU time (`utime + stime` of `/proc/<pid>/stat`) and resident memory (`VmRSS` of
 *   `/proc/<pid>/status`) are read. A pid seen once stays a member until it disappears, even if its parent
 *   dies and it is re-parented. The last value read per pid is its CPU time; the sum of the live members'
 *   RSS at one sample is the tree's memory at that moment, and the largest such sum is the peak. What a
 *   process spends after its last sample (≤ 50 ms) or a process that lives less than one interval is missed.
 * - Reaped: when a child is waited for, the kernel adds its CPU time and that of every descendant it waited
 *   for to the parent's `cutime + cstime`. The benchmark's own counters before and after a run give the
 *   exact CPU time of the child's whole tree, provided each process waited for its children (Node does;
 *   the CLI waits for its embedded-servers process before it exits).
 *
 * A run's CPU time is the larger of the two: the reaped figure unless some descendant outlived the tree
 * unwaited, in which case the sampled one is the better (lower-bound) estimate.
 */
import { readdir, readFile } from "node:fs/promises";

/** Linux's USER_HZ, the unit of the times in `/proc/<pid>/stat`: 100 on every architecture Node runs on. */
export const CLOCK_TICKS_PER_SECOND = 100;

/** The fields of `/proc/<pid>/stat` the benchmark uses (times in clock ticks). */
export interface ProcStat {
  pid: number;
  /** The executable's name as the kernel keeps it (at most 15 characters). */
  comm: string;
  state: string;
  ppid: number;
  utime: number;
  stime: number;
  /** CPU time of the children this process waited for (and of their waited-for descendants). */
  cutime: number;
  cstime: number;
}

/**
 * Parses one `/proc/<pid>/stat` line. The name is between the first "(" and the last ")": it may itself hold
 * spaces and parentheses. Fields after it are numbered from 3 (state) as in proc(5).
 *
 * @throws Error naming the text when it does not have the expected shape.
 */
export function parseProcStat(text: string): ProcStat {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) throw new Error(`not a /proc/<pid>/stat line: ${JSON.stringify(text)}`);
  const pid = Number(text.slice(0, open).trim());
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state); field n is rest[n - 3].
  const field = (n: number): number => {
    const value = Number(rest[n - 3]);
    if (!Number.isFinite(value)) throw new Error(`/proc/${pid}/stat: field ${n} is not a number`);
    return value;
  };
  if (!Number.isInteger(pid) || rest.length < 15)
    throw new Error(`not a /proc/<pid>/stat line: ${JSON.stringify(text)}`);
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: rest[0] ?? "?",
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    cutime: field(16),
    cstime: field(17),
  };
}

/**
 * Resident memory from `/proc/<pid>/status`, in bytes: `VmRSS` (now) and `VmHWM` (peak so far). Both are
 * 0 for a zombie, which has no memory left (the kernel then omits the lines).
 */
export function parseProcStatusMemory(text: string): { rssBytes: number; peakRssBytes: number } {
  const kib = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, "m").exec(text);
    return match?.[1] === undefined ? 0 : Number(match[1]) * 1024;
  };
  return { rssBytes: kib("VmRSS"), peakRssBytes: kib("VmHWM") };
}

/** The pids in a `/proc/<pid>/task/<tid>/children` file (space-separated, possibly empty). */
export function parseChildren(text: string): number[] {
  return text
    .trim()
    .split(/\s+/)
    .filter((word) => /^\d+$/.test(word))
    .map(Number);
}

/** A short label for a process from its command line: which part of mmsafe (or which script) it is. */
export function processLabel(argv: readonly string[], comm: string): string {
  const script = argv.slice(1).find((arg) => !arg.startsWith("-") && /\.(m?[jt]s)$/.test(arg));
  if (script === undefined) return comm;
  if (script.endsWith("aws-servers-process.mjs")) return "aws-servers";
  if (script.endsWith("bin/mmsafe.js")) return "cli";
  return script.split("/").pop() ?? comm;
}

/** What one process of a tree used, as last seen. */
export interface ProcessUsage {
  pid: number;
  label: string;
  /** Own CPU time (user + system), ms. */
  cpuMs: number;
  /** Largest resident memory seen for it (VmHWM), bytes. */
  peakRssBytes: number;
}

/** What a whole tree used, from the samples. */
export interface TreeUsage {
  /** Sum of the members' last-seen own CPU times, ms. */
  sampledCpuMs: number;
  /** Largest sum of the live members' RSS at one sample, bytes. */
  peakTreeRssBytes: number;
  /** Most processes alive at once. */
  maxProcesses: number;
  samples: number;
  processes: ProcessUsage[];
}

/** One sample of one process. */
export interface ProcessSample {
  pid: number;
  label: string;
  cpuTicks: number;
  rssBytes: number;
  peakRssBytes: number;
}

/**
 * Folds samples into a {@link TreeUsage}. Pure: `samples` holds, per sampling instant, the processes read
 * then. A pid's CPU time is the last value read for it; its memory peak the largest VmHWM.
 */
export function foldSamples(samples: readonly (readonly ProcessSample[])[]): TreeUsage {
  const last = new Map<number, ProcessUsage>();
  let peakTreeRssBytes = 0;
  let maxProcesses = 0;
  for (const instant of samples) {
    let rss = 0;
    for (const sample of instant) {
      rss += sample.rssBytes;
      const before = last.get(sample.pid);
      last.set(sample.pid, {
        pid: sample.pid,
        label: sample.label,
        cpuMs: (sample.cpuTicks * 1000) / CLOCK_TICKS_PER_SECOND,
        peakRssBytes: Math.max(before?.peakRssBytes ?? 0, sample.peakRssBytes, sample.rssBytes),
      });
    }
    peakTreeRssBytes = Math.max(peakTreeRssBytes, rss);
    maxProcesses = Math.max(maxProcesses, instant.length);
  }
  const processes = [...last.values()];
  return {
    sampledCpuMs: processes.reduce((sum, p) => sum + p.cpuMs, 0),
    peakTreeRssBytes,
    maxProcesses,
    samples: samples.length,
    processes,
  };
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, "utf8");
  } catch {
    // The process (or thread) ended between listing and reading it.
    return null;
  }
}

/** The direct children of a process: the union over its threads' `children` files. */
async function childrenOf(pid: number): Promise<number[]> {
  let tasks: string[];
  try {
    tasks = await readdir(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const lists = await Promise.all(tasks.map((tid) => readOptional(`/proc/${pid}/task/${tid}/children`)));
  return lists.flatMap((text) => (text === null ? [] : parseChildren(text)));
}

/** Samples a process tree until stopped; see the module comment for what is measured and how. */
export class ProcessTreeSampler {
  private readonly members = new Set<number>();
  private readonly labels = new Map<number, string>();
  private readonly samples: ProcessSample[][] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();

  constructor(
    rootPid: number,
    private readonly intervalMs = 50,
  ) {
    this.members.add(rootPid);
  }

  /** Takes a first sample now and then one every interval (never two at once). */
  start(): void {
    const tick = (): void => {
      this.running = this.sample().finally(() => {
        if (this.timer !== undefined) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    this.timer = setTimeout(tick, 0);
  }

  /**
   * Resolves once every member has ended (or after `timeoutMs`): a descendant the root did not wait for may
   * outlive it, and its CPU time until it ends still counts.
   */
  async allEnded(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.members.size > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
    }
    return this.members.size === 0;
  }

  /** Stops sampling and folds what was seen. */
  async stop(): Promise<TreeUsage> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    return foldSamples(this.samples);
  }

  private async sample(): Promise<void> {
    // Discover: children of every member still alive (new pids join; ended ones drop out below).
    const alive = [...this.members];
    for (const children of await Promise.all(alive.map(childrenOf))) {
      for (const child of children) this.members.add(child);
    }
    const instant: ProcessSample[] = [];
    await Promise.all(
      [...this.members].map(async (pid) => {
        const [statText, statusText] = await Promise.all([
          readOptional(`/proc/${pid}/stat`),
          readOptional(`/proc/${pid}/status`),
        ]);
        if (statText === null || statusText === null) {
          this.members.delete(pid);
          return;
        }
        const stat = parseProcStat(statText);
        const label = this.labels.get(pid) ?? (await this.labelOf(pid, stat.comm));
        const memory = parseProcStatusMemory(statusText);
        instant.push({ pid, label, cpuTicks: stat.utime + stat.stime, ...memory });
      }),
    );
    this.samples.push(instant);
  }

  private async labelOf(pid: number, comm: string): Promise<string> {
    const cmdline = await readOptional(`/proc/${pid}/cmdline`);
    const label = processLabel(cmdline?.split("\0").filter(Boolean) ?? [], comm);
    this.labels.set(pid, label);
    return label;
  }
}

/**
 * CPU time of this process's waited-for children so far (`cutime + cstime` of `/proc/self/stat`), ms. The
 * difference across a child's life is the CPU time of its whole waited-for tree.
 */
export async function reapedChildrenCpuMs(): Promise<number> {
  const stat = parseProcStat(await readFile("/proc/self/stat", "utf8"));
  return ((stat.cutime + stat.cstime) * 1000) / CLOCK_TICKS_PER_SECOND;
}
