/**
 * The presence benchmark, coordinator side. `count` sockets over N gateways,
 * each a member of one big channel (`pres.all`: `count` members) and of one
 * of `rooms` small ones (`room.<i % rooms>`, join_leave on). Measured:
 * - what presence costs: gateway RSS growth over the same connect
 *   without presence (the `herald-nopresence` run), per member held;
 * - NATS messages presence sends (`<prefix>.pres.>`) while connecting and
 *   while idle, per gateway per second per 1,000 members;
 * - `presence_stats` and `presence` page round trips (client frames, each
 *   gateway in turn), and that counts and pages are exact;
 * - join-to-event and leave-to-event: a watcher on gateway 0 in small rooms,
 *   joiners on the other gateways, timed in this process.
 */
import { connect } from "nats";
import { Subjects } from "../../packages/core/src/subjects.js";
import { Histogram } from "./hdr.js";
import { signHs256 } from "./jwt.js";
import type { LoadGen } from "./loadgen.js";
import { sampleAll } from "./procstat.js";
import { PresenceProbe } from "./presence-probe.js";
import type { RunningTarget } from "./targets.js";
import { now } from "./wsclient.js";

export const BIG_CHANNEL = "pres.all";
export const ROOM_PREFIX = "room";
/** The benchmark's namespaces: presence on both (or neither), join/leave frames in the small rooms only (when asked). */
export const presenceNamespaces = (presence: boolean, joinLeave: boolean) =>
  JSON.stringify({ pres: { presence }, [ROOM_PREFIX]: { presence, join_leave: presence && joinLeave }, "": {} });

export interface PresenceBenchOptions {
  count: number;
  rooms: number;
  presence: boolean;
  joinLeave: boolean;
  statsSamples: number;
  pageWalks: number;
  joinSamples: number;
  idleSeconds: number;
  settleMs: number;
  log: (s: string) => void;
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => +(b / 2 ** 20).toFixed(1);

/** Counts what the gateways publish on `<prefix>.pres.>`, by kind (the subject's last token). */
async function presenceTraffic(url: string, prefix: string) {
  const nc = await connect({ servers: url, name: "herald-bench-presence-counter" });
  const counts: Record<string, { msgs: number; bytes: number }> = {};
  const sub = nc.subscribe(`${new Subjects(prefix).presenceDeltas().replace(/\.delta$/, "")}.>`, {
    callback: (_err, m) => {
      const kind = m.subject.slice(m.subject.lastIndexOf(".") + 1);
      const c = (counts[kind] ??= { msgs: 0, bytes: 0 });
      c.msgs++;
      c.bytes += m.data.length;
    },
  });
  return {
    take(): Record<string, { msgs: number; bytes: number }> {
      const out = structuredClone(counts);
      for (const k of Object.keys(counts)) delete counts[k];
      return out;
    },
    async close() {
      sub.unsubscribe();
      await nc.close();
    },
  };
}

const total = (c: Record<string, { msgs: number; bytes: number }>) => Object.values(c).reduce((a, v) => ({ msgs: a.msgs + v.msgs, bytes: a.bytes + v.bytes }), { msgs: 0, bytes: 0 });

export async function runPresenceBench(t: RunningTarget, lg: LoadGen, o: PresenceBenchOptions, notes: string[]): Promise<Record<string, unknown>[]> {
  const gateways = t.spec.endpoints.length;
  const traffic = await presenceTraffic((t.spec.publish as { url: string }).url, t.spec.subjectPrefix);
  // One measuring connection per gateway (members of nothing until the join test).
  const token = (sub: string) => signHs256(t.spec.secret!, { sub, channels: [">"] });
  const probes = o.presence ? await Promise.all(t.spec.endpoints.map((ep, g) => PresenceProbe.open(ep, token(`probe-${g}`), `127.0.0.${250 - g}`))) : [];
  try {
    await settle(o.settleMs / 4);
    const rss0 = sampleAll(t.spec.serverPids).rssBytes;
    traffic.take();
    const c = await lg.connect({ count: o.count, rate: 0, inflight: 300, shape: { kind: "presence", channel: BIG_CHANNEL, rooms: o.rooms, prefix: ROOM_PREFIX }, probeEvery: 1e9, timeoutMs: 300_000 });
    notes.push(`${t.spec.name}: ${c.ready}/${o.count} members connected in ${c.seconds.toFixed(1)} s over ${gateways} gateways (${c.failed} failed).`);
    const convergedMs = probes.length ? await converged(probes, c.ready) : undefined;
    await settle(o.settleMs);
    const connectTraffic = total(traffic.take());
    const rss1 = sampleAll(t.spec.serverPids).rssBytes;
    const snaps = await lg.snapshots();
    const membersHeld = o.presence ? 2 * c.ready : 0; // every gateway holds every member of both channels
    const row: Record<string, unknown> = {
      target: t.spec.name,
      gateways,
      connections: c.ready,
      failed: c.failed,
      connectSeconds: +c.seconds.toFixed(1),
      connectionsPerSecond: Math.round(c.perSecond),
      serverCpuMsPerConnection: c.ready ? +((c.serverCpuSeconds * 1000) / c.ready).toFixed(3) : null,
      brokerCpuMsPerConnection: c.ready ? +((c.brokerCpuSeconds * 1000) / c.ready).toFixed(3) : null,
      ...(convergedMs === undefined ? {} : { allGatewaysExactAfterMs: convergedMs }),
      membersPerGateway: membersHeld,
      rssGrowthMiBPerGateway: mib((rss1 - rss0) / gateways),
      // nothing is published in this scenario: every frame after the subscribes is a join or leave (plain sockets count frames without parsing them)
      joinLeaveFramesReceived: snaps.reduce((a, s) => a + s.presenceEvents + s.msgs + s.pausedMsgs, 0),
      presenceMsgsWhileConnecting: connectTraffic.msgs,
      presenceMiBWhileConnecting: mib(connectTraffic.bytes),
    };
    // idle: what keeping the members costs NATS
    traffic.take();
    const t0 = Date.now();
    await settle(o.idleSeconds * 1000);
    const idle = total(traffic.take());
    const idleSeconds = (Date.now() - t0) / 1000;
    row["presenceMsgsPerGatewayPerSecondIdle"] = +(idle.msgs / gateways / idleSeconds).toFixed(3);
    row["presenceBytesPerGatewayPerSecondIdle"] = Math.round(idle.bytes / gateways / idleSeconds);
    if (membersHeld) row["idleMsgsPerGatewayPerSecondPer1000Members"] = +(idle.msgs / gateways / idleSeconds / ((c.ready / gateways) / 1000)).toFixed(4);
    if (o.presence) Object.assign(row, await queries(probes, o, c.ready, notes));
    return [row];
  } finally {
    for (const p of probes) p.close();
    await traffic.close();
  }
}

/** Polls every gateway's presence_stats of the big channel until each counts all `members`; ms from the end of the connect (-1: not within 60 s). */
async function converged(probes: PresenceProbe[], members: number): Promise<number> {
  const t0 = now();
  while (now() - t0 < 60_000) {
    const counts = await Promise.all(probes.map(async (p) => (await p.ok({ type: "presence_stats", channel: BIG_CHANNEL })).reply["clients"]));
    if (counts.every((n) => n === members)) return Math.round(now() - t0);
    await settle(100);
  }
  return -1;
}

/** Stats and page round trips on every gateway, exactness checks, and join/leave-to-event latency. */
async function queries(probes: PresenceProbe[], o: PresenceBenchOptions, members: number, notes: string[]): Promise<Record<string, unknown>> {
  // exact counts on every gateway (the probes are not members: they subscribe to nothing yet)
  const wrong: string[] = [];
  for (const [g, p] of probes.entries()) {
    const big = (await p.ok({ type: "presence_stats", channel: BIG_CHANNEL })).reply;
    if (big["clients"] !== members || big["users"] !== members) wrong.push(`gw${g} ${BIG_CHANNEL}: ${big["clients"]}/${big["users"]}`);
    for (const r of [g, o.rooms - 1 - g]) {
      const room = (await p.ok({ type: "presence_stats", channel: `${ROOM_PREFIX}.${r}` })).reply;
      const want = Math.floor(members / o.rooms) + (r < members % o.rooms ? 1 : 0);
      if (room["clients"] !== want) wrong.push(`gw${g} ${ROOM_PREFIX}.${r}: ${room["clients"]} of ${want}`);
    }
  }
  notes.push(wrong.length ? `counts NOT exact: ${wrong.join("; ")}` : `counts exact on all ${probes.length} gateways (${BIG_CHANNEL}: ${members} clients and users; rooms: ${members / o.rooms}).`);

  const stats = new Histogram();
  for (let k = 0; k < o.statsSamples; k++) stats.recordUs(Math.round((await probes[k % probes.length]!.ok({ type: "presence_stats", channel: BIG_CHANNEL })).ms * 1000));

  const pages = new Histogram();
  const coverage: string[] = [];
  for (let w = 0; w < o.pageWalks; w++) {
    const p = probes[w % probes.length]!;
    const seen = new Set<string>();
    let dups = 0;
    let cursor: unknown = null;
    let n = 0;
    do {
      const r = await p.ok({ type: "presence", channel: BIG_CHANNEL, cursor });
      pages.recordUs(Math.round(r.ms * 1000));
      for (const m of r.reply["members"] as { connection: string }[]) seen.has(m.connection) ? dups++ : seen.add(m.connection);
      cursor = r.reply["cursor"];
      n++;
    } while (cursor !== null);
    coverage.push(`walk ${w + 1} on gw${w % probes.length}: ${n} pages, ${seen.size} members, ${dups} duplicates`);
  }
  notes.push(`member pages of ${BIG_CHANNEL}: ${coverage.join("; ")}.`);

  const events = o.joinLeave ? await joinLatency(probes, o) : {};
  const s = stats.summaryMs();
  const pg = pages.summaryMs();
  return {
    statsSamples: o.statsSamples,
    statsP50Ms: s.p50,
    statsP99Ms: s.p99,
    statsMaxMs: s.max,
    pages: o.pageWalks * Math.ceil(members / 1000),
    pageP50Ms: pg.p50,
    pageP99Ms: pg.p99,
    pageMaxMs: pg.max,
    ...events,
  };
}

/**
 * A watcher on gateway 0 joins `joinSamples` distinct rooms; joiners (one per
 * other gateway) then subscribe to and leave those rooms in turn. Latency:
 * the joiner's subscribe (or unsubscribe) sent -> the watcher's join (leave)
 * frame for that connection received.
 */
async function joinLatency(probes: PresenceProbe[], o: PresenceBenchOptions): Promise<Record<string, unknown>> {
  const [watcher, ...joiners] = probes;
  if (!watcher || joiners.length === 0) return {};
  const rooms = Math.min(o.joinSamples, o.rooms, 90); // a connection may hold 100 channels (MAX_CHANNELS_PER_CONNECTION's default)
  await Promise.all(Array.from({ length: rooms }, (_, r) => watcher.ok({ type: "subscribe", channel: `${ROOM_PREFIX}.${r}` })));
  const join = new Histogram();
  const leave = new Histogram();
  let pending: { type: string; connection: string; channel: string; t0: number; done: () => void } | undefined;
  watcher.onEvent = (f, at) => {
    if (pending && f.type === pending.type && f["connection"] === pending.connection && f["channel"] === pending.channel) {
      (f.type === "join" ? join : leave).recordUs(Math.round((at - pending.t0) * 1000));
      pending.done();
    }
  };
  const timed = (type: string, joiner: PresenceProbe, channel: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} frame for ${channel} within 10 s`)), 10_000);
      pending = { type, connection: joiner.connection, channel, t0: now(), done: () => (clearTimeout(timer), resolve()) };
      void joiner.ok({ type: type === "join" ? "subscribe" : "unsubscribe", channel }).catch(reject);
    });
  for (let k = 0; k < o.joinSamples; k++) {
    const joiner = joiners[k % joiners.length]!;
    const channel = `${ROOM_PREFIX}.${k % rooms}`;
    await timed("join", joiner, channel);
    await timed("leave", joiner, channel);
  }
  watcher.onEvent = undefined;
  const j = join.summaryMs();
  const l = leave.summaryMs();
  return { joinSamples: o.joinSamples, joinToEventP50Ms: j.p50, joinToEventP99Ms: j.p99, leaveToEventP50Ms: l.p50, leaveToEventP99Ms: l.p99 };
}
