#!/usr/bin/env node
/**
 * Where one Herald gateway spends its CPU during broadcast fan-out, measured
 * over the fan-out window only (connection setup excluded):
 *
 * - JavaScript: the V8 profile of `node --cpu-prof`, samples cut to the window
 *   (V8's profile clock and process.hrtime are both CLOCK_MONOTONIC);
 * - the whole process, native code and kernel included: `perf record -e
 *   cpu-clock` on the gateway pid, by shared object and by symbol, when perf
 *   is installed (Debian: linux-perf). JavaScript shows up there as
 *   "[JIT] tid"; V8's view above breaks that part down.
 *
 * With perf it also counts the gateway's send syscalls (sendto/write/
 * writev tracepoints) over the window: frames delivered per syscall shows
 * what WRITE_DELAY_MS (`--write-delay`) saves.
 *
 * With `--scenario connect-storm` the window is a storm of authenticated
 * upgrades instead (each subscribing to one channel), to see the connect path.
 *
 *   node --import tsx bench/profile.ts [--scenario broadcast|connect-storm] [--connections 10000] [--rate 100] [--size 64] [--seconds 10] [--write-delay 0] [--out bench/results]
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LoadGen } from "./lib/loadgen.js";
import { ROOT, startHerald } from "./lib/targets.js";
import { runIfMain } from "./lib/cli.js";

interface CpuNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: CpuNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface Row {
  name: string;
  where: string;
  ms: number;
  pct: number;
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));
const monotonicMicros = () => Number(process.hrtime.bigint() / 1000n);

/** Self time per function over [fromUs, toUs] (monotonic µs); the rest of the profile is ignored. */
export function summarise(profile: CpuProfile, fromUs = -Infinity, toUs = Infinity, top = 15): { totalMs: number; rows: Row[] } {
  const self = new Map<number, number>();
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (t >= fromUs && t <= toUs) self.set(id, (self.get(id) ?? 0) + dt);
  });
  const byFn = new Map<string, { name: string; where: string; us: number }>();
  let total = 0;
  for (const n of profile.nodes) {
    const us = self.get(n.id) ?? 0;
    if (us === 0) continue;
    total += us;
    const url = n.callFrame.url.replace(/^file:\/\//, "").replace(ROOT, "");
    const where = url ? `${url}:${n.callFrame.lineNumber + 1}` : "";
    const name = n.callFrame.functionName || "(anonymous)";
    const key = `${name}@${where}`;
    const e = byFn.get(key) ?? { name, where, us: 0 };
    e.us += us;
    byFn.set(key, e);
  }
  const rows = [...byFn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((e) => ({ name: e.name, where: e.where, ms: Math.round(e.us / 1000), pct: +((e.us / total) * 100).toFixed(1) }));
  return { totalMs: total / 1000, rows };
}

function perfAvailable(): boolean {
  return spawnSync("perf", ["--version"], { stdio: "ignore" }).status === 0;
}

/** `perf report` rows (overhead %, name) sorted by `key` (dso or sym). */
function perfReport(file: string, key: "dso" | "sym", top: number): Array<{ pct: number; name: string }> {
  const r = spawnSync("perf", ["report", "-i", file, "--stdio", "--no-children", "-g", "none", "--sort", key, "-q"], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  const rows: Array<{ pct: number; name: string }> = [];
  for (const line of (r.stdout ?? "").split("\n")) {
    const m = /^\s*([\d.]+)%\s+(.+?)\s*$/.exec(line);
    if (m) rows.push({ pct: Number(m[1]), name: m[2]!.replace(/^\[k\]\s+/, "[kernel] ").replace(/^\[\.\]\s+/, "") });
    if (rows.length >= top) break;
  }
  return rows;
}

/** Tracepoints of the syscalls uWS writes sockets with. */
const SEND_SYSCALLS = ["syscalls:sys_enter_sendto", "syscalls:sys_enter_write", "syscalls:sys_enter_writev"];

/** Sum of the counts in a `perf stat -x ,` file (tracepoints that could not be counted are skipped). */
function sendSyscalls(file: string): number {
  let total = 0;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const [count, , event] = line.split(",");
    if (event && SEND_SYSCALLS.includes(event) && /^\d+$/.test(count ?? "")) total += Number(count);
  }
  return total;
}

async function stopPerf(perf: ChildProcess): Promise<void> {
  if (perf.exitCode !== null) return;
  const done = new Promise((r) => perf.once("exit", r));
  perf.kill("SIGINT");
  await done;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connections: { type: "string", default: "10000" },
      rate: { type: "string", default: "100" },
      size: { type: "string", default: "64" },
      seconds: { type: "string", default: "10" },
      "write-delay": { type: "string", default: "0" },
      scenario: { type: "string", default: "broadcast" },
      out: { type: "string", default: join(ROOT, "bench/results") },
    },
  });
  const writeDelay = Number(values["write-delay"]);
  const scenario = values.scenario;
  if (scenario !== "broadcast" && scenario !== "connect-storm") throw new Error(`--scenario must be broadcast or connect-storm, not ${scenario}`);
  const storm = scenario === "connect-storm";
  const dir = mkdtempSync(join(tmpdir(), "herald-prof-"));
  const t = await startHerald(1, {
    nodeArgs: ["--cpu-prof", "--cpu-prof-dir", dir, "--perf-basic-prof-only-functions"],
    env: { WRITE_DELAY_MS: String(writeDelay) },
  });
  const gatewayPid = t.spec.serverPids[0]!;
  const lg = new LoadGen(t.spec, 2);
  const perfFile = join(dir, "perf.data");
  const statFile = join(dir, "syscalls.csv");
  const usePerf = perfAvailable();
  let phase: Awaited<ReturnType<LoadGen["phase"]>> | undefined;
  let storming: Awaited<ReturnType<LoadGen["connect"]>> | undefined;
  let fromUs = 0;
  let toUs = 0;
  try {
    await lg.start();
    const count = Number(values.connections);
    const startPerf = () => ({
      perf: usePerf
        ? spawn("perf", ["record", "-e", "cpu-clock", "-F", "499", "-g", "-p", String(gatewayPid), "-o", perfFile], { stdio: "ignore" })
        : undefined,
      counter: usePerf
        ? spawn("perf", ["stat", "-x", ",", "-o", statFile, "-e", SEND_SYSCALLS.join(","), "-p", String(gatewayPid)], { stdio: "ignore" })
        : undefined,
    });
    let perf: ChildProcess | undefined;
    let counter: ChildProcess | undefined;
    if (storm) {
      // The window is the storm itself: upgrades, welcome, subscribe, reply.
      ({ perf, counter } = startPerf());
      await settle(300); // perf attaches before the first upgrade
      fromUs = monotonicMicros();
      storming = await lg.connect({ count, rate: 0, inflight: 500, shape: { kind: "shared", channel: "bench" }, probeEvery: 1e9 });
      toUs = monotonicMicros();
    } else {
      await lg.connect({ count, rate: 0, shape: { kind: "shared", channel: "bench" } });
      ({ perf, counter } = startPerf());
      fromUs = monotonicMicros();
      phase = await lg.phase({ rate: Number(values.rate), size: Number(values.size), seconds: Number(values.seconds) });
      toUs = monotonicMicros();
    }
    if (perf) await stopPerf(perf);
    if (counter) await stopPerf(counter);
  } finally {
    await lg.stop();
    await t.stop();
  }
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  const prof = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
  const js = summarise(prof, fromUs, toUs);
  const windowSeconds = (toUs - fromUs) / 1e6;

  const md = storming
    ? [
        `# Herald gateway CPU profile — connect storm`,
        "",
        `${Number(values.connections).toLocaleString("en-US")} authenticated upgrades (one JWT per user, 500 in flight per generator worker), each subscribing to one shared channel: ` +
          `${Math.round(storming.perSecond).toLocaleString("en-US")} connections/s, handshake p99 ${storming.handshakeMs.p99} ms, ` +
          `${((storming.serverCpuSeconds * 1000) / Math.max(1, storming.ready)).toFixed(3)} ms gateway CPU per connection. Only the storm (${windowSeconds.toFixed(1)} s) is counted.`,
        "",
        `Command: \`node --import tsx bench/profile.ts --scenario connect-storm --connections ${values.connections}\``,
        "",
      ]
    : [
        `# Herald gateway CPU profile — broadcast fan-out`,
        "",
        `${values.connections} subscribers on one channel, ${values.rate} msg/s × ${values.size} B through NATS for ${values.seconds} s: ` +
          `${phase!.deliveriesPerSecond.toLocaleString("en-US")} deliveries/s, p99 ${phase!.latencyMs.p99} ms, gateway CPU ${phase!.serverCpuPercent}% of one core. ` +
          `Only the fan-out window (${windowSeconds.toFixed(1)} s) is counted; connection setup is left out.`,
        "",
        `Command: \`node --import tsx bench/profile.ts --connections ${values.connections} --rate ${values.rate} --size ${values.size} --seconds ${values.seconds}${writeDelay > 0 ? ` --write-delay ${writeDelay}` : ""}\``,
        "",
      ];
  const sends = existsSync(statFile) ? sendSyscalls(statFile) : undefined;
  if (sends !== undefined && sends > 0 && phase) {
    const frames = phase.deliveriesPerSecond * windowSeconds;
    md.push(
      `Send syscalls (sendto + write + writev) in the window: ${Math.round(sends / windowSeconds).toLocaleString("en-US")}/s, ` +
        `${(frames / sends).toFixed(2)} frames delivered per syscall (WRITE_DELAY_MS=${writeDelay}).`,
      "",
    );
  }
  if (usePerf && existsSync(perfFile)) {
    const dsos = perfReport(perfFile, "dso", 8);
    const syms = perfReport(perfFile, "sym", 20);
    md.push(
      "## Whole process (perf, cpu-clock), by shared object",
      "",
      "Share of the gateway's CPU samples; `[kernel.kallsyms]` is the kernel (TCP send/receive on loopback, epoll), `uws_*.node` is uWebSockets.js' C++, `[JIT] tid` is JavaScript.",
      "",
      "| % of samples | object |",
      "|---:|---|",
      ...dsos.map((r) => `| ${r.pct.toFixed(1)} | \`${r.name}\` |`),
      "",
      "## Whole process, top symbols",
      "",
      "| % of samples | symbol |",
      "|---:|---|",
      ...syms.map((r) => `| ${r.pct.toFixed(1)} | \`${r.name}\` |`),
      "",
    );
  } else {
    md.push("(perf is not installed: native and kernel time are not broken down; `apt-get install linux-perf`.)", "");
  }
  md.push(
    "## JavaScript (V8 --cpu-prof), self time in the window",
    "",
    `${js.totalMs.toFixed(0)} ms sampled; \`(idle)\` is the event loop waiting in epoll (the C++ and kernel work of uWS happens there too, outside JavaScript).`,
    "",
    "| self ms | self % | function | where |",
    "|---:|---:|---|---|",
    ...js.rows.map((r) => `| ${r.ms} | ${r.pct} | \`${r.name}\` | ${r.where} |`),
    "",
    `Raw files: ${dir}`,
    "",
  );
  const text = md.join("\n");
  mkdirSync(values.out, { recursive: true });
  const conns = values.connections === "10000" ? "" : `-c${values.connections}`;
  const outFile = storm
    ? join(values.out, `profile-connect-storm${conns}.md`)
    : join(values.out, `profile-broadcast-${values.size}B-${values.rate}${conns}${writeDelay > 0 ? `-delay${writeDelay}` : ""}.md`);
  writeFileSync(outFile, text);
  process.stdout.write(text + `\nwrote ${outFile}\n`);
}

runIfMain(import.meta.url, main);
