/**
 * The CDK app entry and its deploy config: config/deploy.json is valid, `mmsafe:config` names another file,
 * and bin/app.ts builds the stack that config describes (run as `cdk synth` runs it).
 *
 * Run: node --import tsx --test tests/cdk/app.test.ts
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { z } from "zod";
import {
  DEFAULT_DEPLOY_CONFIG_PATH,
  DEPLOY_CONFIG_CONTEXT_KEY,
  loadDeployConfig,
} from "../../lib/deploy-config-file.ts";
import { CDK_CONTEXT, REPO_ROOT, schemaValidation } from "./support.ts";

const dir = mkdtempSync(path.join(tmpdir(), "mmsafe-app-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function writeJson(name: string, value: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, JSON.stringify(value));
  return file;
}

describe("deploy config file", () => {
  it("config/deploy.json is valid and deploys no schedule, a 10% error-rate alarm, no Bedrock grant", () => {
    assert.equal(DEFAULT_DEPLOY_CONFIG_PATH, path.join(REPO_ROOT, "config", "deploy.json"));
    assert.deepEqual(loadDeployConfig(undefined), {
      stackName: "Mmsafe",
      schedules: [],
      alarms: { modelErrorRatePercent: 10 },
      evaluateShard: { reservedConcurrency: null },
      bedrock: { models: [] },
    });
  });

  it("falls back to the defaults of {} when the default file does not exist", () => {
    assert.deepEqual(
      loadDeployConfig(undefined, path.join(dir, "missing.json")),
      loadDeployConfig(writeJson("empty.json", {})),
    );
  });

  it("reads the file the context names", () => {
    const file = writeJson("prod.json", {
      stackName: "MmsafeProd",
      notificationEmail: "safety-team@example.com",
      alarms: { modelErrorRatePercent: 5 },
    });
    const config = loadDeployConfig(file);
    assert.equal(config.stackName, "MmsafeProd");
    assert.equal(config.notificationEmail, "safety-team@example.com");
    assert.equal(config.alarms.modelErrorRatePercent, 5);
  });

  it("fails on a named file that does not exist, a non-path context value or invalid JSON", () => {
    assert.throws(
      () => loadDeployConfig(path.join(dir, "nope.json")),
      /cannot read deploy config .*nope\.json/,
    );
    assert.throws(() => loadDeployConfig(42), /context mmsafe:config must be a file path, got 42/);
    const broken = path.join(dir, "broken.json");
    writeFileSync(broken, "{ schedules: [] }");
    assert.throws(() => loadDeployConfig(broken), /cannot read deploy config .*broken\.json/);
  });

  it("rejects unknown fields such as a $comment, naming the file and the field", () => {
    const file = writeJson("commented.json", { $comment: "nightly runs", schedules: [] });
    assert.throws(
      () => loadDeployConfig(file),
      (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.ok(error.message.includes(file), error.message);
        assert.match(error.message, /\$comment/);
        return true;
      },
    );
  });
});

describe("bin/app.ts", () => {
  it("synthesizes the stack of the config named by mmsafe:config, with cdk-nag passing", () => {
    const config = writeJson("app.json", {
      stackName: "MmsafeAppTest",
      schedules: [{ name: "weekly", expression: "rate(7 days)" }],
    });
    const outdir = path.join(dir, "cdk.out");
    const result = spawnSync(process.execPath, ["--import", "tsx", path.join(REPO_ROOT, "bin", "app.ts")], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      env: {
        ...process.env,
        // What the CDK CLI passes to the app: the output directory and cdk.json's context (plus -c values).
        CDK_OUTDIR: outdir,
        CDK_CONTEXT_JSON: JSON.stringify({
          ...CDK_CONTEXT,
          ...schemaValidation(false),
          "aws:cdk:bundling-stacks": [],
          [DEPLOY_CONFIG_CONTEXT_KEY]: config,
        }),
      },
    });
    assert.equal(result.status, 0, `${result.stdout}\n${result.stderr}`);
    const template = z
      .object({ Description: z.string(), Resources: z.record(z.string(), z.object({ Type: z.string() })) })
      .parse(JSON.parse(readFileSync(path.join(outdir, "MmsafeAppTest.template.json"), "utf8")));
    assert.match(template.Description, /^mmsafe:/);
    const types = Object.values(template.Resources).map((resource) => resource.Type);
    assert.equal(types.filter((type) => type === "AWS::Scheduler::Schedule").length, 1);
    assert.equal(types.filter((type) => type === "AWS::StepFunctions::StateMachine").length, 1);
  });
});
