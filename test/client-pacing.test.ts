/**
 * @herald/client paced flush after a welcome (the gateway's inbound rate
 * limit: 50/s, burst 100), driven through a scripted socket with mocked
 * timers; and the Pacer (token bucket) on its own.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HeraldClient } from "@herald/client";
import { Pacer } from "../packages/client/src/pacer.js";
import { ScriptedSocket, flushAsync, mockClock, nextSocket, refreshingClient } from "./helpers/scripted-socket.js";

describe("paced flush after a reconnect (gateway rate limit: 50/s, burst 100)", () => {
  /** Replays send times through the gateway's token bucket; returns how many frames it would refuse. */
  const refusedByGateway = (times: number[], perSecond = 50, burst = 100): number => {
    let tokens = burst;
    let last = times[0] ?? 0;
    let refused = 0;
    for (const at of times) {
      tokens = Math.min(burst, tokens + ((at - last) / 1000) * perSecond);
      last = at;
      if (tokens >= 1) tokens -= 1;
      else refused++;
    }
    return refused;
  };

  test("60 re-subscribes + 100 queued publishes: 40 at once, the rest at 25/s, in order, never over the gateway's bucket", async (t) => {
    mockClock(t);
    ScriptedSocket.all = [];
    const client = new HeraldClient({ url: "ws://scripted/ws", token: "t.e.st", WebSocket: ScriptedSocket, pingIntervalMs: 0, backoff: { baseMs: 10, maxMs: 10 } });
    const connected = client.connect();
    const sock1 = await nextSocket(1);
    await connected;
    // Lost: while reconnecting, 60 subscriptions and a full offline queue pile up.
    sock1.close(1006, "");
    await flushAsync();
    assert.equal(client.state, "reconnecting");
    const later: Array<Promise<unknown>> = [];
    for (let i = 0; i < 60; i++) later.push(client.subscribe(`ch.${i}`));
    for (let i = 0; i < 100; i++) later.push(client.publish("out", { n: i }));
    for (const p of later) p.catch(() => undefined); // rejected by close() at the end
    t.mock.timers.tick(10);
    const sock2 = await nextSocket(2);
    assert.equal(client.state, "connected");
    assert.equal(sock2.sent.length, 40, "at most flushPacing.burst frames right after the welcome");
    t.mock.timers.tick(1_000);
    assert.ok(Math.abs(sock2.sent.length - 65) <= 1, `about 25 more per second (sent ${sock2.sent.length})`);
    // A publish made during the flush waits behind the queue (order is kept).
    later.push(client.publish("out", { n: 100 }).catch(() => undefined));
    for (let i = 0; i < 10 && sock2.sent.length < 161; i++) t.mock.timers.tick(1_000);
    assert.equal(sock2.sent.length, 161);
    assert.deepEqual(sock2.sent.slice(0, 60).map((f) => f["channel"]), Array.from({ length: 60 }, (_, i) => `ch.${i}`));
    assert.deepEqual(sock2.sent.slice(60).map((f) => (f["data"] as { n: number }).n), Array.from({ length: 101 }, (_, i) => i));
    assert.equal(refusedByGateway(sock2.sentAt), 0, "the gateway's token bucket never runs dry");
    client.close();
  });

  test("the refresh connection's re-subscribes are paced too; flushPacing is configurable", async (t) => {
    const channels = Array.from({ length: 12 }, (_, i) => `ch.${i}`);
    const { client } = await refreshingClient(t, channels, { flushPacing: { burst: 5, perSecond: 10 } });
    t.mock.timers.tick(48_000); // exp - 20 % of the 60 s lifetime
    const sock2 = await nextSocket(2);
    assert.equal(sock2.sentOf("subscribe").length, 5);
    t.mock.timers.tick(500);
    assert.equal(sock2.sentOf("subscribe").length, 10);
    client.close();
  });
});

describe("Pacer (the outbox's token bucket)", () => {
  const pacer = (burst: number, perSecond: number) => {
    const sent: number[] = [];
    return { sent, p: new Pacer<number>({ burst, perSecond }, (n) => sent.push(n)) };
  };

  test("burst at once, then perSecond, in order; send() while items wait queues behind them", (t) => {
    mockClock(t);
    const { sent, p } = pacer(3, 10);
    p.flush([1, 2, 3, 4, 5, 6]);
    assert.deepEqual(sent, [1, 2, 3]);
    p.send(7);
    assert.deepEqual(sent, [1, 2, 3], "behind what waits, not ahead of it");
    assert.equal(p.length, 4);
    t.mock.timers.tick(100);
    assert.deepEqual(sent, [1, 2, 3, 4]);
    t.mock.timers.tick(300);
    assert.deepEqual(sent, [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(p.length, 0);
  });

  test("with nothing waiting, send() delivers at once", () => {
    const { sent, p } = pacer(1, 1);
    p.send(1);
    p.send(2);
    assert.deepEqual(sent, [1, 2]);
  });

  test("the bucket refills while idle, up to burst", (t) => {
    mockClock(t);
    const { sent, p } = pacer(2, 10);
    p.flush([1, 2, 3]);
    t.mock.timers.tick(100);
    assert.deepEqual(sent, [1, 2, 3]);
    t.mock.timers.tick(10_000); // long idle: back to 2, not 100
    p.flush([4, 5, 6]);
    assert.deepEqual(sent, [1, 2, 3, 4, 5]);
  });

  test("perSecond Infinity: no pacing", () => {
    const { sent, p } = pacer(1, Infinity);
    p.flush([1, 2, 3]);
    assert.deepEqual(sent, [1, 2, 3]);
  });

  test("take() hands back what was not delivered and stops the timer; stop() ends delivery for good", (t) => {
    mockClock(t);
    const { sent, p } = pacer(1, 10);
    p.flush([1, 2, 3]);
    assert.deepEqual(p.take(), [2, 3]);
    t.mock.timers.tick(1_000);
    assert.deepEqual(sent, [1]);
    p.flush([4, 5]);
    p.stop();
    t.mock.timers.tick(1_000);
    assert.ok(!sent.includes(5), "nothing delivered after stop()");
    assert.deepEqual(p.take(), [5]);
  });
});
