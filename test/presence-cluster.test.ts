/**
 * Presence across gateways (issue 12): three gateways on a 3-node NATS
 * cluster, members spread over them. Counts and member lists are exact on
 * every gateway after joins and leaves anywhere; pages list every member
 * exactly once while others join and leave elsewhere; a gateway killed with -9
 * has its members gone within PRESENCE_TTL_SECONDS (+5 s), with their leave
 * frames; a NATS node restart loses no presence.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { TestStack } from "./helpers/stack.js";
import { withApiKey } from "./helpers/api-key.js";
import { hsToken } from "./helpers/tokens.js";
import { waitFor } from "./helpers/wait.js";
import type { Client, Frame } from "./helpers/ws.js";

const TTL_SECONDS = 3;
const API_KEY = "presence-cluster-api-key-0123456789ab";
const { call: api } = withApiKey(API_KEY);
const env = {
  NAMESPACES: JSON.stringify({ room: { presence: true, join_leave: true } }),
  HISTORY_STREAM: "PRES_TEST",
  HISTORY_REPLICAS: "3",
  PRESENCE_TTL_SECONDS: String(TTL_SECONDS),
  MAX_CONNECTIONS_PER_IP: "0",
};

describe("presence across three gateways on a 3-node NATS cluster", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  let gateways: ServiceProcess[];
  let pub: ServiceProcess;
  let cluster: Awaited<ReturnType<TestStack["natsCluster"]>>;
  after(() => stack.close());
  before(async () => {
    cluster = await stack.natsCluster(3, { jetstream: true });
    gateways = [await stack.gateway(cluster.nodes[0], env, { timeoutMs: 45_000 })];
    gateways.push(...(await Promise.all([stack.gateway(cluster.nodes[1], env), stack.gateway(cluster.nodes[2], env)])));
    pub = await stack.publisher(cluster.nodes[0], { ...env, PUBLISHER_API_KEY: API_KEY, NAMESPACES: JSON.stringify({ room: { presence: true }, plain: {} }) });
  });

  let n = 0;
  const join = async (gw: ServiceProcess, sub: string, channel: string): Promise<Client> => {
    const c = await stack.connect(gw.wsUrl, { token: await hsToken({ sub, channels: ["room.*"], info: { n: n++ } }) });
    assert.equal((await c.request({ type: "subscribe", channel, id: 1 })).type, "subscribed");
    return c;
  };
  const stats = async (c: Client, channel: string) => {
    const s = await c.request({ type: "presence_stats", channel, id: `s${n++}` });
    return [s["clients"], s["users"]];
  };
  const allMembers = async (c: Client, channel: string): Promise<string[]> => {
    const out: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await c.request({ type: "presence", channel, cursor, id: `p${n++}` });
      out.push(...(page["members"] as Frame[]).map((m) => m["connection"] as string));
      cursor = page["cursor"] as string | null;
    } while (cursor !== null);
    return out.sort();
  };
  /** Waits until every client in `askers` sees `expected` [clients, users]. */
  const converge = (askers: Client[], channel: string, expected: [number, number]) =>
    waitFor(async () => {
      for (const c of askers) if (JSON.stringify(await stats(c, channel)) !== JSON.stringify(expected)) return false;
      return true;
    }, { timeoutMs: 10_000, intervalMs: 100, message: `every gateway sees ${expected} on ${channel}` });

  test("counts and member lists are exact on every gateway after joins and leaves spread over the gateways", async () => {
    const watchers = await Promise.all(gateways.map((g, i) => join(g, `watch${i}`, "room.a")));
    // Seven members of five users over the three gateways (plus the three watchers).
    const members = [await join(gateways[0]!, "u1", "room.a"), await join(gateways[1]!, "u1", "room.a"), await join(gateways[2]!, "u2", "room.a")];
    members.push(await join(gateways[0]!, "u3", "room.a"), await join(gateways[1]!, "u4", "room.a"), await join(gateways[2]!, "u5", "room.a"), await join(gateways[2]!, "u5", "room.a"));
    await converge(watchers, "room.a", [10, 8]);
    const expected = [...watchers, ...members].map((c) => c.welcome?.["connection"] as string).sort();
    for (const w of watchers) assert.deepEqual(await allMembers(w, "room.a"), expected);
    // A join on gateway 2 reaches a watcher on gateway 0 as a join frame.
    const late = await join(gateways[2]!, "u6", "room.a");
    const joined = await watchers[0]!.next((f) => f.type === "join" && f["connection"] === late.welcome?.["connection"]);
    assert.deepEqual([joined["sub"], typeof (joined["info"] as { n: number }).n], ["u6", "number"]);
    // Leaves on two gateways.
    await members[0]!.close();
    await members[6]!.close();
    await late.close();
    await converge(watchers, "room.a", [8, 8]); // u1 and u5 still have a connection each; u6 left
    const left = await watchers[1]!.next((f) => f.type === "leave" && f["connection"] === members[0]!.welcome?.["connection"]);
    assert.equal(left["sub"], "u1");
  });

  test("pages cover every member exactly once while members join and leave on other gateways", async () => {
    const conns: Client[] = [];
    for (let i = 0; i < 1500; i += 150) conns.push(...(await Promise.all(Array.from({ length: 150 }, (_, k) => join(gateways[(i + k) % 3]!, `pg${i + k}`, "room.pages")))));
    const reader = await join(gateways[0]!, "pg-reader", "room.pages");
    await converge([reader], "room.pages", [1501, 1501]);
    const first = await reader.request({ type: "presence", channel: "room.pages", cursor: null, id: "pg1" });
    const firstPage = first["members"] as Frame[];
    assert.deepEqual([firstPage.length, typeof first["cursor"]], [1000, "string"]);
    // Between the pages: 60 members of the first page leave (20 per gateway), 30 newcomers join on gateways 1 and 2.
    const onFirstPage = new Set(firstPage.map((m) => m["connection"]));
    const leaving = conns.filter((c) => onFirstPage.has(c.welcome?.["connection"])).slice(0, 60);
    await Promise.all(leaving.map((c) => c.close()));
    const late = await Promise.all(Array.from({ length: 30 }, (_, i) => join(gateways[1 + (i % 2)]!, `pg-late${i}`, "room.pages")));
    await converge([reader], "room.pages", [1501 - 60 + 30, 1501 - 60 + 30]);
    const rest: Frame[] = [];
    let cursor = first["cursor"] as string | null;
    while (cursor !== null) {
      const page = await reader.request({ type: "presence", channel: "room.pages", cursor, id: `pg${n++}` });
      rest.push(...(page["members"] as Frame[]));
      cursor = page["cursor"] as string | null;
    }
    const seen = [...firstPage, ...rest].map((m) => m["connection"] as string);
    assert.equal(new Set(seen).size, seen.length, "no member listed twice");
    const gone = new Set(leaving.map((c) => c.welcome?.["connection"]));
    for (const c of [reader, ...conns]) {
      const id = c.welcome?.["connection"] as string;
      if (!gone.has(id)) assert.ok(seen.includes(id), `${id}, present throughout, is listed`);
    }
    const lateIds = late.map((c) => c.welcome?.["connection"] as string);
    assert.deepEqual(rest.slice(-30).map((m) => m["connection"]).sort(), [...lateIds].sort(), "the newcomers follow at the end");
    await Promise.all([reader, ...conns, ...late].map((c) => c.close()));
  });

  test("server API: stats and pages of a channel's members over the gateways; bad input", async () => {
    const conns = await Promise.all(Array.from({ length: 30 }, (_, i) => join(gateways[i % 3]!, `api${i % 20}`, "room.api")));
    // The server API asks any one gateway: wait until each of the three has every member.
    await converge([conns[0]!, conns[1]!, conns[2]!], "room.api", [30, 20]);
    const stats = await api(pub.url, "GET", "/v1/channels/room.api/presence/stats");
    assert.deepEqual(stats, { status: 200, body: { channel: "room.api", clients: 30, users: 20 } });
    const first = await api(pub.url, "GET", "/v1/channels/room.api/presence");
    assert.deepEqual([first.status, first.body["clients"], (first.body["members"] as unknown[]).length, first.body["cursor"]], [200, 30, 30, null]);
    const listed = (first.body["members"] as Frame[]).map((m) => m["connection"]).sort();
    assert.deepEqual(listed, conns.map((c) => c.welcome?.["connection"]).sort());
    for (const [path, code] of [
      ["/v1/channels/plain.1/presence", "bad_request"],
      ["/v1/channels/room.api/presence?cursor=bm90LWEtY3Vyc29y", "bad_request"],
      ["/v1/channels/nowhere.1/presence/stats", "invalid_channel"],
    ] as const) {
      const res = await api(pub.url, "GET", path);
      assert.deepEqual([res.status, (res.body["error"] as { code: string }).code], [400, code], path);
    }
    await Promise.all(conns.map((c) => c.close()));
  });

  test("a NATS node restart loses no presence", async () => {
    const watchers = await Promise.all(gateways.map((g, i) => join(g, `nr${i}`, "room.b")));
    await Promise.all(gateways.map((g, i) => join(g, `nm${i}`, "room.b")));
    await converge(watchers, "room.b", [6, 6]);
    await cluster.nodes[1]!.restart();
    // A member joins while the gateways reconnect; nothing is lost either way.
    await join(gateways[0]!, "after-restart", "room.b");
    await converge(watchers, "room.b", [7, 7]);
  });

  test("kill -9 of a gateway: its members leave every other gateway within the TTL (+5 s), with leave frames", async (t) => {
    const watchers = [await join(gateways[0]!, "k-w0", "room.c"), await join(gateways[1]!, "k-w1", "room.c")];
    const doomed = await Promise.all([join(gateways[2]!, "k-d1", "room.c"), join(gateways[2]!, "k-d2", "room.c")]);
    await converge(watchers, "room.c", [4, 4]);
    const killedAt = Date.now();
    gateways[2]!.kill("SIGKILL");
    await gateways[2]!.exited;
    await converge(watchers, "room.c", [2, 2]);
    const tookMs = Date.now() - killedAt;
    assert.ok(tookMs <= (TTL_SECONDS + 5) * 1000, `members gone ${tookMs} ms after the kill`);
    t.diagnostic(`members of the killed gateway gone after ${tookMs} ms (TTL ${TTL_SECONDS} s)`);
    for (const d of doomed) await watchers[0]!.next((f) => f.type === "leave" && f["connection"] === d.welcome?.["connection"]);
  });
});
