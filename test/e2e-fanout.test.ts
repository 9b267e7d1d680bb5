/**
 * End-to-end fan-out across pods: two gateway processes, one publisher and one
 * NATS. Messages injected through the publisher HTTP API or straight into
 * NATS reach subscribers on every gateway; direct user messages reach every
 * socket of that user and nobody else; non-JSON payloads arrive base64.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect as natsConnect, type NatsConnection } from "nats";
import { userToken } from "../packages/core/src/subjects.js";
import { subscriptionCount, type NatsServer } from "./helpers/nats.js";
import { GATEWAY_MAIN, PUBLISHER_MAIN, missingBuild, uniqueName, waitFor, type ServiceProcess } from "./helpers/procs.js";
import { hsToken } from "./helpers/tokens.js";
import { connect, type Client, type Frame } from "./helpers/ws.js";
import { TestStack } from "./helpers/stack.js";

const skip = missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN);
const API_KEY = "test-api-key-" + Math.random().toString(36).slice(2);

describe("e2e fan-out: 2 gateways + publisher + NATS", { skip }, () => {
  let nats: NatsServer;
  let gw1: ServiceProcess;
  let gw2: ServiceProcess;
  let pub: ServiceProcess;
  let nc: NatsConnection;
  const names = { gw1: uniqueName("herald-gw1"), gw2: uniqueName("herald-gw2") };
  const stack = new TestStack();
  const { clients } = stack;

  before(async () => {
    nats = await stack.nats();
    [gw1, gw2, pub] = await Promise.all([
      stack.gateway(nats, { NATS_NAME: names.gw1 }),
      stack.gateway(nats, { NATS_NAME: names.gw2 }),
      stack.publisher(nats, { PUBLISHER_API_KEY: API_KEY, NATS_NAME: uniqueName("herald-pub") }),
    ]);
    nc = await natsConnect({ servers: nats.url, name: "e2e-raw-publisher" });
    stack.defer(() => nc.close());
  });
  after(() => stack.close());

  async function client(gw: ServiceProcess, sub: string, channels: string[] = []): Promise<Client> {
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub, channels }) });
    clients.push(c);
    assert.equal(c.welcome?.["sub"], sub);
    assert.equal(typeof c.welcome?.["connection"], "string");
    return c;
  }

  async function subscribe(c: Client, channel: string): Promise<void> {
    const id = Math.floor(Math.random() * 1e9);
    const reply = await c.request({ type: "subscribe", channel, id });
    assert.deepEqual(reply, { type: "subscribed", channel, id });
  }

  /** Waits until the gateway's NATS connection holds `subject`, so a publish cannot race the SUB. */
  async function interest(name: string, subject: string): Promise<void> {
    await waitFor(async () => ((await subscriptionCount(nats.monitorUrl, name, subject)) ?? 0) >= 1, {
      timeoutMs: 5000,
      message: `${name} subscribed to ${subject} in NATS`,
    });
  }

  async function post(path: string, body: unknown): Promise<{ status: number; json: unknown }> {
    const res = await fetch(`${pub.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: res.status, json };
  }

  const isMsg = (channel: string) => (f: Frame) => f.type === "message" && f["channel"] === channel;
  const isUserMsg = (user: string) => (f: Frame) => f.type === "message" && f["user"] === user;

  test("a message published through the publisher HTTP API reaches subscribers on both gateways", async () => {
    const a = await client(gw1, "reader-1", ["news"]);
    const b = await client(gw2, "reader-2", ["news"]);
    await subscribe(a, "news");
    await subscribe(b, "news");
    await interest(names.gw1, "herald.ch.news");
    await interest(names.gw2, "herald.ch.news");

    const res = await post("/v1/channels/news/messages", { headline: "hello", n: 1 });
    assert.equal(res.status, 202, `publisher answered ${res.status}: ${JSON.stringify(res.json)}`);
    assert.equal(typeof (res.json as { id?: unknown }).id, "string", "202 body carries an id");

    for (const c of [a, b]) {
      const m = await c.next(isMsg("news"));
      assert.deepEqual(m, { type: "message", channel: "news", data: { headline: "hello", n: 1 } });
    }
  });

  test("a message published straight into NATS reaches subscribers on both gateways", async () => {
    const a = await client(gw1, "reader-3", ["sport.*"]);
    const b = await client(gw2, "reader-4", ["sport.*"]);
    await subscribe(a, "sport.eu");
    await subscribe(b, "sport.eu");
    await interest(names.gw1, "herald.ch.sport.eu");
    await interest(names.gw2, "herald.ch.sport.eu");

    for (let i = 0; i < 5; i++) nc.publish("herald.ch.sport.eu", new TextEncoder().encode(JSON.stringify({ seq: i })));
    await nc.flush();
    for (const c of [a, b]) {
      for (let i = 0; i < 5; i++) {
        const m = await c.next(isMsg("sport.eu"));
        assert.deepEqual(m["data"], { seq: i }, "messages arrive complete and in order");
      }
    }
  });

  test("user-directed messages reach every socket of that user, on every gateway, and nobody else", async () => {
    const alice1 = await client(gw1, "alice");
    const alice2 = await client(gw2, "alice");
    const bob = await client(gw1, "bob");
    await interest(names.gw1, `herald.user.${userToken("alice")}`);
    await interest(names.gw2, `herald.user.${userToken("alice")}`);
    await interest(names.gw1, `herald.user.${userToken("bob")}`);

    const res = await post("/v1/users/alice/messages", { dm: "for alice" });
    assert.equal(res.status, 202, `publisher answered ${res.status}: ${JSON.stringify(res.json)}`);
    for (const c of [alice1, alice2]) {
      const m = await c.next(isUserMsg("alice"));
      assert.deepEqual(m, { type: "message", user: "alice", data: { dm: "for alice" } });
    }
    // Barrier: a message for bob published after alice's arrives at gw1 after it.
    const res2 = await post("/v1/users/bob/messages", { dm: "for bob" });
    assert.equal(res2.status, 202);
    const mb = await bob.next((f) => f.type === "message");
    assert.deepEqual(mb, { type: "message", user: "bob", data: { dm: "for bob" } }, "bob's first message is his own");
    assert.equal(bob.all((f) => f.type === "message" && f["user"] === "alice").length, 0, "bob never sees alice's messages");
    assert.equal(alice1.all(isUserMsg("bob")).length + alice2.all(isUserMsg("bob")).length, 0, "alice never sees bob's");
  });

  test("user ids that are not subject-safe (auth0|123, emails) are delivered through their encoded subject", async () => {
    const subs = ["auth0|123", "carol@example.com"];
    const sockets: Client[] = [];
    for (const sub of subs) sockets.push(await client(gw2, sub));
    for (const sub of subs) await interest(names.gw2, `herald.user.${userToken(sub)}`);

    const res = await post(`/v1/users/${encodeURIComponent("auth0|123")}/messages`, { via: "http" });
    assert.equal(res.status, 202);
    nc.publish(`herald.user.${userToken("carol@example.com")}`, new TextEncoder().encode('{"via":"nats"}'));
    await nc.flush();
    assert.deepEqual(await sockets[0]!.next(isUserMsg("auth0|123")), { type: "message", user: "auth0|123", data: { via: "http" } });
    assert.deepEqual(await sockets[1]!.next(isUserMsg("carol@example.com")), {
      type: "message",
      user: "carol@example.com",
      data: { via: "nats" },
    });
  });

  test("a binary (non-JSON) payload arrives base64-encoded with encoding: base64", async () => {
    const a = await client(gw1, "reader-5", ["bin"]);
    const b = await client(gw2, "reader-6", ["bin"]);
    await subscribe(a, "bin");
    await subscribe(b, "bin");
    await interest(names.gw1, "herald.ch.bin");
    await interest(names.gw2, "herald.ch.bin");

    const payload = Uint8Array.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x80, 0x7b]);
    nc.publish("herald.ch.bin", payload);
    nc.publish("herald.ch.bin", new TextEncoder().encode("plain text, not JSON"));
    await nc.flush();
    for (const c of [a, b]) {
      const m1 = await c.next(isMsg("bin"));
      assert.deepEqual(m1, { type: "message", channel: "bin", data: Buffer.from(payload).toString("base64"), encoding: "base64" });
      const m2 = await c.next(isMsg("bin"));
      assert.equal(m2["encoding"], "base64");
      assert.equal(Buffer.from(String(m2["data"]), "base64").toString("utf8"), "plain text, not JSON");
      assert.equal(c.rawFrames.length, 0, "every server frame is a JSON text frame");
    }
  });

  test("the publisher refuses requests without valid credentials and never publishes them", async () => {
    const a = await client(gw1, "reader-7", ["guarded"]);
    await subscribe(a, "guarded");
    await interest(names.gw1, "herald.ch.guarded");
    const res = await fetch(`${pub.url}/v1/channels/guarded/messages`, {
      method: "POST",
      headers: { authorization: "Bearer wrong-key", "content-type": "application/json" },
      body: JSON.stringify({ nope: true }),
      signal: AbortSignal.timeout(5000),
    });
    await res.arrayBuffer();
    assert.equal(res.status, 401);
    const ok = await post("/v1/channels/guarded/messages", { yes: true });
    assert.equal(ok.status, 202);
    const m = await a.next(isMsg("guarded"));
    assert.deepEqual(m["data"], { yes: true }, "the first message to arrive is the authorised one");
  });
});
