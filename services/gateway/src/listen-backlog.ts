/**
 * Raises the accept queue of the gateway's listening socket above the 512
 * that uSockets (under uWebSockets.js 20.30) passes to listen(2) and offers
 * no option for.
 *
 * Why: in a reconnect storm, connections arrive faster than one event-loop
 * turn accepts them. Once 512 wait, Linux drops every further SYN, and each
 * dropped client retries only after 1 s, then 3 s, 7 s... (TCP's initial
 * retransmission timeout). Measured here: 128 of 10,000 storm connections
 * were dropped so (TcpExtListenOverflows), which set the storm's p99 at 1.2 s
 * and its rate 10-15% lower. Go servers (nats-server's WebSocket listener,
 * Centrifugo) ask for net.core.somaxconn (4096 on Linux >= 5.4).
 *
 * How: Linux lets listen(2) be called again on a listening socket to change
 * its backlog. The socket's descriptor is found through /proc (the LISTEN
 * entry of /proc/net/tcp{,6} on our port whose inode is one of our
 * descriptors) and handed to a short-lived child Node process (stdio
 * inheritance duplicates it), which calls listen(2) on its copy through
 * net.Server's `listen({ fd }, backlog)` and exits before its event loop
 * could ever accept a connection. This process's own event loop never sees the copy.
 * Linux only; elsewhere, or when anything is missing, the gateway keeps
 * uSockets' 512 and says so.
 */
import { spawn } from "node:child_process";
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import type { Logger } from "@herald/core";

/** uSockets' own backlog (bsd.c), what the socket has when this is not done. */
export const USOCKETS_BACKLOG = 512;

export type BacklogResult =
  | { raised: true; fd: number; backlog: number; somaxconn: number | undefined }
  | { raised: false; why: string };

/** The child: re-listens on its fd 3 with the backlog in argv[1], then exits at once (before any accept). */
const RELISTEN = `require("node:net").createServer().on("error",e=>{process.stderr.write(String(e.code||e.message));process.exit(2)}).listen({fd:3},Number(process.argv[1]),()=>process.exit(0))`;

function readSomaxconn(): number | undefined {
  try {
    const v = Number(readFileSync("/proc/sys/net/core/somaxconn", "utf8").trim());
    return Number.isInteger(v) && v > 0 ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Socket inodes of the LISTEN entries on `port` (/proc/net/tcp and tcp6; local port is hex, state 0A is LISTEN). */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      if (f.length < 10 || f[3] !== "0A") continue;
      if (f[1]!.endsWith(`:${hexPort}`)) inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** This process's descriptor for the socket listening on `port`, if exactly one is found. */
export function findListeningFd(port: number): number | undefined {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return undefined;
  const found: number[] = [];
  let names: string[];
  try {
    names = readdirSync("/proc/self/fd");
  } catch {
    return undefined;
  }
  for (const name of names) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // closed meanwhile (readdir's own descriptor, for one)
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && inodes.has(m[1]!)) found.push(Number(name));
  }
  return found.length === 1 ? found[0] : undefined;
}

/** Asks for `backlog` on the socket listening on `port` (Linux caps it at net.core.somaxconn). */
export async function raiseListenBacklog(port: number, backlog: number): Promise<BacklogResult> {
  if (process.platform !== "linux") return { raised: false, why: `not on Linux (${process.platform})` };
  const fd = findListeningFd(port);
  if (fd === undefined) return { raised: false, why: `no single listening socket on port ${port} found in /proc` };
  const child = spawn(process.execPath, ["-e", RELISTEN, String(backlog)], {
    stdio: ["ignore", "ignore", "pipe", fd],
    // No NODE_OPTIONS or anything else of the gateway's environment: the child needs none.
    env: {},
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => {
    child.once("error", () => resolve(null));
    child.once("exit", (c) => resolve(c));
  });
  if (code !== 0) return { raised: false, why: `the re-listen helper failed (${code === null ? "could not start" : `exit ${code}`}${stderr ? `: ${stderr.slice(0, 200)}` : ""})` };
  return { raised: true, fd, backlog, somaxconn: readSomaxconn() };
}

/** raiseListenBacklog, told to the operator: what the accept queue is now, or why it stayed at 512. */
export async function applyListenBacklog(port: number, backlog: number, logger: Logger): Promise<void> {
  const r = await raiseListenBacklog(port, backlog);
  if (!r.raised) {
    logger.warn({ port, why: r.why }, `listen backlog stays at uSockets' ${USOCKETS_BACKLOG}: in a reconnect storm, connections past it wait 1 s or more (LISTEN_BACKLOG)`);
    return;
  }
  const effective = r.somaxconn === undefined ? backlog : Math.min(backlog, r.somaxconn);
  if (effective < backlog) {
    logger.warn({ port, requested: backlog, somaxconn: r.somaxconn }, `listen backlog is ${effective}, capped by net.core.somaxconn (raise the sysctl to get LISTEN_BACKLOG=${backlog})`);
  } else {
    logger.debug({ port, backlog: effective }, "listen backlog raised");
  }
}
