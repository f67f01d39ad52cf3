/**
 * The child process that hosts the embedded S3 and DynamoDB servers (s3rver, dynalite) on 127.0.0.1.
 * Plain JavaScript so it starts without a TypeScript loader (less memory, faster start).
 *
 * Usage: node --openssl-legacy-provider aws-servers-process.mjs DATA_DIR BUCKET
 * Prints one JSON line with the ports, then serves until its parent is gone or it gets SIGTERM, SIGINT or
 * SIGHUP. The parent is gone when this process's stdin closes: the parent closed it (a normal stop) or
 * died — the kernel closes the pipe even when the parent is killed with SIGKILL. As a fallback the parent
 * pid is also checked every second (re-parenting means the parent died). Either way both servers are
 * closed, dynalite's LevelDB included, before exiting: no orphan keeps the ports or the LevelDB lock.
 *
 * Durability: dynalite acknowledges a write only after LevelDB has appended it to its log and handed it to
 * the operating system, so a verdict acknowledged to the runner survives the runner's death and even this
 * process being killed outright (LevelDB replays its log when it next opens). The LOCK file LevelDB leaves
 * behind is harmless: the lock is an advisory lock the kernel releases when its holder dies. If the lock
 * is still held when this process starts (the previous runner's servers are still closing, or another
 * mmsafe uses the same folder), it waits for it for a while instead of failing on the first request.
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import dynalite from "dynalite";
import S3rver from "s3rver";

/** How long to wait for another process to release the LevelDB lock before giving up. */
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
const pidFile = path.join(dataDir, "servers.pid");

let dynamo = null;
let s3 = null;
let stopping = false;
let ownsPidFile = false;

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
    // The pid file names the lock's holder to a process waiting for it: removed once the lock is released.
    .then(() => (ownsPidFile ? rm(pidFile, { force: true }) : undefined))
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
for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.once(signal, stop);

/** The LevelDB implementation dynalite itself uses (resolved from dynalite's own location). */
function dynaliteLevel() {
  const requireHere = createRequire(import.meta.url);
  return createRequire(requireHere.resolve("dynalite"))("level");
}

/**
 * Waits until no other process holds the LevelDB lock of `dir`. dynalite opens its database lazily and,
 * when the lock is held, fails every request with "Database is closed"; checking first turns that into a
 * short wait (the previous servers are closing) or a message naming the folder (another mmsafe uses it).
 */
async function waitForLevelDbLock(dir) {
  const { Level } = dynaliteLevel();
  const started = Date.now();
  let told = false;
  while (!stopping) {
    const db = new Level(dir);
    try {
      await db.open();
      await db.close();
      return;
    } catch (error) {
      const code = error?.cause?.code ?? error?.code;
      if (code !== "LEVEL_LOCKED") throw error;
      await db.close().catch(() => undefined);
      const holder = await readFile(pidFile, "utf8").then(
        (text) => ` (pid ${text.trim()})`,
        () => "",
      );
      if (Date.now() - started > LOCK_WAIT_MS) {
        throw new Error(
          `${dir} is in use by another process${holder}: is another mmsafe run using the same --home?`,
        );
      }
      if (!told && Date.now() - started > 2_000) {
        told = true;
        process.stderr.write(`mmsafe: waiting for another process${holder} to release ${dir}\n`);
      }
      await delay(200);
    }
  }
}

async function start() {
  await mkdir(dynamoDir, { recursive: true });
  await mkdir(path.join(dataDir, "s3"), { recursive: true });
  await waitForLevelDbLock(dynamoDir);
  if (stopping) return;
  await writeFile(pidFile, `${process.pid}\n`);
  ownsPidFile = true;

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
  const s3Address = await s3.run();
  if (stopping) return;
  process.stdout.write(
    `${JSON.stringify({ s3Port: s3Address.port, dynamodbPort: dynamo.address().port })}\n`,
  );
}

const startup = start();
startup.catch((error) => {
  process.stderr.write(`mmsafe: the embedded AWS servers could not start: ${error?.message ?? error}\n`);
  process.exitCode = 1;
  stop();
});
