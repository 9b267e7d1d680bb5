/**
 * @herald/client over SSE (GET /sse + POST /sse/commands) against real
 * gateway processes: with `transports: ["sse"]` round trips, recovery with
 * history after the gateway was killed, token refresh and a 1001 drain; and
 * the fallback: behind a loopback proxy that refuses WebSocket upgrades the
 * client ends up on SSE and keeps to it on reconnect, while with the
 * WebSocket let through it stays on the WebSocket; the same in headless
 * Chromium (fetch streaming, CORS preflights from a page on another origin).
 * Parser, batching and choice apart from the gateway: client-sdk-sse-unit.test.ts.
 *
 * Every wait is on an event or a bounded poll; every process is stopped in `after`.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, request, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import type { HeraldError, StateChange } from "@herald/client";
import { clientGatewayHarness, countingWebSocket, inbox, nextEvent } from "./helpers/client-gateway.js";
import { scrape } from "./helpers/metrics.js";
import { natsControlSkipReason, startNats } from "./helpers/nats.js";
import { freePort } from "./helpers/ports.js";
import { GATEWAY_MAIN, PUBLISHER_MAIN, REPO_ROOT, missingBuild, startPublisher, uniqueName, waitFor, type Env, type ServiceProcess } from "./helpers/procs.js";
import { browserMissing, chromiumPath, playwright, type Playwright } from "./helpers/chromium.js";
import { ScriptedSocket } from "./helpers/scripted-socket.js";
import { hsToken, nowSeconds } from "./helpers/tokens.js";

const skip = missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN);
const SSE_ONLY = { transports: ["sse" as const] };

/**
 * A reverse proxy on loopback that does not pass WebSocket upgrades (403, as
 * some corporate proxies do) and forwards every other request to the
 * gateway, streaming responses as they come.
 */
async function upgradeRefusingProxy(backendPort: number) {
  const sockets = new Set<Socket>();
  let upgradesRefused = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const upstream = request(
      { host: "127.0.0.1", port: backendPort, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        res.flushHeaders();
        up.pipe(res);
      },
    );
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on("upgrade", (_req, socket: Socket) => {
    upgradesRefused++;
    socket.end("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nForbidden");
  });
  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    get upgradesRefused() {
      return upgradesRefused;
    },
    /** A network drop: every client connection through the proxy is cut. */
    cutAll: () => {
      for (const s of sockets) s.destroy();
    },
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

describe("@herald/client over SSE against a real gateway", { skip }, () => {
  const { client, gateway, allChannels, publishers, natsServers } = clientGatewayHarness();
  const proxies: Array<{ close(): Promise<void> }> = [];
  after(() => Promise.all(proxies.map((p) => p.close())));

  test('transports: ["sse"]: connects, subscribes, publishes (acked), receives; the transport is "sse"', async () => {
    const gw = await gateway();
    const sub = uniqueName("sse");
    const a = client(gw.wsUrl, await hsToken({ sub, channels: ["room.>"], publish: ["room.>"] }), SSE_ONLY);
    const states: StateChange[] = [];
    a.on("state", (s) => states.push(s));
    const welcome = nextEvent(a, "welcome");
    await a.connect();
    assert.equal((await welcome).transport, "sse");
    assert.equal(a.transport, "sse");
    assert.equal(a.session?.sub, sub);
    assert.deepEqual(states.map((s) => [s.state, s.transport]), [["connecting", undefined], ["connected", "sse"]]);

    const b = client(gw.wsUrl, await allChannels()); // on the WebSocket
    await b.connect();
    assert.equal(b.transport, "websocket");
    const got: unknown[] = [];
    const s = await a.subscribe("room.1", { onMessage: (m) => got.push(m.data) });
    assert.equal(s.active, true);
    await b.publish("room.1", { n: 1 });
    await a.publish("room.1", { n: 2 });
    await waitFor(() => got.length >= 2, { message: "two messages over SSE" });
    assert.deepEqual((got as Array<{ n: number }>).map((m) => m.n).sort(), [1, 2]);
    assert.ok((await a.ping()) >= 0);
    // Many requests at once: batched into POSTs one at a time, answered in order.
    await Promise.all(Array.from({ length: 30 }, (_, n) => a.publish("room.1", { n: 100 + n })));
    await waitFor(() => got.length >= 32, { message: "30 more" });
    assert.deepEqual(
      (got as Array<{ n: number }>).slice(2).map((m) => m.n),
      Array.from({ length: 30 }, (_, n) => 100 + n),
      "in order",
    );
    await s.unsubscribe();
    assert.equal(a.isActive("room.1"), false);
    const metrics = await scrape(gw.url);
    assert.equal(metrics.get("herald_sse_connections"), 1);
    a.close();
    assert.equal(a.state, "closed");
    await waitFor(async () => (await scrape(gw.url)).get("herald_sse_connections") === 0, { message: "stream closed by close()" });
  });

  test("SSE: a refused token (HTTP 401 on GET /sse) with a static token is terminal after one attempt", async () => {
    const gw = await gateway();
    const expired = await hsToken({ sub: uniqueName("old"), channels: [">"], exp: nowSeconds() - 60 });
    const a = client(gw.wsUrl, expired, SSE_ONLY);
    await assert.rejects(a.connect(), (e: unknown) => (e as HeraldError).terminal === true && (e as HeraldError).status === 401);
    assert.equal(a.state, "closed");
  });

  test("SSE: recovery with history after the gateway was killed: missed messages replayed in order (since/epoch)", async (t) => {
    const nats = await startNats({ jetstream: true });
    natsServers.push(nats);
    const control = natsControlSkipReason(nats);
    if (control) return t.skip(control);
    const port = await freePort();
    const env: Env = { NATS_URL: nats.url, GATEWAY_PORT: String(port), NATS_NAME: uniqueName("gw-sse-recovery") };
    let gw = await gateway(env);
    const apiKey = "k".repeat(32);
    const pub = await startPublisher({ NATS_URL: nats.url, PUBLISHER_API_KEY: apiKey, NATS_NAME: uniqueName("pub-sse-recovery") });
    publishers.push(pub);
    const channel = uniqueName("hist");
    const publish = async (data: unknown) => {
      const res = await fetch(`${pub.url}/v1/channels/${channel}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(data),
      });
      assert.equal(res.status, 202, await res.text());
    };

    const a = client(gw.wsUrl, await allChannels(), SSE_ONLY);
    await a.connect();
    const first = nextEvent(a, "subscribed", (s) => s.channel === channel);
    const sub = await a.subscribe(channel);
    if ((await first).seq === undefined) return t.skip("the gateway does not advertise recovery (no seq in the subscribed reply)");
    const box = inbox(a, channel);
    await publish({ n: 1 });
    await box.waitFor(1);
    const seenBefore = sub.lastSeq;

    gw.kill("SIGKILL");
    await gw.exited;
    await nextEvent(a, "state", (s) => s.state === "reconnecting");
    await publish({ n: 2 });
    await publish({ n: 3 });
    const recovered = nextEvent(a, "recovered", (r) => r.channel === channel);
    gw = await gateway(env);
    const r = await recovered;
    assert.equal(r.since, seenBefore);
    assert.equal(r.recovered, true);
    await box.waitFor(3);
    await publish({ n: 4 });
    await box.waitFor(4);
    assert.deepEqual(box.messages.map((m) => (m.data as { n: number }).n), [1, 2, 3, 4], "in order, nothing lost, no duplicates");
    assert.equal(a.transport, "sse");
  });

  test("SSE: token provider refreshes before exp (make before break) without a reconnect; no stream runs into 4001", async () => {
    const gw = await gateway();
    const channel = uniqueName("refresh");
    const sub = uniqueName("short-lived");
    const provider = () => hsToken({ sub, channels: [">"], publish: [">"], exp: nowSeconds() + 3 });
    const a = client(gw.wsUrl, provider, SSE_ONLY);
    const states: StateChange[] = [];
    a.on("state", (s) => states.push(s));
    const errors: HeraldError[] = [];
    a.on("error", (e) => errors.push(e));
    await a.connect();
    const box = inbox(a, channel);
    await a.subscribe(channel);
    const b = client(gw.wsUrl, await allChannels());
    await b.connect();

    let tokens = 0;
    a.on("token", () => tokens++);
    await waitFor(() => tokens >= 2, { timeoutMs: 15_000, message: "two token refreshes" });
    await b.publish(channel, "after two refreshes");
    await waitFor(() => box.messages.some((m) => m.data === "after two refreshes"), { message: "message after refreshes" });
    await a.publish(channel, "from a after refreshes"); // commands with the new connection's token
    assert.deepEqual(states.map((s) => s.state), ["connecting", "connected"], `never reconnected: ${JSON.stringify(states.map((s) => [s.state, s.error?.code]))}`);
    assert.deepEqual(errors, []);
    assert.equal(a.transport, "sse");
    await waitFor(async () => (await scrape(gw.url)).get("herald_sse_connections") === 1, { message: "old streams closed" });
    assert.equal((await scrape(gw.url)).get("herald_disconnects_total", { code: "4001" }) ?? 0, 0, "no stream ran into 4001");
  });

  test("SSE: on 4001 (the refresh did not come in time) the provider is called and the client reconnects and resubscribes", async () => {
    const gw = await gateway();
    const channel = uniqueName("expired");
    const sub = uniqueName("expiring");
    let calls = 0;
    let releaseRefresh: () => void = () => {};
    const refreshGate = new Promise<void>((r) => (releaseRefresh = r));
    const provider = async () => {
      calls++;
      if (calls === 1) return hsToken({ sub, channels: [">"], publish: [">"], exp: nowSeconds() + 2 });
      // The scheduled refresh hangs until the gateway has ended the stream with 4001.
      if (calls === 2) await refreshGate;
      return hsToken({ sub, channels: [">"], publish: [">"], exp: nowSeconds() + 3600 });
    };
    const a = client(gw.wsUrl, provider, SSE_ONLY);
    await a.connect();
    const box = inbox(a, channel);
    await a.subscribe(channel);
    const lost = await nextEvent(a, "state", (s) => s.state === "reconnecting", 10_000);
    assert.equal(lost.error?.closeCode, 4001);
    assert.equal(lost.error?.code, "token_expired");
    const resub = nextEvent(a, "subscribed", (s) => s.channel === channel && s.resubscribed);
    releaseRefresh();
    await resub;
    assert.ok(calls >= 3, `provider called again after 4001 (${calls} calls)`);
    await a.publish(channel, "after 4001");
    await box.waitFor(1);
  });

  test("SSE: a drain (1001) reconnects after the drain delay and resubscribes", async () => {
    const port = await freePort();
    let gw = await gateway({ GATEWAY_PORT: String(port) });
    const channel = uniqueName("drain");
    const a = client(gw.wsUrl, await allChannels(), SSE_ONLY);
    await a.connect();
    const box = inbox(a, channel);
    await a.subscribe(channel);
    const drained = nextEvent(a, "state", (s) => s.state === "reconnecting" && s.error?.closeCode === 1001);
    const stopped = gw.stop();
    const d = await drained;
    assert.ok((d.retryInMs ?? Infinity) <= 300, `drain delay ${d.retryInMs} <= drainReconnectMaxMs`);
    await stopped;
    const resub = nextEvent(a, "subscribed", (s) => s.channel === channel && s.resubscribed, 20_000);
    gw = await gateway({ GATEWAY_PORT: String(port) });
    await resub;
    const b = client(gw.wsUrl, await allChannels());
    await b.connect();
    await b.publish(channel, "after drain");
    await box.waitFor(1);
    assert.equal(a.transport, "sse");
  });

  test("fallback: behind a proxy that refuses WebSocket upgrades the client ends up on SSE at once, and keeps to it on reconnect", async () => {
    const gw = await gateway();
    const proxy = await upgradeRefusingProxy(gw.port);
    proxies.push(proxy);
    const counting = countingWebSocket();
    const channel = uniqueName("fallback");
    const a = client(proxy.wsUrl, await allChannels(), { WebSocket: counting.WS });
    const states: StateChange[] = [];
    a.on("state", (s) => states.push(s));
    await a.connect();
    assert.equal(a.transport, "sse");
    assert.equal(counting.attempts(), 1);
    assert.equal(proxy.upgradesRefused, 1);
    // No `reconnecting` in between: SSE was tried at once, without backoff.
    assert.deepEqual(states.map((s) => s.state), ["connecting", "connected"]);
    const box = inbox(a, channel);
    await a.subscribe(channel);
    await a.publish(channel, "through the proxy");
    await box.waitFor(1);

    // A network drop: the reconnect goes straight to SSE, no WebSocket attempt.
    const back = nextEvent(a, "subscribed", (s) => s.channel === channel && s.resubscribed, 20_000);
    proxy.cutAll();
    await back;
    assert.equal(a.transport, "sse");
    assert.equal(counting.attempts(), 1, "the remembered transport is tried first");
    await a.publish(channel, "after the drop");
    await box.waitFor(2);
  });

  test("fallback: a WebSocket that never opens is given up after connectTimeoutMs and SSE is tried at once", async () => {
    const gw = await gateway();
    // A socket that never answers: what a network that swallows upgrades looks like.
    const a = client(gw.wsUrl, await allChannels(), { WebSocket: ScriptedSocket, connectTimeoutMs: 300 });
    const states: StateChange[] = [];
    a.on("state", (s) => states.push(s));
    await a.connect();
    assert.equal(a.transport, "sse");
    assert.deepEqual(states.map((s) => s.state), ["connecting", "connected"]);
    await a.subscribe(uniqueName("after-timeout"));
  });

  test("with the WebSocket let through (default transports) the client uses the WebSocket", async () => {
    const gw = await gateway();
    const a = client(gw.wsUrl, await allChannels());
    const welcome = nextEvent(a, "welcome");
    await a.connect();
    assert.equal((await welcome).transport, "websocket");
    assert.equal(a.transport, "websocket");
    assert.equal((await scrape(gw.url)).get("herald_sse_connections") ?? 0, 0);
  });
});

const SDK_DIST = path.join(REPO_ROOT, "packages/client/dist");

/** Serves a blank page and the built SDK (`/sdk/*.js`) on its own origin. */
async function sdkPageServer() {
  const server = createServer((req, res) => {
    const name = /^\/sdk\/([\w.-]+\.js)$/.exec(req.url ?? "")?.[1];
    if (name) {
      try {
        return void res.writeHead(200, { "content-type": "text/javascript" }).end(readFileSync(path.join(SDK_DIST, name)));
      } catch {
        return void res.writeHead(404).end();
      }
    }
    res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>sdk</title>");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    origin: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

type Context = Awaited<ReturnType<Playwright["chromium"]["launchPersistentContext"]>>;

describe("@herald/client in headless Chromium: WebSocket when it gets through, SSE otherwise", { skip: skip ?? missingBuild(path.join(SDK_DIST, "index.js")) ?? browserMissing }, () => {
  const { gateway, allChannels } = clientGatewayHarness();
  let gw: ServiceProcess;
  let page: Awaited<ReturnType<typeof sdkPageServer>>;
  let proxy: Awaited<ReturnType<typeof upgradeRefusingProxy>>;
  let browser: Context | undefined;
  let profileDir: string | undefined;

  before(async () => {
    page = await sdkPageServer();
    // The page is on another origin than the gateway: SSE needs the CORS preflights (Authorization header).
    gw = await gateway({ ALLOWED_ORIGINS: page.origin });
    proxy = await upgradeRefusingProxy(gw.port);
    profileDir = mkdtempSync(path.join(tmpdir(), "herald-sdk-sse-chromium-"));
    browser = await playwright!.chromium.launchPersistentContext(profileDir, {
      executablePath: chromiumPath,
      headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
      timeout: 60_000,
    });
  });
  after(async () => {
    await browser?.close().catch(() => undefined);
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    await proxy?.close();
    await page?.close();
  });

  /** In a fresh page: connect, subscribe, publish and receive it back; the transport used and any page errors. */
  async function roundTrip(url: string, transports?: string[]): Promise<{ transport: string; data: unknown; states: string[] }> {
    const tab = await browser!.newPage();
    const errors: string[] = [];
    tab.on("pageerror", (e) => errors.push(e.message));
    try {
      await tab.goto(page.origin);
      const args = { url, token: await allChannels(), transports, channel: uniqueName("browser") };
      // A string, not a function: the test's TypeScript knows neither the page's module paths nor the DOM.
      const result = (await tab.evaluate(`(async (a) => {
        const { HeraldClient } = await import("/sdk/index.js");
        const c = new HeraldClient({ url: a.url, token: a.token, ...(a.transports ? { transports: a.transports } : {}), backoff: { baseMs: 50, maxMs: 400 }, connectTimeoutMs: 5000 });
        const states = [];
        c.on("state", (s) => states.push(s.state));
        await c.connect();
        let arrived;
        const got = new Promise((resolve) => (arrived = resolve));
        await c.subscribe(a.channel, { onMessage: (m) => arrived(m.data) });
        await c.publish(a.channel, { from: "page" });
        const data = await Promise.race([got, new Promise((r) => setTimeout(() => r("timeout"), 10000))]);
        const transport = c.transport;
        c.close();
        return { transport, data, states };
      })(${JSON.stringify(args)})`)) as { transport: string; data: unknown; states: string[] };
      assert.deepEqual(errors, []);
      return result;
    } finally {
      await tab.close();
    }
  }

  test("a direct gateway: the WebSocket", async () => {
    const r = await roundTrip(gw.wsUrl);
    assert.deepEqual(r, { transport: "websocket", data: { from: "page" }, states: ["connecting", "connected", "closed"] });
  });

  test("behind a proxy refusing upgrades: SSE, at once (no reconnecting state)", async () => {
    const refusedBefore = proxy.upgradesRefused;
    const r = await roundTrip(proxy.wsUrl);
    assert.deepEqual(r, { transport: "sse", data: { from: "page" }, states: ["connecting", "connected", "closed"] });
    assert.equal(proxy.upgradesRefused, refusedBefore + 1, "the WebSocket was tried first");
  });

  test('transports: ["sse"] in the page', async () => {
    const r = await roundTrip(gw.wsUrl, ["sse"]);
    assert.equal(r.transport, "sse");
    assert.deepEqual(r.data, { from: "page" });
  });
});
