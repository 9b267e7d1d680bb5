/** Child processes for benchmark targets: free ports, readiness polling, guaranteed cleanup. */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync } from "node:fs";
import net from "node:net";

const children = new Set<ChildProcess>();
let installed = false;
function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}
/** Child processes started here that have not exited yet. */
export function liveChildren(): number {
  return [...children].filter((c) => c.exitCode === null && c.signalCode === null).length;
}

export function killAll(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  children.clear();
}

export interface Proc {
  child: ChildProcess;
  pid: number;
  name: string;
  output: string[];
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

export function start(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Proc {
  install();
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  children.add(child);
  const output: string[] = [];
  const keep = (d: Buffer) => {
    for (const l of d.toString().split("\n")) if (l) output.push(l);
    if (output.length > 200) output.splice(0, output.length - 200);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  child.once("exit", () => children.delete(child));
  return {
    child,
    pid: child.pid!,
    name,
    output,
    async stop(signal = "SIGTERM", timeoutMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill(signal);
      const t = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
      await exited;
      clearTimeout(t);
    },
  };
}

export function freePorts(n: number): Promise<number[]> {
  return Promise.all(
    Array.from({ length: n }, () => new Promise<net.Server>((resolve, reject) => {
      const s = net.createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => resolve(s));
    })),
  ).then(async (servers) => {
    const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    return ports;
  });
}

/** Polls until `check` is true; bounded by `timeoutMs`; fails early if `proc` exits. */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 20_000, proc?: Proc): Promise<void> {
  const end = Date.now() + timeoutMs;
  let delay = 20;
  while (Date.now() < end) {
    if (proc && (proc.child.exitCode !== null || proc.child.signalCode !== null)) {
      throw new Error(`${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) while waiting for ${what}:\n${proc.output.slice(-20).join("\n")}`);
    }
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(250, delay * 2);
  }
  throw new Error(`timed out waiting for ${what}${proc ? `:\n${proc.output.slice(-20).join("\n")}` : ""}`);
}

export const httpOk = (url: string) => async () => (await fetch(url, { signal: AbortSignal.timeout(1000) })).ok;

export function natsServerBin(): string {
  for (const p of [process.env["NATS_SERVER_BIN"], "/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"]) {
    if (p && existsSync(p)) return p;
  }
  return "nats-server";
}
