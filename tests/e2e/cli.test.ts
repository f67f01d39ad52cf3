/** The `mmsafe` command as a user runs it: a real process, its output and its exit code. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { create, Pax } from "tar";
import { DATASET_SOURCES } from "../../src/dataset/fetch.ts";

const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-cli-"));
after(() => rm(home, { recursive: true, force: true }));

function mmsafe(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ["bin/mmsafe.js", ...args], {
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("mmsafe CLI", () => {
  it("runs a local evaluation and prints the headline table and the report path (exit 0)", () => {
    const { code, stdout, stderr } = mmsafe([
      "run",
      "--home",
      path.join(home, "state"),
      "--reports",
      path.join(home, "reports"),
      "--limit",
      "6",
      "--run-id",
      "cli-1",
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /GENERATED SAMPLE/);
    // Off a terminal: plain lines with the rate, ETA, errors, retries, tokens, cost, cached and each model.
    assert.match(
      stderr,
      /progress: 18\/18 verdicts \(100\.0%\) · [\d.]+\/s · ETA 0 s · errors 0 · retries 0 · tokens [\d,]+ · cost – · cached \d+ · always-yes 6\/6, always-no 6\/6, random 6\/6\n/,
    );
    assert.match(
      stdout,
      /model\s+strategy\s+Typical\s+Attack\s+Over-Safe\s+Total\s+Balanced\s+answered\s+errors\s+skipped\s+missing\s+cached/,
    );
    assert.match(stdout, /always-no \(baseline\)\s+baseline/);
    assert.match(stdout, /report: .*report\.md/);
  });

  it("rejects an invalid models file before starting, naming the field (exit 2)", async () => {
    const file = path.join(home, "models.json");
    await writeFile(
      file,
      JSON.stringify({ models: [{ id: "m", baseURL: "not a url", model: "x", colour: "blue" }] }),
    );
    const { code, stderr } = mmsafe(["run", "--home", path.join(home, "state"), "--models", file]);
    assert.equal(code, 2);
    assert.match(stderr, /models\.0\.baseURL: baseURL must be an http\(s\) URL/);
    assert.match(stderr, /colour/);
  });

  it("refuses a model whose key variable is unset, without printing any key (exit 2)", async () => {
    const file = path.join(home, "models-key.json");
    await writeFile(
      file,
      JSON.stringify({
        models: [{ id: "m", baseURL: "http://127.0.0.1:9/v1", model: "x", apiKeyEnv: "MMSAFE_TEST_KEY" }],
      }),
    );
    const { code, stderr } = mmsafe(["run", "--home", path.join(home, "state"), "--models", file], {
      MMSAFE_TEST_KEY: "",
    });
    assert.equal(code, 2);
    assert.match(stderr, /reads its key from MMSAFE_TEST_KEY, which is not set/);
  });

  it("rejects bad options with usage help (exit 2)", () => {
    const { code, stderr } = mmsafe(["run", "--categories", "typical,funny"]);
    assert.equal(code, 2);
    assert.match(stderr, /unknown funny \(allowed: typical, attack, oversafety\)/);
  });

  it("inspects a dataset directory", () => {
    const sample = path.join(home, "sample");
    assert.equal(mmsafe(["dataset", "sample", sample]).code, 0);
    const { code, stdout } = mmsafe(["dataset", "inspect", sample]);
    assert.equal(code, 0);
    assert.match(stdout, /40 records, 36 runnable pairs/);
    assert.match(stdout, /skipped: 4 records have no image: ids 2301, 2333, 2369–2370/);
  });

  it("fetches the official layout from an archive, verifying it against the pinned commit and counts", async () => {
    // The full-size generated sample has the official ids, gaps and quirks (1,523 records, 1,453 runnable),
    // packed as GitHub packs the pinned commit: a pax header naming it, one top-level folder.
    const { commit } = DATASET_SOURCES.mmsafeaware;
    const top = `MMSafetyAwareness-${commit}`;
    const src = path.join(home, "archive-src");
    assert.equal(mmsafe(["dataset", "sample", "--full", path.join(src, top)]).code, 0);
    const tarFile = path.join(home, "raw.tar");
    await create({ cwd: src, file: tarFile, portable: true }, [top]);
    const archive = path.join(home, "mmsafe.tar.gz");
    await writeFile(
      archive,
      gzipSync(Buffer.concat([new Pax({ comment: commit }, true).encode(), await readFile(tarFile)])),
    );

    const fetchHome = path.join(home, "fetched");
    const { code, stdout, stderr } = mmsafe([
      "dataset",
      "fetch",
      "mmsafeaware",
      "--home",
      fetchHome,
      "--archive",
      archive,
    ]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /1523 records, 1453 runnable pairs, 70 skipped/);
    assert.match(stdout, /skipped: 70 records have no image: ids 2301–2370/);
    const source = JSON.parse(
      await readFile(path.join(fetchHome, "datasets", "mmsafeaware", "source.json"), "utf8"),
    ) as { commit: string; records: number; runnable: number; verifiedBy: string };
    assert.deepEqual(
      [source.commit, source.records, source.runnable, source.verifiedBy],
      [commit, 1523, 1453, "content"],
    );

    // A wrong checksum is refused with exit 2, and the copy already there is left as it was.
    const wrong = mmsafe([
      "dataset",
      "fetch",
      "--home",
      fetchHome,
      "--archive",
      archive,
      "--force",
      "--sha256",
      "0".repeat(64),
    ]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /sha256/);
    assert.deepEqual(await readdir(path.join(fetchHome, "datasets")), ["mmsafeaware"]);
  });

  it("compare writes the comparison as Markdown, JSON and a filterable HTML page of the flipped items", async () => {
    const reports = path.join(home, "reports");
    const { code, stdout, stderr } = mmsafe([
      "compare",
      "cli-1/always-yes",
      "cli-1/always-no",
      "--home",
      path.join(home, "state"),
      "--reports",
      reports,
    ]);
    assert.equal(code, 0, stderr);
    const base = path.join(
      reports,
      "compare",
      "cli-1_always-yes_baseline--vs--cli-1_always-no_baseline.paper",
    );
    assert.ok(stdout.includes(`${base}.html`), stdout);
    const html = await readFile(`${base}.html`, "utf8");
    assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; /);
    assert.match(
      html,
      /<tr data-column="oversafety"><th scope="row">Over-Safe<\/th><td data-col="n">6<\/td>/,
    );
    // always-yes is right on the over-safety items, always-no wrong: six right → wrong flips, with sentences.
    const flips = [
      ...html.matchAll(/<tr class="flip" data-column="oversafety" data-direction="right-to-wrong"/g),
    ];
    assert.equal(flips.length, 6);
    assert.doesNotMatch(html, /<td class="sentence muted">/, "every flipped item has its sentence");
  });

  it("open prints the path of a run's report page (exit 0), and names the command that writes a missing one (exit 2)", async () => {
    const reports = path.join(home, "open-reports");
    const page = path.join(reports, "run-open", "report.html");
    await mkdir(path.dirname(page), { recursive: true });
    await writeFile(page, "<!doctype html><title>report</title>\n");
    const found = mmsafe(["open", "run-open", "--reports", reports, "--print"]);
    assert.equal(found.code, 0, found.stderr);
    assert.equal(found.stdout, `${page}\n`);
    // Not a terminal: the path is printed and no browser is started, even without --print.
    assert.equal(mmsafe(["open", "run-open", "--reports", reports]).stdout, `${page}\n`);

    const missing = mmsafe(["open", "no-such-run", "--reports", reports, "--print"]);
    assert.equal(missing.code, 2);
    assert.ok(missing.stderr.includes(path.join(reports, "no-such-run", "report.html")), missing.stderr);
    assert.match(missing.stderr, /mmsafe report no-such-run --local --out /);
    assert.equal(missing.stdout, "");
    const bad = mmsafe(["open", "../etc", "--reports", reports, "--print"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /is not a run id/);
  });

  it("compare names what is wrong with a side (exit 2)", () => {
    const bad = mmsafe(["compare", "a/b/c/d", "x", "--home", path.join(home, "state")]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /expected RUN, RUN\/MODEL or RUN\/MODEL\/STRATEGY/);
    const unknown = mmsafe(["compare", "no-such-run", "other", "--home", path.join(home, "state")]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no run "no-such-run"/);
  });
});
