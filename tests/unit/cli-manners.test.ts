/**
 * How the `mmsafe` command behaves as a command line (issue 14, "CLI manners"): a bare `mmsafe` prints help,
 * usage errors are one line and the help hint, a closed pipe ends it quietly, colour only on a terminal, and
 * every hint spells a command the same way. Most cases spawn bin/mmsafe.js, as a user or a script meets it.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";
import tty from "node:tty";
import type { Command } from "commander";
import { headlineTable, MMSAFE_COMMAND, painterFor } from "../../src/cli/format.ts";
import { buildProgram } from "../../src/cli/main.ts";

/** The environment of a spawned mmsafe: no colour forced, so a pipe gets plain text whatever CI sets. */
/** The escape character that starts every terminal style code. */
const ESC = "\u001b";

function plainEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { FORCE_COLOR: _force, NO_COLOR: _no, ...env } = process.env;
  return { ...env, ...extra };
}

function mmsafe(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ["bin/mmsafe.js", ...args], {
    encoding: "utf8",
    env: plainEnv(env),
    timeout: 60_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe("a bare mmsafe", () => {
  it("prints the help on stdout and exits 0, without starting an evaluation", () => {
    const { code, stdout, stderr } = mmsafe([]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /^Usage: mmsafe \[options\] \[command\]/);
    assert.match(stdout, /^ {2}run \[options\] +Run an evaluation on this machine/m);
    assert.match(stdout, /\$ npm run mmsafe -- run {2,}# a local evaluation \(npm start runs the same\)/);
    assert.doesNotMatch(`${stdout}${stderr}`, /GENERATED SAMPLE|verdicts planned/);
  });

  it("and a bare command group (mmsafe dataset) print their help too", () => {
    const { code, stdout } = mmsafe(["dataset"]);
    assert.equal(code, 0);
    assert.match(stdout, /^Usage: mmsafe dataset \[options\] \[command\]/);
  });
});

describe("usage errors", () => {
  it("an unknown option: one line, the did-you-mean, the hint to the command's help (exit 2)", () => {
    const { code, stdout, stderr } = mmsafe(["run", "--modle", "m.json"]);
    assert.equal(code, 2);
    assert.equal(
      stderr,
      "mmsafe: error: unknown option '--modle'\n(Did you mean --models?)\nRun 'npm run mmsafe -- run --help' for usage.\n",
    );
    assert.equal(stdout, "");
  });

  it("an unknown command gets a did-you-mean and the program's help hint (exit 2)", () => {
    const { code, stderr } = mmsafe(["rnus"]);
    assert.equal(code, 2);
    assert.equal(
      stderr,
      "mmsafe: error: unknown command 'rnus'\n(Did you mean runs?)\nRun 'npm run mmsafe -- --help' for usage.\n",
    );
  });

  it("a bad option value or a missing required option: one line and the hint, never the whole help", () => {
    const bad = mmsafe(["run", "--categories", "typical,funny"]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr,
      /^mmsafe: error: option .* --categories: unknown funny \(allowed: typical, attack, oversafety\)\n/,
    );
    assert.match(bad.stderr, /\nRun 'npm run mmsafe -- run --help' for usage\.\n$/);
    const missing = mmsafe(["dataset", "upload", "dir"]);
    assert.equal(missing.code, 2);
    assert.equal(
      missing.stderr,
      "mmsafe: error: required option '--bucket <name>' not specified\nRun 'npm run mmsafe -- dataset upload --help' for usage.\n",
    );
    for (const { stderr } of [bad, missing]) {
      assert.doesNotMatch(stderr, /Options:|Usage:/, "no help dumped");
      assert.equal(stderr.split("\n").length, 3, stderr);
    }
  });
});

describe("usage errors found by a command", () => {
  it("also end with the hint to that command's help (exit 2)", () => {
    const { code, stdout, stderr } = mmsafe(["compare", "a/b/c/d", "x"]);
    assert.equal(code, 2);
    assert.equal(
      stderr,
      `mmsafe: "a/b/c/d": expected RUN, RUN/MODEL or RUN/MODEL/STRATEGY\nRun 'npm run mmsafe -- compare --help' for usage.\n`,
    );
    assert.equal(stdout, "");
    const runs = mmsafe(["runs"]);
    assert.equal(runs.code, 2);
    assert.match(
      runs.stderr,
      /^mmsafe: give --stack NAME .*\nRun 'npm run mmsafe -- runs --help' for usage\.\n$/,
    );
  });
});

describe("a closed pipe", () => {
  it("ends mmsafe quietly: no EPIPE stack trace (mmsafe --help | head -0)", async () => {
    const child = spawn(process.execPath, ["bin/mmsafe.js", "--help"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: plainEnv(),
    });
    // The reader is gone before mmsafe writes anything, as `head` is once it has read its lines.
    child.stdout.destroy();
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    assert.equal(stderr, "");
    assert.equal(code, 0);
  });
});

describe("colour", () => {
  const COLOUR_ENV = ["FORCE_COLOR", "NO_COLOR", "NODE_DISABLE_COLORS", "TERM", "CI"] as const;
  let saved: Partial<Record<(typeof COLOUR_ENV)[number], string>>;
  beforeEach(() => {
    saved = Object.fromEntries(COLOUR_ENV.map((key) => [key, process.env[key]]));
    for (const key of COLOUR_ENV) delete process.env[key];
    // A colour terminal whatever runs the tests: node:tty reads TERM (unset or "dumb" in many CI shells).
    process.env.TERM = "xterm-256color";
  });
  afterEach(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  /** A stream that is (or is not) a colour terminal, as node:tty judges one (its colour depth reads the env). */
  const terminal = (isTTY: boolean) =>
    Object.assign(new Writable({ write: (_chunk, _encoding, done) => done() }), {
      isTTY,
      getColorDepth: tty.WriteStream.prototype.getColorDepth,
      hasColors: tty.WriteStream.prototype.hasColors,
    });

  it("is on for a terminal, off under NO_COLOR and off when the stream is not a terminal", () => {
    assert.equal(painterFor(terminal(true))("red", "x"), "\u001b[31mx\u001b[39m");
    assert.equal(painterFor(terminal(true))("bold", "x"), "\u001b[1mx\u001b[22m");
    assert.equal(painterFor(terminal(false))("red", "x"), "x", "piped");
    process.env.NO_COLOR = "1";
    assert.equal(painterFor(terminal(true))("red", "x"), "x", "NO_COLOR");
  });

  it("styles the headline table's header only, after aligning it", () => {
    const [header = "", rule = ""] = headlineTable([], painterFor(terminal(true))).split("\n");
    assert.ok(header.startsWith(`${ESC}[1mmodel  strategy  Typical`), header);
    assert.ok(header.endsWith(`cached${ESC}[22m`), header);
    assert.ok(!rule.includes(ESC), rule);
  });

  it("a piped error is plain text; FORCE_COLOR turns its red on", () => {
    const piped = mmsafe(["run", "--modle"]);
    assert.ok(!piped.stderr.includes(ESC), piped.stderr);
    const forced = mmsafe(["run", "--modle"], { FORCE_COLOR: "1" });
    assert.ok(forced.stderr.startsWith(`${ESC}[31mmmsafe: error: unknown option '--modle'`), forced.stderr);
    // The hint stays plain, so it reads the same anywhere.
    assert.ok(forced.stderr.endsWith(`${ESC}[39m\nRun 'npm run mmsafe -- run --help' for usage.\n`));
  });
});

describe("hints", () => {
  /** Every command of the program, the program first. */
  const all = (command: Command): Command[] => [command, ...command.commands.flatMap(all)];

  it("spell every example in every help as `npm run mmsafe -- <command>`", () => {
    let examples = 0;
    for (const command of all(buildProgram())) {
      let help = "";
      command.configureOutput({ writeOut: (text) => (help += text) });
      command.outputHelp();
      for (const line of help.split("\n").filter((l) => /^\s+\$ /.test(l))) {
        examples++;
        // `deploy` shows the commands it runs itself after its examples: those are not mmsafe hints.
        if (/^\s+\$ npx cdk /.test(line)) continue;
        assert.ok(line.trimStart().startsWith(`$ ${MMSAFE_COMMAND} `), `${command.name()}: ${line}`);
      }
    }
    assert.ok(examples > 20, `${examples} examples`);
  });
});
