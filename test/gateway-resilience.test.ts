/**
 * Faults and lifecycle: NATS dying and coming back under a running gateway,
 * a gateway that starts before NATS, SIGTERM drain (DESIGN.md "Operations"),
 * and token expiry on a live socket.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { connect as natsConnect } from "nats";
import { startNats, subscriptionCount } from "./helpers/nats.js";
import { GATEWAY_MAIN, httpGet, missingBuild, startGateway, uniqueName, waitFor, withTimeout } from "./helpers/procs.js";
import { scrape } from "./helpers/metrics.js";
import { TEST_SECRET, hsToken, nowSeconds } from "./helpers/tokens.js";
import { connect, expectRejected, type Client } from "./helpers/ws.js";
import { TestStack } from "./helpers/stack.js";

const skip = missingBuild(GATEWAY_MAIN);

describe("gateway resilience", { skip }, () => {
  const stack = new TestStack();
  const { natsServers: servers, services: gateways, clients } = stack;
  after(() => stack.close());

  test("NATS killed and restarted on the same port: readyz 503 then 200, delivery resumes on the same process and socket", async (t) => {
    const nats = await stack.controllableNats(t);
    if (!nats) return;
    const name = uniqueName("herald-gw-resilience");
    const gw = await stack.gateway(nats, { NATS_NAME: name });
    const pid = gw.pid;

    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "survivor", channels: ["alerts"] }) });
    clients.push(c);
    assert.equal((await c.request({ type: "subscribe", channel: "alerts", id: 1 })).type, "subscribed");
    const hasInterest = () =>
      waitFor(async () => ((await subscriptionCount(nats.monitorUrl, name, "herald.ch.alerts")) ?? 0) >= 1, {
        timeoutMs: 20_000,
        intervalMs: 100,
        message: "gateway subscribed to herald.ch.alerts",
      });
    await hasInterest();

    const publishOnce = async (data: unknown) => {
      const nc = await natsConnect({ servers: nats.url, name: "resilience-publisher" });
      try {
        nc.publish("herald.ch.alerts", new TextEncoder().encode(JSON.stringify(data)));
        await nc.flush();
      } finally {
        await nc.close();
      }
    };
    await publishOnce({ phase: "before" });
    assert.deepEqual((await c.next((f) => f.type === "message"))["data"], { phase: "before" });

    await nats.kill();
    await waitFor(async () => (await httpGet(`${gw.url}/readyz`)).status === 503, {
      timeoutMs: 10_000,
      intervalMs: 100,
      message: "/readyz = 503 while NATS is down",
    });
    assert.equal((await httpGet(`${gw.url}/healthz`)).status, 200, "/healthz stays 200: the process is alive");
    assert.equal((await scrape(gw.url)).get("herald_broker_connected"), 0);
    assert.ok(c.isOpen, "client sockets survive a broker outage");

    await nats.restart();
    await waitFor(async () => (await httpGet(`${gw.url}/readyz`)).status === 200, {
      timeoutMs: 20_000,
      intervalMs: 100,
      message: "/readyz = 200 after NATS came back",
    });
    assert.equal((await scrape(gw.url)).get("herald_broker_connected"), 1);
    await hasInterest();
    await publishOnce({ phase: "after" });
    assert.deepEqual((await c.next((f) => f.type === "message", 10_000))["data"], { phase: "after" });
    assert.ok(gw.alive);
    assert.equal(gw.pid, pid, "the same gateway process (no restart)");
    assert.ok(c.isOpen, "the same client socket");
    assert.equal(c.all((f) => f.type === "welcome").length, 1, "no reconnect happened on the client side");
  });

  test("a gateway started before NATS answers subscribe with `unavailable` until the broker is up, then with positions", async (t) => {
    const nats = await stack.controllableNats(t, { jetstream: true });
    if (!nats) return;
    await nats.kill();
    const gw = await startGateway(
      { NATS_URL: nats.url, NATS_NAME: uniqueName("herald-gw-early"), JWT_SECRET: TEST_SECRET },
      { waitFor: "healthz" },
    );
    gateways.push(gw);
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "early", channels: ["early"] }) });
    clients.push(c);
    // Taken now, the subscription could not know whether history is on and
    // would run without positions (and without recovery) for its lifetime.
    const refused = await c.request({ type: "subscribe", channel: "early", id: 1 });
    assert.deepEqual([refused.type, refused["code"], refused["id"]], ["error", "unavailable", 1]);

    await nats.restart();
    await waitFor(async () => (await httpGet(`${gw.url}/readyz`)).status === 200, {
      timeoutMs: 20_000,
      intervalMs: 100,
      message: "/readyz = 200 once NATS is up",
    });
    const subscribed = await c.request({ type: "subscribe", channel: "early", id: 2 });
    assert.equal(subscribed.type, "subscribed");
    assert.equal(typeof subscribed["seq"], "number", "the subscription has positions (JetStream history)");
    assert.ok(c.isOpen);
  });

  test("a second gateway on a port already in use exits 1 instead of silently sharing it (no SO_REUSEPORT)", async () => {
    const first = await startGateway({ JWT_SECRET: TEST_SECRET });
    gateways.push(first);
    const second = await startGateway({ JWT_SECRET: TEST_SECRET, GATEWAY_PORT: String(first.port) }, { waitFor: "none" });
    gateways.push(second);
    const exit = await withTimeout(second.exited, 10_000, "second gateway exit");
    assert.equal(exit.code, 1);
    assert.ok(second.logs.some((l) => l.includes(`cannot listen on 127.0.0.1:${first.port}`) && l.includes("set GATEWAY_PORT")), second.logs.join("\n"));
    assert.equal((await httpGet(`${first.url}/healthz`)).status, 200, "the first one keeps its port");
  });

  test("SIGTERM drains: readyz 503 / listener closed, clients get 1001, exit 0 within DRAIN_SECONDS + margin", async () => {
    const nats = await startNats();
    servers.push(nats);
    const DRAIN_SECONDS = 2;
    const gw = await startGateway({
      NATS_URL: nats.url,
      NATS_NAME: uniqueName("herald-gw-drain"),
      JWT_SECRET: TEST_SECRET,
      DRAIN_SECONDS: String(DRAIN_SECONDS),
    });
    gateways.push(gw);
    const N = 8;
    const token = await hsToken({ sub: "drainee", channels: ["d"] });
    const cs: Client[] = [];
    for (let i = 0; i < N; i++) cs.push(await connect(gw.wsUrl, { token }));
    clients.push(...cs);

    const closedAt: number[] = [];
    const closes = cs.map((c) =>
      c.closed.then((info) => {
        closedAt.push(Date.now());
        return info;
      }),
    );
    const start = Date.now();
    gw.kill("SIGTERM");

    // Readiness goes away at once: 503 while the listener is still open, or the connection is refused after it closed.
    await waitFor(
      async () => {
        const s = (await httpGet(`${gw.url}/readyz`, 500)).status;
        return s === 503 || s === undefined;
      },
      { timeoutMs: 1500, intervalMs: 20, message: "/readyz no longer 200 right after SIGTERM" },
    );

    const exit = await withTimeout(gw.exited, (DRAIN_SECONDS + 5) * 1000, "gateway exit after SIGTERM");
    const took = Date.now() - start;
    assert.equal(exit.code, 0, `exit code ${exit.code} signal ${exit.signal}; log tail:\n${gw.logs.slice(-10).join("\n")}`);
    assert.ok(took <= (DRAIN_SECONDS + 5) * 1000, `exited after ${took} ms`);

    const infos = await withTimeout(Promise.all(closes), 2000, "client close events");
    for (const info of infos) assert.equal(info.code, 1001, `client close code ${info.code} (${info.reason})`);
    const spread = Math.max(...closedAt) - Math.min(...closedAt);
    console.log(`# drain: ${N} sockets closed over ${spread} ms; process exited after ${took} ms`);
    // "spread over DRAIN_SECONDS so clients do not reconnect all at once": not all in one burst.
    assert.ok(spread >= (DRAIN_SECONDS * 1000) / 4, `closes spread over ${spread} ms only (DRAIN_SECONDS=${DRAIN_SECONDS})`);
    for (const t of closedAt) assert.ok(t - start <= DRAIN_SECONDS * 1000 + 1500, `a socket closed ${t - start} ms after SIGTERM`);
  });

  test("a token that expires on a live connection is closed with 4001", async () => {
    const nats = await startNats();
    servers.push(nats);
    const gw = await startGateway({
      NATS_URL: nats.url,
      NATS_NAME: uniqueName("herald-gw-expiry"),
      JWT_SECRET: TEST_SECRET,
      JWT_CLOCK_TOLERANCE_SECONDS: "0",
    });
    gateways.push(gw);
    const exp = nowSeconds() + 2;
    const shortToken = await hsToken({ sub: "short", exp });
    const shortLived = await connect(gw.wsUrl, { token: shortToken });
    const longLived = await connect(gw.wsUrl, { token: await hsToken({ sub: "long" }) });
    clients.push(shortLived, longLived);

    const closed = await withTimeout(shortLived.closed, 8000, "close of the expiring connection");
    const at = Date.now();
    assert.equal(closed.code, 4001, `close code ${closed.code} (${closed.reason})`);
    assert.ok(at >= exp * 1000 - 1000, `closed ${exp * 1000 - at} ms before exp`);
    assert.ok(at <= exp * 1000 + 3000, `closed ${at - exp * 1000} ms after exp`);
    assert.ok(longLived.isOpen, "connections with valid tokens stay open");
    assert.deepEqual(await longLived.request({ type: "ping", id: 1 }), { type: "pong", id: 1 });
    assert.ok(((await scrape(gw.url)).get("herald_disconnects_total", { code: "4001" }) ?? 0) >= 1);

    // The gateway caches verified tokens; an expired one must still be refused.
    const again = await expectRejected(gw.wsUrl, { token: shortToken });
    assert.equal(again.status, 401);
    assert.match(again.body, /expired_token/);
  });
});
