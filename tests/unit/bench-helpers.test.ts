import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { questionsDigest } from "../../scripts/bench/endpoint.ts";
import {
  foldSamples,
  parseChildren,
  parseProcStat,
  parseProcStatusMemory,
  processLabel,
} from "../../scripts/bench/process-tree.ts";
import {
  checkTargets,
  floorRatioLimit,
  idealMs,
  type RunKind,
  type RunResult,
  renderMarkdown,
} from "../../scripts/bench/results.ts";

describe("process-tree parsing", () => {
  it("reads /proc/<pid>/stat even when the process name holds spaces and parentheses", () => {
    // Fields as proc(5) numbers them: 14 utime, 15 stime, 16 cutime, 17 cstime.
    const line =
      "4242 (node (main) x) S 4200 4242 4200 0 -1 4194560 9000 0 0 0 1234 56 78 9 20 0 11 0 5000 1000000 20000 ...";
    const stat = parseProcStat(line);
    assert.deepEqual(stat, {
      pid: 4242,
      comm: "node (main) x",
      state: "S",
      ppid: 4200,
      utime: 1234,
      stime: 56,
      cutime: 78,
      cstime: 9,
    });
    assert.throws(() => parseProcStat("no parentheses here"), /not a \/proc/);
  });

  it("reads VmRSS and VmHWM from /proc/<pid>/status in bytes, 0 for a zombie", () => {
    const status = "Name:\tnode\nVmPeak:\t 1000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t11\n";
    assert.deepEqual(parseProcStatusMemory(status), {
      rssBytes: 100 * 1024 * 1024,
      peakRssBytes: 200 * 1024 * 1024,
    });
    assert.deepEqual(parseProcStatusMemory("Name:\tnode\nState:\tZ (zombie)\n"), {
      rssBytes: 0,
      peakRssBytes: 0,
    });
  });

  it("reads a children file, empty or not", () => {
    assert.deepEqual(parseChildren("101 102 3030 "), [101, 102, 3030]);
    assert.deepEqual(parseChildren(""), []);
  });

  it("labels mmsafe's processes by their script", () => {
    assert.equal(processLabel(["node", "bin/mmsafe.js", "run", "--home", "h"], "node"), "cli");
    assert.equal(
      processLabel(
        ["node", "--openssl-legacy-provider", "/r/src/local/aws-servers-process.mjs", "/h/aws"],
        "node",
      ),
      "aws-servers",
    );
    assert.equal(
      processLabel(["node", "--import", "tsx", "/r/src/local/shard-process-main.ts", "file:///x.ts"], "node"),
      "shard-process-main.ts",
    );
    assert.equal(processLabel(["/usr/lib/esbuild", "--service=0.28.2"], "esbuild"), "esbuild");
  });

  it("folds samples: last CPU time per pid, peak of the summed RSS, most processes at once", () => {
    const mb = 1e6;
    const usage = foldSamples([
      [{ pid: 1, label: "cli", cpuTicks: 10, rssBytes: 50 * mb, peakRssBytes: 50 * mb }],
      [
        { pid: 1, label: "cli", cpuTicks: 30, rssBytes: 80 * mb, peakRssBytes: 90 * mb },
        { pid: 2, label: "aws-servers", cpuTicks: 5, rssBytes: 40 * mb, peakRssBytes: 40 * mb },
      ],
      // pid 1 has ended; pid 2 lives on.
      [{ pid: 2, label: "aws-servers", cpuTicks: 7, rssBytes: 45 * mb, peakRssBytes: 45 * mb }],
    ]);
    assert.equal(usage.sampledCpuMs, 300 + 70);
    assert.equal(usage.peakTreeRssBytes, 120 * mb);
    assert.equal(usage.maxProcesses, 2);
    assert.equal(usage.samples, 3);
    assert.deepEqual(
      usage.processes.map((p) => [p.pid, p.cpuMs, p.peakRssBytes]),
      [
        [1, 300, 90 * mb],
        [2, 70, 45 * mb],
      ],
    );
  });
});

describe("benchmark figures", () => {
  it("computes the ideal wall time: whole rounds of call slots, models in parallel", () => {
    assert.equal(idealMs(1453, 16, 200), 91 * 200);
    assert.equal(idealMs(1453, 16, 50), 4550);
    assert.equal(idealMs(16, 16, 200), 200);
    assert.equal(idealMs(0, 16, 200), 0);
    assert.throws(() => idealMs(10, 0, 200), RangeError);
  });

  it("sets the second-run target by latency", () => {
    assert.equal(floorRatioLimit(200), 1.05);
    assert.equal(floorRatioLimit(500), 1.05);
    assert.equal(floorRatioLimit(50), 1.15);
  });

  const run = (kind: RunKind, overrides: Partial<RunResult> = {}): RunResult => ({
    kind,
    latencyMs: 200,
    models: 1,
    concurrency: 16,
    items: 1453,
    exitCode: 0,
    wallMs: 19_000,
    cpuMs: 1453 * 3,
    cpuSource: "reaped",
    peakTreeRssBytes: 150e6,
    maxProcesses: 2,
    processes: [],
    endpoint: { requests: 1453, maxInFlight: 16, requestSpanMs: 18_300, cpuMs: 900, questionsDigest: "q" },
    loadAverage: { before: 1, after: 1 },
    ...overrides,
  });

  it("checks each mmsafe run against the issue's targets and marks what is missed", () => {
    const results = [
      run("floor", { wallMs: 19_000 }),
      run("first", { wallMs: 22_000, peakTreeRssBytes: 230e6 }),
      run("second", { wallMs: 19_800 }),
      run("floor", { latencyMs: 50, wallMs: 5_000 }),
      run("second", { latencyMs: 50, wallMs: 6_000, cpuMs: 1453 * 5 }),
      run("second", { models: 4, exitCode: 1 }),
    ];
    const checks = checkTargets(results);
    const find = (label: string, target: string) =>
      checks.find((c) => c.run === label && c.target === target) ?? assert.fail(`${label}: ${target}`);
    assert.equal(find("second 200 ms 1×16", "wall time over floor").met, true);
    assert.equal(find("first 200 ms 1×16", "added to the second run").value, 2200);
    assert.equal(find("first 200 ms 1×16", "added to the second run").met, false);
    assert.equal(find("first 200 ms 1×16", "peak RSS (tree)").met, false);
    assert.equal(find("second 50 ms 1×16", "wall time over floor").value, 1.2);
    assert.equal(find("second 50 ms 1×16", "wall time over floor").met, false);
    assert.equal(find("second 50 ms 1×16", "CPU per verdict").met, false);
    // A failed run is reported in the table, not measured against targets; floors have no targets.
    assert.ok(checks.every((c) => !c.run.startsWith("floor") && !c.run.includes("4×16")));

    const table = renderMarkdown(results);
    const lines = table.split("\n");
    assert.match(lines[0] ?? "", /^\| run \| latency \|/);
    assert.equal(lines.filter((l) => l.startsWith("| ")).length, 1 + 1 + results.length);
    assert.match(
      table,
      /\| second \| 200 ms \| 1 × 16 \| 1453 \| 19\.80 \| 18\.20 \| 1\.088 \| 1\.042 ✓ ≤1\.05 \|/,
    );
    assert.match(table, /\| \+2\.20 s ✗ ≤2 s \|/);
    assert.match(table, /second \(FAILED, exit 1\)/);
    assert.match(table, /NOT met: second 50 ms 1×16, wall time over floor 1\.200×/);
  });

  it("digests the questions asked whatever order the endpoint lists them in", () => {
    assert.equal(questionsDigest(["b", "a", "c"]), questionsDigest(["c", "b", "a"]));
    assert.notEqual(questionsDigest(["a", "b"]), questionsDigest(["a", "b", "c"]));
  });
});
