/** CPU seconds and RSS of local server processes, and the machine's busy share, read from /proc. */
import { readdirSync, readFileSync } from "node:fs";

const TICK = 100; // USER_HZ on Linux

export interface ProcSample {
  cpuSeconds: number;
  rssBytes: number;
}

export function sampleProc(pid: number): ProcSample {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields after "(comm)": state is f[0]; utime = field 14 -> f[11], stime -> f[12]
    const cpu = (Number(f[11]) + Number(f[12])) / TICK;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
    return { cpuSeconds: cpu, rssBytes: rss };
  } catch {
    return { cpuSeconds: NaN, rssBytes: NaN };
  }
}

export function sampleAll(pids: number[]): ProcSample {
  let cpu = 0;
  let rss = 0;
  for (const p of pids) {
    const s = sampleProc(p);
    cpu += s.cpuSeconds;
    rss += s.rssBytes;
  }
  return { cpuSeconds: cpu, rssBytes: rss };
}

/** CPU seconds of every thread of the processes, by "pid/tid" (threads gone meanwhile are simply missing). */
export function sampleThreads(pids: number[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const pid of pids) {
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        out.set(`${pid}/${tid}`, (Number(f[11]) + Number(f[12])) / TICK);
      } catch {
        // the thread ended between the listing and the read
      }
    }
  }
  return out;
}

/**
 * CPU seconds of the thread that worked most between two samples. For a
 * Node server that is its event loop (JavaScript, uWS and their syscalls),
 * the one thread a connect storm cannot spread over the cores.
 */
export function busiestThreadSeconds(before: Map<string, number>, after: Map<string, number>): number {
  let most = 0;
  for (const [id, t] of after) most = Math.max(most, t - (before.get(id) ?? 0));
  return most;
}

/** Busy and total jiffies of all cores since boot (/proc/stat's first line; iowait counts as idle). */
export interface MachineSample {
  busy: number;
  total: number;
}

export function sampleMachine(): MachineSample {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: NaN, total: NaN };
  }
}

/** Share of all cores' time that was busy between two samples, in percent. */
export function machineBusyPercent(before: MachineSample, after: MachineSample): number {
  const total = after.total - before.total;
  return total > 0 ? (100 * (after.busy - before.busy)) / total : NaN;
}
