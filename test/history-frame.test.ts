/**
 * The client `history` frame (issue 11): pages of a channel's stored
 * messages after `since`, each with `seq`/`prev` and `data` encoded as in
 * message frames, the epoch, and `next` for the following page (null at the
 * end): paging returns every stored message exactly once, in order. Bad
 * requests get clear errors. In-process gateway and publisher on one
 * embedded broker with history, and one without.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import { readHistoryConfig } from "@herald/core";
import { startGatewayInProcess, startPublisherInProcess, type InProcessGateway, type InProcessPublisher } from "./helpers/in-process.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { closeAll, connect, type Client, type Frame } from "./helpers/ws.js";

const API_KEY = "history-frame-api-key-0123456789ab";

describe("client history frame", () => {
  const broker = new MemoryBroker({ history: readHistoryConfig({}) });
  let gw: InProcessGateway;
  let pub: InProcessPublisher;
  const clients: Client[] = [];
  const client = async (channels = ["log", "log.*"]) => {
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "reader", channels }) });
    clients.push(c);
    return c;
  };
  const publish = async (channel: string, body: string) => {
    const res = await fetch(`${pub.url}/v1/channels/${channel}/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body,
    });
    assert.equal(res.status, 202, await res.text());
  };

  before(async () => {
    gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0" }, { broker });
    pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY }, { broker });
    for (let i = 1; i <= 250; i++) {
      await publish("log", JSON.stringify({ i }));
      if (i % 10 === 0) await publish("log.other", JSON.stringify({ other: i })); // interleaved on another channel
    }
  });
  after(async () => {
    await closeAll(clients);
    await pub?.close();
    await gw?.close();
    await broker.close();
  });

  test("paging returns every stored message exactly once, in order, with prev chaining and the epoch", async () => {
    const c = await client();
    const seen: Frame[] = [];
    let since = 0;
    let pages = 0;
    for (;;) {
      const page = await c.request({ type: "history", channel: "log", since, limit: 100, id: `p${pages}` });
      assert.equal(page.type, "history");
      assert.equal(page["epoch"], broker.history!.epochOf("herald.ch.x"));
      const messages = page["messages"] as Frame[];
      seen.push(...messages);
      pages++;
      if (page["next"] === null) break;
      since = page["next"] as number;
      assert.equal(since, messages[messages.length - 1]!["seq"]);
    }
    assert.equal(pages, 3);
    assert.deepEqual(seen.map((m) => (m["data"] as { i: number }).i), Array.from({ length: 250 }, (_, k) => k + 1));
    for (let k = 1; k < seen.length; k++) assert.equal(seen[k]!["prev"], seen[k - 1]!["seq"], "prev is the channel's previous position");
    assert.equal(seen[0]!["prev"], 0);
  });

  test("since and limit pick the page; the default limit is 100; a page after the newest is empty with next null", async () => {
    const c = await client();
    const all = (await c.request({ type: "history", channel: "log", limit: 1000, id: 1 })) as Frame;
    const messages = all["messages"] as Frame[];
    assert.equal(messages.length, 250);
    assert.equal(all["next"], null);
    const mid = messages[199]!["seq"] as number;
    const tail = await c.request({ type: "history", channel: "log", since: mid, limit: 20, id: 2 });
    assert.deepEqual((tail["messages"] as Frame[]).map((m) => (m["data"] as { i: number }).i), Array.from({ length: 20 }, (_, k) => 201 + k));
    assert.equal(((await c.request({ type: "history", channel: "log", id: 3 }))["messages"] as Frame[]).length, 100);
    const end = await c.request({ type: "history", channel: "log", since: messages[249]!["seq"] as number, id: 4 });
    assert.deepEqual([end["messages"], end["next"]], [[], null]);
  });

  test("bad requests get clear errors", async () => {
    const c = await client(["log"]);
    const code = async (frame: Frame) => (await c.request({ ...frame, type: "history", id: 9 }))["code"];
    assert.equal(await code({ channel: "log", limit: 1001 }), "bad_request");
    assert.equal(await code({ channel: "log", limit: 0 }), "bad_request");
    assert.equal(await code({ channel: "log", since: -1 }), "bad_request");
    assert.equal(await code({ channel: "log.*" }), "invalid_channel");
    assert.equal(await code({ channel: "secret" }), "forbidden");
  });

  test("without history the request is unavailable", async () => {
    const plain = new MemoryBroker();
    const g = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0" }, { broker: plain });
    try {
      const c = await connect(g.wsUrl, { token: await hsToken({ sub: "r", channels: ["log"] }) });
      clients.push(c);
      assert.equal((await c.request({ type: "history", channel: "log", id: 1 }))["code"], "unavailable");
    } finally {
      await g.close();
      await plain.close();
    }
  });
});

describe("HeraldClient.history", () => {
  test("pages through a channel's stored messages with the SDK", async () => {
    const { HeraldClient } = await import("@herald/client");
    const broker = new MemoryBroker({ history: readHistoryConfig({}) });
    const gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0" }, { broker });
    const pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY }, { broker });
    const token = await hsToken({ sub: "sdk", channels: ["feed"] });
    const client = new HeraldClient({ url: gw.wsUrl, token, WebSocket: (await import("ws")).default as never });
    try {
      for (let i = 1; i <= 30; i++) {
        const res = await fetch(`${pub.url}/v1/channels/feed/messages`, { method: "POST", headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" }, body: JSON.stringify({ i }) });
        assert.equal(res.status, 202);
      }
      await client.connect();
      const got: unknown[] = [];
      let since: number | null = 0;
      while (since !== null) {
        const page = await client.history("feed", { since, limit: 12 });
        assert.equal(page.epoch, broker.history!.epochOf("herald.ch.x"));
        got.push(...page.messages.map((m) => (m.data as { i: number }).i));
        since = page.next;
      }
      assert.deepEqual(got, Array.from({ length: 30 }, (_, k) => k + 1));
      await assert.rejects(client.history("other"), (err: { code?: string }) => err.code === "forbidden");
    } finally {
      client.close();
      await pub.close();
      await gw.close();
      await broker.close();
    }
  });
});
