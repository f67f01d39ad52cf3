/**
 * Model budgets hold for the whole run, across shards in processes of their own (as Lambda containers run
 * them on AWS, each with its own gates): the real CLI with `--shard-processes`, 40 shards at once, against
 * a reference model server that counts the calls in flight and when each arrived.
 *
 * One run, two models, each on a server of its own:
 * - "wide", maxConcurrency 16: its endpoint never sees more than 16 calls at once, though 40 processes call it;
 * - "paced", requestsPerMinute 600: its requests arrive no faster than the rate (within 5%);
 * - every item gets its verdict from both, and the processes are gone afterwards.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { writeSampleDataset } from "../../src/benchmarks/mmsafeaware/sample.ts";
import { type ReferenceServer, startReferenceModelServer } from "../../src/local/reference-model-server.ts";
import { localVerdicts, spawnMmsafe } from "../fixtures/local-cli.ts";

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";

const work = mkdtempSync(path.join(os.tmpdir(), "mmsafe-budgets-"));
const dataset = path.join(work, "dataset");
const ITEMS = 120;
const SHARD_SIZE = 3; // 40 shards
const SHARDS = ITEMS / SHARD_SIZE;
const RPM = 600;
let wide: ReferenceServer;
let paced: ReferenceServer;

before(async () => {
  await writeSampleDataset(dataset, { size: "full" });
  wide = await startReferenceModelServer({ latencyMs: 100 });
  paced = await startReferenceModelServer({ latencyMs: 100 });
});

after(async () => {
  await wide?.close();
  await paced?.close();
  await rm(work, { recursive: true, force: true });
});

/** Pids of processes whose command line mentions `text`. */
function processesWith(text: string): number[] {
  const ps = spawnSync("ps", ["-eo", "pid=,args="], { encoding: "utf8" });
  return ps.stdout
    .split("\n")
    .filter((line) => line.includes(text))
    .map((line) => Number.parseInt(line.trim(), 10));
}

describe("model budgets across shard processes", () => {
  it(`hold for the whole run: ${SHARDS} shards at once, each in a process of its own`, {
    timeout: 600_000,
  }, async () => {
    const home = path.join(work, "home");
    const modelsFile = path.join(work, "models.json");
    await mkdir(work, { recursive: true });
    await writeFile(
      modelsFile,
      JSON.stringify({
        models: [
          { id: "wide", model: "random", baseURL: wide.baseURL, maxConcurrency: 16 },
          {
            id: "paced",
            model: "random",
            baseURL: paced.baseURL,
            maxConcurrency: 16,
            requestsPerMinute: RPM,
          },
        ],
      }),
    );
    const cli = spawnMmsafe([
      "run",
      ...["--home", home, "--dataset", dataset, "--models", modelsFile, "--run-id", "budgets"],
      ...["--limit", String(ITEMS), "--shard-size", String(SHARD_SIZE)],
      ...["--map-concurrency", String(SHARDS), "--shard-processes", String(SHARDS)],
      ...["--no-cache", "--quiet", "--reports", path.join(work, "reports")],
    ]);
    assert.equal(await cli.exited, 0, cli.output.stderr);
    const verdicts = await localVerdicts(home, "budgets");
    assert.equal(verdicts.length, 2 * ITEMS, "one verdict per item and model");
    assert.equal(verdicts.filter((v) => v.status !== "answered").length, 0, "every item answered");
    assert.deepEqual(processesWith(home), [], "nothing of the run is left running");

    const w = wide.stats();
    assert.equal(w.requests, ITEMS);
    assert.ok(w.maxInFlight <= 16, `${w.maxInFlight} calls in flight at once to "wide"`);

    const p = paced.stats();
    assert.equal(p.requests, ITEMS);
    // n requests at the rate span n − 1 intervals.
    const perMinute = ((p.requests - 1) * 60_000) / ((p.lastRequestAt ?? 0) - (p.firstRequestAt ?? 0));
    // Only the bound is asserted: a loaded machine may go slower than the rate, never faster.
    assert.ok(
      perMinute <= RPM * 1.05,
      `${perMinute.toFixed(1)} requests per minute to "paced", limit ${RPM}`,
    );
    console.log(
      `${SHARDS} shard processes: at most ${w.maxInFlight} calls in flight to a model with maxConcurrency 16; ` +
        `${perMinute.toFixed(1)} requests per minute to one with requestsPerMinute ${RPM} (${((100 * perMinute) / RPM).toFixed(1)}%)`,
    );
  });
});
