/**
 * `npm run watch` (scripts/watch.mjs) against a real gateway and NATS
 * (issue 8): a refused upgrade prints the gateway's reason, an error answer to
 * the subscribe ends the watcher with a non-zero exit, and the token never
 * appears in what it prints.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { runScript, type ScriptProcess } from "./helpers/scripts.js";
import { hsToken } from "./helpers/tokens.js";
import { withTimeout } from "./helpers/wait.js";
import { TestStack } from "./helpers/stack.js";

describe("npm run watch", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  let gateway: ServiceProcess;

  before(async () => {
    gateway = await stack.gateway(await stack.nats());
  });
  after(() => stack.close());

  function watch(channel: string, token: string): ScriptProcess {
    const w = runScript("watch.mjs", [channel, "--url", gateway.wsUrl, "--token", token], {});
    stack.defer(() => w.stop());
    return w;
  }

  test("a refused upgrade prints the status with the gateway's code and message, never the token; exit 1", async () => {
    const token = await hsToken({ sub: "watcher", channels: ["news"] }, { secret: "another-secret-".repeat(4) });
    const w = watch("news", token);
    const exit = await withTimeout(w.exited, 10_000, "watch exit");
    assert.equal(exit.code, 1, w.output);
    assert.match(w.stderr, /^refused: HTTP 401 invalid_token: \S/m);
    assert.ok(!w.output.includes(token), "the token is never printed");
  });

  test("an expired token names expired_token", async () => {
    const token = await hsToken({ sub: "watcher", channels: ["news"], exp: Math.floor(Date.now() / 1000) - 3600 });
    const w = watch("news", token);
    assert.equal((await withTimeout(w.exited, 10_000, "watch exit")).code, 1, w.output);
    assert.match(w.stderr, /^refused: HTTP 401 expired_token: /m);
  });

  test("subscribe answered forbidden: prints the reason and exits 1 instead of waiting forever", async () => {
    const token = await hsToken({ sub: "watcher", channels: ["other"] });
    const w = watch("news", token);
    const exit = await withTimeout(w.exited, 10_000, "watch exit after a forbidden subscribe");
    assert.equal(exit.code, 1, w.output);
    assert.match(w.stderr, /^cannot watch news: forbidden: token does not allow subscribing to news/m);
    assert.ok(!w.output.includes(token));
  });

  test("subscribe answered invalid_channel: prints it and exits 1", async () => {
    const token = await hsToken({ sub: "watcher", channels: [">"] });
    const w = watch("bad..channel", token);
    assert.equal((await withTimeout(w.exited, 10_000, "watch exit after invalid_channel")).code, 1, w.output);
    assert.match(w.stderr, /^cannot watch bad\.\.channel: invalid_channel: /m);
  });

  test("an allowed channel keeps watching and prints the subscribed frame", async () => {
    const token = await hsToken({ sub: "watcher", channels: ["news"] });
    const w = watch("news", token);
    await w.waitForOutput(/"type":"subscribed","channel":"news"/);
    assert.equal(w.alive, true);
    await w.stop();
  });
});
