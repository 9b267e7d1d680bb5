/**
 * Starts the systems under test on loopback, each with its own NATS:
 *   herald-N     N Herald gateway processes (services/gateway/dist/main.js) + nats-server (core NATS)
 *   herald-history  1 Herald gateway + nats-server with JetStream: recovery mode (positions, history)
 *   herald-history-xN  N such gateways on one JetStream nats-server (the avalanche scenario)
 *   herald-batched  1 Herald gateway with WRITE_DELAY_MS=10: broadcast frames written together
 *   nats-ws      nats-server's own WebSocket listener (clients speak NATS over WebSocket)
 *   ws-N         the `ws` + `nats` baseline gateway (bench/peers/ws-gateway.ts), N processes + nats-server
 *   uws-ceiling  a trivial uWS broadcaster (bench/peers/uws-broadcast.ts) + nats-server: the generator's ceiling
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SEMI_SPACE_FLAG } from "../../services/gateway/src/heap-flags.js";
import { GLIBC_TUNABLES_DEFAULT } from "../../services/gateway/src/malloc-tunables.js";
import { spawnChild, type Proc } from "../../test/helpers/children.js";
import { httpOk } from "../../test/helpers/http.js";
import { spawnNats } from "../../test/helpers/nats.js";
import { freePort, freePorts } from "../../test/helpers/ports.js";
import { waitFor } from "../../test/helpers/wait.js";
import type { TargetSpec } from "./loadgen.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const GATEWAY_MAIN = join(ROOT, "services/gateway/dist/main.js");
const PEERS = fileURLToPath(new URL("../peers/", import.meta.url));
export const BENCH_SECRET = "herald-bench-secret-0123456789-abcdefghijkl";
export const NATS_WS_TOKEN = "herald-bench-nats-token";
/** WRITE_DELAY_MS of the herald-batched target. */
export const BATCHED_WRITE_DELAY_MS = 10;

export interface RunningTarget {
  spec: TargetSpec;
  stop(): Promise<void>;
  /** Node server targets: their processes, for fault scenarios (kill one, start it again). */
  servers?: ServerControl;
}

export interface ServerControl {
  /** The current process of server i (the new one after respawn). */
  proc(i: number): Proc;
  /** Starts server i again on its port (after it exited) and waits for /readyz; stop() stops the new one. */
  respawn(i: number): Promise<Proc>;
}

export interface TargetOptions {
  /** Extra node flags for the WebSocket server processes (e.g. --cpu-prof). */
  nodeArgs?: string[];
  env?: Record<string, string>;
}

/** The target's own nats-server (never NATS_URL: the bench samples the broker process too). */
interface BenchNats {
  url: string;
  pid: number;
  wsPort?: number;
  stop(): Promise<void>;
}

async function startNats(opts: { websocket?: boolean; token?: string; jetstream?: boolean } = {}): Promise<BenchNats> {
  const wsPort = opts.websocket ? await freePort() : undefined;
  const config = [`max_payload: 1048576`, `max_connections: 100000`, `write_deadline: "10s"`];
  if (opts.token) config.push(`authorization { token: "${opts.token}" }`);
  if (wsPort) config.push(`websocket { listen: "127.0.0.1:${wsPort}", no_tls: true, compression: false }`);
  const nats = await spawnNats({ config, ...(opts.jetstream ? { jetstream: true } : {}), timeoutMs: 15_000 });
  return { url: nats.url, pid: nats.pid ?? -1, stop: () => nats.stop(), ...(wsPort ? { wsPort } : {}) };
}

async function nodeServers(
  name: string,
  n: number,
  script: string,
  env: (port: number, i: number) => Record<string, string>,
  opts: TargetOptions,
): Promise<{ procs: Proc[]; ports: number[]; control: ServerControl }> {
  const ports = await freePorts(n);
  const spawnOne = (i: number, gen = 0) =>
    spawnChild(`${name}#${i}${gen ? `.${gen}` : ""}`, process.execPath, [...(opts.nodeArgs ?? []), ...(script.endsWith(".ts") ? ["--import", "tsx"] : []), script], {
      cwd: ROOT,
      env: { PATH: process.env["PATH"] ?? "", ...env(ports[i]!, i), ...(opts.env ?? {}) },
      maxLines: 200,
    });
  const ready = (p: Proc, i: number) => waitFor(() => httpOk(`http://127.0.0.1:${ports[i]}/readyz`), { timeoutMs: 30_000, intervalMs: 50, proc: p, message: `${p.name} /readyz` });
  const procs = ports.map((_, i) => spawnOne(i));
  try {
    await Promise.all(procs.map((p, i) => ready(p, i)));
  } catch (err) {
    for (const p of procs) p.kill("SIGKILL");
    throw err;
  }
  const gens = procs.map(() => 0);
  const control: ServerControl = {
    proc: (i) => procs[i]!,
    async respawn(i) {
      if (procs[i]!.alive) throw new Error(`${procs[i]!.name} still runs`);
      const p = spawnOne(i, ++gens[i]!);
      procs[i] = p; // stopAll() stops the new one
      await ready(p, i);
      return p;
    },
  };
  return { procs, ports, control };
}

/** Servers first (SIGTERM so --cpu-prof profiles get written), then their broker. */
const stopAll = (nats: BenchNats, procs: Proc[]) => async () => {
  await Promise.all(procs.map((p) => p.stop(8000)));
  await nats.stop();
};

/** A target of herald-protocol WebSocket servers (`procs` on `ports`) in front of their own NATS. */
function heraldProtocolTarget(name: string, nats: BenchNats, procs: Proc[], ports: number[], auth: { secret: string } | { token: string }): RunningTarget {
  return {
    stop: stopAll(nats, procs),
    spec: {
      name,
      proto: "herald",
      endpoints: ports.map((port) => ({ host: "127.0.0.1", port, path: "/ws" })),
      ...auth,
      subjectPrefix: "herald",
      publish: { kind: "nats", url: nats.url, subjectPrefix: "herald" },
      serverPids: procs.map((p) => p.pid),
      brokerPids: [nats.pid],
      spreadLocal: true,
    },
  };
}

/**
 * Herald on core NATS (no positions), or with `history` on JetStream: every
 * channel message stored and republished with its position (recovery mode).
 */
export async function startHerald(n: number, opts: TargetOptions = {}, history = false): Promise<RunningTarget> {
  const nats = await startNats({ jetstream: history });
  const { procs, ports, control } = await nodeServers(`herald-gw`, n, GATEWAY_MAIN, (port, i) => ({
    GATEWAY_HOST: "127.0.0.1",
    GATEWAY_PORT: String(port),
    NATS_URL: nats.url,
    NATS_NAME: `herald-bench-gw-${i}`,
    JWT_SECRET: BENCH_SECRET,
    MAX_CONNECTIONS_PER_IP: "0",
    MAX_CONNECTIONS: "100000",
    LOG_LEVEL: "warn",
    DRAIN_SECONDS: "0",
    HISTORY: history ? "true" : "false",
    // As `npm run gateway` and the image start it.
    GLIBC_TUNABLES: GLIBC_TUNABLES_DEFAULT,
  }), { ...opts, nodeArgs: [SEMI_SPACE_FLAG, ...(opts.nodeArgs ?? [])] }); // as `npm run gateway` starts it
  const name = (history ? "herald-history" : "herald") + (n === 1 ? "" : `-x${n}`);
  return { ...heraldProtocolTarget(name, nats, procs, ports, { secret: BENCH_SECRET }), servers: control };
}

export async function startWsBaseline(n: number, opts: TargetOptions = {}): Promise<RunningTarget> {
  const nats = await startNats();
  const { procs, ports } = await nodeServers(`ws-gw`, n, join(PEERS, "ws-gateway.ts"), (port) => ({
    PORT: String(port),
    NATS_URL: nats.url,
    JWT_SECRET: BENCH_SECRET,
  }), opts);
  return heraldProtocolTarget(n === 1 ? "ws-baseline" : `ws-baseline-x${n}`, nats, procs, ports, { secret: BENCH_SECRET });
}

export async function startNatsWs(): Promise<RunningTarget> {
  const nats = await startNats({ websocket: true, token: NATS_WS_TOKEN });
  return {
    stop: () => nats.stop(),
    spec: {
      name: "nats-ws",
      proto: "nats",
      endpoints: [{ host: "127.0.0.1", port: nats.wsPort!, path: "/" }],
      natsToken: NATS_WS_TOKEN,
      subjectPrefix: "herald",
      publish: { kind: "nats", url: nats.url, token: NATS_WS_TOKEN, subjectPrefix: "herald" },
      // the WebSocket server and the broker are the same process
      serverPids: [nats.pid],
      brokerPids: [],
      spreadLocal: true,
    },
  };
}

export async function startUwsCeiling(): Promise<RunningTarget> {
  const nats = await startNats();
  const { procs, ports } = await nodeServers(`uws-ceiling`, 1, join(PEERS, "uws-broadcast.ts"), (port) => ({ PORT: String(port), NATS_URL: nats.url }), {});
  return heraldProtocolTarget("uws-ceiling", nats, procs, ports, { token: "none" });
}

export type TargetName = "herald" | "herald-history" | "herald-history-multi" | "herald-batched" | "herald-multi" | "nats-ws" | "ws-baseline" | "ws-baseline-multi" | "uws-ceiling";

export function startTarget(name: TargetName, multi: number, opts: TargetOptions = {}): Promise<RunningTarget> {
  switch (name) {
    case "herald":
      return startHerald(1, opts);
    case "herald-history":
      return startHerald(1, opts, true);
    case "herald-batched":
      return startHerald(1, { ...opts, env: { ...opts.env, WRITE_DELAY_MS: String(BATCHED_WRITE_DELAY_MS) } }).then((t) => {
        t.spec.name = "herald-batched";
        return t;
      });
    case "herald-multi":
      return startHerald(multi, opts);
    case "herald-history-multi":
      return startHerald(multi, opts, true);
    case "ws-baseline":
      return startWsBaseline(1, opts);
    case "ws-baseline-multi":
      return startWsBaseline(multi, opts);
    case "nats-ws":
      return startNatsWs();
    case "uws-ceiling":
      return startUwsCeiling();
  }
}
