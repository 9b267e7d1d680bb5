/**
 * `npm start` (scripts/start.mjs) for someone who has never run Herald
 * (issue 8): it stays on this machine unless told otherwise (its demo
 * /token hands out full-rights tokens), a taken port is one clear line and
 * exit 1, and with an unreachable NATS it says it is waiting for that URL
 * (credentials hidden) instead of claiming to run.
 *
 * On Linux all of 127.0.0.0/8 is loopback: a socket bound to 0.0.0.0 answers
 * on 127.0.0.2, one bound to 127.0.0.1 refuses it. That is how "not reachable
 * on another address" is checked without a second network interface.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { after, describe, test } from "node:test";
import { startNats, natsControlSkipReason } from "./helpers/nats.js";
import { freePorts } from "./helpers/ports.js";
import { GATEWAY_MAIN, missingBuild } from "./helpers/procs.js";
import { runScript, stackFrames, tcpReachable, type ScriptProcess } from "./helpers/scripts.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { waitFor } from "./helpers/wait.js";
import { closeAll, connect, type Client } from "./helpers/ws.js";

const skip = missingBuild(GATEWAY_MAIN);
const API_KEY = "newcomer-start-api-key-0123456789";
const RUNNING = /Herald is running \(all-in-one[^\n]*\n/;
const running: ScriptProcess[] = [];
const clients: Client[] = [];

after(async () => {
  await closeAll(clients);
  await Promise.all(running.map((p) => p.stop()));
});

async function ports(): Promise<{ gateway: number; publisher: number; demo: number }> {
  const [gateway, publisher, demo] = (await freePorts(3)) as [number, number, number];
  return { gateway, publisher, demo };
}

function start(env: Record<string, string>): ScriptProcess {
  const p = runScript("start.mjs", [], { LOG_LEVEL: "warn", JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY, ...env });
  running.push(p);
  return p;
}

function portEnv(p: { gateway: number; publisher: number; demo: number }): Record<string, string> {
  return { GATEWAY_PORT: String(p.gateway), PUBLISHER_PORT: String(p.publisher), DEMO_PORT: String(p.demo) };
}

describe("npm start: this machine only unless told otherwise", { skip }, () => {
  test("gateway, publisher and demo page listen on 127.0.0.1 only, the banner says so, and the in-process broker delivers", async () => {
    const p = await ports();
    const herald = start(portEnv(p));
    await herald.waitForOutput(RUNNING, 60_000);
    assert.match(herald.stdout, /Listening on 127\.0\.0\.1 only/);
    assert.match(herald.stdout, /set GATEWAY_HOST=0\.0\.0\.0/);
    assert.match(herald.stdout, /demo token endpoint then gives anyone full rights/);

    for (const [name, port] of Object.entries(p)) {
      assert.equal(await tcpReachable("127.0.0.1", port), true, `${name} on 127.0.0.1:${port}`);
      assert.equal(await tcpReachable("127.0.0.2", port), false, `${name} must not answer on 127.0.0.2:${port}`);
    }
    // The printed URLs are the ones that work.
    assert.match(herald.stdout, new RegExp(`ws://127\\.0\\.0\\.1:${p.gateway}/ws`));
    assert.match(herald.stdout, new RegExp(`http://127\\.0\\.0\\.1:${p.demo}/`));

    // The publisher built in-process still shares the memory broker with the gateway.
    const client = await connect(`ws://127.0.0.1:${p.gateway}/ws`, { token: await hsToken({ sub: "newcomer", channels: ["demo"] }) });
    clients.push(client);
    assert.equal((await client.request({ type: "subscribe", channel: "demo", id: 1 })).type, "subscribed");
    const res = await fetch(`http://127.0.0.1:${p.publisher}/v1/channels/demo/messages`, {
      method: "POST",
      headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify({ text: "hello" }),
    });
    assert.equal(res.status, 202, await res.text());
    const message = await client.next((f) => f.type === "message");
    assert.deepEqual(message["data"], { text: "hello" });
    await client.close();
    assert.deepEqual(await herald.stop(), { code: 0, signal: null });
  });

  test("an explicit GATEWAY_HOST=0.0.0.0 is respected, and the banner names it", async () => {
    const p = await ports();
    const herald = start({ ...portEnv(p), GATEWAY_HOST: "0.0.0.0" });
    await herald.waitForOutput(RUNNING, 60_000);
    assert.equal(await tcpReachable("127.0.0.2", p.gateway), true, "the gateway was asked to listen everywhere");
    assert.equal(await tcpReachable("127.0.0.2", p.publisher), false, "the publisher stays on 127.0.0.1");
    assert.equal(await tcpReachable("127.0.0.2", p.demo), false, "the demo page stays on 127.0.0.1");
    assert.match(herald.stdout, /Reachable from other machines: GATEWAY_HOST=0\.0\.0\.0\./);
    assert.doesNotMatch(herald.stdout, /127\.0\.0\.1 only/);
    await herald.stop();
  });
});

describe("npm start: a port in use is one line naming the variable, exit 1", { skip }, () => {
  let blocker: Server | undefined;
  after(() => blocker?.close());

  for (const variable of ["GATEWAY_PORT", "PUBLISHER_PORT", "DEMO_PORT"] as const) {
    test(`${variable} taken`, async () => {
      const p = await ports();
      const taken = { GATEWAY_PORT: p.gateway, PUBLISHER_PORT: p.publisher, DEMO_PORT: p.demo }[variable];
      blocker?.close();
      const server = createServer();
      blocker = server;
      await new Promise<void>((resolve) => server.listen(taken, "127.0.0.1", resolve));

      const herald = start(portEnv(p));
      const exit = await herald.exited;
      assert.equal(exit.code, 1, herald.output);
      assert.match(herald.stderr, new RegExp(`^herald: cannot listen on 127\\.0\\.0\\.1:${taken} for the [a-z ]+: .*set ${variable} to a free port`, "m"));
      assert.equal(herald.stderr.trim().split("\n").length, 1, `one line on stderr:\n${herald.stderr}`);
      assert.deepEqual(stackFrames(herald.output), [], "no stack trace");
      assert.doesNotMatch(herald.output, /Herald is running/);
    });
  }
});

describe("npm start: NATS unreachable", { skip }, () => {
  test("says it waits for NATS at the (redacted) URL, logs retries naming it, and runs once NATS answers", async (t) => {
    // nats.js (v2) does not send credentials from the URL, so the server runs
    // without auth; the URL still carries them to prove they are never shown.
    const password = "pw-" + Math.random().toString(36).slice(2);
    const nats = await startNats();
    t.after(() => nats.stop());
    const reason = natsControlSkipReason(nats);
    if (reason) return t.skip(reason);
    await nats.kill(); // its port is now one nobody listens on; restart() brings it back there
    const hostPort = new URL(nats.url).host;

    const herald = start({ ...portEnv(await ports()), NATS_URL: `nats://alice:${password}@${hostPort}`, LOG_LEVEL: "warn" });
    await herald.waitForOutput(new RegExp(`waiting for NATS at nats://\\*\\*\\*@${hostPort.replace(/\./g, "\\.")}`), 60_000);
    const retry = await herald.waitForOutput(/^\{.*"msg":"NATS connect failed; retrying".*$/m);
    assert.deepEqual(JSON.parse(retry[0])["servers"], [`nats://***@${hostPort}`]);
    assert.doesNotMatch(herald.output, /Herald is running/, "not running while NATS is unreachable");

    await nats.restart();
    await herald.waitForOutput(new RegExp(`Herald is running \\(all-in-one[^\\n]*NATS at nats://\\*\\*\\*@${hostPort.replace(/\./g, "\\.")}\\)`), 30_000);
    const gatewayPort = Number(herald.stdout.match(/ws:\/\/127\.0\.0\.1:(\d+)\/ws/)?.[1]);
    await waitFor(async () => (await fetch(`http://127.0.0.1:${gatewayPort}/readyz`)).status === 200, { message: "readyz 200" });
    assert.ok(!herald.output.includes(password), "the NATS password never appears in the output");
    await herald.stop();
  });
});
