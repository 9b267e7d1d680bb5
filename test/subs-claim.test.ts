/**
 * The `subs` claim (issue 11): channels the gateway subscribes a connection
 * to at open, through the same join as a client `subscribe`. The welcome
 * lists each with its position (`seq`, `epoch`) when the channel has
 * history, and nothing after that position is lost or sent twice, even
 * for messages published while the welcome waited for the other subs; a
 * later `subscribe` with `since` resumes one like any subscription; bad
 * subs refuse the upgrade with 401 and a reason; a sub that cannot be
 * positioned closes the connection with 1011 before any welcome (the SDK's
 * side: subs-claim-sdk.test.ts). Embedded broker in this process, and
 * nats-server with JetStream.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { exportJWK } from "jose";
import { MemoryBroker } from "@herald/broker";
import { readHistoryConfig } from "@herald/core";
import { startGatewayInProcess, startPublisherInProcess, type InProcessGateway, type InProcessPublisher } from "./helpers/in-process.js";
import { scrape } from "./helpers/metrics.js";
import { GATEWAY_MAIN, PUBLISHER_MAIN, missingBuild } from "./helpers/procs.js";
import { TestStack } from "./helpers/stack.js";
import { TEST_SECRET, hsToken, rsKeys, rsToken, type Claims } from "./helpers/tokens.js";
import { waitFor } from "./helpers/wait.js";
import { closeAll, connect, expectRejected, type Client, type Frame } from "./helpers/ws.js";
import { withApiKey } from "./helpers/api-key.js";

const API_KEY = "subs-claim-test-api-key-0123456789";
const isMessageOn = (channel: string) => (f: Frame) => f.type === "message" && f["channel"] === channel;

const { publish } = withApiKey(API_KEY);

/** The frames of `channel` after the frame at index `from`, checked to chain from `start`: each `prev` is the previous `seq`, nothing twice. */
function chainOf(c: Client, channel: string, start: number, from = 0): Frame[] {
  const frames = c.frames.slice(from).filter(isMessageOn(channel));
  let last = start;
  for (const f of frames) {
    assert.equal(f["prev"], last, `${channel}: message ${String(f["seq"])} follows on from ${last} (${JSON.stringify(frames.map((m) => [m["prev"], m["seq"]]))})`);
    last = f["seq"] as number;
  }
  return frames;
}

describe("subs claim on the embedded broker", () => {
  const broker = new MemoryBroker({ history: readHistoryConfig({}) });
  let gw: InProcessGateway;
  let pub: InProcessPublisher;
  const clients: Client[] = [];
  const client = async (claims: Claims) => {
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "user-1", channels: ["news", "news.>", "chat.*"], ...claims }) });
    clients.push(c);
    return c;
  };

  before(async () => {
    gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0", MAX_CHANNELS_PER_CONNECTION: "3" }, { broker });
    pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY }, { broker });
  });
  after(async () => {
    await closeAll(clients);
    await pub?.close();
    await gw?.close();
    await broker.close();
  });

  test("the welcome lists the subs with the position a plain subscribe reports; without subs it is unchanged", async () => {
    for (let i = 1; i <= 3; i++) await publish(pub.url, "news", { i });
    const plain = await client({});
    assert.deepEqual(Object.keys(plain.welcome!), ["type", "sub", "connection"], "no subs claim: the welcome of before");
    assert.deepEqual(Object.keys((await client({ subs: [] })).welcome!), ["type", "sub", "connection"], "subs: [] lists nothing");
    const reference = await plain.request({ type: "subscribe", channel: "news", id: 1 });
    const epoch = broker.history!.epochOf("herald.ch.x");
    assert.equal(reference["epoch"], epoch);

    const c = await client({ subs: ["news", "chat.1", "news"] });
    assert.equal(c.frames[0]!.type, "welcome", "the welcome comes first");
    assert.deepEqual(c.welcome, {
      type: "welcome",
      sub: "user-1",
      connection: c.welcome!["connection"],
      subs: [
        { channel: "news", seq: reference["seq"], epoch },
        { channel: "chat.1", seq: 0, epoch },
      ],
    });
    await publish(pub.url, "news", { i: 4 });
    const m = await c.next(isMessageOn("news"));
    assert.deepEqual([m["data"], m["prev"]], [{ i: 4 }, reference["seq"]], "the first message follows on from the welcome's seq");
    // Already subscribed: a plain repeat is a plain subscribed, as for any subscription.
    assert.deepEqual(await c.request({ type: "subscribe", channel: "news", id: 2 }), { type: "subscribed", channel: "news", id: 2 });
  });

  test("subs count towards MAX_CHANNELS_PER_CONNECTION and the broker subscriptions like client subscriptions", async () => {
    const before = (await scrape(gw.url)).get("herald_broker_subscriptions") ?? 0;
    const c = await client({ sub: "limits", subs: ["chat.limit-1", "chat.limit-2"] });
    const after = (await scrape(gw.url)).get("herald_broker_subscriptions") ?? 0;
    assert.equal(after - before, 3, "its user subject and the two subs");
    assert.equal((await c.request({ type: "subscribe", channel: "chat.limit-3", id: 1 })).type, "subscribed");
    const refused = await c.request({ type: "subscribe", channel: "chat.limit-4", id: 2 });
    assert.deepEqual([refused.type, refused["code"]], ["error", "forbidden"]);
    assert.match(String(refused["message"]), /at most 3 channels per connection/);
    assert.equal((await c.request({ type: "unsubscribe", channel: "chat.limit-1", id: 3 })).type, "unsubscribed");
    assert.equal((await c.request({ type: "subscribe", channel: "chat.limit-4", id: 4 })).type, "subscribed", "a sub is left like any subscription");
  });

  test("messages published while connections open arrive after the welcome, each once, chained from the welcome's seq", async () => {
    const channels = ["chat.busy", "news.busy"];
    let stop = false;
    let published = 0;
    const publisher = (async () => {
      while (!stop) {
        await Promise.all(channels.map((ch) => publish(pub.url, ch, { n: published })));
        published++;
      }
    })();
    try {
      const opened: Client[] = [];
      for (let k = 0; k < 8; k++) opened.push(await client({ sub: `busy-${k}`, subs: [...channels, `chat.quiet-${k}`] }));
      const target = published + 5;
      await waitFor(() => published >= target, { message: "messages after the last open" });
      stop = true;
      await publisher;
      for (const c of opened) {
        assert.equal(c.frames[0]!.type, "welcome");
        const subs = c.welcome!["subs"] as Array<{ channel: string; seq: number }>;
        for (const channel of channels) {
          const start = subs.find((s) => s.channel === channel)!.seq;
          await waitFor(() => (c.frames.filter(isMessageOn(channel)).at(-1)?.["data"] as { n: number } | undefined)?.n === published - 1, {
            message: `${channel}: every message up to the last one published`,
          });
          chainOf(c, channel, start);
        }
      }
    } finally {
      stop = true;
      await publisher;
    }
  });

  test("after a reconnect, a subscribe with since on a sub recovers the missed messages once, then the live stream", async () => {
    const claims = { sub: "resumer", subs: ["news.resume"] };
    const first = await client(claims);
    const welcomeSeq = (first.welcome!["subs"] as Array<{ seq: number }>)[0]!.seq;
    await publish(pub.url, "news.resume", { n: 1 });
    const seen = await first.next(isMessageOn("news.resume"));
    assert.equal(seen["prev"], welcomeSeq);
    await first.close();
    for (let n = 2; n <= 4; n++) await publish(pub.url, "news.resume", { n });

    const again = await client(claims);
    const epoch = broker.history!.epochOf("herald.ch.x");
    const welcomed = (again.welcome!["subs"] as Array<{ channel: string; seq: number; epoch: string }>)[0]!;
    assert.equal(welcomed.epoch, epoch);
    assert.ok(welcomed.seq > (seen["seq"] as number), "the welcome reports the current position");
    const reply = await again.request({ type: "subscribe", channel: "news.resume", since: seen["seq"] as number, epoch, id: 1 });
    assert.deepEqual([reply.type, reply["seq"], reply["recovered"], reply["epoch"]], ["subscribed", seen["seq"], true, epoch]);
    await publish(pub.url, "news.resume", { n: 5 });
    const from = again.frames.indexOf(reply);
    await waitFor(() => again.frames.slice(from).filter(isMessageOn("news.resume")).length >= 4, { message: "the missed messages and the new one" });
    const after = chainOf(again, "news.resume", seen["seq"] as number, from);
    assert.deepEqual(after.map((f) => (f["data"] as { n: number }).n), [2, 3, 4, 5], "exactly the missed messages, then the live one");
  });
});

describe("subs claim without history", () => {
  test("the welcome lists the subs without positions, and their messages arrive", async () => {
    const broker = new MemoryBroker();
    const gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0" }, { broker });
    const pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY }, { broker });
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "plain", channels: ["news"], subs: ["news"] }) });
    try {
      assert.deepEqual(c.welcome!["subs"], [{ channel: "news" }]);
      await publish(pub.url, "news", { plain: true });
      assert.deepEqual(await c.next(isMessageOn("news")), { type: "message", channel: "news", data: { plain: true } });
    } finally {
      await c.close();
      await pub.close();
      await gw.close();
      await broker.close();
    }
  });
});

describe("bad subs refuse the upgrade with 401 and a reason", () => {
  let gw: InProcessGateway;
  let namespaced: InProcessGateway;
  let jwksGw: InProcessGateway;
  let jwks: Server;
  const clients: Client[] = [];

  before(async () => {
    const keys = await rsKeys();
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
    jwks = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    [gw, namespaced, jwksGw] = await Promise.all([
      startGatewayInProcess({ JWT_SECRET: TEST_SECRET, MAX_CHANNELS_PER_CONNECTION: "2" }),
      startGatewayInProcess({ JWT_SECRET: TEST_SECRET, NAMESPACES: JSON.stringify({ chat: {} }) }),
      startGatewayInProcess({ JWT_JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`, JWT_ALGORITHMS: "RS256", MAX_CHANNELS_PER_CONNECTION: "2" }),
    ]);
    rsSigned = (claims) => rsToken(keys.privateKey, claims, { kid: "k1" });
  });
  let rsSigned: (claims: Claims) => Promise<string>;
  after(async () => {
    await closeAll(clients);
    await Promise.all([gw?.close(), namespaced?.close(), jwksGw?.close()]);
    await new Promise((r) => jwks?.close(r));
  });

  async function refusal(url: string, token: string): Promise<{ status: number; code: string; reason: string; message: string; challenge: string }> {
    const r = await expectRejected(url, { token });
    const body = JSON.parse(r.body) as { error: { code: string; reason: string; message: string } };
    return { status: r.status, ...body.error, challenge: String(r.headers["www-authenticate"]) };
  }

  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["not an array", { subs: "news" }, /claim 'subs' must be an array of strings/],
    ["not strings", { subs: ["news", 7] }, /claim 'subs' must be an array of strings/],
    ["a wildcard", { subs: ["news.*"] }, /claim 'subs' has an invalid channel 'news\.\*': wildcards are not allowed/],
    ["an empty channel", { subs: [""] }, /claim 'subs' has an invalid channel '': channel must be a non-empty string/],
    ["a channel the channels claim does not cover", { subs: ["news", "secret"] }, /claim 'subs' lists 'secret', which its 'channels' claim does not allow/],
    ["more channels than a connection may hold", { subs: ["news", "news.a", "news.b"] }, /lists 3 channels; a connection holds at most 2 \(MAX_CHANNELS_PER_CONNECTION\)/],
  ];
  for (const [what, claims, message] of cases) {
    test(what, async () => {
      const token = await hsToken({ sub: "bad", channels: ["news", "news.*"], ...claims } as Claims);
      const r = await refusal(gw.wsUrl, token);
      assert.deepEqual([r.status, r.code, r.reason], [401, "invalid_token", "invalid_claim"]);
      assert.match(r.message, message);
      assert.match(r.challenge, /^Bearer realm="herald", error="invalid_token", error_description="token claim 'subs'/);
    });
  }

  test('a channel in no namespace when NAMESPACES has no "" entry', async () => {
    const r = await refusal(namespaced.wsUrl, await hsToken({ sub: "bad", channels: [">"], subs: ["chat.1", "other.x"] }));
    assert.deepEqual([r.status, r.code, r.reason], [401, "invalid_token", "invalid_claim"]);
    assert.match(r.message, /claim 'subs': channel other\.x is in no namespace: the server has no "other" and no default/);
    const ok = await connect(namespaced.wsUrl, { token: await hsToken({ sub: "good", channels: [">"], subs: ["chat.1"] }) });
    clients.push(ok);
    assert.deepEqual(ok.welcome!["subs"], [{ channel: "chat.1" }]);
  });

  test("the same refusals with keys from a JWKS (verified asynchronously); the metric counts them as invalid_token", async () => {
    const r = await refusal(jwksGw.wsUrl, await rsSigned({ sub: "bad", channels: ["news.*"], subs: ["news.a", "news.b", "news.c"] }));
    assert.deepEqual([r.status, r.reason], [401, "invalid_claim"]);
    assert.match(r.message, /a connection holds at most 2/);
    const w = await refusal(jwksGw.wsUrl, await rsSigned({ sub: "bad", channels: ["news.*"], subs: ["news.>"] }));
    assert.match(w.message, /wildcards are not allowed/);
    const ok = await connect(jwksGw.wsUrl, { token: await rsSigned({ sub: "good", channels: ["news.*"], subs: ["news.a"] }) });
    clients.push(ok);
    assert.deepEqual(ok.welcome!["subs"], [{ channel: "news.a" }]);
    assert.equal((await scrape(jwksGw.url)).get("herald_upgrades_total", { result: "rejected", reason: "invalid_token" }), 2);
  });
});

describe("subs claim on nats-server with JetStream", { skip: missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN) }, () => {
  const stack = new TestStack();
  after(() => stack.close());

  test("the welcome's positions are a plain subscribe's, and messages published right after it chain on from them", async () => {
    const nats = await stack.nats({ jetstream: true });
    const env = { HISTORY_STREAM: "SUBS_TEST" };
    const [gw, pub] = await Promise.all([stack.gateway(nats, env), stack.publisher(nats, { ...env, PUBLISHER_API_KEY: API_KEY })]);
    for (let i = 1; i <= 3; i++) await publish(pub.url, "news", { i });
    const token = await hsToken({ sub: "js", channels: ["news", "chat.*"], subs: ["news", "chat.js"] });
    const reference = await (await stack.connect(gw.wsUrl, { token: await hsToken({ sub: "ref", channels: ["news"] }) })).request({ type: "subscribe", channel: "news", id: 1 });
    const c = await stack.connect(gw.wsUrl, { token });
    assert.equal(c.frames[0]!.type, "welcome");
    assert.deepEqual(c.welcome!["subs"], [
      { channel: "news", seq: reference["seq"], epoch: reference["epoch"] },
      { channel: "chat.js", seq: 0, epoch: reference["epoch"] },
    ]);
    for (let i = 4; i <= 8; i++) await publish(pub.url, "news", { i });
    await waitFor(() => c.frames.filter(isMessageOn("news")).length >= 5, { message: "five messages after the welcome" });
    const chain = chainOf(c, "news", reference["seq"] as number);
    assert.deepEqual(chain.map((f) => (f["data"] as { i: number }).i), [4, 5, 6, 7, 8]);

    // Opening while the channel is busy: what arrives before the welcome is held and follows it, chained, once.
    let stop = false;
    let n = 0;
    const publisher = (async () => {
      while (!stop) await publish(pub.url, "chat.js", { n: n++ });
    })();
    try {
      const busy: Client[] = [];
      for (let k = 0; k < 4; k++) busy.push(await stack.connect(gw.wsUrl, { token: await hsToken({ sub: `js-${k}`, channels: ["news", "chat.*"], subs: ["chat.js", "news", `chat.q${k}`] }) }));
      const target = n + 5;
      await waitFor(() => n >= target, { message: "messages after the last open" });
      stop = true;
      await publisher;
      for (const b of busy) {
        assert.equal(b.frames[0]!.type, "welcome");
        const start = (b.welcome!["subs"] as Array<{ channel: string; seq: number }>)[0]!.seq;
        await waitFor(() => (b.frames.filter(isMessageOn("chat.js")).at(-1)?.["data"] as { n: number } | undefined)?.n === n - 1, {
          message: "every message up to the last one published",
        });
        chainOf(b, "chat.js", start);
      }
    } finally {
      stop = true;
      await publisher;
    }
  });

  test("subs that cannot be positioned (no broker connection) close the connection with 1011 before any welcome", async (t) => {
    const nats = await stack.controllableNats(t, { jetstream: true });
    if (!nats) return;
    const gw = await stack.gateway(nats, { HISTORY_STREAM: "SUBS_DOWN" });
    const token = await hsToken({ sub: "down", channels: ["news"], subs: ["news"] });
    assert.ok((await stack.connect(gw.wsUrl, { token })).welcome, "welcomed while NATS is up");
    await nats.kill();
    await waitFor(async () => (await scrape(gw.url)).get("herald_broker_connected") === 0, { message: "the gateway sees NATS gone" });
    const c = await stack.connect(gw.wsUrl, { token, waitWelcome: false });
    const closed = await c.closed;
    assert.deepEqual([closed.code, closed.reason], [1011, "subs unavailable, reconnect"]);
    assert.equal(c.frames.length, 0, "no welcome, no frame at all");
    await nats.restart();
    await waitFor(async () => (await scrape(gw.url)).get("herald_broker_connected") === 1, { message: "the gateway reconnected" });
    const again = await stack.connect(gw.wsUrl, { token });
    assert.equal((again.welcome!["subs"] as Array<{ channel: string }>)[0]!.channel, "news", "a reconnect gets its subs");
  });
});
