/**
 * The demo page through a proxy that refuses WebSocket upgrades (issue 13):
 * headless Chromium opens the page served by scripts/demo-server.mjs; its
 * gateway URL goes through a real HAProxy whose frontend answers every
 * `Upgrade` request with 403. The SDK falls back to SSE + POST
 * /sse/commands: the page connects, subscribes, publishes from its own box,
 * shows messages published through the publisher, and survives a restart
 * of the gateway holding its stream with every message once. The same page
 * through a frontend that lets upgrades through uses WebSocket.
 *
 * Processes: nats-server (JetStream history), two gateways, the publisher,
 * haproxy, and the demo servers in this process.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { browserMissing, chromiumPath, playwright, type Playwright } from "./helpers/chromium.js";
import { findBinary, spawnChild, tail, type Proc } from "./helpers/children.js";
import { scrape } from "./helpers/metrics.js";
import { freePort } from "./helpers/ports.js";
import { GATEWAY_MAIN, PUBLISHER_MAIN, REPO_ROOT, missingBuild, startGateway, type ServiceProcess } from "./helpers/procs.js";
import { TestStack } from "./helpers/stack.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { waitFor } from "./helpers/wait.js";
import type { NatsServer } from "./helpers/nats.js";

const SDK_BUILD = path.join(REPO_ROOT, "packages/client/dist/index.js");
const haproxyBin = findBinary("haproxy");
const skip = missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN) ?? missingBuild(SDK_BUILD) ?? browserMissing ?? (haproxyBin ? undefined : "haproxy is not installed (apt-get install -y haproxy)");

const API_KEY = "sse-fallback-api-key-0123456789abcd";
type Context = Awaited<ReturnType<Playwright["chromium"]["launchPersistentContext"]>>;
type DemoServer = { port: number; close(): Promise<void> };
type StartDemoServer = (o: { port: number; host?: string; gatewayUrl: string; token: string; channels?: string[] }) => Promise<DemoServer>;

/** Two frontends on the same gateways: one refuses every upgrade (a proxy that breaks WebSocket), one passes them. */
function haproxyConfig(denyPort: number, allowPort: number, gateways: number[]): string {
  return [
    "defaults",
    "    mode http",
    "    timeout connect 2s",
    "    timeout client 60s",
    "    timeout server 60s",
    "    timeout http-request 10s",
    "    timeout tunnel 1h",
    "frontend no_websocket",
    `    bind 127.0.0.1:${denyPort}`,
    "    http-request deny deny_status 403 if { hdr(upgrade) -m found }",
    "    default_backend gateways",
    "frontend websocket",
    `    bind 127.0.0.1:${allowPort}`,
    "    default_backend gateways",
    "backend gateways",
    "    balance roundrobin",
    // Out as soon as a gateway drains (/readyz 503) or is gone; back once it answers again.
    // HTTP/1.1: the gateway (uWebSockets) does not answer HTTP/1.0, what `option httpchk GET /readyz` sends.
    "    option httpchk",
    "    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host gateway",
    "    http-check expect status 200",
    "    default-server check inter 200ms fall 1 rise 1",
    ...gateways.map((port, i) => `    server gw${i} 127.0.0.1:${port}`),
    "",
  ].join("\n");
}

describe("demo page through a proxy that refuses WebSocket", { skip }, () => {
  const stack = new TestStack();
  let nats: NatsServer;
  const gateways: ServiceProcess[] = [];
  let publisher: ServiceProcess;
  let haproxy: Proc;
  let browser: Context | undefined;
  let work: string | undefined;
  const demos: DemoServer[] = [];
  let deniedOrigin: string;
  let allowedOrigin: string;
  let gatewayEnv: Record<string, string>;

  before(async () => {
    nats = await stack.nats({ jetstream: true });
    const [denyPort, allowPort, demoDenied, demoAllowed] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    deniedOrigin = `http://127.0.0.1:${demoDenied}`;
    allowedOrigin = `http://127.0.0.1:${demoAllowed}`;
    gatewayEnv = {
      JWT_SECRET: TEST_SECRET,
      NATS_URL: nats.url,
      ALLOWED_ORIGINS: `${deniedOrigin},${allowedOrigin}`,
      HISTORY_STREAM: "SSE_FALLBACK",
      HISTORY_MAX_PER_CHANNEL: "1000",
      DRAIN_SECONDS: "0",
    };
    for (let i = 0; i < 2; i++) gateways.push(await startGateway(gatewayEnv));
    publisher = await stack.publisher(nats, { PUBLISHER_API_KEY: API_KEY, HISTORY_STREAM: "SSE_FALLBACK", HISTORY_MAX_PER_CHANNEL: "1000" });

    work = mkdtempSync(path.join(tmpdir(), "herald-sse-fallback-"));
    const cfg = path.join(work, "haproxy.cfg");
    writeFileSync(cfg, haproxyConfig(denyPort, allowPort, gateways.map((g) => g.port)));
    haproxy = spawnChild("haproxy", haproxyBin!, ["-db", "-f", cfg], { env: process.env });
    await waitFor(async () => (await fetch(`http://127.0.0.1:${denyPort}/readyz`).catch(() => undefined))?.status === 200, {
      timeoutMs: 15_000,
      intervalMs: 100,
      message: `haproxy forwarding\n${tail(haproxy)}`,
    });

    const { startDemoServer } = (await import(path.join(REPO_ROOT, "scripts/demo-server.mjs"))) as { startDemoServer: StartDemoServer };
    const token = await hsToken({ sub: "fallback-user", channels: [">"], publish: [">"] });
    demos.push(await startDemoServer({ port: demoDenied, host: "127.0.0.1", gatewayUrl: `ws://127.0.0.1:${denyPort}/ws`, token }));
    demos.push(await startDemoServer({ port: demoAllowed, host: "127.0.0.1", gatewayUrl: `ws://127.0.0.1:${allowPort}/ws`, token }));

    browser = await playwright!.chromium.launchPersistentContext(work, {
      executablePath: chromiumPath,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
      timeout: 60_000,
    });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await Promise.all(demos.map((d) => d.close()));
    await haproxy?.stop();
    await Promise.all(gateways.map((g) => g.stop(5_000)));
    await stack.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const publish = async (n: number) => {
    const res = await fetch(`${publisher.url}/v1/channels/demo/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ n }),
    });
    assert.equal(res.status, 202, await res.text());
  };

  /** The page at `origin`, connected, with every channel message it receives recorded in `window.got`. */
  async function openPage(origin: string) {
    const page = await browser!.newPage();
    const errors: string[] = [];
    const consoleLines: string[] = [];
    page.on("pageerror", (err) => errors.push(err.message));
    page.on("console", (msg) => consoleLines.push(`${msg.type()}: ${msg.text()}`));
    await page.goto(`${origin}/`, { waitUntil: "domcontentloaded" });
    await page.waitForSelector('#state[data-state="connected"]', { timeout: 20_000 }).catch(async (err: Error) => {
      const log = await page.textContent("#log").catch(() => "");
      throw new Error(`${err.message}\npage log: ${log}\nconsole: ${consoleLines.join("\n")}\nerrors: ${errors.join("\n")}\nhaproxy: ${tail(haproxy)}`);
    });
    await page.evaluate(() => {
      const w = globalThis as unknown as { got: unknown[]; heraldClient: { on(e: string, f: (m: { channel?: string; data: unknown }) => void): void } };
      w.got = [];
      w.heraldClient.on("message", (m) => {
        if (m.channel === "demo") w.got.push(m.data);
      });
    });
    await page.waitForSelector('#channels li[data-channel="demo"][data-active="true"]', { timeout: 10_000 });
    return { page, errors };
  }

  const numbers = async (page: Awaited<ReturnType<typeof openPage>>["page"]) =>
    (await page.evaluate(() => (globalThis as unknown as { got: Array<{ n?: number }> }).got)).map((d) => d.n).filter((n): n is number => typeof n === "number");

  test("upgrades refused: the page runs on SSE, publishes from its box, survives a restart of its gateway with every message once", async () => {
    const { page, errors } = await openPage(deniedOrigin);
    assert.equal(await page.getAttribute("#state", "data-transport"), "sse");
    assert.equal(await page.evaluate(() => (globalThis as unknown as { heraldClient: { transport?: string } }).heraldClient.transport), "sse");

    // The publish box: POST /sse/commands through the proxy, the ack and the message back on the stream.
    const own = `from the page ${Date.now()}`;
    await page.fill("#publish-channel", "demo");
    await page.fill("#publish-data", JSON.stringify({ text: own }));
    await page.click("#publish-button");
    await page.waitForSelector("#publish-status >> text=/^published to demo/", { timeout: 10_000 });
    await page.waitForSelector(`#messages li[data-channel="demo"] >> text=${own}`, { timeout: 10_000 });

    // Numbered messages before, during and after a restart of the gateway holding the stream.
    const TOTAL = 60;
    let sent = 0;
    const sendSome = async (k: number) => {
      for (const end = Math.min(TOTAL, sent + k); sent < end; ) await publish(++sent);
    };
    await sendSome(20);
    const streams = await Promise.all(gateways.map(async (g) => (await scrape(g.url)).get("herald_sse_connections") ?? 0));
    const holder = streams.findIndex((n) => n > 0);
    assert.ok(holder >= 0, `a gateway holds the page's stream: ${JSON.stringify(streams)}`);
    const old = gateways[holder]!;
    const stopping = old.stop(10_000);
    await sendSome(20);
    await stopping;
    gateways[holder] = await startGateway({ ...gatewayEnv, GATEWAY_PORT: String(old.port) });
    await sendSome(20);
    await waitFor(async () => (await numbers(page)).length >= TOTAL, { timeoutMs: 30_000, intervalMs: 100, message: "every numbered message on the page" });
    const got = await numbers(page);
    assert.deepEqual(got, Array.from({ length: TOTAL }, (_, i) => i + 1), "every message once, in order, across the restart");
    assert.equal(await page.getAttribute("#state", "data-transport"), "sse", "still on SSE after the reconnect (remembered)");
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("upgrades allowed: the same page uses WebSocket", async () => {
    const { page, errors } = await openPage(allowedOrigin);
    assert.equal(await page.getAttribute("#state", "data-transport"), "websocket");
    await publish(1000);
    await waitFor(async () => (await numbers(page)).includes(1000), { timeoutMs: 10_000, intervalMs: 100, message: "a message over WebSocket" });
    assert.deepEqual(errors, []);
    await page.close();
  });
});
