/**
 * The `compression` scenario (by name only): the same gateway build with
 * COMPRESSION=off, shared and dedicated (WebSocket permessage-deflate), each
 * on a fresh process:
 * 1. a broadcast ladder of 1 KB realistic JSON (json-payload.ts) to N
 *    WebSocket clients that offer permessage-deflate: bytes read off the
 *    sockets per delivered message, gateway CPU, latency;
 * 2. with shared only: compression bombs (deflate-clients.ts sendBomb)
 *    sent while a broadcast runs: the gateway's RSS (peak and settled) and
 *    whether everyone else kept receiving.
 */
import { hardFrameCap } from "../../services/gateway/src/socket-guard.js";
import { rssBytes, settledRss } from "../../test/helpers/rss.js";
import { bombFrame, sendBomb, WsCheckers, type BombResult, type CheckerStats } from "./deflate-clients.js";
import { jsonPayload } from "./json-payload.js";
import { signHs256 } from "./jwt.js";
import type { LoadGen, PhaseResult } from "./loadgen.js";
import { n, phaseRow, saturated, settle, withTarget, type Row, type Scenario } from "./scenario-kit.js";
import type { RunningTarget } from "./targets.js";

export const ZIP_CHANNEL = "zip";
const SIZE = 1024;
/** The gateway's default MAX_PAYLOAD_BYTES (the bench does not set it). */
const MAX_PAYLOAD = 64 * 1024;
const BOMB_BYTES = 64 * 2 ** 20;
const MiB = 2 ** 20;
const mib = (b: number) => +(b / MiB).toFixed(1);

/** Deflate's best is about 1,030:1: the bomb's frame must stay under the gateway's hard frame cap, or uWS cuts it unread. */
export function bombSize(inflated: number): { frame: Buffer; compressedBytes: number; inflated: number } {
  const b = bombFrame(inflated);
  if (b.compressedBytes >= hardFrameCap(MAX_PAYLOAD)) throw new Error(`bomb of ${inflated} B deflates to ${b.compressedBytes} B, over the hard frame cap ${hardFrameCap(MAX_PAYLOAD)}`);
  return { ...b, inflated };
}

function broadcastRow(label: string, mode: string, p: PhaseResult, subscribers: number, negotiated: number, cs: CheckerStats): Row {
  return phaseRow(label, p, {
    measure: "broadcast",
    compression: mode,
    subscribers,
    deflateNegotiated: negotiated,
    wireBytesPerDelivery: p.received > 0 ? Math.round(p.bytesReceived / p.received) : null,
    compressedShare: p.received > 0 ? +(p.compressedFrames / p.received).toFixed(3) : null,
    serverCpuUsPerDelivery: p.received > 0 ? +((p.serverCpuSeconds * 1e6) / p.received).toFixed(2) : null,
    serverCpuMsPerSecond: p.serverCpuPercent * 10,
    checkerNegotiated: cs.negotiated,
    checkerBytesPerMessage: cs.msgs > 0 ? Math.round(cs.wireBytes / cs.msgs) : null,
    checkerInflatedBytesPerMessage: cs.msgs > 0 ? Math.round(cs.inflatedBytes / cs.msgs) : null,
    checkerMessages: cs.msgs,
    checkerGaps: cs.gaps,
    checkerBad: cs.bad,
  });
}

interface BombPlan {
  bombs: number;
  frame: Buffer;
  compressedBytes: number;
  inflated: number;
  rate: number;
  seconds: number;
}

/** Bombs one after another while `lg` receives a broadcast; RSS sampled every 5 ms from before the first to after the last. */
async function bombRun(t: RunningTarget, lg: LoadGen, checkers: WsCheckers, plan: BombPlan, label: string): Promise<Row> {
  const pid = t.spec.serverPids[0]!;
  const ep = t.spec.endpoints[0]!;
  const rss0 = await settledRss(pid);
  let peak = rss0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 5);
  checkers.reset();
  const phase = lg.phase({ rate: plan.rate, size: SIZE, seconds: plan.seconds, settleMs: 4000, payload: jsonPayload });
  const bombing = (async () => {
    const results: BombResult[] = [];
    await settle(Math.min(1000, (plan.seconds * 1000) / 4));
    for (let b = 0; b < plan.bombs; b++) {
      const token = signHs256(t.spec.secret!, { sub: `bomber-${b}`, channels: [ZIP_CHANNEL] });
      results.push(await sendBomb(ep, token, plan.frame, "127.0.0.250"));
    }
    return results;
  })();
  const [p, results] = await Promise.all([phase, bombing]).finally(() => clearInterval(sampler));
  const rss1 = await settledRss(pid);
  await checkers.caughtUp(p.published * CHECKERS);
  const cs = checkers.stats();
  const codes: Record<string, number> = {};
  for (const r of results) codes[String(r.closeCode)] = (codes[String(r.closeCode)] ?? 0) + 1;
  return {
    target: label,
    measure: "bomb",
    bombs: results.length,
    inflatedMiB: mib(plan.inflated),
    compressedBytes: plan.compressedBytes,
    negotiated: results.filter((r) => r.negotiated).length,
    closeCodes: codes,
    cutMsMax: Math.round(Math.max(...results.map((r) => r.ms))),
    rssBeforeMiB: mib(rss0),
    peakRssGrowthMiB: mib(peak - rss0),
    settledRssGrowthMiB: mib(rss1 - rss0),
    under10MiB: peak - rss0 < 10 * MiB,
    gatewayAlive: t.servers?.proc(0).alive ?? null,
    rate: p.rate,
    published: p.published,
    expected: p.expected,
    received: p.received,
    lossRatio: +p.lossRatio.toFixed(5),
    p99Ms: p.latencyMs.p99,
    serverCpuPercent: p.serverCpuPercent,
    checkerMessages: cs.msgs,
    checkerExpected: p.published * cs.clients,
    checkerGaps: cs.gaps,
  };
}

/** `ws`-package clients that inflate and parse every message (the cross-check). */
const CHECKERS = 4;

export const COMPRESSION_SCENARIO: Scenario = {
  title: "WebSocket compression: COMPRESSION=off vs shared vs dedicated, and a compression bomb",
  description:
    `5,000 WebSocket connections on one Herald gateway process, all on the channel ${ZIP_CHANNEL}, every upgrade offering permessage-deflate (server_ and client_no_context_takeover); ` +
    "the same build run three times on fresh processes: COMPRESSION=off (the extension declined), COMPRESSION=shared (uWS' shared compressor: no memory per socket, every message deflated from scratch) and COMPRESSION=dedicated (a 4 KB sliding window per socket). " +
    "uWS 20.30 pub/sub deflates a broadcast once per subscribing socket (WebSocket::send with compress per subscriber), not once per message: the CPU per delivery below is that cost. " +
    `Payload: ${SIZE} B of JSON shaped like an order-book update (repeated keys, varying ids, prices, times; deflate alone makes it about 2.5× smaller), NATS publishes at 10, 50, 100 msg/s (5 s each; the ladder stops once a step saturates). ` +
    "Bytes on the wire = bytes the generator's sockets read over the phase (TCP payload: frame headers, pings and all) / messages delivered; the generator's clients count frames without inflating them (probes, 1 in 100, inflate for latency). " +
    "Cross-check: 4 `ws`-package clients (perMessageDeflate: true) on the same channel inflate and parse every message (gaps, unparsable = 0 expected) and report their own socket bytesRead per message. " +
    `Bomb (shared only): 3 connections in turn each send ONE text frame of ${BOMB_BYTES / MiB} MiB of spaces deflated to about 64 KB (under the gateway's hard frame cap of ${hardFrameCap(MAX_PAYLOAD)} B, so uWS does inflate it; MAX_PAYLOAD_BYTES is ${MAX_PAYLOAD} B), ` +
    "while 5 msg/s of the same JSON go to every other connection (under what shared sustains, so loss here is the bomb's doing): gateway RSS sampled every 5 ms (peak growth over the settled RSS before must stay under 10 MiB), how each bomber was cut, and loss and latency of everyone else.",
  defaultTargets: ["herald"],
  async run(cfg, name, notes) {
    const count = n(cfg, 5_000);
    const rates = [10, 50, 100].map((r) => Math.max(5, Math.round(r * Math.min(1, cfg.scale * 10))));
    const bomb = bombSize(BOMB_BYTES);
    const rows: Row[] = [];
    for (const mode of ["off", "shared", "dedicated"] as const) {
      await withTarget(
        cfg,
        name,
        count,
        async (t, lg) => {
          const label = `${t.spec.name} COMPRESSION=${mode}`;
          const c = await lg.connect({ count, rate: 5000, shape: { kind: "shared", channel: ZIP_CHANNEL }, probeEvery: 100, deflate: true });
          const negotiated = (await lg.snapshots()).reduce((a, s) => a + s.deflateNegotiated, 0);
          if (c.failed) notes.push(`${label}: ${c.failed} of ${count} connections failed (${JSON.stringify(c.failures)})`);
          const checkers = await WsCheckers.open(t.spec.endpoints[0]!, t.spec.secret!, ZIP_CHANNEL, CHECKERS);
          try {
            await settle(cfg.settleMs / 2);
            for (const rate of rates) {
              checkers.reset();
              const p = await lg.phase({ rate, size: SIZE, seconds: cfg.phaseSeconds, settleMs: 4000, payload: jsonPayload });
              await checkers.caughtUp(p.published * CHECKERS);
              rows.push(broadcastRow(label, mode, p, c.ready, negotiated, checkers.stats()));
              if (saturated(p)) {
                notes.push(`${label}: saturated at ${rate} msg/s (${p.deliveriesPerSecond} deliveries/s); higher rates skipped.`);
                break;
              }
            }
            if (mode === "shared") {
              const row = await bombRun(t, lg, checkers, { bombs: 3, ...bomb, rate: 5, seconds: Math.max(3, cfg.phaseSeconds) }, label);
              rows.push(row);
              notes.push(
                `bomb: ${row["bombs"]} frames of ${row["compressedBytes"]} B inflating to ${row["inflatedMiB"]} MiB, closes ${JSON.stringify(row["closeCodes"])}; ` +
                  `gateway RSS peak +${row["peakRssGrowthMiB"]} MiB, settled +${row["settledRssGrowthMiB"]} MiB (${row["under10MiB"] ? "under" : "NOT under"} 10 MiB); ` +
                  `the others received ${row["received"]} of ${row["expected"]} (loss ${row["lossRatio"]}), the ws checkers ${row["checkerMessages"]} of ${row["checkerExpected"]}.`,
              );
            }
          } finally {
            checkers.close();
          }
        },
        { env: { COMPRESSION: mode } },
      );
    }
    const off = rows.filter((r) => r["compression"] === "off");
    for (const sh of rows.filter((r) => r["measure"] === "broadcast" && r["compression"] !== "off")) {
      const o = off.find((r) => r["rate"] === sh["rate"]);
      if (!o) continue;
      const r = (k: string) => (typeof sh[k] === "number" && typeof o[k] === "number" && o[k] !== 0 ? `${((sh[k] as number) / (o[k] as number)).toFixed(2)}×` : "–");
      notes.push(`${sh["rate"]} msg/s, ${sh["compression"]} / off: bytes on the wire per delivery ${sh["wireBytesPerDelivery"]} / ${o["wireBytesPerDelivery"]} B (${r("wireBytesPerDelivery")}), gateway CPU per delivery ${r("serverCpuUsPerDelivery")}, p99 ${r("p99Ms")}.`);
    }
    return rows;
  },
};
