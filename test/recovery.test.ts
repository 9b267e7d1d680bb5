/**
 * Message recovery on JetStream (issue 5, server side): positions on every
 * channel message, resume from a position on another gateway process with
 * no gap and no duplicate, `recovered: false` beyond the history window,
 * the publisher's 202 meaning "stored", backlogs paged with backpressure,
 * and core-NATS servers still working.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { startNats, type NatsServer } from "./helpers/nats.js";
import { connect as natsConnect } from "nats";
import { GATEWAY_MAIN, missingBuild, startGateway, startPublisher, uniqueName, waitFor, withTimeout, type ServiceProcess } from "./helpers/procs.js";
import { scrape } from "./helpers/metrics.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { connect, type Frame } from "./helpers/ws.js";
import { TestStack } from "./helpers/stack.js";

const API_KEY = "recovery-test-api-key-0123456789";
const isMessage = (channel: string) => (f: Frame) => f.type === "message" && f.channel === channel;

async function publish(publisher: ServiceProcess, channel: string, body: unknown): Promise<void> {
  const res = await fetch(`${publisher.url}/v1/channels/${channel}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 202, await res.text());
}

describe("recovery with JetStream history", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  let nats: NatsServer;
  let gw1: ServiceProcess;
  let gw2: ServiceProcess;
  let publisher: ServiceProcess;
  const stack = new TestStack();
  const { clients } = stack;
  let token: string;

  before(async () => {
    nats = await stack.nats({ jetstream: true });
    const common = { HISTORY_MAX_PER_CHANNEL: "5", HISTORY_STREAM: "RECOVERY_TEST" };
    [gw1, gw2, publisher] = await Promise.all([
      stack.gateway(nats, common),
      stack.gateway(nats, common),
      stack.publisher(nats, { ...common, PUBLISHER_API_KEY: API_KEY }),
    ]);
    token = await hsToken({ sub: "reader", channels: ["news", "small"] });
  });
  after(() => stack.close());

  test("every channel message carries seq/prev; resuming on another gateway delivers exactly the missed ones", async () => {
    const a = await connect(gw1.wsUrl, { token });
    clients.push(a);
    const sub = await a.request({ type: "subscribe", channel: "news", id: 1 });
    assert.equal(sub.type, "subscribed");
    assert.equal(sub.recovered, true);
    const start = sub.seq as number;
    assert.equal(typeof start, "number");

    for (let i = 1; i <= 3; i++) await publish(publisher, "news", { i });
    const first = [await a.next(isMessage("news")), await a.next(isMessage("news")), await a.next(isMessage("news"))];
    assert.deepEqual(first.map((f) => (f.data as { i: number }).i), [1, 2, 3]);
    assert.equal(first[0]!.prev, start);
    assert.equal(first[1]!.prev, first[0]!.seq);
    assert.equal(first[2]!.prev, first[1]!.seq);
    const last = first[2]!.seq as number;

    // A second socket joining the same channel on the same gateway continues
    // from the position that gateway is at (its fast path, no history read).
    const a2 = await connect(gw1.wsUrl, { token });
    clients.push(a2);
    const joined = await a2.request({ type: "subscribe", channel: "news", id: 1 });
    assert.equal(joined.seq, last);
    assert.equal(joined.recovered, true);
    await a2.close();
    await a.close();

    // Missed while away: 4..6.
    for (let i = 4; i <= 6; i++) await publish(publisher, "news", { i });

    const b = await connect(gw2.wsUrl, { token });
    clients.push(b);
    const resumed = await b.request({ type: "subscribe", channel: "news", id: 2, since: last });
    assert.equal(resumed.type, "subscribed");
    assert.equal(resumed.recovered, true);
    assert.equal(resumed.seq, last);
    await publish(publisher, "news", { i: 7 });
    const got: Frame[] = [];
    for (let i = 0; i < 4; i++) got.push(await b.next(isMessage("news")));
    assert.deepEqual(got.map((f) => (f.data as { i: number }).i), [4, 5, 6, 7], "missed messages in order, then live");
    let prev = last;
    for (const f of got) {
      assert.equal(f.prev, prev, "no gap in the prev chain");
      prev = f.seq as number;
    }
    // No duplicates arrive afterwards: a ping round trip flushes anything pending.
    assert.equal((await b.request({ type: "ping", id: 3 })).type, "pong");
    assert.equal(b.all(isMessage("news")).length, 4);

    const m = await scrape(gw2.url);
    assert.equal(m.get("herald_recoveries_total", { result: "recovered" }), 1);
  });

  test("a position older than the history window is answered with recovered: false", async () => {
    const a = await connect(gw1.wsUrl, { token });
    clients.push(a);
    await a.request({ type: "subscribe", channel: "small", id: 1 });
    await publish(publisher, "small", { i: 0 });
    const firstSeq = (await a.next(isMessage("small"))).seq as number;
    await a.close();
    for (let i = 1; i <= 8; i++) await publish(publisher, "small", { i }); // window keeps 5

    const b = await connect(gw2.wsUrl, { token });
    clients.push(b);
    const resumed = await b.request({ type: "subscribe", channel: "small", id: 2, since: firstSeq });
    assert.equal(resumed.recovered, false);
    const got: Frame[] = [];
    for (let i = 0; i < 5; i++) got.push(await b.next(isMessage("small")));
    assert.deepEqual(got.map((f) => (f.data as { i: number }).i), [4, 5, 6, 7, 8], "what is left of the window, in order");
    assert.equal((await scrape(gw2.url)).get("herald_recoveries_total", { result: "window_exceeded" }), 1);
  });

  test("a publish retried with the same Idempotency-Key is stored and delivered once", async () => {
    const c = await connect(gw1.wsUrl, { token });
    clients.push(c);
    await c.request({ type: "subscribe", channel: "news", id: 1 });
    const key = `retry-${Date.now()}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await fetch(`${publisher.url}/v1/channels/news/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json", "idempotency-key": key },
        body: JSON.stringify({ attempt }),
      });
      const text = await res.text();
      assert.equal(res.status, 202, text);
      assert.equal((JSON.parse(text) as { id: string }).id, key);
    }
    await publish(publisher, "news", { after: true });
    const first = await c.next(isMessage("news"));
    assert.deepEqual(first.data, { attempt: 0 });
    const second = await c.next(isMessage("news"));
    assert.deepEqual(second.data, { after: true }, "the retry was dropped as a duplicate by the stream");
    assert.equal(second.prev, first.seq);
  });

  test("bad positions are refused with bad_request", async () => {
    const c = await connect(gw1.wsUrl, { token });
    clients.push(c);
    for (const since of [-1, 1.5, "7", 2 ** 60]) {
      const reply = await c.request({ type: "subscribe", channel: "news", id: 9, since });
      assert.equal(reply.type, "error");
      assert.equal(reply.code, "bad_request");
    }
  });
});

describe("positions whose messages expired by age", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  test("a client at position 0 whose channel's messages have expired is told recovered: false", async (t) => {
    const nats = await startNats({ jetstream: true });
    t.after(() => nats.stop());
    const env = { NATS_URL: nats.url, JWT_SECRET: TEST_SECRET, SUBJECT_PREFIX: "aged", HISTORY_STREAM: "AGED", HISTORY_MAX_AGE_SECONDS: "1" };
    const gw = await startGateway({ ...env, NATS_NAME: uniqueName("gw-aged") });
    t.after(() => gw.stop());
    const tok = await hsToken({ sub: "away", channels: ["quiet"] });
    const a = await connect(gw.wsUrl, { token: tok });
    t.after(() => a.terminate());
    const first = await a.request({ type: "subscribe", channel: "quiet", id: 1 });
    assert.equal(first.seq, 0, "an empty channel starts at 0");
    await a.close();

    // Published and expired while the client was away.
    const nc = await natsConnect({ servers: nats.url, name: "aged-publisher" });
    t.after(() => nc.close());
    await nc.jetstream().publish("aged.ch.quiet", new TextEncoder().encode('{"missed":true}'));
    const jsm = await nc.jetstreamManager();
    await waitFor(async () => (await jsm.streams.info("AGED")).state.messages === 0, {
      timeoutMs: 10_000,
      intervalMs: 100,
      message: "the message expired from the stream",
    });

    const b = await connect(gw.wsUrl, { token: tok });
    t.after(() => b.terminate());
    const resumed = await b.request({ type: "subscribe", channel: "quiet", id: 2, since: 0 });
    assert.equal(resumed.recovered, false, "the window no longer reaches back to 0: the client must be told");
  });
});

describe("WRITE_DELAY_MS (frames held and written together)", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  test("held frames arrive in order, and a socket joining while frames are held never gets them twice", async (t) => {
    const nats = await startNats({ jetstream: true });
    t.after(() => nats.stop());
    const env = { NATS_URL: nats.url, JWT_SECRET: TEST_SECRET, SUBJECT_PREFIX: "batched", HISTORY_STREAM: "BATCHED" };
    const gw = await startGateway({ ...env, NATS_NAME: uniqueName("gw-batched"), WRITE_DELAY_MS: "200" });
    t.after(() => gw.stop());
    const pub = await startPublisher({ ...env, PUBLISHER_API_KEY: API_KEY });
    t.after(() => pub.stop());
    const tok = await hsToken({ sub: "batch-reader", channels: ["room"] });
    const a = await connect(gw.wsUrl, { token: tok });
    t.after(() => a.terminate());
    assert.equal((await a.request({ type: "subscribe", channel: "room", id: 1 })).type, "subscribed");

    await publish(pub, "room", { n: 1 });
    // Joins while message 1 is (most likely) still held: it must get only what follows its position.
    const b = await connect(gw.wsUrl, { token: tok });
    t.after(() => b.terminate());
    const joined = await b.request({ type: "subscribe", channel: "room", id: 1 });
    await publish(pub, "room", { n: 2 });
    await publish(pub, "room", { n: 3 });
    const fromA = [await a.next(isMessage("room")), await a.next(isMessage("room")), await a.next(isMessage("room"))];
    assert.deepEqual(fromA.map((f) => (f.data as { n: number }).n), [1, 2, 3]);
    await b.next((f) => isMessage("room")(f) && (f.data as { n: number }).n === 3);
    // A ping round trip after the last message flushes anything else pending.
    assert.equal((await b.request({ type: "ping", id: 2 })).type, "pong");
    const fromB = b.all(isMessage("room"));
    for (const f of fromB) assert.ok((f.seq as number) > (joined.seq as number), `B got seq ${f.seq}, at or before its position ${joined.seq}`);
    const seqs = fromB.map((f) => f.seq as number);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y), "in order, no duplicates");
  });
});

describe("a backlog larger than the client can take", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  test("is sent page by page: a client that stops reading gets a gap-free prefix, then close 4009 (never silent drops)", async (t) => {
    const nats = await startNats({ jetstream: true });
    t.after(() => nats.stop());
    // Own prefix and stream: streams may not overlap the other suite's subjects.
    const env = { NATS_URL: nats.url, JWT_SECRET: TEST_SECRET, SUBJECT_PREFIX: "bigrec", HISTORY_STREAM: "RECOVERY_BIG" };
    const gw = await startGateway({ ...env, NATS_NAME: uniqueName("gw-big"), SLOW_CONSUMER_BYTES: String(64 * 1024) });
    t.after(() => gw.stop());

    // 600 × 16 KiB = 9.6 MB of history, more than uWS buffers for one socket
    // (8 MiB): sent in one go, the tail would be dropped without a trace.
    const COUNT = 600;
    const nc = await natsConnect({ servers: nats.url, name: "big-backlog-publisher" });
    t.after(() => nc.close());
    const js = nc.jetstream();
    const pad = "x".repeat(16 * 1024);
    for (let i = 0; i < COUNT; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, k) => js.publish("bigrec.ch.big", new TextEncoder().encode(JSON.stringify({ i: i + k, pad })))),
      );
    }

    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "slow-reader", channels: ["big"] }) });
    t.after(() => c.terminate());
    c.send({ type: "subscribe", channel: "big", id: 1, since: 0 });
    c.pauseSocket();
    await waitFor(async () => ((await scrape(gw.url)).get("herald_slow_consumer_closes_total") ?? 0) >= 1, {
      timeoutMs: 20_000,
      intervalMs: 100,
      message: "the gateway closes the recovering socket as a slow consumer",
    });
    c.resumeSocket();
    const closed = await withTimeout(c.closed, 20_000, "close of the slow recovering socket");
    assert.equal(closed.code, 4009, `close ${closed.code} ${closed.reason}`);
    const got = c.all(isMessage("big"));
    assert.ok(got.length > 0 && got.length < COUNT, `a prefix of the backlog (${got.length} of ${COUNT})`);
    let prev = 0;
    for (const f of got) {
      assert.equal(f.prev, prev, "no gap in what was delivered");
      prev = f.seq as number;
    }
    assert.ok(gw.alive);
  });
});

describe("core NATS without JetStream", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  test("channels work without positions when the server has no JetStream", async (t) => {
    const nats = await startNats();
    t.after(() => nats.stop());
    const gw = await startGateway({ NATS_URL: nats.url, JWT_SECRET: TEST_SECRET });
    t.after(() => gw.stop());
    const pub = await startPublisher({ NATS_URL: nats.url, PUBLISHER_API_KEY: API_KEY });
    t.after(() => pub.stop());
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "u", channels: ["plain"] }) });
    t.after(() => c.close());
    const sub = await c.request({ type: "subscribe", channel: "plain", id: 1, since: 5 });
    assert.equal(sub.type, "subscribed");
    assert.equal(sub.seq, undefined);
    await publish(pub, "plain", { ok: true });
    const msg = await c.next(isMessage("plain"));
    assert.deepEqual(msg.data, { ok: true });
    assert.equal(msg.seq, undefined);
    assert.ok(gw.logs.some((l) => l.includes("running without recovery")), "the gateway says it runs without recovery");
  });
});
