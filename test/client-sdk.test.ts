/**
 * @herald/client against real gateway processes (services/gateway/dist/main.js):
 * round trips, server error codes, the offline queue, the paced flush under
 * the gateway's rate limit, retried rate_limited publishes, and resubscribe
 * after the gateway is killed or drained. Token refresh and terminal closes:
 * client-sdk-tokens.test.ts; 1009, reconnect limits and recovery:
 * client-sdk-recovery.test.ts.
 *
 * Every wait is on an event or a bounded poll; every process is stopped in `after`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HeraldError, type ConnectionState, type HeraldMessage, type StateChange } from "@herald/client";
import { clientGatewayHarness, errorsOf, inbox, nextEvent, subscribedClient } from "./helpers/client-gateway.js";
import { scrape } from "./helpers/metrics.js";
import { freePort } from "./helpers/ports.js";
import { GATEWAY_MAIN, PUBLISHER_MAIN, missingBuild, uniqueName, waitFor } from "./helpers/procs.js";
import { hsToken } from "./helpers/tokens.js";

const skip = missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN);

describe("@herald/client against a real gateway", { skip }, () => {
  const { client, gateway, allChannels } = clientGatewayHarness();

  test("connects with the token as a subprotocol, subscribes, publishes and receives; typed events", async () => {
    const gw = await gateway();
    const sub = uniqueName("sub");
    const a = client(gw.wsUrl, await hsToken({ sub, channels: ["room.>"], publish: ["room.>"] }));
    const states: ConnectionState[] = [];
    a.on("state", (s) => states.push(s.state));
    const welcome = nextEvent(a, "welcome");
    await a.connect();
    assert.equal((await welcome).sub, sub);
    assert.equal(a.session?.sub, sub);
    assert.deepEqual(states, ["connecting", "connected"]);

    const b = client(gw.wsUrl, await allChannels());
    await b.connect();
    const got: HeraldMessage<{ n: number }>[] = [];
    const s = await a.subscribe<{ n: number }>("room.1", { onMessage: (m) => got.push(m) });
    assert.equal(s.channel, "room.1");
    assert.equal(s.active, true);
    assert.deepEqual(a.channels, ["room.1"]);
    await b.publish("room.1", { n: 1 });
    await a.publish("room.1", { n: 2 });
    await waitFor(() => got.length >= 2, { message: "two messages on room.1" });
    assert.deepEqual(got.map((m) => m.data.n).sort(), [1, 2]);
    assert.ok(got.every((m) => m.channel === "room.1"));
    assert.ok((await a.ping()) >= 0);

    // Subscribing again returns the same handle.
    assert.equal(await a.subscribe("room.1"), s);
    await s.unsubscribe();
    assert.deepEqual(a.channels, []);
    assert.equal(s.active, false);
    a.close();
    assert.equal(a.state, "closed");
    assert.equal(a.lastError, undefined, "a clean close() is not an error");
  });

  test("server error frames reject with a typed HeraldError carrying the code", async () => {
    const gw = await gateway();
    const c = client(gw.wsUrl, await hsToken({ sub: uniqueName("limited"), channels: ["public.>"] }));
    await c.connect();
    await assert.rejects(c.subscribe("private.x"), (e: unknown) => e instanceof HeraldError && e.code === "forbidden" && e.channel === "private.x");
    await assert.rejects(c.subscribe("bad channel!"), (e: unknown) => e instanceof HeraldError && e.code === "invalid_channel");
    await assert.rejects(c.publish("public.x", { no: "publish claim" }), (e: unknown) => e instanceof HeraldError && e.code === "forbidden");
    await assert.rejects(c.publish("public.x", undefined), (e: unknown) => e instanceof HeraldError && e.code === "invalid_argument");
    assert.deepEqual(c.channels, [], "refused subscriptions are not kept");
    // The connection is still fine.
    await c.subscribe("public.ok");
    assert.equal(c.state, "connected");
  });

  test("offline queue: publishes wait for the connection, are bounded (queue_full) and flushed on connect", async () => {
    const gw = await gateway();
    const channel = uniqueName("queue");
    const reader = client(gw.wsUrl, await allChannels());
    await reader.connect();
    const box = inbox(reader, channel);
    await reader.subscribe(channel);

    const writer = client(gw.wsUrl, await allChannels(), { offlineQueueLimit: 2 });
    const p1 = writer.publish(channel, { n: 1 });
    const p2 = writer.publish(channel, { n: 2 });
    await assert.rejects(writer.publish(channel, { n: 3 }), (e: unknown) => e instanceof HeraldError && e.code === "queue_full");
    assert.equal(writer.queuedPublishes, 2);
    await writer.connect();
    await Promise.all([p1, p2]);
    assert.equal(writer.queuedPublishes, 0);
    const msgs = await box.waitFor(2);
    assert.deepEqual(msgs.map((m) => (m.data as { n: number }).n), [1, 2], "flushed in order");
  });

  test("reconnect with 60 subscriptions and a full offline queue: the paced flush stays under the gateway's rate limit (no rate_limited, no 4008)", async () => {
    const port = await freePort();
    let gw = await gateway({ GATEWAY_PORT: String(port) }); // default RATE_LIMIT_PER_SECOND 50, RATE_LIMIT_BURST 100
    const channel = uniqueName("paced");
    const a = client(gw.wsUrl, await allChannels());
    const { errors, box } = await subscribedClient(a, channel);
    for (let i = 1; i < 60; i++) await a.subscribe(`${channel}.${i}`);

    gw.kill("SIGKILL");
    await gw.exited;
    await nextEvent(a, "state", (s) => s.state === "reconnecting");
    const pubs = Array.from({ length: 100 }, (_, n) => a.publish(channel, { n }));
    assert.equal(a.queuedPublishes, 100);
    const states: StateChange[] = [];
    a.on("state", (s) => states.push(s));
    const resubscribed = nextEvent(a, "subscribed", (s) => s.channel === `${channel}.59` && s.resubscribed, 20_000);
    gw = await gateway({ GATEWAY_PORT: String(port) });
    // 60 re-subscribes then 100 publishes, i.e. 160 frames at once without pacing: 60 over the burst.
    await resubscribed;
    await Promise.all(pubs);
    const msgs = await box.waitFor(100);
    assert.deepEqual(msgs.map((m) => (m.data as { n: number }).n), Array.from({ length: 100 }, (_, n) => n), "in order");
    assert.deepEqual(errors.map((e) => e.code), [], "no rate_limited error frames");
    const afterWelcome = states.slice(states.findIndex((s) => s.state === "connected") + 1);
    assert.deepEqual(afterWelcome.map((s) => [s.state, s.error?.closeCode]), [], "no 4008, no reconnect after the welcome");
    const metrics = await scrape(gw.url);
    assert.equal(metrics.get("herald_errors_total", { code: "rate_limited" }) ?? 0, 0, "the gateway refused nothing");
    assert.equal(a.channels.length, 60);
  });

  test("a publish refused with rate_limited (the gateway echoes its id) is retried after a delay and acked", async () => {
    const gw = await gateway({ RATE_LIMIT_PER_SECOND: "10", RATE_LIMIT_BURST: "4" });
    const channel = uniqueName("retry");
    const reader = client(gw.wsUrl, await allChannels());
    await reader.connect();
    const box = inbox(reader, channel);
    await reader.subscribe(channel);
    const writer = client(gw.wsUrl, await allChannels(), { backoff: { baseMs: 50, maxMs: 100 } });
    const errors = errorsOf(writer);
    await writer.connect();
    // Five at once against a burst of 4: the fifth is refused, then retried once tokens are back.
    await Promise.all(Array.from({ length: 5 }, (_, n) => writer.publish(channel, { n })));
    const msgs = await box.waitFor(5);
    assert.deepEqual(msgs.map((m) => (m.data as { n: number }).n).sort(), [0, 1, 2, 3, 4]);
    assert.ok(((await scrape(gw.url)).get("herald_errors_total", { code: "rate_limited" }) ?? 0) >= 1, "the gateway did refuse a publish");
    assert.deepEqual(errors, []);
    assert.equal(writer.state, "connected");
  });

  test("gateway killed (1006) and drained (1001): reconnects with backoff, resubscribes, queued publishes go out, messages flow again", async () => {
    const port = await freePort();
    let gw = await gateway({ GATEWAY_PORT: String(port) });
    const channel = uniqueName("resub");
    const a = client(gw.wsUrl, await allChannels(), { offlineQueueLimit: 10 });
    const b = client(gw.wsUrl, await allChannels());
    await Promise.all([a.connect(), b.connect()]);
    const box = inbox(a, channel);
    await a.subscribe(channel);
    await b.publish(channel, "before");
    await box.waitFor(1);

    // 1) SIGKILL: the socket dies without a close frame.
    const lost = nextEvent(a, "state", (s) => s.state === "reconnecting");
    gw.kill("SIGKILL");
    await gw.exited;
    const change = await lost;
    assert.equal(change.error?.code, "connection_lost");
    assert.ok((change.retryInMs ?? -1) >= 0 && (change.retryInMs ?? Infinity) <= 400, `backoff within bounds: ${change.retryInMs}`);
    // While the gateway is down, attempts fail and back off (connect_failed).
    const failing = await nextEvent(a, "state", (s) => s.state === "reconnecting" && s.error?.code === "connect_failed");
    assert.ok((failing.attempt ?? 0) >= 1);
    const queued = a.publish(channel, "queued while down");
    assert.equal(a.queuedPublishes, 1);

    const resubscribed = nextEvent(a, "subscribed", (s) => s.channel === channel && s.resubscribed);
    gw = await gateway({ GATEWAY_PORT: String(port) });
    await resubscribed;
    await queued;
    await waitFor(() => b.state === "connected", { message: "publisher client reconnected" });
    await b.publish(channel, "after restart");
    await waitFor(() => box.messages.some((m) => m.data === "after restart"), { message: "message after restart" });

    // 2) SIGTERM: the gateway drains with 1001; the client waits a random
    // delay within drainReconnectMaxMs before reconnecting.
    const drained = nextEvent(a, "state", (s) => s.state === "reconnecting" && s.error?.closeCode === 1001);
    const stopped = gw.stop();
    const d = await drained;
    assert.ok((d.retryInMs ?? Infinity) <= 300, `drain reconnect delay ${d.retryInMs} <= drainReconnectMaxMs`);
    await stopped;
    const resub2 = nextEvent(a, "subscribed", (s) => s.channel === channel && s.resubscribed);
    gw = await gateway({ GATEWAY_PORT: String(port) });
    await resub2;
    await waitFor(() => b.state === "connected", { message: "publisher client reconnected after drain" });
    await b.publish(channel, "after drain");
    await waitFor(() => box.messages.some((m) => m.data === "after drain"), { message: "message after drain" });
    assert.equal(a.state, "connected");
    assert.ok(a.channels.includes(channel));
  });
});
