/**
 * The gateway and the publisher built in this process (`buildGateway`,
 * `buildPublisher`) on one memory broker, as `npm start` wires them: real
 * HTTP, real WebSocket clients, port 0, no child process and no NATS.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import { startGatewayInProcess, startPublisherInProcess, type InProcessGateway, type InProcessPublisher } from "./helpers/in-process.js";
import { scrape } from "./helpers/metrics.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { waitFor } from "./helpers/wait.js";
import { closeAll, connect, expectRejected, type Client } from "./helpers/ws.js";

const API_KEY = "in-process-api-key-0123456789abcdef";

describe("gateway + publisher in-process on a memory broker", () => {
  const broker = new MemoryBroker();
  let gw: InProcessGateway;
  let pub: InProcessPublisher;
  const clients: Client[] = [];

  before(async () => {
    gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0" }, { broker });
    pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY }, { broker });
  });

  after(async () => {
    await closeAll(clients);
    await pub?.close();
    await gw?.close();
    await broker.close();
  });

  async function client(claims: { sub: string; channels?: string[]; publish?: string[] }): Promise<Client> {
    const c = await connect(gw.wsUrl, { token: await hsToken(claims) });
    clients.push(c);
    return c;
  }

  test("healthz and readyz answer 200; /metrics is Prometheus text", async () => {
    for (const base of [gw.url, pub.url]) {
      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 200, base);
      assert.deepEqual(await health.json(), { status: "ok" });
      assert.equal((await fetch(`${base}/readyz`)).status, 200, base);
    }
    assert.ok(gw.gateway.ready);
    const m = await scrape(gw.url);
    assert.equal(m.get("herald_connections_open"), 0);
    assert.equal(m.get("herald_broker_connected"), 1, "the memory broker counts as connected");
  });

  test("an upgrade without a token, or with a bad one, is refused with 401 and the Bearer challenge", async () => {
    const missing = await expectRejected(gw.wsUrl);
    assert.equal(missing.status, 401);
    assert.match(String(missing.headers["www-authenticate"] ?? ""), /^Bearer realm="herald"/);
    const forged = await expectRejected(gw.wsUrl, { token: await hsToken({ sub: "x" }, { secret: "another-secret-0123456789abcdefghijkl" }) });
    assert.equal(forged.status, 401);
    assert.equal(gw.gateway.connections, 0, "refused upgrades hold no connection");
  });

  test("HTTP publish -> broker -> gateway -> subscribed WebSocket client, byte for byte", async () => {
    const reader = await client({ sub: "reader", channels: ["news.*"] });
    assert.equal(reader.welcome?.["sub"], "reader");
    assert.deepEqual(await reader.request({ type: "subscribe", channel: "news.eu", id: 1 }), { type: "subscribed", channel: "news.eu", id: 1 });
    const res = await fetch(`${pub.url}/v1/channels/news.eu/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: '{"headline":"in-process","n":[1,2,3]}',
    });
    assert.equal(res.status, 202, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    const m = await reader.next((f) => f.type === "message");
    assert.deepEqual(m, { type: "message", channel: "news.eu", data: { headline: "in-process", n: [1, 2, 3] } });
    assert.equal(typeof id, "string");
    assert.equal(gw.gateway.connections, 1);
  });

  test("a client publish reaches other subscribers; the publisher and the gateway share the broker both ways", async () => {
    const a = await client({ sub: "a", channels: ["room"], publish: ["room"] });
    const b = await client({ sub: "b", channels: ["room"] });
    await b.request({ type: "subscribe", channel: "room", id: "s" });
    assert.deepEqual(await a.request({ type: "publish", channel: "room", data: { hi: "b" }, id: 7 }), { type: "ack", id: 7 });
    assert.deepEqual((await b.next((f) => f.type === "message"))["data"], { hi: "b" });
    // A user message: the publisher's user route to every connection of that sub.
    const res = await fetch(`${pub.url}/v1/users/b/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: '{"dm":1}',
    });
    assert.equal(res.status, 202);
    const dm = await b.next((f) => f.type === "message" && f["user"] !== undefined);
    assert.deepEqual(dm["data"], { dm: 1 });
  });

  test("the gateway's registry counts what happened", async () => {
    const m = await scrape(gw.url);
    assert.ok((m.get("herald_upgrades_total", { result: "rejected", reason: "missing_token" }) ?? 0) >= 1, "the refused upgrade");
    assert.ok((m.get("herald_deliveries_total") ?? 0) >= 3, "three deliveries");
    assert.ok((m.get("herald_client_messages_total") ?? 0) >= 1, "the client publish");
    assert.equal(m.get("herald_connections_open"), gw.gateway.connections);
  });

  test("drain: readyz 503 at once, clients closed with 1001, connections 0", async () => {
    const c = await client({ sub: "leaver" });
    const draining = gw.gateway.drain();
    await waitFor(async () => (await fetch(`${gw.url}/readyz`).then((r) => r.status, () => 503)) === 503, { message: "readyz 503 while draining" });
    assert.equal((await c.closed).code, 1001);
    await draining;
    assert.equal(gw.gateway.ready, false);
    await waitFor(() => gw.gateway.connections === 0, { message: "no connection left" });
  });
});
