/**
 * The process shell (runService, packages/core/src/service/run-service.ts)
 * in a real child process with the real memory broker
 * (test/fixtures/shell-service.ts): the drain order (every app, then the
 * broker once, then exit 0), a second signal, the hard deadline, config
 * errors (exit 2, credentials redacted) and the fatal paths (exit 1).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { SHELL_POLICY, signalExitCode } from "@herald/core";
import { runScript, type ScriptProcess } from "./helpers/scripts.js";

const FIXTURE = "../test/fixtures/shell-service.ts";
const running: ScriptProcess[] = [];
after(async () => {
  await Promise.all(running.map((p) => p.stop(2000)));
});

function fixture(env: Record<string, string>): ScriptProcess {
  const p = runScript(FIXTURE, [], { NODE_OPTIONS: "--import tsx", ...env });
  running.push(p);
  return p;
}

interface Line {
  step?: string;
  app?: string;
  msg?: string;
  level?: number;
  at?: number;
  time?: string;
  [key: string]: unknown;
}

function lines(p: ScriptProcess): Line[] {
  return p.stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Line);
}

function steps(p: ScriptProcess): string[] {
  return lines(p)
    .filter((l) => l.step !== undefined)
    .map((l) => (l.app ? `${l.step} ${l.app}` : l.step!));
}

const STARTED = /"step":"started"/;
const FATAL = 60;

describe("runService: signals and drain order", () => {
  test("SIGTERM: every app drains, then the broker once, then exit 0", async () => {
    const p = fixture({ FIXTURE_APPS: "gateway:300,publisher:100" });
    await p.waitForOutput(STARTED);
    p.proc.kill("SIGTERM");
    assert.deepEqual(await p.exited, { code: 0, signal: null }, p.output);
    assert.deepEqual(steps(p), [
      "listen gateway",
      "listen publisher",
      "started",
      "app drain gateway",
      "app drain publisher",
      "app drained publisher",
      "app drained gateway",
      "broker drain",
    ]);
    const msgs = lines(p).map((l) => l.msg);
    assert.ok(msgs.includes("shutting down") && msgs.includes("drained; bye"), p.stdout);
  });

  test("SIGINT drains the same way", async () => {
    const p = fixture({});
    await p.waitForOutput(STARTED);
    p.proc.kill("SIGINT");
    assert.deepEqual(await p.exited, { code: 0, signal: null }, p.output);
    assert.deepEqual(steps(p).slice(-3), ["app drain app", "app drained app", "broker drain"]);
  });

  for (const [first, second] of [["SIGTERM", "SIGINT"], ["SIGINT", "SIGTERM"], ["SIGTERM", "SIGTERM"]] as const) {
    test(`a second signal while draining (${first}, then ${second}) exits at once with ${signalExitCode(second)}`, async () => {
      const p = fixture({ FIXTURE_APPS: "slow:-1", DRAIN_SECONDS: "60" });
      await p.waitForOutput(STARTED);
      p.proc.kill(first);
      await p.waitForOutput(/"step":"app drain"/);
      const sent = Date.now();
      p.proc.kill(second);
      const exit = await p.exited;
      assert.deepEqual(exit, { code: signalExitCode(second), signal: null }, p.output);
      assert.ok(Date.now() - sent < 2000, "exits at once");
      assert.ok(!steps(p).includes("broker drain"), "the broker is not drained by a forced exit");
      assert.ok(lines(p).some((l) => l.msg === "second signal: exiting now"), p.stdout);
    });
  }

  test(`an app drain that never ends: exit 1 at DRAIN_SECONDS + ${SHELL_POLICY.deadlineSlackSeconds} s`, { timeout: 30_000 }, async () => {
    const p = fixture({ FIXTURE_APPS: "stuck:-1", DRAIN_SECONDS: "0.5" });
    await p.waitForOutput(STARTED);
    const sent = Date.now();
    p.proc.kill("SIGTERM");
    const exit = await p.exited;
    const took = Date.now() - sent;
    assert.deepEqual(exit, { code: 1, signal: null }, p.output);
    const deadline = (0.5 + SHELL_POLICY.deadlineSlackSeconds) * 1000;
    assert.ok(took >= deadline - 100 && took < deadline + 3000, `exited after ${took} ms, deadline ${deadline} ms`);
    assert.ok(lines(p).some((l) => l.msg === "drain did not finish in time; exiting"), p.stdout);
    assert.ok(!steps(p).includes("broker drain"), "the broker waits for the apps");
  });

  test("signal exit codes are 128 + the signal number", () => {
    assert.equal(signalExitCode("SIGINT"), 130);
    assert.equal(signalExitCode("SIGTERM"), 143);
  });
});

describe("runService: configuration errors (exit 2)", () => {
  test("a bad setting: one line naming the variable on stderr, nothing started", async () => {
    const p = fixture({ FIXTURE_PORT: "80a" });
    assert.deepEqual(await p.exited, { code: 2, signal: null });
    assert.match(p.stderr, /^config error: FIXTURE_PORT: must be an integer between 0 and 65535, got "80a"\n$/);
    assert.deepEqual(steps(p), []);
  });

  test("NATS_URL credentials never reach the error", async () => {
    const secret = "s3cr@t/pw";
    const p = fixture({ NATS_URL: `nats://127.0.0.1:4222,http://alice:${secret}@nats.example:4222` });
    assert.deepEqual(await p.exited, { code: 2, signal: null });
    assert.match(p.stderr, /^config error: NATS_URL: "http:\/\/\*\*\*@nats\.example:4222" must be a nats:\/\//);
    assert.ok(!p.output.includes("alice") && !p.output.includes("s3cr"), p.output);
  });

  test("DRAIN_SECONDS out of range", async () => {
    const p = fixture({ DRAIN_SECONDS: "3601" });
    assert.deepEqual(await p.exited, { code: 2, signal: null });
    assert.match(p.stderr, /^config error: DRAIN_SECONDS: must be a number between 0 and 3600, got "3601"/);
  });
});

describe("runService: fatal errors (exit 1)", () => {
  test("a refused start is one fatal line with its fields; the broker is closed, not drained", async () => {
    const p = fixture({ FIXTURE_FAIL: "refuse" });
    assert.deepEqual(await p.exited, { code: 1, signal: null }, p.output);
    const fatal = lines(p).find((l) => l.level === FATAL);
    assert.equal(fatal?.msg, "refused on purpose");
    assert.equal(fatal?.["why"], "fixture");
    assert.deepEqual(steps(p), [], "prepare runs before the broker exists");
  });

  test("a listen failure: fatal log, the built apps and the broker closed, nothing else listens", async () => {
    const p = fixture({ FIXTURE_FAIL: "listen", FIXTURE_APPS: "first:0,second:0" });
    assert.deepEqual(await p.exited, { code: 1, signal: null }, p.output);
    const fatal = lines(p).find((l) => l.level === FATAL);
    assert.equal(fatal?.msg, "cannot listen");
    assert.equal(fatal?.["app"], "first");
    assert.deepEqual(steps(p), ["listen first", "app close first", "app close second", "broker close"]);
  });

  for (const [fail, msg] of [["reject", "unhandled promise rejection"], ["throw", "uncaught exception"]] as const) {
    test(`${msg}: logged fatal, exit 1`, async () => {
      const p = fixture({ FIXTURE_FAIL: fail });
      assert.deepEqual(await p.exited, { code: 1, signal: null }, p.output);
      const fatal = lines(p).find((l) => l.level === FATAL);
      assert.equal(fatal?.msg, msg, p.stdout);
      assert.match(String((fatal?.["err"] as { message?: string } | undefined)?.message), /on purpose/);
    });
  }
});
