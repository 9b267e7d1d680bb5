/**
 * What namespaces change for clients and the publisher today (issue 11, first
 * step): a channel in no namespace is `invalid_channel` (HTTP 400 at the
 * publisher), `client_publish: false` makes client publishes `forbidden`
 * whatever the token grants, and presence options are taken on NATS and
 * embedded alike. In-process gateway and publisher on one memory broker.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import { readGatewayConfig } from "@herald/gateway";
import { readPublisherConfig } from "@herald/publisher";
import { startGatewayInProcess, startPublisherInProcess, type InProcessGateway, type InProcessPublisher } from "./helpers/in-process.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { closeAll, connect, type Client } from "./helpers/ws.js";

const API_KEY = "namespaces-api-key-0123456789abcdef";
const NAMESPACES = JSON.stringify({ chat: {}, news: { client_publish: false } });

describe("namespaces in force", () => {
  const broker = new MemoryBroker();
  let gw: InProcessGateway;
  let pub: InProcessPublisher;
  const clients: Client[] = [];

  before(async () => {
    gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0", NAMESPACES }, { broker });
    pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY, NAMESPACES }, { broker });
  });
  after(async () => {
    await closeAll(clients);
    await pub?.close();
    await gw?.close();
    await broker.close();
  });

  async function client(): Promise<Client> {
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "u", channels: [">"], publish: [">"] }) });
    clients.push(c);
    return c;
  }

  test('without a "" entry, a channel in no namespace is invalid_channel for subscribe and publish', async () => {
    const c = await client();
    const sub = await c.request({ type: "subscribe", channel: "other.x", id: 1 });
    assert.equal(sub.type, "error");
    assert.equal(sub["code"], "invalid_channel");
    assert.match(String(sub["message"]), /no namespace: the server has no "other" and no default/);
    const pubFrame = await c.request({ type: "publish", channel: "other", data: 1, id: 2 });
    assert.equal(pubFrame["code"], "invalid_channel");
    assert.deepEqual(await c.request({ type: "subscribe", channel: "chat.1", id: 3 }), { type: "subscribed", channel: "chat.1", id: 3 });
  });

  test("client_publish: false refuses client publishes even when the token grants them; the publisher still publishes", async () => {
    const reader = await client();
    await reader.request({ type: "subscribe", channel: "news.eu", id: 1 });
    const refused = await reader.request({ type: "publish", channel: "news.eu", data: { x: 1 }, id: 2 });
    assert.equal(refused.type, "error");
    assert.equal(refused["code"], "forbidden");
    assert.match(String(refused["message"]), /namespace "news" does not take publishes from clients/);
    assert.deepEqual(await reader.request({ type: "publish", channel: "chat.1", data: { x: 2 }, id: 3 }), { type: "ack", id: 3 });
    const res = await fetch(`${pub.url}/v1/channels/news.eu/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: '{"from":"server"}',
    });
    assert.equal(res.status, 202, await res.clone().text());
    assert.deepEqual(await reader.next((f) => f.type === "message"), { type: "message", channel: "news.eu", data: { from: "server" } });
  });

  test("the publisher answers 400 invalid_channel for a channel in no namespace", async () => {
    const res = await fetch(`${pub.url}/v1/channels/other.x/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { error: { code: string; message: string } } | { code: string; message: string };
    assert.match(JSON.stringify(body), /invalid_channel/);
    assert.match(JSON.stringify(body), /no namespace/);
  });

  test("presence options are taken by both services, on NATS and embedded", () => {
    for (const readConfig of [readGatewayConfig, readPublisherConfig]) {
      for (const nats of [{}, { NATS_URL: "nats://127.0.0.1:4222" }]) {
        const env = { JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY, NAMESPACES: JSON.stringify({ chat: { presence: true, join_leave: true } }), ...nats };
        const chat = readConfig(env).namespaces.of("chat.1");
        assert.deepEqual([chat?.presence, chat?.joinLeave], [true, true]);
      }
    }
  });
});
