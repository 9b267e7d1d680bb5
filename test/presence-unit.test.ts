/**
 * Presence pieces on their own: the registry's counts and pages against a
 * plain model under random joins and leaves (holes and compaction
 * included), and a snapshot applied over a copy that only joins and leaves
 * the differences (no spurious leave/join frames for members that stayed).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Subjects, createGatewayMetrics, createLogger, newRegistry, readHistoryConfig, readNamespaces } from "@herald/core";
import { MemoryBroker } from "@herald/broker";
import { PresenceShare, type ShareTarget, type WireMember } from "../services/gateway/src/presence-share.js";
import { waitFor } from "./helpers/wait.js";
import { PresenceRegistry } from "../services/gateway/src/presence-registry.js";
import { Presence } from "../services/gateway/src/presence.js";

test("registry: counts and a full page walk match a model under random joins and leaves", () => {
  const r = new PresenceRegistry();
  const model = new Map<string, string>(); // connection -> sub
  let seed = 7;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  for (let step = 0; step < 20_000; step++) {
    const connection = `c${rand(3000)}`;
    if (model.has(connection) && rand(2) === 0) {
      assert.ok(r.leave("ch", connection));
      model.delete(connection);
    } else if (!model.has(connection)) {
      const sub = `u${rand(500)}`;
      assert.ok(r.join("ch", sub, connection, undefined, "gw"));
      model.set(connection, sub);
    }
  }
  assert.deepEqual(r.stats("ch"), { clients: model.size, users: new Set(model.values()).size });
  const seen: string[] = [];
  let after = 0;
  for (;;) {
    const page = r.page("ch", after, 250);
    seen.push(...page.members.map((m) => m.connection));
    if (!page.more) break;
    after = page.members[page.members.length - 1]!.seq;
  }
  assert.deepEqual(seen.sort(), [...model.keys()].sort());
  assert.equal(r.membersOf("gw").length, model.size);
});

test("a snapshot over a copy joins and leaves only the differences", () => {
  const frames: string[] = [];
  const namespaces = readNamespaces({ NAMESPACES: JSON.stringify({ room: { presence: true, join_leave: true } }) }, readHistoryConfig({}));
  const presence = new Presence({
    self: "me",
    namespaces,
    sink: { publish: (_topic, frame) => frames.push(JSON.parse(frame.toString()).type + ":" + JSON.parse(frame.toString()).connection), subscribers: () => 1 },
    metrics: createGatewayMetrics(newRegistry()),
    error: () => {},
  });
  presence.remoteJoin("peer", ["room.1", "a", "ua"]);
  presence.remoteJoin("peer", ["room.1", "b", "ub"]);
  frames.length = 0;
  presence.replaceOrigin("peer", [["room.1", "b", "ub"], ["room.1", "c", "uc"]]);
  assert.deepEqual(frames.sort(), ["join:c", "leave:a"]);
  presence.dropOrigin("peer");
  assert.deepEqual(frames.sort(), ["join:c", "leave:a", "leave:b", "leave:c"]);
});

test("share: a snapshot asked for before newer changes arrived does not take them back", async () => {
  // B starts (and asks every gateway for its members: an answer gathered over
  // the whole snapshot timeout) just before A's members join. A's first
  // change batch makes B read A again, sooner; the older, empty answer of
  // the first read lands after it and must not empty B's copy.
  const broker = new MemoryBroker();
  let gathers = 0;
  const counted = new Proxy(broker, {
    get(target, key, receiver) {
      if (key !== "gather") return Reflect.get(target, key, receiver);
      return (...args: Parameters<MemoryBroker["gather"]>) => target.gather(...args).finally(() => gathers++);
    },
  });
  const copy = (own: WireMember[]) => {
    const remote = new Map<string, WireMember>();
    const target: ShareTarget = {
      remoteJoin: (_o, m) => void remote.set(m[1], m),
      remoteLeave: (_c, connection) => void remote.delete(connection),
      dropOrigin: () => remote.clear(),
      replaceOrigin: (_o, members) => {
        remote.clear();
        for (const m of members) remote.set(m[1], m);
      },
      ownMembers: () => own,
    };
    return { remote, target };
  };
  const opts = { subjects: new Subjects("herald"), logger: createLogger("test", "error"), ttlMs: 30_000, metrics: createGatewayMetrics(newRegistry()) };
  const ownA: WireMember[] = [];
  const a = new PresenceShare({ ...opts, broker, self: "a", target: copy(ownA).target });
  const b = copy([]);
  const shareB = new PresenceShare({ ...opts, broker: counted, self: "b", target: b.target });
  a.start();
  shareB.start();
  for (let i = 0; i < 50; i++) {
    const m: WireMember = ["room.1", `c${i}`, `u${i}`];
    ownA.push(m);
    a.localJoin(m);
  }
  await waitFor(() => gathers >= 2, { timeoutMs: 10_000, message: "both of B's reads of A are over" });
  assert.equal(b.remote.size, 50);
  a.stop();
  shareB.stop();
});
