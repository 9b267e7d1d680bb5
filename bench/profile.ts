#!/usr/bin/env node
/**
 * CPU profile of one Herald gateway process during broadcast fan-out
 * (node --cpu-prof), summarised as top self-time functions.
 *
 *   node --import tsx bench/profile.ts [--connections 10000] [--rate 100] [--size 64] [--seconds 10] [--out bench/results]
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LoadGen } from "./lib/loadgen.js";
import { ROOT, startHerald } from "./lib/targets.js";

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export function summarise(profile: CpuProfile, top = 25): { total: number; rows: { fn: string; where: string; ms: number; pct: number }[] } {
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byFn = new Map<string, { fn: string; where: string; us: number }>();
  let total = 0;
  for (const n of profile.nodes) {
    const us = self.get(n.id) ?? 0;
    total += us;
    const url = n.callFrame.url.replace(/^file:\/\//, "").replace(ROOT, "");
    const where = url ? `${url}:${n.callFrame.lineNumber + 1}` : "";
    const fn = n.callFrame.functionName || "(anonymous)";
    const key = `${fn}@${where}`;
    const e = byFn.get(key) ?? { fn, where, us: 0 };
    e.us += us;
    byFn.set(key, e);
  }
  const rows = [...byFn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ fn: e.fn, where: e.where, ms: Math.round(e.us / 1000), pct: +((e.us / total) * 100).toFixed(1) }));
  return { total: total / 1000, rows };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connections: { type: "string", default: "10000" },
      rate: { type: "string", default: "100" },
      size: { type: "string", default: "64" },
      seconds: { type: "string", default: "10" },
      out: { type: "string", default: join(ROOT, "bench/results") },
    },
  });
  const dir = mkdtempSync(join(tmpdir(), "herald-prof-"));
  const t = await startHerald(1, { nodeArgs: ["--cpu-prof", "--cpu-prof-dir", dir] });
  const lg = new LoadGen(t.spec, 2);
  let phase;
  try {
    await lg.start();
    const count = Number(values.connections);
    await lg.connect({ count, rate: 0, shape: { kind: "shared", channel: "bench" } });
    phase = await lg.phase({ rate: Number(values.rate), size: Number(values.size), seconds: Number(values.seconds) });
  } finally {
    await lg.stop();
    await t.stop();
  }
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  const prof = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
  const s = summarise(prof);
  const md = [
    `# Herald gateway CPU profile — broadcast fan-out`,
    "",
    `${values.connections} subscribers on one channel, ${values.rate} msg/s × ${values.size} B through NATS for ${values.seconds} s; ` +
      `${phase.deliveriesPerSecond.toLocaleString("en-US")} deliveries/s, p99 ${phase.latencyMs.p99} ms, gateway CPU ${phase.serverCpuPercent}%. ` +
      `Profile covers the whole process life (${(s.total / 1000).toFixed(1)} s sampled, including connection setup). Raw profile: ${join(dir, file)}`,
    "",
    "| self ms | self % | function | where |",
    "|---:|---:|---|---|",
    ...s.rows.map((r) => `| ${r.ms} | ${r.pct} | \`${r.fn}\` | ${r.where} |`),
    "",
  ].join("\n");
  mkdirSync(values.out, { recursive: true });
  const outFile = join(values.out, `profile-broadcast-${values.size}B-${values.rate}.md`);
  writeFileSync(outFile, md);
  process.stdout.write(md + `\nwrote ${outFile}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(() => process.exit(0), (e: unknown) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  });
}
