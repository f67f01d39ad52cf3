/**
 * The child process that hosts the embedded S3 and DynamoDB servers (s3rver, dynalite) on 127.0.0.1.
 * Plain JavaScript so it starts without a TypeScript loader (less memory, faster start).
 *
 * Usage: node --openssl-legacy-provider aws-servers-process.mjs DATA_DIR BUCKET (embedded-aws.ts adds its Node flags)
 * Prints one JSON line, then serves until its parent is gone or it gets SIGTERM or SIGHUP:
 * - `{"s3Port": …, "dynamodbPort": …}` when it serves DATA_DIR;
 * - `{"inUse": {pid, ownerPid, host, s3Port, dynamodbPort, startedAt}}`, and exits, when a live mmsafe
 *   process already serves DATA_DIR (the parent refuses to start a second run, or reads through those ports).
 * The parent is gone when this process's stdin closes: the parent closed it (a normal stop) or died — the
 * kernel closes the pipe even when the parent is killed with SIGKILL. As a fallback the parent pid is also
 * checked every second (re-parenting means the parent died). Either way both servers are closed, dynalite's
 * LevelDB included, before exiting: no orphan keeps the ports or the LevelDB lock.
 *
 * SIGINT is ignored: Ctrl-C reaches the whole foreground process group, and the parent still needs these
 * servers to record that the run was interrupted; it closes them (stdin) when it is done.
 *
 * One process per DATA_DIR: the home's lock. Its holder keeps a LevelDB open at `DATA_DIR/lock` for its
 * whole life (an advisory lock the kernel releases when the holder dies, even by SIGKILL) and describes
 * itself in `DATA_DIR/servers.json` (its pid, its parent's pid, the ports). A second process finds the lock
 * held: if the holder's parent is alive it reports `inUse`; if not (the holder is closing after its parent
 * ended) it waits for the lock for a while. Only the lock's holder ever opens dynalite's database, so the
 * database's own lock is never probed and released under another process (which once failed every request
 * of one of two runs started together with "Database is closed").
 *
 * Durability: dynalite acknowledges a write only after LevelDB has appended it to its log and handed it to
 * the operating system, so a verdict acknowledged to the runner survives the runner's death and even this
 * process being killed outright (LevelDB replays its log when it next opens). The LOCK files LevelDB leaves
 * behind are harmless: the kernel releases the locks when their holder dies.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import dynalite from "dynalite";
import S3rver from "s3rver";

/** How long to wait for a closing holder (its parent is gone) to release the home's lock. */
const LOCK_WAIT_MS = 20_000;
/** How often the parent pid is checked, in case the stdin pipe does not report the parent's death. */
const PARENT_CHECK_MS = 1_000;
/** A stop that takes longer than this exits anyway (every acknowledged write is already in the log). */
const STOP_TIMEOUT_MS = 15_000;

const [dataDir, bucket] = process.argv.slice(2);
if (!dataDir || !bucket) {
  process.stderr.write("usage: aws-servers-process.mjs DATA_DIR BUCKET\n");
  process.exit(2);
}
const dynamoDir = path.join(dataDir, "dynamodb");
const lockDir = path.join(dataDir, "lock");
const holderFile = path.join(dataDir, "servers.json");

let homeLock = null;
let dynamo = null;
let s3 = null;
let stopping = false;
let ownsHolderFile = false;

const stop = () => {
  if (stopping) return;
  stopping = true;
  clearInterval(parentCheck);
  setTimeout(() => process.exit(), STOP_TIMEOUT_MS).unref();
  // Startup steps check `stopping`; whatever was started by now is closed.
  void startup
    .catch(() => undefined)
    .then(() =>
      Promise.allSettled([
        s3?.close(),
        dynamo ? new Promise((resolve) => dynamo?.close(resolve)) : undefined,
      ]),
    )
    // The holder file names the lock's holder to a process waiting for it: removed before the lock goes.
    .then(() => (ownsHolderFile ? rm(holderFile, { force: true }) : undefined))
    .then(() => homeLock?.close())
    .catch(() => undefined)
    .finally(() => process.exit());
};

// Watch for the parent's end from the start, so a parent dying during startup is noticed too.
const parentPid = process.ppid;
const parentCheck = setInterval(() => {
  if (process.ppid !== parentPid) stop();
}, PARENT_CHECK_MS);
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.on("error", stop);
process.stdin.resume();
// Writing the ports to a parent that already died fails with EPIPE: that is the parent's end too.
process.stdout.on("error", stop);
for (const signal of ["SIGTERM", "SIGHUP"]) process.once(signal, stop);
process.on("SIGINT", () => undefined);

/** The LevelDB implementation dynalite itself uses (resolved from dynalite's own location). */
function dynaliteLevel() {
  const requireHere = createRequire(import.meta.url);
  return createRequire(requireHere.resolve("dynalite"))("level");
}

const isLocked = (error) => (error?.cause?.code ?? error?.code) === "LEVEL_LOCKED";

/** True when a process with this pid exists (EPERM: it does, under another user). */
function isAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error?.code === "EPERM";
  }
}

/** What `servers.json` says about the lock's holder, or null (not written yet, or already removed). */
async function readHolder() {
  try {
    const holder = JSON.parse(await readFile(holderFile, "utf8"));
    return Number.isInteger(holder?.pid) && Number.isInteger(holder?.ownerPid) ? holder : null;
  } catch {
    return null;
  }
}

/** A holder whose parent (the mmsafe process using the servers) still runs; on another host, assumed so. */
const holderIsLive = (holder) => holder.host !== os.hostname() || isAlive(holder.ownerPid);

/**
 * Takes the home's lock (see the header), or returns the live holder that has it. Waits while the holder
 * is closing (its parent is gone) or not yet described, at most LOCK_WAIT_MS.
 */
async function acquireHomeLock() {
  const { Level } = dynaliteLevel();
  const started = Date.now();
  let told = false;
  while (!stopping) {
    const db = new Level(lockDir);
    try {
      await db.open();
      return { lock: db, holder: null };
    } catch (error) {
      if (!isLocked(error)) throw error;
      await db.close().catch(() => undefined);
    }
    const holder = await readHolder();
    if (holder && holderIsLive(holder)) return { lock: null, holder };
    const who = holder ? ` (pid ${holder.pid})` : "";
    if (Date.now() - started > LOCK_WAIT_MS) {
      throw new Error(
        `${dataDir} is still locked by a process${who} that should have stopped: if no mmsafe is running, stop it and start again`,
      );
    }
    if (!told && Date.now() - started > 2_000) {
      told = true;
      process.stderr.write(`mmsafe: waiting for the previous embedded servers${who} to release ${dataDir}\n`);
    }
    await delay(200);
  }
  return { lock: null, holder: null };
}

/**
 * Waits until dynalite's own LevelDB is free. Only the home lock's holder opens it, so this returns at once
 * unless servers of an mmsafe version without the home lock are still closing.
 */
async function waitForDynamoDb() {
  const { Level } = dynaliteLevel();
  const started = Date.now();
  while (!stopping) {
    const db = new Level(dynamoDir);
    try {
      await db.open();
      await db.close();
      return;
    } catch (error) {
      if (!isLocked(error)) throw error;
      await db.close().catch(() => undefined);
      if (Date.now() - started > LOCK_WAIT_MS) throw new Error(`${dynamoDir} is in use by another process`);
      await delay(200);
    }
  }
}

/** Writes one line to the parent and waits until it is handed to the pipe. */
const tellParent = (message) =>
  new Promise((resolve) => process.stdout.write(`${JSON.stringify(message)}\n`, () => resolve()));

async function start() {
  await mkdir(dynamoDir, { recursive: true });
  await mkdir(path.join(dataDir, "s3"), { recursive: true });
  const { lock, holder } = await acquireHomeLock();
  if (holder) {
    await tellParent({ inUse: holder });
    stop();
    return;
  }
  homeLock = lock;
  if (stopping) return;
  // A description left by a holder that was killed outright is stale: nobody may read it from now on.
  await rm(holderFile, { force: true });
  await waitForDynamoDb();
  if (stopping) return;

  dynamo = dynalite({ path: dynamoDir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise((resolve, reject) => {
    dynamo?.once("error", reject);
    dynamo?.listen(0, "127.0.0.1", resolve);
  });
  if (stopping) return;
  s3 = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory: path.join(dataDir, "s3"),
    vhostBuckets: false,
    configureBuckets: [{ name: bucket }],
  });
  // s3rver logs every request through koa-logger even when silent: it formats each line and pipes every
  // streamed body through a byte counter, for a log nobody sees. Left out, this process needs about 8%
  // less CPU and 10 MB less memory; errors still reach s3rver's own (silent) logger.
  s3.middleware = s3.middleware.filter((middleware) => middleware.name !== "logger");
  const s3Address = await s3.run();
  if (stopping) return;
  const ports = { s3Port: s3Address.port, dynamodbPort: dynamo.address().port };
  await writeFile(
    holderFile,
    `${JSON.stringify({ pid: process.pid, ownerPid: parentPid, host: os.hostname(), ...ports, startedAt: new Date().toISOString() })}\n`,
  );
  ownsHolderFile = true;
  await tellParent(ports);
}

const startup = start();
startup.catch((error) => {
  process.stderr.write(`mmsafe: the embedded AWS servers could not start: ${error?.message ?? error}\n`);
  process.exitCode = 1;
  stop();
});
