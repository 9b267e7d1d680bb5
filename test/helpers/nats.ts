/**
 * A real nats-server for integration tests.
 *
 * - `NATS_URL` set in the environment: that server is used as is (monitor URL
 *   from `NATS_MONITOR_URL` when set); stop/kill/restart are unsupported and
 *   throw `NatsControlUnsupported`, so fault tests skip with a reason.
 * - otherwise `nats-server` (PATH or /usr/sbin, /usr/local/bin) is spawned on
 *   free loopback ports;
 * - otherwise testcontainers is used when that package is installed.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { track } from "./cleanup.js";
import { freePorts } from "./ports.js";
import { waitFor, withTimeout } from "./wait.js";

export class NatsControlUnsupported extends Error {
  constructor(what: string) {
    super(`${what} is not supported for an external NATS (NATS_URL is set)`);
  }
}

export interface NatsOptions {
  jetstream?: boolean;
  /** Extra command line arguments for nats-server. */
  args?: string[];
  /** Startup timeout (default 10 s). */
  timeoutMs?: number;
}

export interface NatsServer {
  url: string;
  /** HTTP monitoring endpoint, undefined when unknown (external NATS without NATS_MONITOR_URL). */
  monitorUrl: string | undefined;
  /** Process id of the current nats-server, undefined when external. */
  readonly pid: number | undefined;
  /** True when the helper controls the process (stop/kill/restart work). */
  controllable: boolean;
  /** Graceful stop (SIGTERM), waits for exit; also removes the JetStream dir. */
  stop(): Promise<void>;
  /** SIGKILL, waits for exit (the server can be restarted on the same ports). */
  kill(): Promise<void>;
  /** Starts the server again on the SAME ports (after kill/stop or while running) and waits for healthz. */
  restart(): Promise<void>;
  /** Lines the server wrote (stdout and stderr). */
  logs: string[];
}

const CANDIDATES = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"];

function findBinary(): string | undefined {
  const fromEnv = process.env["NATS_SERVER_BIN"];
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  for (const dir of (process.env["PATH"] ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, "nats-server");
    if (existsSync(p)) return p;
  }
  return CANDIDATES.find((p) => existsSync(p));
}

async function httpOk(url: string, timeoutMs = 1000): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

export async function getJson<T = unknown>(url: string, timeoutMs = 2000): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`GET ${url} -> ${res.status}`);
  return (await res.json()) as T;
}

class SpawnedNats implements NatsServer {
  url: string;
  monitorUrl: string;
  controllable = true;
  logs: string[] = [];
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    private readonly bin: string,
    private readonly args: string[],
    readonly port: number,
    readonly monitorPort: number,
    private readonly storeDir: string | undefined,
    private readonly timeoutMs: number,
    readonly label = "nats",
  ) {
    this.url = `nats://127.0.0.1:${port}`;
    this.monitorUrl = `http://127.0.0.1:${monitorPort}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  private get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    const child = spawn(this.bin, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    track(child);
    this.child = child;
    this.exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const collect = (buf: Buffer) => {
      for (const line of buf.toString("utf8").split("\n")) if (line) this.logs.push(line);
      if (this.logs.length > 5000) this.logs.splice(0, this.logs.length - 5000);
    };
    child.stdout?.on("data", collect);
    child.stderr?.on("data", collect);
    let spawnError: Error | undefined;
    child.once("error", (err) => (spawnError = err));
    await waitFor(
      async () => {
        if (spawnError) throw spawnError;
        if (!this.running) {
          throw new Error(`${this.label} exited early: ${this.logs.slice(-10).join("\n")}`);
        }
        return (await httpOk(`${this.monitorUrl}/healthz`)) && (await httpOk(`${this.monitorUrl}/varz`));
      },
      { timeoutMs: this.timeoutMs, intervalMs: 50, message: `${this.label} monitor ${this.monitorUrl} answering 200` },
    ).catch((err: Error) => {
      if (this.running) this.child?.kill("SIGKILL");
      throw new Error(`${err.message}\n--- ${this.label} log tail ---\n${this.logs.slice(-20).join("\n")}`);
    });
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    if (!this.running) return;
    this.child?.kill(sig);
    try {
      await withTimeout(this.exited, 10_000, `${this.label} exit after ${sig}`);
    } catch (err) {
      this.child?.kill("SIGKILL");
      await withTimeout(this.exited, 5_000, `${this.label} exit after SIGKILL`);
      if (sig !== "SIGKILL") throw err;
    }
  }

  async kill(): Promise<void> {
    await this.signal("SIGKILL");
  }

  async stopProcess(): Promise<void> {
    await this.signal("SIGTERM");
  }

  async stop(): Promise<void> {
    await this.stopProcess();
    if (this.storeDir) rmSync(this.storeDir, { recursive: true, force: true });
  }

  async restart(): Promise<void> {
    if (this.running) await this.stopProcess();
    // The ports may take a moment to be bindable again; nats-server exits when
    // it cannot listen, so retry a few (bounded) times.
    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.start();
        return;
      } catch (err) {
        lastErr = err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    throw lastErr;
  }
}

class ExternalNats implements NatsServer {
  controllable = false;
  logs: string[] = [];
  readonly pid = undefined;
  constructor(
    readonly url: string,
    readonly monitorUrl: string | undefined,
  ) {}
  async stop(): Promise<void> {
    /* not ours to stop; tests share it */
  }
  async kill(): Promise<void> {
    throw new NatsControlUnsupported("kill()");
  }
  async restart(): Promise<void> {
    throw new NatsControlUnsupported("restart()");
  }
}

/** Reason to skip a test that needs to stop/kill/restart NATS, or undefined when it can run. */
export function natsControlSkipReason(nats: NatsServer): string | undefined {
  return nats.controllable ? undefined : "NATS_URL points at an external server; it cannot be killed or restarted from the test";
}

export async function startNats(opts: NatsOptions = {}): Promise<NatsServer> {
  const external = process.env["NATS_URL"];
  if (external) return new ExternalNats(external, process.env["NATS_MONITOR_URL"] || undefined);

  const bin = findBinary();
  if (!bin) return startNatsContainer(opts);

  const [port, monitorPort] = (await freePorts(2)) as [number, number];
  const args = ["-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort), "-n", `herald-test-${port}`];
  let storeDir: string | undefined;
  if (opts.jetstream) {
    storeDir = mkdtempSync(path.join(tmpdir(), "herald-nats-js-"));
    args.push("--js", "-sd", storeDir);
  }
  if (opts.args) args.push(...opts.args);
  const server = new SpawnedNats(bin, args, port, monitorPort, storeDir, opts.timeoutMs ?? 10_000);
  await server.start();
  return server;
}

/** Fallback when no nats-server binary exists: testcontainers, when installed. */
async function startNatsContainer(opts: NatsOptions): Promise<NatsServer> {
  const moduleName = "testcontainers";
  type Started = {
    getHost(): string;
    getMappedPort(p: number): number;
    stop(): Promise<unknown>;
    restart(): Promise<unknown>;
  };
  type TC = {
    GenericContainer: new (image: string) => {
      withCommand(cmd: string[]): { withExposedPorts(...p: number[]): { start(): Promise<Started> } };
    };
  };
  let tc: TC;
  try {
    tc = (await import(moduleName)) as TC;
  } catch {
    throw new Error(
      "No nats-server binary found (PATH, /usr/sbin, /usr/local/bin; or NATS_SERVER_BIN) and the optional " +
        "'testcontainers' package is not installed. Install nats-server, set NATS_URL to a running server, " +
        "or `npm i -D testcontainers`.",
    );
  }
  const cmd = ["-m", "8222", ...(opts.jetstream ? ["--js"] : []), ...(opts.args ?? [])];
  const container = await new tc.GenericContainer("nats:2.10-alpine").withCommand(cmd).withExposedPorts(4222, 8222).start();
  const host = container.getHost();
  const url = `nats://${host}:${container.getMappedPort(4222)}`;
  const monitorUrl = `http://${host}:${container.getMappedPort(8222)}`;
  await waitFor(() => httpOk(`${monitorUrl}/varz`), { timeoutMs: opts.timeoutMs ?? 30_000, message: "container NATS /varz" });
  return {
    url,
    monitorUrl,
    pid: undefined,
    controllable: false,
    logs: [],
    stop: async () => {
      await container.stop();
    },
    kill: async () => {
      throw new NatsControlUnsupported("kill() on a container");
    },
    restart: async () => {
      throw new NatsControlUnsupported("restart() on a container");
    },
  };
}

export interface NatsCluster {
  nodes: NatsServer[];
  /** Comma list of every node's client URL (what NATS_URL takes). */
  urls: string;
  stop(): Promise<void>;
}

/** A cluster of `size` nodes named "herald", every node routed to every other. */
export async function startNatsCluster(size = 3, opts: NatsOptions = {}): Promise<NatsCluster> {
  const bin = findBinary();
  if (!bin) throw new Error("startNatsCluster needs a nats-server binary");
  const ports = await freePorts(size * 3);
  const nodes: SpawnedNats[] = [];
  const clusterPorts = Array.from({ length: size }, (_, i) => ports[i * 3 + 2] as number);
  for (let i = 0; i < size; i++) {
    const port = ports[i * 3] as number;
    const monitorPort = ports[i * 3 + 1] as number;
    const routes = clusterPorts
      .filter((_, j) => j !== i)
      .map((p) => `nats://127.0.0.1:${p}`)
      .join(",");
    const args = [
      "-a", "127.0.0.1",
      "-p", String(port),
      "-m", String(monitorPort),
      "-n", `herald-node-${i}`,
      "--cluster_name", "herald",
      "--cluster", `nats://127.0.0.1:${clusterPorts[i]}`,
      "--routes", routes,
    ];
    let storeDir: string | undefined;
    if (opts.jetstream) {
      storeDir = mkdtempSync(path.join(tmpdir(), `herald-nats-js-${i}-`));
      args.push("--js", "-sd", storeDir);
    }
    if (opts.args) args.push(...opts.args);
    nodes.push(new SpawnedNats(bin, args, port, monitorPort, storeDir, opts.timeoutMs ?? 10_000, `nats node ${i}`));
  }
  const cluster: NatsCluster = {
    nodes,
    urls: nodes.map((n) => n.url).join(","),
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
    await waitFor(
      async () => {
        for (const n of nodes) {
          const routez = await getJson<{ num_routes?: number }>(`${n.monitorUrl}/routez`);
          if ((routez.num_routes ?? 0) < size - 1) return false;
        }
        return true;
      },
      { timeoutMs: 15_000, intervalMs: 100, message: `every node of the ${size}-node cluster having ${size - 1} routes` },
    );
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

export interface NatsConnectionInfo {
  cid: number;
  name: string | undefined;
  subscriptions_list: string[];
}

/** GET /connz?subs=1: every client connection with its name and subjects. */
export async function natsSubscriptions(monitorUrl: string | undefined): Promise<NatsConnectionInfo[]> {
  if (!monitorUrl) throw new Error("natsSubscriptions needs a NATS monitor URL (set NATS_MONITOR_URL for an external NATS)");
  const connz = await getJson<{ connections?: Array<{ cid: number; name?: string; subscriptions_list?: string[] }> }>(
    `${monitorUrl}/connz?subs=1&limit=4096`,
  );
  return (connz.connections ?? []).map((c) => ({
    cid: c.cid,
    name: c.name,
    subscriptions_list: c.subscriptions_list ?? [],
  }));
}

/**
 * How many subscriptions on `subject` the connections named `name` hold;
 * undefined when no connection with that name is connected.
 */
export async function subscriptionCount(monitorUrl: string | undefined, name: string, subject: string): Promise<number | undefined> {
  const conns = (await natsSubscriptions(monitorUrl)).filter((c) => c.name === name);
  if (conns.length === 0) return undefined;
  return conns.reduce((n, c) => n + c.subscriptions_list.filter((s) => s === subject).length, 0);
}
