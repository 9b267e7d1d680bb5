/** CPU seconds and RSS of local server processes, read from /proc. */
import { readFileSync } from "node:fs";

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
