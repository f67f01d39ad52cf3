/**
 * Entry of the child process that hosts the embedded S3 and DynamoDB servers. Prints one JSON line with
 * the ports, then serves until its stdin closes (the parent stopped or died) or it gets SIGTERM/SIGINT.
 */
import { startAwsServers } from "./embedded-aws.ts";

const dataDir = process.argv[2];
if (!dataDir) {
  process.stderr.write("usage: aws-servers-process.ts DATA_DIR\n");
  process.exit(2);
}
const servers = await startAwsServers(dataDir);
process.stdout.write(`${JSON.stringify({ s3Port: servers.s3Port, dynamodbPort: servers.dynamodbPort })}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  servers.close().finally(() => process.exit(0));
};
process.stdin.on("end", stop);
process.stdin.on("close", stop);
process.stdin.resume();
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
