/**
 * The `sse` scenario (by name only): the same gateway build, the same token
 * shape and one shared channel, once over WebSocket (`/ws`, a subscribe frame)
 * and once over SSE (`GET /sse?channel=…`), each on a fresh gateway process:
 * 1. memory per idle connection (RSS and V8 heap growth over the connect);
 * 2. then, on the same connections, a broadcast ladder through NATS: gateway
 *    CPU (per second and per delivered message) and publish-to-receive
 *    latency p50/p99 from the payload's timestamp.
 */
import http from "node:http";
import type { TargetSpec } from "./loadgen.js";
import { sampleAll } from "./procstat.js";
import { n, phaseRow, saturated, settle, withTarget, type Row, type Scenario } from "./scenario-kit.js";

export const SSE_CHANNEL = "bench";

/** The same target's gateways, their `/sse` route instead of `/ws`. */
export const sseSpec = (s: TargetSpec): TargetSpec => ({ ...s, name: `${s.name} sse`, proto: "sse", endpoints: s.endpoints.map((e) => ({ ...e, path: "/sse" })) });

/** `nodejs_heap_size_used_bytes` of every gateway (their /metrics, prom-client's default metrics; no GC is forced). */
export async function gatewayHeapUsed(spec: TargetSpec): Promise<number | null> {
  let sum = 0;
  for (const ep of spec.endpoints) {
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.get({ host: ep.host, port: ep.port, path: "/metrics", timeout: 5000 }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (text += d));
        res.on("end", () => resolve(text));
      });
      req.on("timeout", () => req.destroy(new Error("/metrics timed out")));
      req.on("error", reject);
    }).catch(() => "");
    const m = /^nodejs_heap_size_used_bytes\s+(\S+)/m.exec(body);
    if (!m) return null;
    sum += Number(m[1]);
  }
  return sum;
}

const perConn = (bytes: number | null, conns: number) => (bytes !== null && conns > 0 ? Math.round(bytes / conns) : null);
const usPerDelivery = (cpuSeconds: number, received: number) => (received > 0 ? +((cpuSeconds * 1e6) / received).toFixed(2) : null);

/** SSE / WS of one metric, for the notes (the report's ratios compare Herald with peers, not two transports). */
function ratioNote(rows: Row[], what: string, key: string, match: (r: Row) => boolean): string | undefined {
  const ws = rows.find((r) => r["transport"] === "ws" && match(r))?.[key];
  const sse = rows.find((r) => r["transport"] === "sse" && match(r))?.[key];
  if (typeof ws !== "number" || typeof sse !== "number" || ws === 0) return undefined;
  return `${what}: SSE ${sse.toLocaleString("en-US")} vs WS ${ws.toLocaleString("en-US")} (SSE/WS ${(sse / ws).toFixed(2)}×)`;
}

export const SSE_SCENARIO: Scenario = {
  title: "SSE vs WebSocket on the same gateway: memory per idle connection, broadcast CPU and latency",
  description:
    `10,000 connections on one Herald gateway process, every one with its own JWT (sub u<i>, channels [${SSE_CHANNEL}]) and subscribed to the ONE channel ${SSE_CHANNEL}: ` +
    `first as WebSockets (/ws, a subscribe frame), then, on a fresh gateway of the same build, as SSE streams (GET /sse?channel=${SSE_CHANNEL}, Authorization: Bearer). ` +
    "Idle: RSS growth over the connect per connection (after a settle) and V8 heap-used growth per connection (the gateway's /metrics nodejs_heap_size_used_bytes; no GC forced, so it is noisier than RSS). " +
    "Broadcast: then, on the same connections, NATS publishes of 64 B at 10, 100, 1000 msg/s (5 s each; the ladder stops once a step saturates: loss > 1%, p99 > 2 s or closes); " +
    "gateway CPU as % of one core (10 ms per s = 1%) and µs per delivered message, latency from the payload's publish timestamp to the frame parsed on a probe connection (1 in 100), merged HDR histograms. " +
    "The SSE clients (bench/lib/sse-client.ts) run on the same bare TCP handles as the WebSocket ones and decode the chunked stream; plain streams count message events without parsing them. " +
    "A WebSocket broadcast is one uWS publish (C++ walks the topic); an SSE broadcast is a JavaScript loop over the topic's streams queueing the data: lines (encoded once), and each stream writes what it queued once per event-loop turn (one send() for a burst).",
  defaultTargets: ["herald"],
  async run(cfg, name, notes) {
    const count = n(cfg, 10_000);
    const rates = [10, 100, 1000].map((r) => Math.max(5, Math.round(r * Math.min(1, cfg.scale * 10))));
    const rows: Row[] = [];
    for (const transport of ["ws", "sse"] as const) {
      await withTarget(
        cfg,
        name,
        count,
        async (t, lg) => {
          const label = `${t.spec.name} ${transport}`;
          await settle(cfg.settleMs / 4);
          const before = sampleAll(t.spec.serverPids);
          const heapBefore = await gatewayHeapUsed(t.spec);
          const c = await lg.connect({ count, rate: 5000, shape: { kind: "shared", channel: SSE_CHANNEL }, probeEvery: 100 });
          await settle(cfg.settleMs);
          const after = sampleAll(t.spec.serverPids);
          const heapAfter = await gatewayHeapUsed(t.spec);
          rows.push({
            target: label,
            measure: "idle",
            transport,
            connections: c.ready,
            failed: c.failed,
            failures: c.failures,
            connectionsPerSecond: Math.round(c.perSecond),
            serverCpuMsPerConnection: c.ready ? +((c.serverCpuSeconds * 1000) / c.ready).toFixed(3) : null,
            rssBeforeMiB: +(before.rssBytes / 2 ** 20).toFixed(1),
            rssAfterMiB: +(after.rssBytes / 2 ** 20).toFixed(1),
            bytesPerConnection: perConn(after.rssBytes - before.rssBytes, c.ready),
            heapBytesPerConnection: perConn(heapBefore !== null && heapAfter !== null ? heapAfter - heapBefore : null, c.ready),
          });
          for (const rate of rates) {
            const p = await lg.phase({ rate, size: 64, seconds: cfg.phaseSeconds, settleMs: 4000 });
            rows.push(
              phaseRow(label, p, {
                measure: "broadcast",
                transport,
                subscribers: c.ready,
                serverCpuUsPerDelivery: usPerDelivery(p.serverCpuSeconds, p.received),
                wireBytesPerDelivery: p.received > 0 ? Math.round(p.bytesReceived / p.received) : null,
              }),
            );
            if (saturated(p)) {
              notes.push(`${label}: saturated at ${rate} msg/s (${p.deliveriesPerSecond} deliveries/s); higher rates skipped.`);
              break;
            }
          }
        },
        transport === "sse" ? { spec: sseSpec } : {},
      );
    }
    const idle = (r: Row) => r["measure"] === "idle";
    const at = (rate: number) => (r: Row) => r["measure"] === "broadcast" && r["rate"] === rate;
    const ratios = [
      ratioNote(rows, "RSS per idle connection (B)", "bytesPerConnection", idle),
      ratioNote(rows, "V8 heap per idle connection (B)", "heapBytesPerConnection", idle),
      ...rates.flatMap((rate) => [
        ratioNote(rows, `${rate} msg/s: gateway CPU per delivery (µs)`, "serverCpuUsPerDelivery", at(rate)),
        ratioNote(rows, `${rate} msg/s: p50 (ms)`, "p50Ms", at(rate)),
        ratioNote(rows, `${rate} msg/s: p99 (ms)`, "p99Ms", at(rate)),
      ]),
    ];
    notes.push(...ratios.filter((x): x is string => x !== undefined));
    return rows;
  },
};
