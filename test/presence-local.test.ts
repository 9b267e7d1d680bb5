/**
 * Presence on one gateway (issue 12, first step; embedded broker): exact
 * counts of clients and distinct users, member pages that cover every
 * member exactly once while others join and leave, join/leave frames in
 * `join_leave` namespaces, and the refusals (namespace without presence, a
 * channel the token may not subscribe to, a forged cursor, an `info` claim
 * over 1 KiB at the upgrade).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import { HeraldClient, type PresenceEvent } from "@herald/client";
import { WS } from "./helpers/client-gateway.js";
import { waitFor } from "./helpers/wait.js";
import { startGatewayInProcess, type InProcessGateway } from "./helpers/in-process.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { closeAll, connect, expectRejected, type Client, type Frame } from "./helpers/ws.js";

const NAMESPACES = JSON.stringify({ room: { presence: true, join_leave: true }, big: { presence: true }, plain: {} });

describe("presence on one gateway", () => {
  const broker = new MemoryBroker();
  let gw: InProcessGateway;
  const clients: Client[] = [];
  before(async () => {
    gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0", NAMESPACES, MAX_CONNECTIONS_PER_IP: "0" }, { broker });
  });
  after(async () => {
    await closeAll(clients);
    await gw?.close();
    await broker.close();
  });
  const member = async (sub: string, channel: string, info?: Record<string, unknown>) => {
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub, channels: ["room.*", "big.*", "plain.*"], ...(info ? { info } : {}) }) });
    clients.push(c);
    assert.equal((await c.request({ type: "subscribe", channel, id: 1 })).type, "subscribed");
    return c;
  };

  test("counts, members with info, and join/leave frames to the channel", async () => {
    const watcher = await member("watcher", "room.1");
    const a1 = await member("ann", "room.1", { name: "Ann" });
    const joined = await watcher.next((f) => f.type === "join");
    assert.deepEqual(joined, { type: "join", channel: "room.1", sub: "ann", connection: a1.welcome?.["connection"], info: { name: "Ann" } });
    await member("ann", "room.1");
    const stats = await watcher.request({ type: "presence_stats", channel: "room.1", id: 2 });
    assert.deepEqual(stats, { type: "presence_stats", channel: "room.1", id: 2, clients: 3, users: 2 });
    const page = await watcher.request({ type: "presence", channel: "room.1", cursor: null, id: 3 });
    assert.deepEqual([page["clients"], page["users"], page["cursor"], (page["members"] as unknown[]).length], [3, 2, null, 3]);
    assert.deepEqual((page["members"] as Frame[]).find((m) => m["connection"] === a1.welcome?.["connection"]), { sub: "ann", connection: a1.welcome?.["connection"], info: { name: "Ann" } });

    await a1.close();
    const left = await watcher.next((f) => f.type === "leave");
    assert.deepEqual(left, { type: "leave", channel: "room.1", sub: "ann", connection: a1.welcome?.["connection"] });
    assert.deepEqual(await watcher.request({ type: "presence_stats", channel: "room.1", id: 4 }), { type: "presence_stats", channel: "room.1", id: 4, clients: 2, users: 2 });
  });

  test("pages of 1,000 cover every member exactly once while members join and leave", async () => {
    const subs = Array.from({ length: 1200 }, (_, i) => `u${i}`);
    const conns: Client[] = [];
    for (let i = 0; i < subs.length; i += 100) conns.push(...(await Promise.all(subs.slice(i, i + 100).map((s) => member(s, "big.1")))));
    const reader = conns[0]!;
    const first = await reader.request({ type: "presence", channel: "big.1", cursor: null, id: 5 });
    assert.equal((first["members"] as unknown[]).length, 1000);
    assert.equal(typeof first["cursor"], "string");
    // Meanwhile: 50 of the first page leave, 30 newcomers join.
    await Promise.all(conns.slice(1, 51).map((c) => c.close()));
    await Promise.all(Array.from({ length: 30 }, (_, i) => member(`late${i}`, "big.1")));
    const second = await reader.request({ type: "presence", channel: "big.1", cursor: first["cursor"] as string, id: 6 });
    assert.equal(second["cursor"], null);
    const seen = [...(first["members"] as Frame[]), ...(second["members"] as Frame[])].map((m) => m["sub"] as string);
    assert.equal(new Set(seen).size, seen.length, "no member twice");
    for (const s of subs.slice(51)) assert.ok(seen.includes(s), `${s}, present throughout, is listed`);
    assert.equal(seen.filter((s) => s.startsWith("late")).length, 30, "the newcomers follow at the end");
    assert.deepEqual([second["clients"], second["users"]], [1200 - 50 + 30, 1200 - 50 + 30]);
    await Promise.all(conns.map((c) => c.close()));
  });

  test("SDK: presenceStats, presence pages and join/leave events", async () => {
    const make = async (sub: string) => {
      const c = new HeraldClient({ url: gw.wsUrl, token: await hsToken({ sub, channels: ["room.*"], info: { who: sub } }), WebSocket: WS });
      await c.connect();
      await c.subscribe("room.sdk");
      return c;
    };
    const a = await make("sdk-a");
    try {
      const joins: PresenceEvent[] = [];
      const leaves: PresenceEvent[] = [];
      const onSubscription: string[] = [];
      a.on("join", (e) => joins.push(e));
      a.on("leave", (e) => leaves.push(e));
      a.subscription("room.sdk")!.onJoin((e) => onSubscription.push(`join ${e.sub}`));
      a.subscription("room.sdk")!.onLeave((e) => onSubscription.push(`leave ${e.sub}`));
      const b = await make("sdk-b");
      assert.deepEqual(await a.presenceStats("room.sdk"), { channel: "room.sdk", clients: 2, users: 2 });
      const page = await a.presence("room.sdk");
      assert.deepEqual([page.cursor, page.members.map((m) => m.info).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))], [null, [{ who: "sdk-a" }, { who: "sdk-b" }]]);
      b.close();
      await waitFor(() => leaves.length === 1, { timeoutMs: 5000, message: "the leave event" });
      assert.deepEqual([joins.map((j) => [j.sub, j.info]), leaves.map((l) => l.sub)], [[["sdk-b", { who: "sdk-b" }]], ["sdk-b"]]);
      assert.deepEqual(onSubscription, ["join sdk-b", "leave sdk-b"], "the subscription hears them too");
      await assert.rejects(a.presence("plain.x"), (err: { code?: string }) => err.code === "forbidden");
    } finally {
      a.close();
    }
  });

  test("bad input: presence off (forbidden), a channel the token cannot subscribe to (forbidden), a forged cursor (bad_request), info over 1 KiB (401)", async () => {
    const c = await member("eve", "plain.1");
    const off = await c.request({ type: "presence", channel: "plain.1", cursor: null, id: 1 });
    assert.deepEqual([off["code"], /presence is off for namespace "plain"/.test(off["message"] as string)], ["forbidden", true]);
    const narrow = await connect(gw.wsUrl, { token: await hsToken({ sub: "n", channels: ["room.1"] }) });
    clients.push(narrow);
    assert.equal((await narrow.request({ type: "presence_stats", channel: "room.2", id: 2 }))["code"], "forbidden");
    for (const cursor of ["x.AAAA", "1.AAAAAAAAAAAAAAAA", 7]) {
      assert.equal((await c.request({ type: "presence", channel: "room.1", cursor, id: 3 }))["code"], "bad_request", `cursor ${cursor}`);
    }
    const refused = await expectRejected(gw.wsUrl, { token: await hsToken({ sub: "big", channels: ["room.*"], info: { blob: "x".repeat(1100) } }) });
    assert.equal(refused.status, 401);
    assert.match(refused.body, /'info' is \d+ bytes as JSON; at most 1024/);
  });
});
