/**
 * The reconnect avalanche, coordinator side: resilient clients (see
 * resilient.ts) on N Herald gateways in recovery mode, a publisher running
 * the whole time, then one gateway SIGKILLed and, once its clients are back,
 * another SIGTERMed (drain). Per event: how many clients were displaced, how
 * fast they were recovered, the peak reconnect rate and the survivors' CPU;
 * over the run: messages lost or duplicated on any client.
 */
import { Histogram } from "./hdr.js";
import type { LoadGen } from "./loadgen.js";
import { sampleAll } from "./procstat.js";
import type { ResilientStats } from "./protocol.js";
import { Publisher } from "./publisher.js";
import type { RunningTarget } from "./targets.js";
import { now } from "./wsclient.js";

export interface AvalancheOptions {
  count: number;
  groups: number;
  rate: number;
  size: number;
  drainSeconds: number;
  /** Per event: give up waiting for recovery after this long (plus the drain window for SIGTERM). */
  eventTimeoutMs: number;
  log: (s: string) => void;
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

function merged(stats: ResilientStats[], key: "fromEvent" | "fromDrop"): Histogram {
  const h = new Histogram();
  for (const s of stats) h.addSparse(s[key]);
  return h;
}

/** Runs the connect, both events and the final loss check; returns one row per event plus the run totals. */
export async function runAvalanche(t: RunningTarget, lg: LoadGen, o: AvalancheOptions, notes: string[]): Promise<Record<string, unknown>[]> {
  const servers = t.servers;
  if (!servers || t.spec.serverPids.length < 2) throw new Error("the avalanche needs at least 2 restartable gateway processes");
  const n = t.spec.serverPids.length;
  const c = await lg.connect({ count: o.count, rate: 0, inflight: 500, shape: { kind: "group-of", groups: o.groups }, probeEvery: 100, resilient: true });
  notes.push(`${t.spec.name}: ${c.ready}/${o.count} clients subscribed in ${c.seconds.toFixed(1)} s (${c.failed} failed) over ${n} gateways.`);
  if (c.ready < o.count * 0.99) throw new Error(`only ${c.ready}/${o.count} clients connected`);

  const pub = await Publisher.open(t.spec.publish);
  let stopPub = false;
  const channels = Array.from({ length: o.groups }, (_, g) => `g.${g}`);
  const pubRun = pub.run({ rate: o.rate, size: o.size, seconds: 3600, channels, until: () => stopPub });
  const rows: Record<string, unknown>[] = [];
  try {
    await settle(2000); // every client has messages (and positions) before the first event
    const plan: { signal: "SIGKILL" | "SIGTERM"; gw: number }[] = [
      { signal: "SIGKILL", gw: 0 },
      { signal: "SIGTERM", gw: 1 },
    ];
    for (const [k, ev] of plan.entries()) {
      if (k > 0) {
        // The killed gateway comes back (a restarted pod) before the drain, so the
        // survivors of the second event stay under the 18k-sockets-per-process budget.
        const p = await servers.respawn(plan[0]!.gw);
        notes.push(`before the drain, gateway #${plan[0]!.gw} was started again (pid ${p.pid}, empty), as a restarted pod would be.`);
        await settle(1000);
      }
      rows.push(await oneEvent(t, lg, pub, o, ev.signal, ev.gw, n));
    }
  } finally {
    stopPub = true;
    await pubRun;
  }
  await settle(3000); // the last messages reach every client
  const published = pub.counts();
  await pub.close();
  const end = await lg.resilientStats(published);
  const totalPublished = sum(Object.values(published));
  rows.push({
    target: t.spec.name,
    event: "whole run",
    published: totalPublished,
    tracked: sum(end.map((s) => s.tracked)),
    expectedDeliveries: totalPublished * (o.count / o.groups),
    lost: sum(end.map((s) => s.lost)) + sum(end.map((s) => s.missingAtEnd)),
    gapLost: sum(end.map((s) => s.lost)),
    missingAtEnd: sum(end.map((s) => s.missingAtEnd)),
    missingUnrecovered: sum(end.map((s) => s.missingUnrecovered)),
    duplicates: sum(end.map((s) => s.dups)),
    prevMismatch: sum(end.map((s) => s.prevMismatch)),
    subscribedAtEnd: sum(end.map((s) => sum(s.perEndpoint))),
    perGatewayAtEnd: end.reduce((acc, s) => acc.map((v, i) => v + (s.perEndpoint[i] ?? 0)), Array<number>(n).fill(0)).join(" / "),
  });
  // What the gateways themselves said (LOG_LEVEL=warn): evidence for problems in Herald
  for (let i = 0; i < n; i++) {
    const p = servers.proc(i);
    const bad = p.logs.filter((l) => /"level":(4|5|6)0|error|warn/i.test(l));
    if (bad.length) notes.push(`${p.name}: ${bad.length} warn/error log lines, e.g. ${bad.slice(0, 2).map((l) => l.slice(0, 240)).join(" | ")}`);
  }
  return rows;
}

async function oneEvent(t: RunningTarget, lg: LoadGen, pub: Publisher, o: AvalancheOptions, signal: "SIGKILL" | "SIGTERM", gw: number, n: number): Promise<Record<string, unknown>> {
  const servers = t.servers!;
  const before = await lg.resilientStats();
  const expected = sum(before.map((s) => s.perEndpoint[gw] ?? 0));
  const survivors = Array.from({ length: n }, (_, i) => servers.proc(i)).filter((p, i) => i !== gw && p.alive);
  const victim = servers.proc(gw);
  const label = `${signal} gateway #${gw}`;
  // Workers learn the event time first; the signal goes at that planned instant.
  const tKill = now() + 100;
  await lg.event(tKill, pub.counts());
  await settle(Math.max(0, tKill - now()));
  const cpu0 = sampleAll(survivors.map((p) => p.pid));
  const broker0 = sampleAll(t.spec.brokerPids);
  const gen0 = sampleAll(lg.workerPids);
  const w0 = now();
  victim.kill(signal);
  o.log(`  [avalanche] ${label}: ${expected} clients on it, ${survivors.length} survivors`);
  const deadline = Date.now() + o.eventTimeoutMs + (signal === "SIGTERM" ? o.drainSeconds * 1000 : 0);
  let stats = before;
  let exitedAt = 0;
  let lastDisplaced = -1;
  let stableSince = Date.now();
  let lastLog = 0;
  let timedOut = false;
  for (;;) {
    await settle(250);
    stats = await lg.resilientStats();
    const displaced = sum(stats.map((s) => s.displaced));
    const settled = sum(stats.map((s) => s.recovered + s.gaveUp));
    if (!victim.alive && !exitedAt) exitedAt = Date.now();
    if (displaced !== lastDisplaced) {
      lastDisplaced = displaced;
      stableSince = Date.now();
    }
    if (Date.now() - lastLog > 2000) {
      lastLog = Date.now();
      o.log(`  [avalanche] ${label}: ${displaced}/${expected} displaced, ${sum(stats.map((s) => s.recovered))} recovered, ${sum(stats.map((s) => s.gaveUp))} gave up`);
    }
    // everyone displaced (or the victim is gone and no more drops came for 3 s) and each settled
    const allDropped = displaced >= expected || (exitedAt > 0 && Date.now() - stableSince > 3000);
    if (allDropped && settled >= displaced && displaced > 0) break;
    if (Date.now() > deadline) {
      timedOut = true;
      break;
    }
  }
  const w1 = now();
  const cpu1 = sampleAll(survivors.map((p) => p.pid));
  const broker1 = sampleAll(t.spec.brokerPids);
  const gen1 = sampleAll(lg.workerPids);
  // a draining gateway exits once its last socket is closed
  await Promise.race([victim.exited, settle(15_000)]);
  if (victim.alive) victim.kill("SIGKILL");
  const displaced = sum(stats.map((s) => s.displaced));
  const recovered = sum(stats.map((s) => s.recovered));
  const fromEvent = merged(stats, "fromEvent").summaryMs();
  const fromDrop = merged(stats, "fromDrop").summaryMs();
  const buckets: Record<number, number> = {};
  for (const s of stats) for (const [sec, v] of Object.entries(s.buckets)) buckets[Number(sec)] = (buckets[Number(sec)] ?? 0) + v;
  const failures: Record<string, number> = {};
  for (const s of stats) for (const [k, v] of Object.entries(s.failures)) failures[k] = (failures[k] ?? 0) + v;
  const wall = (w1 - w0) / 1000;
  return {
    target: t.spec.name,
    event: label,
    clientsOnIt: expected,
    displaced,
    recovered,
    neverRecovered: displaced - recovered,
    resumedFalse: sum(stats.map((s) => s.resumedFalse)),
    gaveUp: sum(stats.map((s) => s.gaveUp)),
    timedOut,
    attempts: sum(stats.map((s) => s.attempts)),
    failures,
    recoverP50Ms: fromEvent.p50,
    recoverP99Ms: fromEvent.p99,
    recoverMaxMs: fromEvent.max,
    fromDropP50Ms: fromDrop.p50,
    fromDropP99Ms: fromDrop.p99,
    peakReconnectsPerSecond: Math.max(0, ...Object.values(buckets)),
    windowSeconds: +wall.toFixed(1),
    survivors: survivors.length,
    survivorCpuPercent: Math.round(((cpu1.cpuSeconds - cpu0.cpuSeconds) / wall) * 100),
    brokerCpuPercent: Math.round(((broker1.cpuSeconds - broker0.cpuSeconds) / wall) * 100),
    generatorCpuPercent: Math.round(((gen1.cpuSeconds - gen0.cpuSeconds) / wall) * 100),
    lostSoFar: sum(stats.map((s) => s.lost)),
    duplicatesSoFar: sum(stats.map((s) => s.dups)),
  };
}
