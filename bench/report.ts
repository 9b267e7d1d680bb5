#!/usr/bin/env node
/**
 * Turns a run (result.json) into a Markdown report with Herald/peer ratios
 * for every metric and two SVG charts (latency percentiles vs. load; memory
 * per connection).
 *
 *   node --import tsx bench/report.ts bench/runs/<stamp>/result.json [--out bench/results] [--name latest]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import type { RunResult } from "./run.js";
import type { Row, ScenarioResult } from "./scenarios.js";

type Dir = "higher" | "lower";
interface Col {
  key: string;
  label: string;
  better?: Dir;
  fmt?: (v: unknown) => string;
}

const num = (v: unknown, digits = 0): string =>
  typeof v === "number" && Number.isFinite(v) ? v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 }) : "–";
const pct = (v: unknown) => (typeof v === "number" ? `${(v * 100).toFixed(2)}%` : "–");
const ms = (v: unknown) => (typeof v === "number" ? (v < 10 ? v.toFixed(2) : v.toFixed(0)) : "–");
const obj = (v: unknown) => {
  if (!v || typeof v !== "object") return "";
  const e = Object.entries(v as Record<string, number>);
  return e.length ? e.map(([k, n]) => `${k}×${n}`).join(" ") : "–";
};

const PHASE_COLS: Col[] = [
  { key: "deliveriesPerSecond", label: "deliveries/s", better: "higher", fmt: (v) => num(v) },
  { key: "lossRatio", label: "loss", better: "lower", fmt: pct },
  { key: "p50Ms", label: "p50 ms", better: "lower", fmt: ms },
  { key: "p99Ms", label: "p99 ms", better: "lower", fmt: ms },
  { key: "p999Ms", label: "p99.9 ms", better: "lower", fmt: ms },
  { key: "serverCpuPercent", label: "server CPU %", better: "lower", fmt: (v) => num(v) },
  { key: "serverRssMiB", label: "server RSS MiB", better: "lower", fmt: (v) => num(v, 1) },
  { key: "generatorCpuPercent", label: "generator CPU %", fmt: (v) => num(v) },
  { key: "closes", label: "closes", fmt: obj },
];

const STORM_COLS: Col[] = [
  { key: "ready", label: "ready", better: "higher", fmt: (v) => num(v) },
  { key: "failed", label: "failed", better: "lower", fmt: (v) => num(v) },
  { key: "connectionsPerSecond", label: "connections/s", better: "higher", fmt: (v) => num(v) },
  { key: "handshakeP50Ms", label: "handshake p50 ms", better: "lower", fmt: ms },
  { key: "handshakeP99Ms", label: "handshake p99 ms", better: "lower", fmt: ms },
  { key: "serverCpuMsPerConnection", label: "server CPU ms/conn", better: "lower", fmt: (v) => num(v, 3) },
  { key: "brokerCpuMsPerConnection", label: "NATS behind it ms/conn", fmt: (v) => num(v, 3) },
  { key: "generatorCpuMsPerConnection", label: "generator ms/conn", fmt: (v) => num(v, 3) },
  { key: "serverBusiestThreadMsPerConnection", label: "server's busiest thread ms/conn", fmt: (v) => num(v, 3) },
  { key: "serverBusiestThreadPercent", label: "busiest thread busy %", fmt: (v) => num(v) },
  { key: "machineBusyPercent", label: "machine busy %", fmt: (v) => num(v) },
];

/** A scenario's table; `parts` splits its rows by their `measure` into one table each (no Herald/peer ratios there). */
interface Layout {
  keys: Col[];
  cols: Col[];
  parts?: Record<string, { title: string; keys: Col[]; cols: Col[] }>;
}

const usPerMsg = { key: "serverCpuUsPerDelivery", label: "server CPU µs/delivery", better: "lower", fmt: (v: unknown) => num(v, 2) } satisfies Col;

const COLUMNS: Record<string, Layout> = {
  idle: {
    keys: [],
    cols: [
      { key: "processes", label: "server processes", fmt: (v) => num(v) },
      { key: "connections", label: "connections", fmt: (v) => num(v) },
      { key: "failed", label: "failed", better: "lower", fmt: (v) => num(v) },
      { key: "rssBeforeMiB", label: "RSS before MiB", fmt: (v) => num(v, 1) },
      { key: "rssAfterMiB", label: "RSS after MiB", better: "lower", fmt: (v) => num(v, 1) },
      { key: "bytesPerConnection", label: "bytes/connection", better: "lower", fmt: (v) => num(v) },
    ],
  },
  "connect-storm": { keys: [], cols: STORM_COLS },
  "connect-storm-warm": { keys: [{ key: "storm", label: "storm" }], cols: STORM_COLS },
  broadcast: { keys: [{ key: "size", label: "size B" }, { key: "rate", label: "msg/s" }], cols: PHASE_COLS },
  "conns-100k": {
    keys: [],
    cols: [
      { key: "processes", label: "server processes", fmt: (v) => num(v) },
      { key: "connections", label: "connections", better: "higher", fmt: (v) => num(v) },
      { key: "failed", label: "failed", better: "lower", fmt: (v) => num(v) },
      { key: "connectionsPerSecond", label: "connect/s", better: "higher", fmt: (v) => num(v) },
      { key: "rssBeforeMiB", label: "RSS before MiB", fmt: (v) => num(v, 1) },
      { key: "rssAfterMiB", label: "RSS after MiB", better: "lower", fmt: (v) => num(v, 1) },
      { key: "bytesPerConnection", label: "bytes/connection", better: "lower", fmt: (v) => num(v) },
      { key: "rate", label: "msg/s", fmt: (v) => num(v) },
      { key: "deliveryRatio", label: "delivered", better: "higher", fmt: pct },
      { key: "p50Ms", label: "p50 ms", better: "lower", fmt: ms },
      { key: "p99Ms", label: "p99 ms", better: "lower", fmt: ms },
      { key: "serverCpuPercent", label: "server CPU %", better: "lower", fmt: (v) => num(v) },
      { key: "serverRssMiB", label: "RSS in phase MiB", fmt: (v) => num(v, 1) },
      { key: "generatorCpuPercent", label: "generator CPU %", fmt: (v) => num(v) },
      { key: "closes", label: "closes", fmt: obj },
    ],
  },
  avalanche: {
    keys: [{ key: "event", label: "event" }],
    cols: [
      { key: "displaced", label: "displaced", fmt: (v) => num(v) },
      { key: "recovered", label: "recovered", fmt: (v) => num(v) },
      { key: "neverRecovered", label: "never recovered", fmt: (v) => num(v) },
      { key: "resumedFalse", label: "recovered:false", fmt: (v) => num(v) },
      { key: "recoverP50Ms", label: "recover p50 ms", fmt: ms },
      { key: "recoverP99Ms", label: "recover p99 ms", fmt: ms },
      { key: "recoverMaxMs", label: "recover max ms", fmt: ms },
      { key: "fromDropP99Ms", label: "drop→recovered p99 ms", fmt: ms },
      { key: "peakReconnectsPerSecond", label: "peak reconnects/s", fmt: (v) => num(v) },
      { key: "survivorCpuPercent", label: "survivor CPU %", fmt: (v) => num(v) },
      { key: "brokerCpuPercent", label: "NATS CPU %", fmt: (v) => num(v) },
      { key: "generatorCpuPercent", label: "generator CPU %", fmt: (v) => num(v) },
      { key: "windowSeconds", label: "window s", fmt: (v) => num(v, 1) },
      { key: "failures", label: "failed attempts", fmt: obj },
      { key: "published", label: "published", fmt: (v) => num(v) },
      { key: "tracked", label: "frames received", fmt: (v) => num(v) },
      { key: "lost", label: "lost", fmt: (v) => num(v) },
      { key: "duplicates", label: "duplicates", fmt: (v) => num(v) },
      { key: "prevMismatch", label: "prev mismatches", fmt: (v) => num(v) },
      { key: "missingUnrecovered", label: "missing (unrecovered clients)", fmt: (v) => num(v) },
    ],
  },
  presence: {
    keys: [],
    cols: [
      { key: "gateways", label: "gateways", fmt: (v) => num(v) },
      { key: "connections", label: "connections", fmt: (v) => num(v) },
      { key: "failed", label: "failed", better: "lower", fmt: (v) => num(v) },
      { key: "connectionsPerSecond", label: "connect/s", better: "higher", fmt: (v) => num(v) },
      { key: "serverCpuMsPerConnection", label: "gateway CPU ms/conn", better: "lower", fmt: (v) => num(v, 3) },
      { key: "brokerCpuMsPerConnection", label: "NATS CPU ms/conn", better: "lower", fmt: (v) => num(v, 3) },
      { key: "allGatewaysExactAfterMs", label: "all gateways exact after ms", better: "lower", fmt: (v) => num(v) },
      { key: "membersPerGateway", label: "members held per gateway", fmt: (v) => num(v) },
      { key: "rssGrowthMiBPerGateway", label: "RSS growth MiB/gateway", better: "lower", fmt: (v) => num(v, 1) },
      { key: "extraRssBytesPerMember", label: "extra RSS B/member", better: "lower", fmt: (v) => num(v) },
      { key: "joinLeaveFramesReceived", label: "join/leave frames received", fmt: (v) => num(v) },
      { key: "presenceMsgsWhileConnecting", label: "presence msgs (connect)", fmt: (v) => num(v) },
      { key: "presenceMsgsPerGatewayPerSecondIdle", label: "presence msgs/gw/s idle", better: "lower", fmt: (v) => num(v, 3) },
      { key: "idleMsgsPerGatewayPerSecondPer1000Members", label: "idle msgs/gw/s per 1k members", better: "lower", fmt: (v) => num(v, 4) },
      { key: "statsP50Ms", label: "stats p50 ms", better: "lower", fmt: ms },
      { key: "statsP99Ms", label: "stats p99 ms", better: "lower", fmt: ms },
      { key: "pageP50Ms", label: "page p50 ms", better: "lower", fmt: ms },
      { key: "pageP99Ms", label: "page p99 ms", better: "lower", fmt: ms },
      { key: "joinToEventP50Ms", label: "join→event p50 ms", better: "lower", fmt: ms },
      { key: "joinToEventP99Ms", label: "join→event p99 ms", better: "lower", fmt: ms },
      { key: "leaveToEventP99Ms", label: "leave→event p99 ms", better: "lower", fmt: ms },
    ],
  },
  sse: {
    keys: [],
    cols: [],
    parts: {
      idle: {
        title: "Idle connections on one channel",
        keys: [],
        cols: [
          { key: "connections", label: "connections", fmt: (v) => num(v) },
          { key: "failed", label: "failed", better: "lower", fmt: (v) => num(v) },
          { key: "connectionsPerSecond", label: "connect/s", fmt: (v) => num(v) },
          { key: "serverCpuMsPerConnection", label: "server CPU ms/conn", fmt: (v) => num(v, 3) },
          { key: "rssBeforeMiB", label: "RSS before MiB", fmt: (v) => num(v, 1) },
          { key: "rssAfterMiB", label: "RSS after MiB", fmt: (v) => num(v, 1) },
          { key: "bytesPerConnection", label: "RSS B/connection", better: "lower", fmt: (v) => num(v) },
          { key: "heapBytesPerConnection", label: "heap B/connection", better: "lower", fmt: (v) => num(v) },
        ],
      },
      broadcast: {
        title: "Broadcast on the same connections",
        keys: [{ key: "subscribers", label: "subscribers" }, { key: "size", label: "size B" }, { key: "rate", label: "msg/s" }],
        cols: [...PHASE_COLS.slice(0, 6), usPerMsg, { key: "wireBytesPerDelivery", label: "B read/delivery", fmt: (v) => num(v) }, ...PHASE_COLS.slice(6)],
      },
    },
  },
  compression: {
    keys: [],
    cols: [],
    parts: {
      broadcast: {
        title: "Broadcast of 1 KB JSON",
        keys: [{ key: "subscribers", label: "subscribers" }, { key: "rate", label: "msg/s" }],
        cols: [
          { key: "deflateNegotiated", label: "deflate negotiated", fmt: (v) => num(v) },
          { key: "wireBytesPerDelivery", label: "B on the wire/delivery", better: "lower", fmt: (v) => num(v) },
          { key: "compressedShare", label: "deflated frames", fmt: pct },
          { key: "checkerBytesPerMessage", label: "ws checkers B/msg", fmt: (v) => num(v) },
          { key: "checkerInflatedBytesPerMessage", label: "ws checkers inflated B/msg", fmt: (v) => num(v) },
          { key: "checkerGaps", label: "ws checker gaps", fmt: (v) => num(v) },
          { key: "checkerBad", label: "ws checker unparsable", fmt: (v) => num(v) },
          ...PHASE_COLS.slice(0, 6),
          usPerMsg,
          ...PHASE_COLS.slice(6),
        ],
      },
      bomb: {
        title: "Compression bombs during a broadcast (COMPRESSION=shared)",
        keys: [],
        cols: [
          { key: "bombs", label: "bombs", fmt: (v) => num(v) },
          { key: "compressedBytes", label: "frame B", fmt: (v) => num(v) },
          { key: "inflatedMiB", label: "inflates to MiB", fmt: (v) => num(v, 1) },
          { key: "negotiated", label: "deflate negotiated", fmt: (v) => num(v) },
          { key: "closeCodes", label: "bomber closes", fmt: obj },
          { key: "cutMsMax", label: "cut after ms (max)", fmt: (v) => num(v) },
          { key: "rssBeforeMiB", label: "RSS before MiB", fmt: (v) => num(v, 1) },
          { key: "peakRssGrowthMiB", label: "peak RSS growth MiB", better: "lower", fmt: (v) => num(v, 1) },
          { key: "settledRssGrowthMiB", label: "settled RSS growth MiB", fmt: (v) => num(v, 1) },
          { key: "under10MiB", label: "< 10 MiB", fmt: String },
          { key: "gatewayAlive", label: "gateway alive", fmt: String },
          { key: "rate", label: "others: msg/s", fmt: (v) => num(v) },
          { key: "lossRatio", label: "others: loss", fmt: pct },
          { key: "p99Ms", label: "others: p99 ms", fmt: ms },
          { key: "checkerMessages", label: "ws checkers got", fmt: (v) => num(v) },
          { key: "checkerExpected", label: "of", fmt: (v) => num(v) },
        ],
      },
    },
  },
  channels: { keys: [{ key: "rate", label: "msg/s" }], cols: PHASE_COLS },
  ceiling: { keys: [{ key: "rate", label: "msg/s" }], cols: PHASE_COLS },
  "slow-consumer": {
    keys: [{ key: "phase", label: "phase" }],
    cols: [{ key: "stalled", label: "stalled sockets", fmt: (v) => num(v) }, ...PHASE_COLS],
  },
};

const layoutOf = (s: ScenarioResult): Layout => COLUMNS[s.name.startsWith("idle") ? "idle" : s.name] ?? { keys: [], cols: [] };
const cells = (r: Row, keys: Col[], cols: Col[]) => [r.target, ...keys.map((k) => String(r[k.key] ?? "")), ...cols.map((c) => (c.fmt ?? String)(r[c.key]))];
const isHerald = (t: string) => t.startsWith("herald");

function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function ratio(h: unknown, p: unknown, better?: Dir): string {
  if (typeof h !== "number" || typeof p !== "number" || !Number.isFinite(h) || !Number.isFinite(p)) return "–";
  if (p === 0) return h === 0 ? "=" : "∞";
  const r = h / p;
  const mark = !better || Math.abs(r - 1) < 0.05 ? "" : (better === "higher") === r > 1 ? " ✓" : " ✗";
  return `${r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2)}×${mark}`;
}

function scenarioMarkdown(s: ScenarioResult): string {
  const { keys, cols, parts } = layoutOf(s);
  const out: string[] = [`### ${s.title} (\`${s.name}\`)`, "", s.description, ""];
  if (parts && s.rows.length) {
    for (const [measure, part] of Object.entries(parts)) {
      const rows = s.rows.filter((r) => r["measure"] === measure);
      if (rows.length) out.push(`${part.title}:`, "", table(["target", ...part.keys.map((k) => k.label), ...part.cols.map((c) => c.label)], rows.map((r) => cells(r, part.keys, part.cols))), "");
    }
    if (s.notes.length) out.push(...s.notes.map((n) => `- ${n}`));
    return out.join("\n");
  }
  if (s.rows.length === 0) out.push("_no rows_");
  else out.push(table(["target", ...keys.map((k) => k.label), ...cols.map((c) => c.label)], s.rows.map((r) => [r.target, ...keys.map((k) => String(r[k.key] ?? "")), ...cols.map((c) => (c.fmt ?? String)(r[c.key]))])));
  // ratios Herald / peer for every metric with a direction
  const metricCols = cols.filter((c) => c.better);
  const heralds = [...new Set(s.rows.map((r) => r.target).filter(isHerald))];
  const peers = [...new Set(s.rows.map((r) => r.target).filter((t) => !isHerald(t)))];
  const ratioRows: string[][] = [];
  for (const h of heralds) {
    for (const p of peers) {
      for (const hr of s.rows.filter((r) => r.target === h)) {
        const pr = s.rows.find((r) => r.target === p && keys.every((k) => r[k.key] === hr[k.key]));
        if (!pr) continue;
        ratioRows.push([`${h} / ${p}`, ...keys.map((k) => String(hr[k.key] ?? "")), ...metricCols.map((c) => ratio(hr[c.key], pr[c.key], c.better))]);
      }
    }
  }
  if (ratioRows.length) {
    out.push("", "Herald / peer (✓ = Herald better by more than 5%, ✗ = worse):", "");
    out.push(table(["ratio", ...keys.map((k) => k.label), ...metricCols.map((c) => c.label)], ratioRows));
  }
  if (s.notes.length) out.push("", ...s.notes.map((n) => `- ${n}`));
  return out.join("\n");
}

export function markdown(r: RunResult, charts: { latency?: string; memory?: string } = {}): string {
  const m = r.machine;
  const out = [
    `# Herald benchmark — ${r.startedAt.slice(0, 10)}`,
    "",
    `Command: \`${r.command}\` (${Math.floor(r.seconds / 60)} min ${r.seconds % 60} s, scale ${r.config.scale}, ${r.config.phaseSeconds} s per load step, herald-x${r.config.multi} = ${r.config.multi} gateway processes).`,
    "",
    `Machine: ${m["cpus"]} × ${m["cpuModel"]}, ${m["memoryGiB"]} GiB, ${m["os"]} (kernel ${m["kernel"]}), Node ${m["node"]}, ${m["natsServer"]}, open files ${m["openFilesLimit"]}. ` +
      "Server(s), NATS and the load generator share these cores: absolute numbers are lower bounds for a dedicated server; the ratios are the comparison.",
    "",
    "Targets: **herald** (1 gateway process + nats-server), **herald-history** (Herald in recovery mode: JetStream stores every message and republishes it with its position), **herald-batched** (Herald with WRITE_DELAY_MS=10: broadcast frames held up to 10 ms and written with one send() per socket), **herald-xN** (N gateway processes sharing one nats-server), **nats-ws** (nats-server's own WebSocket listener, NATS protocol over WebSocket, token auth), " +
      "**ws-baseline** (`ws` + `nats` + `jose`, Herald's JSON protocol, per-socket send loop: bench/peers/ws-gateway.ts), **uws-ceiling** (trivial uWS broadcaster: the generator's ceiling). " +
      "Latency = publisher send timestamp → frame parsed by a probe socket (1–5% of sockets), HDR histogram merged across generator workers. Server CPU/RSS from /proc (sum of the WebSocket server processes; NATS separately as broker CPU).",
    "",
  ];
  if (charts.latency) out.push(`![latency vs load](${charts.latency})`, "");
  if (charts.memory) out.push(`![memory per connection](${charts.memory})`, "");
  for (const s of r.scenarios) out.push(scenarioMarkdown(s), "");
  return out.join("\n");
}

// ---------- SVG ----------
const PALETTE: Record<string, string> = { herald: "#d9480f", "nats-ws": "#1971c2", "ws-baseline": "#2f9e44", "uws-ceiling": "#868e96" };
const colorOf = (t: string) => PALETTE[t] ?? (t.startsWith("herald") ? "#f08c00" : t.startsWith("ws-baseline") ? "#66a80f" : "#7048e8");
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

export function latencySvg(r: RunResult): string | undefined {
  const s = r.scenarios.find((x) => x.name === "broadcast");
  if (!s || s.rows.length === 0) return undefined;
  const sizes = [...new Set(s.rows.map((x) => x["size"] as number))];
  const W = 460;
  const H = 320;
  const pad = { l: 60, r: 15, t: 40, b: 45 };
  const pts = s.rows.filter((x) => typeof x["p99Ms"] === "number");
  const xs = pts.map((x) => x["deliveriesPerSecond"] as number).filter((v) => v > 0);
  const ys = pts.flatMap((x) => [x["p50Ms"] as number, x["p99Ms"] as number]).filter((v) => v > 0);
  if (!xs.length || !ys.length) return undefined;
  const lx = [Math.floor(Math.log10(Math.min(...xs))), Math.ceil(Math.log10(Math.max(...xs)))];
  const ly = [Math.floor(Math.log10(Math.min(...ys))), Math.ceil(Math.log10(Math.max(...ys)))];
  if (lx[0] === lx[1]) lx[1]! += 1;
  if (ly[0] === ly[1]) ly[1]! += 1;
  const X = (v: number) => pad.l + ((Math.log10(v) - lx[0]!) / (lx[1]! - lx[0]!)) * (W - pad.l - pad.r);
  const Y = (v: number) => H - pad.b - ((Math.log10(Math.max(v, 10 ** ly[0]!)) - ly[0]!) / (ly[1]! - ly[0]!)) * (H - pad.t - pad.b);
  const panels = sizes.map((size, i) => {
    const g: string[] = [`<g transform="translate(${i * W},0)">`, `<text x="${W / 2}" y="20" text-anchor="middle" font-weight="bold">broadcast, ${size} B payload: latency vs delivered load</text>`];
    for (let e = lx[0]!; e <= lx[1]!; e++) g.push(`<line x1="${X(10 ** e)}" x2="${X(10 ** e)}" y1="${pad.t}" y2="${H - pad.b}" stroke="#eee"/><text x="${X(10 ** e)}" y="${H - pad.b + 15}" text-anchor="middle" font-size="10">1e${e}</text>`);
    for (let e = ly[0]!; e <= ly[1]!; e++) g.push(`<line x1="${pad.l}" x2="${W - pad.r}" y1="${Y(10 ** e)}" y2="${Y(10 ** e)}" stroke="#eee"/><text x="${pad.l - 5}" y="${Y(10 ** e) + 3}" text-anchor="end" font-size="10">${10 ** e >= 1 ? 10 ** e : (10 ** e).toFixed(-e)} ms</text>`);
    g.push(`<text x="${W / 2}" y="${H - 8}" text-anchor="middle" font-size="11">deliveries/s (log)</text>`);
    const targets = [...new Set(pts.map((x) => x.target))];
    targets.forEach((t, ti) => {
      const rows = pts.filter((x) => x.target === t && x["size"] === size && (x["deliveriesPerSecond"] as number) > 0);
      for (const [key, dash] of [["p99Ms", ""], ["p50Ms", "4 3"]] as const) {
        const d = rows.map((x) => `${X(x["deliveriesPerSecond"] as number).toFixed(1)},${Y(x[key] as number).toFixed(1)}`).join(" ");
        if (d) g.push(`<polyline points="${d}" fill="none" stroke="${colorOf(t)}" stroke-width="2" ${dash ? `stroke-dasharray="${dash}"` : ""}/>`);
        for (const x of rows) g.push(`<circle cx="${X(x["deliveriesPerSecond"] as number).toFixed(1)}" cy="${Y(x[key] as number).toFixed(1)}" r="2.5" fill="${colorOf(t)}"/>`);
      }
      g.push(`<rect x="${pad.l + 8}" y="${pad.t + 6 + ti * 14}" width="10" height="3" fill="${colorOf(t)}"/><text x="${pad.l + 22}" y="${pad.t + 10 + ti * 14}" font-size="10">${esc(t)}</text>`);
    });
    g.push(`<text x="${W - pad.r}" y="${pad.t + 10}" text-anchor="end" font-size="10">solid p99, dashed p50</text>`, "</g>");
    return g.join("\n");
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W * sizes.length}" height="${H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/>\n${panels.join("\n")}\n</svg>\n`;
}

export function memorySvg(r: RunResult): string | undefined {
  const bars: { label: string; v: number; t: string }[] = [];
  for (const s of r.scenarios.filter((x) => x.name.startsWith("idle"))) {
    for (const row of s.rows) if (typeof row["bytesPerConnection"] === "number") bars.push({ label: `${row.target} (${s.name})`, v: row["bytesPerConnection"] as number, t: row.target });
  }
  if (!bars.length) return undefined;
  const W = 620;
  const rowH = 26;
  const H = 50 + bars.length * rowH;
  const max = Math.max(...bars.map((b) => b.v));
  const L = 220;
  const body = bars
    .map((b, i) => {
      const w = Math.max(1, ((W - L - 90) * Math.max(0, b.v)) / max);
      const y = 40 + i * rowH;
      return `<text x="${L - 8}" y="${y + 14}" text-anchor="end">${esc(b.label)}</text><rect x="${L}" y="${y}" width="${w.toFixed(1)}" height="18" fill="${colorOf(b.t)}"/><text x="${L + w + 6}" y="${y + 14}">${(b.v / 1024).toFixed(1)} KiB</text>`;
    })
    .join("\n");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="${W / 2}" y="22" text-anchor="middle" font-weight="bold">server memory per idle connection (RSS growth / connections)</text>\n${body}\n</svg>\n`;
}

/** Writes <name>.md, <name>-latency.svg, <name>-memory.svg into dir; returns the file names. */
export function writeReport(r: RunResult, dir: string, name = "report"): string[] {
  const files: string[] = [];
  const charts: { latency?: string; memory?: string } = {};
  const lat = latencySvg(r);
  if (lat) {
    writeFileSync(join(dir, `${name}-latency.svg`), lat);
    charts.latency = `${name}-latency.svg`;
    files.push(charts.latency);
  }
  const mem = memorySvg(r);
  if (mem) {
    writeFileSync(join(dir, `${name}-memory.svg`), mem);
    charts.memory = `${name}-memory.svg`;
    files.push(charts.memory);
  }
  writeFileSync(join(dir, `${name}.md`), markdown(r, charts));
  files.unshift(`${name}.md`);
  return files.map((f) => join(dir, f));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { out: { type: "string" }, name: { type: "string" } } });
  const file = positionals[0];
  if (!file) {
    process.stderr.write("usage: node --import tsx bench/report.ts <result.json> [--out DIR] [--name NAME]\n");
    process.exit(2);
  }
  const r = JSON.parse(readFileSync(file, "utf8")) as RunResult;
  const dir = values.out ?? file.slice(0, -basename(file).length);
  for (const f of writeReport(r, dir || ".", values.name ?? "report")) process.stdout.write(`${f}\n`);
}
