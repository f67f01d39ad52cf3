/** The `mmsafe` command as a user runs it: a real process, its output and its exit code. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { create, Pax } from "tar";
import type { CompareJson, RunResultJson } from "../../src/cli/main.ts";
import { DATASET_SOURCES } from "../../src/dataset/fetch.ts";
import { gitBlobSha1 } from "../../src/dataset/published-tree.ts";

const home = await mkdtemp(path.join(os.tmpdir(), "mmsafe-cli-"));
after(() => rm(home, { recursive: true, force: true }));

function mmsafe(args: string[], env: Record<string, string> = {}) {
  // No colour forced (CI may set FORCE_COLOR): output to a pipe is plain text.
  const { FORCE_COLOR: _forced, ...inherited } = process.env;
  const result = spawnSync(process.execPath, ["bin/mmsafe.js", ...args], {
    encoding: "utf8",
    env: { ...inherited, ...env },
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
    // Off a terminal: plain lines with the elapsed time, rate, ETA, errors, retries, tokens, cost, cached
    // and each model.
    assert.match(
      stderr,
      /progress: 18\/18 verdicts \(100\.0%\) · elapsed \d+ s · [\d.]+\/s · ETA 0 s · errors 0 · retries 0 · tokens [\d,]+ · cost – · cached \d+ · always-yes 6\/6, always-no 6\/6, random 6\/6\n/,
    );
    assert.match(
      stdout,
      /model\s+strategy\s+Typical\s+Attack\s+Over-Safe\s+Total\s+Balanced\s+answered\s+errors\s+skipped\s+missing\s+cached/,
    );
    assert.match(stdout, /always-no \(baseline\)\s+baseline/);
    assert.match(stdout, /report: .*report\.md/);
    assert.match(stdout, /report\.html {2}\(open it: npm run mmsafe -- open cli-1 --reports /);
    assert.ok(!stdout.includes("\u001b["), "no colour in a pipe");
  });

  it("run --json prints one JSON document on stdout: status, dataset and provenance, headline, report files", async () => {
    const { code, stdout, stderr } = mmsafe([
      "run",
      "--home",
      path.join(home, "state"),
      "--reports",
      path.join(home, "reports"),
      "--limit",
      "8",
      "--strategies",
      "baseline,contextual-reasoning",
      "--run-id",
      "cli-2",
      "--json",
    ]);
    assert.equal(code, 0, stderr);
    // Nothing but the document on stdout; progress stays on stderr.
    const result = JSON.parse(stdout) as RunResultJson;
    assert.match(stderr, /progress: 48\/48 verdicts/);
    assert.equal(result.runId, "cli-2");
    assert.equal(result.status, "SUCCEEDED");
    assert.equal(result.exitCode, 0);
    assert.equal(result.dataset?.provenance.kind, "sample");
    assert.equal(result.completion?.outcome, "complete");
    assert.deepEqual(
      result.headline.map((h) => `${h.modelId}/${h.strategy}`).sort(),
      ["always-no", "always-yes", "random"]
        .flatMap((m) => [`${m}/baseline`, `${m}/contextual-reasoning`])
        .sort(),
    );
    assert.equal(result.resume, null);
    const files = result.report?.files ?? [];
    assert.deepEqual(
      files.slice(0, 3).map((f) => path.basename(f)),
      ["report.md", "report.json", "report.html"],
    );
    for (const file of files) await access(file);
  });

  it("rebuilds a run's report from its verdicts without asking any model (report --rebuild)", async () => {
    const out = path.join(home, "rebuilt");
    const rebuilt = mmsafe([
      "report",
      "cli-1",
      "--local",
      "--home",
      path.join(home, "state"),
      "--rebuild",
      "--out",
      out,
    ]);
    assert.equal(rebuilt.code, 0, rebuilt.stderr);
    assert.match(rebuilt.stdout, /rebuilt the report of cli-1 from its verdicts/);
    const report = JSON.parse(await readFile(path.join(out, "cli-1", "report.json"), "utf8")) as {
      rows: { counts: { answered: number } }[];
    };
    assert.deepEqual(
      report.rows.map((r) => r.counts.answered),
      [6, 6, 6],
    );
    const unknown = mmsafe([
      "report",
      "no-such-run",
      "--local",
      "--home",
      path.join(home, "state"),
      "--rebuild",
    ]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no run "no-such-run" in /);
    assert.doesNotMatch(unknown.stderr, /\n\s+at /);
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

  it("rejects bad options with one line and the help hint, not the whole help (exit 2)", () => {
    const { code, stderr } = mmsafe(["run", "--categories", "typical,funny"]);
    assert.equal(code, 2);
    assert.match(
      stderr,
      /unknown funny \(allowed: typical, attack, oversafety\)\nRun 'npm run mmsafe -- run --help' for usage\.\n$/,
    );
    assert.doesNotMatch(stderr, /Options:/);
  });

  it("inspects a dataset directory: provenance, image types, lying extensions, identical records, strays", () => {
    const sample = path.join(home, "sample");
    assert.equal(mmsafe(["dataset", "sample", sample]).code, 0);
    const { code, stdout } = mmsafe(["dataset", "inspect", sample]);
    assert.equal(code, 0);
    assert.match(stdout, /40 records, 36 runnable pairs/);
    assert.match(stdout, /skipped: 4 records have no image: ids 2301, 2333, 2369–2370/);
    assert.match(stdout, /provenance: generated sample, not the real benchmark/);
    assert.match(stdout, /images by type \(from their bytes\): /);
    assert.match(stdout, /images by extension: /);
    assert.match(stdout, /data\/images\/7\.jpg holds PNG/);
    assert.match(stdout, /data\/images2\/2042\.png holds JPEG/);
    assert.match(stdout, /identical records \(same sentence and image bytes\): none/);
    assert.match(
      stdout,
      /files no record uses \(2; not read\): data\/images2\/test \(1 byte, not an image\), data\/test \(1 byte, not an image\)/,
    );
  });

  it("fetches an archive in the official layout, verified file by file; a changed image is named (exit 2)", async () => {
    // The full-size generated sample has the official ids, gaps and quirks (1,523 records, 1,453 runnable),
    // packed as GitHub packs the pinned commit: a pax header naming it, one top-level folder. Its own
    // `git ls-tree` listing stands in for the published tree.
    const { commit } = DATASET_SOURCES.mmsafeaware;
    const top = `MMSafetyAwareness-${commit}`;
    const src = path.join(home, "archive-src");
    assert.equal(mmsafe(["dataset", "sample", "--full", path.join(src, top)]).code, 0);
    await rm(path.join(src, top, "mmsafe-sample.json"));
    const treeFile = path.join(home, "tree.tsv");
    const listing: string[] = [];
    for (const relative of (await readdir(path.join(src, top, "data"), { recursive: true })).sort()) {
      const file = path.join(src, top, "data", relative);
      const bytes = await readFile(file).catch(() => null);
      if (bytes === null) continue; // a folder
      listing.push(
        `100644\tblob\t${gitBlobSha1(bytes)}\t${bytes.length}\tdata/${relative.split(path.sep).join("/")}`,
      );
    }
    await writeFile(treeFile, `${listing.join("\n")}\n`);
    const pack = async (name: string): Promise<string> => {
      const tarFile = path.join(home, `${name}.tar`);
      await create({ cwd: src, file: tarFile, portable: true }, [top]);
      const archive = path.join(home, `${name}.tar.gz`);
      await writeFile(
        archive,
        gzipSync(Buffer.concat([new Pax({ comment: commit }, true).encode(), await readFile(tarFile)])),
      );
      return archive;
    };
    const archive = await pack("intact");

    const fetchHome = path.join(home, "fetched");
    const fetch = (file: string, ...extra: string[]) =>
      mmsafe([
        "dataset",
        "fetch",
        "mmsafeaware",
        "--home",
        fetchHome,
        "--archive",
        file,
        "--tree",
        treeFile,
        ...extra,
      ]);
    const { code, stdout, stderr } = fetch(archive);
    assert.equal(code, 0, stderr);
    assert.match(stdout, new RegExp(`fetched Jarviswang94/MMSafetyAwareness at commit ${commit} into `));
    assert.match(
      stdout,
      /verified: all 1,456 files under data\/ match the published tree \(git blob hashes\); 1,523 records \/ 1,453 runnable pairs as expected/,
    );
    assert.match(stdout, /1523 records, 1453 runnable pairs, 70 skipped/);
    assert.match(stdout, /skipped: 70 records have no image: ids 2301–2370/);
    const dest = path.join(fetchHome, "datasets", "mmsafeaware");
    const source = JSON.parse(await readFile(path.join(dest, "source.json"), "utf8")) as {
      commit: string;
      records: number;
      runnable: number;
      verifiedBy: string;
      files: number;
    };
    assert.deepEqual(
      [source.commit, source.records, source.runnable, source.verifiedBy, source.files],
      [commit, 1523, 1453, "tree", 1456],
    );

    // Runs and inspect label it against the shipped (real) listing: this generated copy is not the real data.
    const inspected = mmsafe(["dataset", "inspect", dest]);
    assert.equal(inspected.code, 0, inspected.stderr);
    assert.match(
      inspected.stdout,
      /provenance: modified copy, not the official data \(\d+ files differ from the published tree 472df95/,
    );
    assert.match(inspected.stdout, /data\/images2\/2037\.png holds JPEG/);
    assert.match(
      inspected.stdout,
      /identical records \(same sentence and image bytes; all kept, as the official scorer counts each\): 7 groups: 78\/2220, 82\/2223, 83\/2224, 84\/2232, 95\/2277, 435\/1136, 843\/1084/,
    );
    // Image 12, whatever its extension in the sample.
    const twelve = (await readdir(path.join(dest, "data", "images"))).find((f) => /^12\.[a-z]+$/.test(f));
    assert.ok(twelve, "the sample has image 12");
    const before = await readFile(path.join(dest, "data", "images", twelve));

    // One image changed: named with both hashes and sizes, exit 2, the copy already there left as it was.
    await writeFile(path.join(src, top, "data", "images", twelve), "changed bytes");
    const changed = fetch(await pack("changed"), "--force");
    assert.equal(changed.code, 2, changed.stderr);
    assert.match(
      changed.stderr,
      /is not the published data: 1 file under data\/ differs from the published tree \(tree\.tsv, 1456 files\), so nothing was moved into place/,
    );
    assert.match(
      changed.stderr,
      new RegExp(
        `data/images/${twelve.replace(".", "\\.")}: differs \\(expected blob ${gitBlobSha1(before).slice(0, 12)}, ${before.length} bytes; found blob ${gitBlobSha1(Buffer.from("changed bytes")).slice(0, 12)}, 13 bytes\\)`,
      ),
    );
    assert.doesNotMatch(changed.stderr, /\n\s+at /, "no stack trace");
    assert.deepEqual(await readFile(path.join(dest, "data", "images", twelve)), before);

    // A wrong checksum is refused with exit 2 too.
    const wrong = fetch(archive, "--force", "--sha256", "0".repeat(64));
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
    // --limit 6 of the sample's 8 typical, 15 attack and 13 over-safety items: 1 / 3 / 2, stratified.
    assert.match(html, /<tr data-column="typical"><th scope="row">Typical<\/th><td data-col="n">1<\/td>/);
    assert.match(
      html,
      /<tr data-column="oversafety"><th scope="row">Over-Safe<\/th><td data-col="n">2<\/td>/,
    );
    // always-yes is right on the over-safety items, always-no wrong: two right → wrong flips, with sentences.
    const flips = [
      ...html.matchAll(/<tr class="flip" data-column="oversafety" data-direction="right-to-wrong"/g),
    ];
    assert.equal(flips.length, 2);
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
    assert.match(missing.stderr, /npm run mmsafe -- report no-such-run --local --out /);
    assert.equal(missing.stdout, "");
    const bad = mmsafe(["open", "../etc", "--reports", reports, "--print"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /is not a run id/);
  });

  it("compare RUN RUN compares each model × strategy present in both runs, Balanced too", async () => {
    const reports = path.join(home, "reports");
    const args = ["compare", "cli-1", "cli-2", "--home", path.join(home, "state"), "--reports", reports];
    const { code, stdout, stderr } = mmsafe(args);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^A = run cli-1, B = run cli-2: paper scoring, 3 model × strategy pairs in both$/m);
    assert.match(
      stdout,
      /^model\/strategy\s+n\s+Total A\s+Total B\s+Δ pp\s+p\s+Balanced A\s+Balanced B\s+Δ pp\s+95% CI of Δ$/m,
    );
    for (const model of ["always-yes", "always-no", "random"])
      assert.match(
        stdout,
        new RegExp(`^${model}/baseline\\s+6\\s`, "m"),
        "the 6 items of cli-1, all in cli-2",
      );
    assert.match(
      stdout,
      /^only in B \(not compared\): always-yes\/contextual-reasoning, always-no\/contextual-reasoning, random\/contextual-reasoning$/m,
    );
    const markdown = await readFile(path.join(reports, "compare", "cli-1--vs--cli-2.paper.md"), "utf8");
    assert.match(
      markdown,
      /^### Paired comparison, paper scoring: cli-1\/always-yes\/baseline vs cli-2\/always-yes\/baseline$/m,
    );
    assert.match(
      markdown,
      /\| \*\*Balanced\*\* \| 6 \| 50\.0 \| 50\.0 \| 0\.0 \| \[0\.0, 0\.0\] \| 0 \| 0 \| – \|/,
    );

    const json = mmsafe([...args, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const document = JSON.parse(json.stdout) as CompareJson;
    assert.deepEqual(
      document.pairs.map((p) => `${p.modelId}/${p.strategy}`),
      ["always-yes/baseline", "always-no/baseline", "random/baseline"],
    );
    const yes = document.pairs[0]?.comparison;
    // always-yes answers the same in both runs: no difference, and its empty-free columns test as p 1.
    assert.equal(yes?.balanced.difference, 0);
    assert.equal(yes?.excluded.onlyB, 2, "cli-2's two extra items are not paired");
    assert.equal(document.onlyInB.length, 3);
    for (const pair of document.pairs) await access(pair.html);
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
