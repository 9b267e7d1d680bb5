/**
 * The NATS broker's subscriptions are LiteSubscriptions registered with
 * nats.js' protocol handler (packages/broker/src/lite-subscription.ts), not
 * nats.js' own SubscriptionImpl. Against a real nats-server: messages arrive,
 * the server's interest follows subscribe and unsubscribe, a NATS restart
 * replays them, and drain ends them. The first test fails when a nats.js
 * upgrade no longer has the shape the lite path knows (the broker then falls
 * back to nc.subscribe, which is correct but heavier).
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { NatsBroker, type BrokerMessage, type BrokerSubscription } from "@herald/broker";
import { createLogger } from "@herald/core";
import { spawnNats } from "./helpers/nats.js";
import { waitFor } from "./helpers/wait.js";

const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const stop of stops.reverse()) await stop().catch(() => {});
});

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (m: BrokerMessage) => new TextDecoder().decode(m.data);

async function subscriptionCount(monitorUrl: string): Promise<number> {
  const res = await fetch(`${monitorUrl}/subsz`);
  return ((await res.json()) as { num_subscriptions: number }).num_subscriptions;
}

async function setUp() {
  const nats = await spawnNats();
  stops.push(() => nats.stop());
  const broker = new NatsBroker({ servers: [nats.url], name: "lite-test", logger: createLogger("test", "silent") });
  stops.push(() => broker.close());
  await waitFor(() => broker.connected, { timeoutMs: 10_000, message: "broker connected" });
  return { nats, broker, monitor: nats.monitorUrl! };
}

function collect(broker: NatsBroker, subject: string): { sub: BrokerSubscription; got: string[] } {
  const got: string[] = [];
  return { sub: broker.subscribe(subject, (m) => got.push(text(m))), got };
}

test("subscriptions are lite, get their messages, and the server's interest follows them", async () => {
  const { broker, monitor } = await setUp();
  const base = await subscriptionCount(monitor);
  const subs = ["herald.user.a", "herald.user.b", "herald.ch.room"].map((s) => collect(broker, s));
  await Promise.all(subs.map((s) => s.sub.ready));
  const natsSub = (subs[0]!.sub as unknown as { sub?: object }).sub;
  assert.equal(natsSub?.constructor.name, "LiteSubscription", "the broker subscribes with LiteSubscription under this nats.js");
  assert.equal(await subscriptionCount(monitor), base + 3);

  await broker.publish("herald.user.a", bytes("to a"));
  await broker.publish("herald.ch.room", bytes("to room"));
  await waitFor(() => subs[0]!.got.length === 1 && subs[2]!.got.length === 1, { timeoutMs: 5000, message: "messages delivered" });
  assert.deepEqual(subs.map((s) => s.got), [["to a"], [], ["to room"]]);

  subs[0]!.sub.unsubscribe();
  await waitFor(async () => (await subscriptionCount(monitor)) === base + 2, { timeoutMs: 5000, message: "interest removed" });
  await broker.publish("herald.user.a", bytes("after unsubscribe"));
  await broker.publish("herald.user.b", bytes("to b"));
  await waitFor(() => subs[1]!.got.length === 1, { timeoutMs: 5000, message: "b delivered" });
  assert.deepEqual(subs[0]!.got, ["to a"], "nothing after unsubscribe");
});

test("a NATS restart replays every lite subscription", async () => {
  const { nats, broker, monitor } = await setUp();
  const subs = Array.from({ length: 50 }, (_, i) => collect(broker, `herald.user.u${i}`));
  await Promise.all(subs.map((s) => s.sub.ready));
  subs[7]!.sub.unsubscribe();
  await nats.restart();
  await waitFor(() => broker.connected, { timeoutMs: 15_000, message: "reconnected" });
  await waitFor(async () => (await subscriptionCount(monitor)) >= 49, { timeoutMs: 10_000, message: "49 subscriptions replayed" });
  for (let i = 0; i < 50; i++) await broker.publish(`herald.user.u${i}`, bytes(`m${i}`));
  await waitFor(() => subs.filter((s, i) => i !== 7 && s.got.length === 1).length === 49, { timeoutMs: 5000, message: "every replayed subscription delivered" });
  assert.deepEqual(subs[7]!.got, [], "the one unsubscribed before the restart stays off");
});

test("drain ends lite subscriptions and closes the connection", async () => {
  const { broker } = await setUp();
  const subs = Array.from({ length: 20 }, (_, i) => collect(broker, `herald.user.d${i}`));
  await Promise.all(subs.map((s) => s.sub.ready));
  await broker.drain();
  assert.equal(broker.connected, false);
});
