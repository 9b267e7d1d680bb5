/** Resident memory of a process (Linux /proc), for tests that measure what a load costs. */
import { readFileSync } from "node:fs";
import { waitFor } from "./wait.js";

const MiB = 1024 * 1024;

/** VmRSS of `pid` in bytes. */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) * 1024 : 0;
}

/** RSS once it has stopped moving (three readings 100 ms apart within 1 MiB). */
export async function settledRss(pid: number): Promise<number> {
  const readings: number[] = [];
  return waitFor(
    () => {
      readings.push(rssBytes(pid));
      const last = readings.slice(-3);
      return last.length === 3 && Math.max(...last) - Math.min(...last) < MiB ? last[2]! : 0;
    },
    { timeoutMs: 20_000, intervalMs: 100, message: "RSS settled" },
  );
}
