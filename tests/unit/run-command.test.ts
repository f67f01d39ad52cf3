/** What `mmsafe run` tells a user when a run is not a clean success: the resume command, the per-model lines. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  buildProgram,
  completionLines,
  EXIT,
  helpHint,
  noAnswerLines,
  readableCause,
  resumeCommand,
} from "../../src/cli/main.ts";
import type { AffectedRow, RunCompletion } from "../../src/core/completion.ts";

const defaults = { cache: true, home: ".mmsafe", reports: "reports" };

const affected = (overrides: Partial<AffectedRow>): AffectedRow => ({
  modelId: "m1",
  strategy: "baseline",
  planned: 36,
  answered: 30,
  errored: 6,
  missing: 0,
  kinds: { connection: 6 },
  sample: "Connection error.",
  ...overrides,
});

describe("resumeCommand", () => {
  it("is the run id alone with the default options", () => {
    assert.equal(resumeCommand("run-1", defaults), "npm run mmsafe -- run --run-id run-1");
  });

  it("repeats every option that decides what the run evaluates, and where it lives", () => {
    assert.equal(
      resumeCommand("nightly-01", {
        ...defaults,
        home: "/tmp/my home",
        dataset: "data/mmsafe",
        models: "models.json",
        strategies: ["baseline", "vcd"],
        categories: ["typical"],
        limit: 50,
        vcdAlpha: 1,
        vcdBeta: 0.1,
        vcdNoise: 0.5,
        reports: "out",
        cache: false,
        quiet: true,
        shardSize: 5,
      }),
      "npm run mmsafe -- run --run-id nightly-01 --home '/tmp/my home' --dataset data/mmsafe --models models.json " +
        "--strategies baseline,vcd --categories typical --limit 50 --vcd-alpha 1 --vcd-beta 0.1 --vcd-noise 0.5 " +
        "--reports out --no-cache",
    );
    assert.equal(
      resumeCommand("r", { ...defaults, home: "it's" }),
      "npm run mmsafe -- run --run-id r --home 'it'\\''s'",
    );
  });
});

describe("what a finished run that is not complete prints", () => {
  const withErrors: RunCompletion = {
    outcome: "with_errors",
    errored: 6,
    missing: 2,
    affected: [
      affected({}),
      affected({ modelId: "m2", errored: 0, missing: 2, answered: 34, kinds: {}, sample: null }),
    ],
  };

  it("a line per affected model × strategy, then the resume command", () => {
    assert.deepEqual(completionLines(withErrors, "run-1", "npm run mmsafe -- run --run-id run-1"), [
      "run run-1 finished, but 8 verdicts are not answers (errors or missing):",
      "  m1 / baseline: 6 of 36 without an answer (connection 6): Connection error.",
      "  m2 / baseline: 2 of 36 without an answer (missing 2)",
      "resume to retry them: npm run mmsafe -- run --run-id run-1",
    ]);
    assert.deepEqual(noAnswerLines(withErrors), [], "every row has answers: no warning above the table");
  });

  it("nothing for a complete run", () => {
    const complete: RunCompletion = { outcome: "complete", errored: 0, missing: 0, affected: [] };
    assert.deepEqual(completionLines(complete, "run-1", "x"), []);
    assert.deepEqual(noAnswerLines(complete), []);
  });

  it("names the model that answered nothing, above the table", () => {
    const none: RunCompletion = {
      outcome: "no_answers",
      errored: 36,
      missing: 0,
      affected: [affected({ modelId: "dead", answered: 0, errored: 36, kinds: { connection: 36 } })],
    };
    assert.deepEqual(noAnswerLines(none), [
      "NO ANSWERS: dead / baseline answered none of its 36 items; its row below is not a result",
    ]);
    assert.equal(completionLines(none, "r", "x").length, 3);
  });
});

describe("the command line", () => {
  it("has no default command: run options without `run` are a usage error, not an evaluation", async () => {
    const program = buildProgram();
    let errors = "";
    program.configureOutput({
      writeErr: (text) => (errors += text),
      outputError: (text, write) => write(text),
    });
    await assert.rejects(program.parseAsync(["node", "mmsafe", "--limit", "5"]), {
      code: "commander.unknownOption",
    });
    assert.equal(errors, "error: unknown option '--limit'\nRun 'npm run mmsafe -- --help' for usage.\n");
  });

  it("documents --json on run and compare in their help", () => {
    for (const name of ["run", "compare"]) {
      const command = buildProgram().commands.find((c) => c.name() === name);
      assert.ok(command, name);
      let help = "";
      command.configureOutput({ writeOut: (text) => (help += text) });
      command.outputHelp();
      assert.match(help, /--json\s+print the (result|comparison) as one JSON document on stdout/, name);
    }
  });

  it("ends each command's usage errors with the way to its own help, in the form every hint uses", () => {
    const program = buildProgram();
    const fetch = program.commands
      .find((c) => c.name() === "dataset")
      ?.commands.find((c) => c.name() === "fetch");
    assert.ok(fetch);
    assert.equal(helpHint(program), "Run 'npm run mmsafe -- --help' for usage.");
    assert.equal(helpHint(fetch), "Run 'npm run mmsafe -- dataset fetch --help' for usage.");
  });
});

describe("exit codes", () => {
  it("has its own code for a run that finished with errors, and 130 for an interrupt; the help lists them", () => {
    assert.deepEqual(EXIT, { ok: 0, runFailed: 1, badInput: 2, incomplete: 3, interrupted: 130 });
    const run = buildProgram().commands.find((c) => c.name() === "run");
    assert.ok(run);
    let help = "";
    run.configureOutput({ writeOut: (text) => (help += text) });
    run.outputHelp();
    for (const code of ["0 ", "1 ", "2 ", "3 ", "130 "]) assert.match(help, new RegExp(`^  ${code}`, "m"));
    assert.match(help, /3 +the run finished, but some verdicts are errors or missing/);
  });
});

describe("readableCause", () => {
  it("finds the Lambda error's message inside the workflow's wrapped cause, and keeps other text", () => {
    const inner = JSON.stringify({
      errorType: "ModelUnavailable",
      errorMessage: 'a model cannot be asked:\n  model "m1": …',
    });
    const wrapped = JSON.stringify({ Error: "ModelUnavailable", Cause: inner });
    assert.equal(readableCause(wrapped), 'a model cannot be asked:\n  model "m1": …');
    assert.equal(readableCause(inner), 'a model cannot be asked:\n  model "m1": …');
    assert.equal(readableCause("14 of 16 child executions failed"), "14 of 16 child executions failed");
    assert.equal(
      readableCause(JSON.stringify({ Error: "States.Timeout" })),
      JSON.stringify({ Error: "States.Timeout" }),
    );
  });
});
