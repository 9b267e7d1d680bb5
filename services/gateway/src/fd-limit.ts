/**
 * Reads the open-files limit of this process (Linux /proc), so a gateway
 * that cannot hold the connections it is sized for says so at start rather
 * than failing with EMFILE under load. Node raises its soft limit to the hard
 * limit by itself at start, so what we read here is the hard limit the
 * container runtime granted (compose `ulimits`, the kubelet's default).
 */
import { readFileSync } from "node:fs";

export interface FdLimit {
  soft: number;
  hard: number;
}

export function readFdLimit(): FdLimit | undefined {
  try {
    const text = readFileSync("/proc/self/limits", "utf8");
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
    if (!m) return undefined;
    const parse = (v: string) => (v === "unlimited" ? Number.POSITIVE_INFINITY : Number(v));
    return { soft: parse(m[1]!), hard: parse(m[2]!) };
  } catch {
    return undefined;
  }
}
