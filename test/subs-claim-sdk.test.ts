/**
 * @herald/client and the `subs` claim (issue 11): the welcome's `subs` are
 * validated strictly and become subscriptions like the ones subscribe()
 * makes (handle, events, positions from the welcome's `seq`); they survive
 * a token refresh and are resumed after a reconnect: from another epoch
 * (an embedded broker restarted) with recovered: false at once, and after
 * a gateway restart on JetStream with nothing lost or repeated. The
 * gateway's side: subs-claim.test.ts.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import { HeraldClient, type HeraldMessage, type RecoveryInfo, type SubscribedInfo } from "@herald/client";
import { readHistoryConfig } from "@herald/core";
import { WS, inbox, nextEvent } from "./helpers/client-gateway.js";
import { startGatewayInProcess, startPublisherInProcess } from "./helpers/in-process.js";
import { freePort } from "./helpers/ports.js";
import { GATEWAY_MAIN, PUBLISHER_MAIN, missingBuild } from "./helpers/procs.js";
import { TestStack } from "./helpers/stack.js";
import { TEST_SECRET, hsToken, nowSeconds } from "./helpers/tokens.js";
import { waitFor } from "./helpers/wait.js";
import { withApiKey } from "./helpers/api-key.js";

const API_KEY = "subs-claim-sdk-api-key-0123456789a";

const { publish } = withApiKey(API_KEY);

describe("the SDK reads the welcome's subs strictly", () => {
  test("well-formed subs are accepted; anything else is a malformed welcome", async () => {
    const { MalformedFrameError, parseServerFrame, welcomeOf } = await import("../packages/client/src/frames.js");
    const welcome = (subs: unknown) => JSON.stringify({ type: "welcome", sub: "u", connection: "c", subs });
    const good = parseServerFrame(welcome([{ channel: "news", seq: 9, epoch: "e1" }, { channel: "plain" }]));
    assert.deepEqual(welcomeOf(good as never), { sub: "u", connection: "c", subs: [{ channel: "news", seq: 9, epoch: "e1" }, { channel: "plain" }] });
    assert.deepEqual(welcomeOf(parseServerFrame(JSON.stringify({ type: "welcome", sub: "u", connection: "c" })) as never), { sub: "u", connection: "c" });
    const bad: Array<[unknown, RegExp]> = [
      [{ channel: "news" }, /subs must be an array/],
      [["news"], /every entry of subs must be an object/],
      [[{ seq: 1, epoch: "e" }], /non-empty string channel/],
      [[{ channel: "" }], /non-empty string channel/],
      [[{ channel: "a" }, { channel: "a" }], /lists a channel twice/],
      [[{ channel: "a", seq: -1, epoch: "e" }], /seq in subs must be a non-negative integer/],
      [[{ channel: "a", seq: 1.5, epoch: "e" }], /seq in subs must be a non-negative integer/],
      [[{ channel: "a", seq: 1, epoch: "" }], /epoch in subs must be a string of 1 to 64/],
      [[{ channel: "a", seq: 1 }], /seq and epoch together, or neither/],
      [[{ channel: "a", epoch: "e" }], /seq and epoch together, or neither/],
    ];
    for (const [subs, message] of bad) {
      assert.throws(() => parseServerFrame(welcome(subs)), (err: unknown) => err instanceof MalformedFrameError && err.code === "protocol_error" && message.test(err.message), JSON.stringify(subs));
    }
  });
});

describe("the SDK treats the welcome's subs as subscriptions", () => {
  const clients: HeraldClient[] = [];
  after(() => {
    for (const c of clients) c.close();
  });
  const sdk = (url: string, token: string) => {
    const c = new HeraldClient({ url, token, WebSocket: WS, backoff: { baseMs: 20, maxMs: 200 }, drainReconnectMaxMs: 100, connectTimeoutMs: 5_000, requestTimeoutMs: 5_000 });
    clients.push(c);
    return c;
  };

  test("subscription(channel) returns them, their positions start at the welcome's seq and advance, they emit the same events", async () => {
    const broker = new MemoryBroker({ history: readHistoryConfig({}) });
    const gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0" }, { broker });
    const pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY }, { broker });
    try {
      await publish(pub.url, "news.sdk", { before: true });
      const client = sdk(gw.wsUrl, await hsToken({ sub: "sdk", channels: ["news.>"], subs: ["news.sdk"] }));
      const subscribed: SubscribedInfo[] = [];
      client.on("subscribed", (s) => subscribed.push(s));
      const box = inbox(client, "news.sdk");
      await client.connect();
      const welcomeSub = client.session!.subs![0]!;
      assert.deepEqual(welcomeSub, { channel: "news.sdk", seq: welcomeSub.seq, epoch: broker.history!.epochOf("herald.ch.x") });
      assert.ok((welcomeSub.seq as number) > 0);
      const sub = client.subscription("news.sdk");
      assert.ok(sub, "the welcome's sub is a subscription");
      assert.deepEqual([sub.active, sub.lastSeq, sub.epoch, client.channels, client.isActive("news.sdk")], [true, welcomeSub.seq, broker.history!.epochOf("herald.ch.x"), ["news.sdk"], true]);
      assert.deepEqual(subscribed, [{ channel: "news.sdk", seq: welcomeSub.seq, resubscribed: false }]);
      const handled: HeraldMessage[] = [];
      sub.onMessage((m) => handled.push(m));
      for (let n = 1; n <= 3; n++) await publish(pub.url, "news.sdk", { n });
      const got = await box.waitFor(3);
      assert.deepEqual(got.map((m) => m.data), [{ n: 1 }, { n: 2 }, { n: 3 }]);
      assert.equal(got[0]!.prev, welcomeSub.seq, "the first message follows on from the welcome's position");
      assert.equal(handled.length, 3, "the handle's handlers get them too");
      assert.equal(sub.lastSeq, got[2]!.seq, "the position advances");
      assert.equal(await client.subscribe("news.sdk"), sub, "subscribe() gives the same handle");
    } finally {
      await pub.close();
      await gw.close();
      await broker.close();
    }
  });

  test("a reconnect into another epoch (an embedded broker restarted) reports recovered: false and goes on from the welcome's position", async () => {
    const port = await freePort();
    const token = await hsToken({ sub: "sdk-epoch", channels: ["news.>"], subs: ["news.epoch"] });
    const life = async () => {
      const broker = new MemoryBroker({ history: readHistoryConfig({}) });
      const gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0", GATEWAY_PORT: String(port) }, { broker });
      const pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY }, { broker });
      const close = async () => {
        await pub.close();
        await gw.close();
        await broker.close();
      };
      return { broker, gw, pub, close };
    };
    let one = await life();
    const client = sdk(one.gw.wsUrl, token);
    const box = inbox(client, "news.epoch");
    await client.connect();
    await publish(one.pub.url, "news.epoch", { life: 1 });
    await box.waitFor(1);
    const oldEpoch = client.subscription("news.epoch")!.epoch;
    const lost = nextEvent(client, "recovered", (r) => r.channel === "news.epoch");
    await one.close();
    const two = await life();
    one = two;
    try {
      const r = await lost;
      assert.deepEqual([r.since, r.recovered, r.epoch], [box.messages[0]!.seq, false, two.broker.history!.epochOf("herald.ch.x")]);
      assert.notEqual(r.epoch, oldEpoch);
      const sub = client.subscription("news.epoch")!;
      assert.deepEqual([sub.lastSeq, sub.epoch], [r.seq, r.epoch], "the position is the welcome's");
      await publish(two.pub.url, "news.epoch", { life: 2 });
      const got = await box.waitFor(2);
      assert.deepEqual([got[1]!.data, got[1]!.prev], [{ life: 2 }, r.seq], "the stream goes on from the welcome's position");
    } finally {
      client.close();
      await two.close();
    }
  });
});

describe("the SDK keeps subs across a token refresh (make before break)", () => {
  test("the refresh connection's subs take over without loss or duplicates; a channel the new token adds becomes a subscription", async () => {
    const broker = new MemoryBroker({ history: readHistoryConfig({}) });
    const gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0", JWT_CLOCK_TOLERANCE_SECONDS: "0" }, { broker });
    const pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY }, { broker });
    let calls = 0;
    // 3-second tokens, refreshed about 0.6 s before exp; the second and later ones add a channel.
    const provider = () => hsToken({ sub: "refresher", channels: ["live.*"], subs: ++calls === 1 ? ["live.a"] : ["live.a", "live.b"], exp: nowSeconds() + 3 });
    const client = new HeraldClient({ url: gw.wsUrl, token: provider, WebSocket: WS, requestTimeoutMs: 5_000 });
    const states: string[] = [];
    client.on("state", (st) => states.push(st.state));
    const box = inbox(client, "live.a");
    let stop = false;
    let n = 0;
    try {
      await client.connect();
      const publisher = (async () => {
        while (!stop) await publish(pub.url, "live.a", { n: n++ });
      })();
      await nextEvent(client, "subscribed", (x) => x.channel === "live.b", 10_000);
      await waitFor(() => client.session?.subs?.length === 2, { message: "the refresh connection became the session" });
      const target = n + 5;
      await waitFor(() => n >= target, { message: "messages after the handover" });
      stop = true;
      await publisher;
      await box.waitFor(n);
      assert.deepEqual(box.messages.map((m) => (m.data as { n: number }).n), Array.from({ length: n }, (_, k) => k), "every message once, in order");
      assert.deepEqual(states, ["connecting", "connected"], "never reconnected");
      assert.ok(client.subscription("live.b")?.active, "the new token's channel is a subscription");
    } finally {
      stop = true;
      client.close();
      await pub.close();
      await gw.close();
      await broker.close();
    }
  });
});

describe("the SDK resumes subs after a gateway restart (nats-server with JetStream)", { skip: missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN) }, () => {
  const stack = new TestStack();
  const clients: HeraldClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    await stack.close();
  });

  test("messages published while the gateway was down are recovered once, in order; a restart that missed nothing recovers at once", async () => {
    const nats = await stack.nats({ jetstream: true });
    const env = { HISTORY_STREAM: "SUBS_SDK", GATEWAY_PORT: String(await freePort()), DRAIN_SECONDS: "0" };
    const pub = await stack.publisher(nats, { HISTORY_STREAM: "SUBS_SDK", PUBLISHER_API_KEY: API_KEY });
    let gw = await stack.gateway(nats, env);
    const token = await hsToken({ sub: "sdk-js", channels: ["feed.*"], subs: ["feed.js"] });
    const client = new HeraldClient({ url: gw.wsUrl, token: () => token, WebSocket: WS, backoff: { baseMs: 20, maxMs: 200 }, drainReconnectMaxMs: 100, connectTimeoutMs: 5_000, requestTimeoutMs: 5_000 });
    clients.push(client);
    const box = inbox(client, "feed.js");
    const recoveries: RecoveryInfo[] = [];
    client.on("recovered", (r) => recoveries.push(r));
    await client.connect();
    const sub = client.subscription("feed.js")!;
    for (let n = 1; n <= 3; n++) await publish(pub.url, "feed.js", { n });
    await box.waitFor(3);
    const before = sub.lastSeq!;

    gw.kill("SIGKILL");
    await gw.exited;
    await nextEvent(client, "state", (s) => s.state === "reconnecting");
    for (let n = 4; n <= 6; n++) await publish(pub.url, "feed.js", { n });
    const recovered = nextEvent(client, "recovered", (r) => r.channel === "feed.js");
    gw = await stack.gateway(nats, env);
    const r = await recovered;
    assert.deepEqual([r.since, r.seq, r.recovered], [before, before, true], "the resume from the client's position");
    await box.waitFor(6);
    await publish(pub.url, "feed.js", { n: 7 });
    await box.waitFor(7);

    // Again, with nothing published meanwhile: the welcome's position is the client's, nothing to resume.
    const last = sub.lastSeq!;
    gw.kill("SIGKILL");
    await gw.exited;
    const again = nextEvent(client, "recovered", (x) => x.channel === "feed.js" && x.since === last);
    gw = await stack.gateway(nats, env);
    assert.deepEqual([(await again).seq, (await again).recovered], [last, true]);
    await publish(pub.url, "feed.js", { n: 8 });
    await box.waitFor(8);

    assert.deepEqual(box.messages.map((m) => (m.data as { n: number }).n), [1, 2, 3, 4, 5, 6, 7, 8], "in order, nothing lost, nothing twice");
    const seqs = box.messages.map((m) => m.seq as number);
    for (let i = 1; i < seqs.length; i++) assert.equal(box.messages[i]!.prev, seqs[i - 1], `message ${i} follows on from the one before`);
    assert.equal(client.subscription("feed.js"), sub, "the same subscription all along");
    assert.equal(recoveries.length, 2);
  });
});
