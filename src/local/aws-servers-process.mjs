/**
 * The child process that hosts the embedded S3 and DynamoDB servers (s3rver, dynalite) on 127.0.0.1.
 * Plain JavaScript so it starts without a TypeScript loader (less memory, faster start).
 *
 * Usage: node --openssl-legacy-provider aws-servers-process.mjs DATA_DIR BUCKET
 * Prints one JSON line with the ports, then serves until its stdin closes (the parent stopped or died)
 * or it gets SIGTERM/SIGINT.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import dynalite from "dynalite";
import S3rver from "s3rver";

const [dataDir, bucket] = process.argv.slice(2);
if (!dataDir || !bucket) {
  process.stderr.write("usage: aws-servers-process.mjs DATA_DIR BUCKET\n");
  process.exit(2);
}
await mkdir(path.join(dataDir, "dynamodb"), { recursive: true });
await mkdir(path.join(dataDir, "s3"), { recursive: true });

const dynamo = dynalite({
  path: path.join(dataDir, "dynamodb"),
  createTableMs: 0,
  deleteTableMs: 0,
  updateTableMs: 0,
});
await new Promise((resolve, reject) => {
  dynamo.once("error", reject);
  dynamo.listen(0, "127.0.0.1", resolve);
});
const s3 = new S3rver({
  address: "127.0.0.1",
  port: 0,
  silent: true,
  directory: path.join(dataDir, "s3"),
  vhostBuckets: false,
  configureBuckets: [{ name: bucket }],
});
const s3Address = await s3.run();
process.stdout.write(`${JSON.stringify({ s3Port: s3Address.port, dynamodbPort: dynamo.address().port })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  Promise.allSettled([s3.close(), new Promise((resolve) => dynamo.close(resolve))]).finally(() =>
    process.exit(0),
  );
};
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
