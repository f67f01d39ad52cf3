/**
 * Shards in processes of their own, as Lambda containers run them: each process runs one evaluate-shard
 * invocation at a time, and is reused (warm) for the next. A pool grows to `size` processes as the Map asks
 * for more shards at once. Nothing is shared between the processes but the embedded servers, so the only
 * thing that bounds the calls to a model across them is the run-wide budget (src/pipeline/run-budgets.ts):
 * the local proof of what holds on AWS.
 */
import { type ChildProcess, fork } from "node:child_process";
import { rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { z } from "zod";

const reply = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ready") }),
  z.object({ type: z.literal("result"), id: z.number(), value: z.unknown() }),
  z.object({ type: z.literal("error"), id: z.number(), name: z.string(), message: z.string() }),
]);

interface Invocation {
  id: number;
  event: unknown;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

interface Worker {
  child: ChildProcess;
  busy: Invocation | null;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, "..", "..");
/** Under node_modules, so the bundles' external packages (the AWS SDK, sharp) resolve from the project's. */
const BUNDLE_DIR = path.join(REPO_ROOT, "node_modules", ".cache", "mmsafe", "shard-process");

/**
 * Bundles the process's entry and the handler as CDK bundles them for Lambda (ESM, the AWS SDK and native
 * modules left out), so a process starts from one file in a fraction of the time a TypeScript load takes.
 * Returns the paths of the two bundles.
 */
export async function bundleShardProcess(
  handlerEntry: string,
  outdir: string,
): Promise<{ main: string; handler: string }> {
  const { build } = await import("esbuild");
  await build({
    entryPoints: { main: path.join(HERE, "shard-process-main.ts"), handler: handlerEntry },
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    // Modules loaded on first use (sharp, for vcd only) stay out of the start-up path.
    splitting: true,
    chunkNames: "chunk-[hash]",
    platform: "node",
    target: "node22",
    format: "esm",
    mainFields: ["module", "main"],
    // CommonJS dependencies bundled into an ESM file still call `require`, which ESM does not define.
    banner: { js: "import { createRequire } from 'module'; const require = createRequire(import.meta.url);" },
    external: ["@aws-sdk/*", "sharp"],
    logLevel: "error",
  });
  return { main: path.join(outdir, "main.mjs"), handler: path.join(outdir, "handler.mjs") };
}

/** A failed invocation, as Lambda reports it to Step Functions: the error's name is what Retry matches. */
function invocationError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

export class ShardProcessPool {
  private readonly workers = new Set<Worker>();
  private readonly queue: Invocation[] = [];
  private nextId = 1;
  private stopped = false;
  private closed = false;

  private readonly bundles: Promise<{ main: string; handler: string }>;
  private readonly bundleDir: string;

  /**
   * @param size processes at most (shards evaluated at once beyond it wait, as with reserved concurrency)
   * @param handlerEntry path of the handler's TypeScript module (bundled once)
   * @param env the processes' environment (the embedded servers, the budgets table)
   */
  constructor(
    private readonly size: number,
    handlerEntry: string,
    private readonly env: NodeJS.ProcessEnv,
  ) {
    // A folder per pool: two runs (other homes) may bundle at the same time.
    this.bundleDir = path.join(BUNDLE_DIR, `${process.pid}-${Date.now().toString(36)}`);
    this.bundles = bundleShardProcess(handlerEntry, this.bundleDir);
    // Failures surface on the first invocation.
    this.bundles.catch(() => undefined);
  }

  /** Runs one invocation in a free process (starting one if the pool may grow), else when one frees. */
  async invoke(event: unknown): Promise<unknown> {
    if (this.closed) throw invocationError("Lambda.ServiceException", "the shard processes are closed");
    const bundles = await this.bundles;
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, event, resolve, reject });
      this.dispatch(bundles);
    });
  }

  /** Tells every process to start no new call (a halted run); the calls in flight finish and are written. */
  stop(): void {
    this.stopped = true;
    for (const worker of this.workers) worker.child.send({ type: "stop" });
  }

  /** Ends every process; invocations still under way fail. */
  async close(): Promise<void> {
    this.closed = true;
    const exits = [...this.workers].map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.child.exitCode !== null || worker.child.signalCode !== null) return resolve();
          worker.child.once("exit", () => resolve());
          worker.child.kill("SIGTERM");
        }),
    );
    for (const job of this.queue.splice(0))
      job.reject(invocationError("Lambda.ServiceException", "the shard processes were closed"));
    await Promise.all(exits);
    await rm(this.bundleDir, { recursive: true, force: true });
  }

  /** Process ids, for tests and diagnostics. */
  pids(): number[] {
    return [...this.workers].flatMap((w) => (w.child.pid === undefined ? [] : [w.child.pid]));
  }

  private dispatch(bundles: { main: string; handler: string }): void {
    while (this.queue.length > 0) {
      let worker = [...this.workers].find((w) => w.busy === null);
      if (!worker) {
        if (this.workers.size >= this.size) return;
        worker = this.spawn(bundles);
      }
      const job = this.queue.shift();
      if (!job) return;
      worker.busy = job;
      worker.child.send({ type: "invoke", id: job.id, event: job.event });
    }
  }

  private spawn(bundles: { main: string; handler: string }): Worker {
    const child = fork(bundles.main, [pathToFileURL(bundles.handler).href], {
      env: this.env,
      execArgv: [],
      // Their output is the handlers' log lines: shown as the in-process handlers' would be.
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const worker: Worker = { child, busy: null };
    this.workers.add(worker);
    // A failed start or a send to a process that just ended: its exit (below) fails the invocation.
    child.on("error", () => undefined);
    if (this.stopped) child.send({ type: "stop" });
    child.on("message", (raw: unknown) => {
      const parsed = reply.safeParse(raw);
      if (!parsed.success || parsed.data.type === "ready") return;
      const msg = parsed.data;
      const job = worker.busy;
      if (!job || job.id !== msg.id) return;
      worker.busy = null;
      if (msg.type === "result") job.resolve(msg.value);
      else job.reject(invocationError(msg.name, msg.message));
      this.dispatch(bundles);
    });
    child.on("exit", (code, signal) => {
      this.workers.delete(worker);
      const job = worker.busy;
      worker.busy = null;
      // A container that died mid-invocation: a transient invoke fault, which the workflow retries.
      job?.reject(
        invocationError(
          "Lambda.ServiceException",
          `the shard process (pid ${child.pid}) ended during the invocation (${signal ?? `exit code ${code}`})`,
        ),
      );
      if (!this.closed) this.dispatch(bundles);
    });
    return worker;
  }
}
