/**
 * @herald/client against real gateway processes (services/gateway/dist/main.js):
 * round trips, server error codes, the offline queue, resubscribe after the
 * gateway is killed or drained, token refresh (before exp and after 4001),
 * terminal close codes, and message recovery with `since` over JetStream.
 *
 * Every wait is on an event or a bounded poll; every process is stopped in `after`.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import WebSocket from "ws";
import {
  HeraldClient,
  HeraldError,
  type ConnectionState,
  type HeraldClientOptions,
  type HeraldEvents,
  type HeraldMessage,
  type StateChange,
  type WebSocketConstructor,
} from "@herald/client";
import { scrape } from "./helpers/metrics.js";
import { natsControlSkipReason, startNats, type NatsServer } from "./helpers/nats.js";
import { freePort } from "./helpers/ports.js";
import {
  GATEWAY_MAIN,
  PUBLISHER_MAIN,
  missingBuild,
  startGateway,
  startPublisher,
  uniqueName,
  waitFor,
  withTimeout,
  type Env,
  type ServiceProcess,
} from "./helpers/procs.js";
import { TEST_SECRET, hsToken, nowSeconds } from "./helpers/tokens.js";

const WS = WebSocket as unknown as WebSocketConstructor;
const skip = missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN);

/** A ws constructor that counts connection attempts. */
function countingWebSocket(): { WS: WebSocketConstructor; attempts: () => number } {
  let n = 0;
  class Counting extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      n++;
    }
  }
  return { WS: Counting as unknown as WebSocketConstructor, attempts: () => n };
}

type EventArg<K extends keyof HeraldEvents> = Parameters<HeraldEvents[K]>[0];

/** Resolves on the next `event` whose argument matches `pred`. */
function nextEvent<K extends keyof HeraldEvents>(
  client: HeraldClient,
  event: K,
  pred: (arg: EventArg<K>) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<EventArg<K>> {
  let off: () => void = () => {};
  const p = new Promise<EventArg<K>>((resolve) => {
    off = client.on(event, ((arg: EventArg<K>) => {
      if (pred(arg)) {
        off();
        resolve(arg);
      }
    }) as HeraldEvents[K]);
  });
  return withTimeout(p, timeoutMs, `client event "${String(event)}"`).finally(() => off());
}

/** Collects channel messages of a client. */
function inbox(client: HeraldClient, channel?: string): { messages: HeraldMessage[]; waitFor(n: number, timeoutMs?: number): Promise<HeraldMessage[]> } {
  const messages: HeraldMessage[] = [];
  client.on("message", (m) => {
    if (channel === undefined || m.channel === channel) messages.push(m);
  });
  return {
    messages,
    waitFor: (n, timeoutMs = 10_000) =>
      waitFor(() => messages.length >= n && messages, { timeoutMs, intervalMs: 20, message: `${n} messages on ${channel ?? "any channel"} (have ${messages.length})` }),
  };
}

describe("@herald/client against a real gateway", { skip }, () => {
  const gateways: ServiceProcess[] = [];
  const publishers: ServiceProcess[] = [];
  const natsServers: NatsServer[] = [];
  const clients = new Set<HeraldClient>();

  const client = (url: string, token: HeraldClientOptions["token"], opts: Partial<HeraldClientOptions> = {}) => {
    const c = new HeraldClient({
      url,
      token,
      WebSocket: WS,
      backoff: { baseMs: 50, maxMs: 400 },
      drainReconnectMaxMs: 300,
      connectTimeoutMs: 5_000,
      requestTimeoutMs: 5_000,
      ...opts,
    });
    clients.add(c);
    return c;
  };

  const gateway = async (env: Env = {}) => {
    // Tolerance 0: the 4001 tests count on the close coming right at exp.
    const gw = await startGateway({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0.3", JWT_CLOCK_TOLERANCE_SECONDS: "0", ...env });
    gateways.push(gw);
    return gw;
  };

  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop(5_000)));
    await Promise.all(publishers.map((p) => p.stop(5_000)));
    await Promise.all(natsServers.map((n) => n.stop()));
  });

  const allChannels = () => hsToken({ sub: uniqueName("user"), channels: [">"], publish: [">"] });

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
    const errors: HeraldError[] = [];
    a.on("error", (e) => errors.push(e));
    await a.connect();
    const box = inbox(a, channel);
    await a.subscribe(channel);
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
    const errors: HeraldError[] = [];
    writer.on("error", (e) => errors.push(e));
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

  test("token provider: refreshed before exp without dropping the subscription; old connections are closed", async () => {
    const gw = await gateway();
    const channel = uniqueName("refresh");
    const sub = uniqueName("short-lived");
    let calls = 0;
    // 3-second tokens: the gateway closes a socket with 4001 the moment exp passes.
    const provider = async () => {
      calls++;
      return hsToken({ sub, channels: [">"], exp: nowSeconds() + 3 });
    };
    const a = client(gw.wsUrl, provider);
    const states: StateChange[] = [];
    a.on("state", (s) => states.push(s));
    const errors: HeraldError[] = [];
    a.on("error", (e) => errors.push(e));
    await a.connect();
    const box = inbox(a, channel);
    await a.subscribe(channel);
    const b = client(gw.wsUrl, await allChannels());
    await b.connect();

    // Two refreshes (three tokens) spanning more than one token lifetime.
    let tokens = 0;
    a.on("token", () => tokens++);
    await waitFor(() => tokens >= 2, { timeoutMs: 15_000, intervalMs: 50, message: "two token refreshes" });
    assert.ok(calls >= 3, `provider called ${calls} times`);
    await b.publish(channel, "after two refreshes");
    await waitFor(() => box.messages.some((m) => m.data === "after two refreshes"), { message: "message after refreshes" });
    assert.deepEqual(
      states.map((s) => s.state),
      ["connecting", "connected"],
      `never reconnected: ${JSON.stringify(states.map((s) => [s.state, s.error?.code, s.error?.closeCode]))}`,
    );
    assert.deepEqual(errors, []);
    // Only the current connection of `a` and `b` stay open on the gateway.
    await waitFor(async () => (await scrape(gw.url)).get("herald_connections_open") === 2, { message: "two open connections" });
    const closes = await scrape(gw.url);
    assert.equal(closes.get("herald_disconnects_total", { code: "4001" }) ?? 0, 0, "no socket ran into 4001");
  });

  test("token provider: on 4001 the provider is called and the client reconnects and resubscribes", async () => {
    const gw = await gateway();
    const channel = uniqueName("expired");
    const sub = uniqueName("slow-provider");
    let calls = 0;
    let releaseRefresh: () => void = () => {};
    const refreshGate = new Promise<void>((r) => (releaseRefresh = r));
    const provider = async () => {
      calls++;
      if (calls === 1) return hsToken({ sub, channels: [">"], exp: nowSeconds() + 2 });
      // The scheduled refresh hangs until the gateway has closed with 4001.
      if (calls === 2) await refreshGate;
      return hsToken({ sub, channels: [">"], exp: nowSeconds() + 3600 });
    };
    const a = client(gw.wsUrl, provider);
    await a.connect();
    const box = inbox(a, channel);
    await a.subscribe(channel);
    const expired = await nextEvent(a, "state", (s) => s.state === "reconnecting", 10_000);
    assert.equal(expired.error?.closeCode, 4001);
    assert.equal(expired.error?.code, "token_expired");
    const resub = nextEvent(a, "subscribed", (s) => s.channel === channel && s.resubscribed);
    releaseRefresh();
    await resub;
    assert.ok(calls >= 3, `provider called again after 4001 (${calls} calls)`);
    assert.equal(a.state, "connected");
    const b = client(gw.wsUrl, await allChannels());
    await b.connect();
    await b.publish(channel, "after 4001");
    await waitFor(() => box.messages.some((m) => m.data === "after 4001"), { message: "message after 4001" });
  });

  test("terminal: a static token that expires (4001) closes the client with a clear error and no reconnect", async () => {
    const gw = await gateway();
    const counting = countingWebSocket();
    const token = await hsToken({ sub: uniqueName("static"), channels: [">"], exp: nowSeconds() + 2 });
    const a = client(gw.wsUrl, token, { WebSocket: counting.WS, backoff: { baseMs: 1, maxMs: 1 } });
    const errors: HeraldError[] = [];
    a.on("error", (e) => errors.push(e));
    await a.connect();
    await a.subscribe("anything");
    const closed = await nextEvent(a, "state", (s) => s.state === "closed", 10_000);
    assert.equal(closed.error?.code, "token_expired");
    assert.equal(closed.error?.closeCode, 4001);
    assert.equal(closed.error?.terminal, true);
    assert.match(closed.error?.message ?? "", /token provider/);
    assert.equal(a.lastError, closed.error);
    assert.deepEqual(errors.map((e) => e.code), ["token_expired"]);
    await assert.rejects(a.publish("anything", 1), (e: unknown) => e instanceof HeraldError && e.code === "token_expired");
    // No reconnect storm: with a 1 ms backoff any retry would have happened
    // many times within this bounded window.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(counting.attempts(), 1);
    assert.equal(a.state, "closed");
  });

  test("terminal: an expired or forged static token is refused at the upgrade (HTTP 401) after exactly one attempt", async () => {
    const gw = await gateway();
    const expired = await hsToken({ sub: "old", channels: [">"], exp: nowSeconds() - 120, iat: nowSeconds() - 240 });
    const c1 = countingWebSocket();
    const a = client(gw.wsUrl, expired, { WebSocket: c1.WS, backoff: { baseMs: 1, maxMs: 1 } });
    await assert.rejects(a.connect(), (e: unknown) => e instanceof HeraldError && e.code === "token_expired" && e.terminal && e.status === 401);
    assert.equal(a.state, "closed");
    assert.equal(c1.attempts(), 1);

    const forged = await hsToken({ sub: "mallory", channels: [">"] }, { secret: "x".repeat(48) });
    const c2 = countingWebSocket();
    const b = client(gw.wsUrl, forged, { WebSocket: c2.WS, backoff: { baseMs: 1, maxMs: 1 } });
    await assert.rejects(b.connect(), (e: unknown) => e instanceof HeraldError && e.code === "unauthorized" && e.status === 401);
    assert.equal(c2.attempts(), 1);
    assert.equal(b.lastError?.code, "unauthorized");
  });

  test("a provider whose first token is refused gets called again and connects", async () => {
    const gw = await gateway();
    let calls = 0;
    const provider = () => {
      calls++;
      return calls === 1
        ? hsToken({ sub: "p", channels: [">"] }, { secret: "y".repeat(48) })
        : hsToken({ sub: "p", channels: [">"] });
    };
    const a = client(gw.wsUrl, provider);
    await a.connect();
    assert.equal(calls, 2);
    assert.equal(a.state, "connected");
  });

  test("1009 (frame too large): the publish rejects with too_large, the client reconnects and keeps its subscriptions", async () => {
    const gw = await gateway({ MAX_PAYLOAD_BYTES: "1024" });
    const channel = uniqueName("big");
    const a = client(gw.wsUrl, await allChannels());
    const errors: HeraldError[] = [];
    a.on("error", (e) => errors.push(e));
    await a.connect();
    const box = inbox(a, channel);
    await a.subscribe(channel);
    const resub = nextEvent(a, "subscribed", (s) => s.channel === channel && s.resubscribed);
    await assert.rejects(a.publish(channel, "x".repeat(1500)), (e: unknown) => e instanceof HeraldError && e.code === "too_large" && e.closeCode === 1009);
    await resub;
    assert.ok(errors.some((e) => e.code === "too_large"));
    await a.publish(channel, "small");
    await waitFor(() => box.messages.some((m) => m.data === "small"), { message: "message after 1009" });
  });

  test("maxReconnectAttempts: gives up with reconnect_failed when nothing listens", async () => {
    const port = await freePort();
    const a = client(`ws://127.0.0.1:${port}/ws`, await allChannels(), { maxReconnectAttempts: 3, backoff: { baseMs: 5, maxMs: 20 } });
    await assert.rejects(a.connect(), (e: unknown) => e instanceof HeraldError && e.code === "reconnect_failed" && e.terminal);
    assert.equal(a.state, "closed");
  });

  test("recovery: messages published while the client was away are replayed in order after reconnect (since)", async (t) => {
    const nats = await startNats({ jetstream: true });
    natsServers.push(nats);
    const control = natsControlSkipReason(nats);
    if (control) return t.skip(control);
    const port = await freePort();
    const env: Env = { NATS_URL: nats.url, GATEWAY_PORT: String(port), NATS_NAME: uniqueName("gw-recovery") };
    let gw = await gateway(env);
    const apiKey = "k".repeat(32);
    const pub = await startPublisher({ NATS_URL: nats.url, PUBLISHER_API_KEY: apiKey, NATS_NAME: uniqueName("pub-recovery") });
    publishers.push(pub);
    const channel = uniqueName("hist");
    const publish = async (data: unknown) => {
      const res = await fetch(`${pub.url}/v1/channels/${channel}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(data),
      });
      assert.equal(res.status, 202, await res.text());
    };

    const a = client(gw.wsUrl, await allChannels());
    await a.connect();
    const first = nextEvent(a, "subscribed", (s) => s.channel === channel);
    const sub = await a.subscribe(channel);
    if ((await first).seq === undefined) {
      return t.skip("the gateway does not advertise recovery (no seq in the subscribed reply); enable history/JetStream on the server");
    }
    const box = inbox(a, channel);
    const recoveries: unknown[] = [];
    a.on("recovered", (r) => recoveries.push(r));
    await publish({ n: 1 });
    await box.waitFor(1);
    const seenBefore = sub.lastSeq;
    assert.equal(typeof seenBefore, "number");

    gw.kill("SIGKILL");
    await gw.exited;
    await nextEvent(a, "state", (s) => s.state === "reconnecting");
    await publish({ n: 2 });
    await publish({ n: 3 });
    const recovered = nextEvent(a, "recovered", (r) => r.channel === channel);
    gw = await gateway(env);
    const r = await recovered;
    assert.equal(r.since, seenBefore);
    assert.equal(r.recovered, true);
    await box.waitFor(3);
    await publish({ n: 4 });
    await box.waitFor(4);
    assert.deepEqual(box.messages.map((m) => (m.data as { n: number }).n), [1, 2, 3, 4], "in order, nothing lost, no duplicates");
    const seqs = box.messages.map((m) => m.seq as number);
    assert.ok(seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)), `increasing positions ${seqs}`);
    assert.equal(recoveries.length, 1);
  });
});
