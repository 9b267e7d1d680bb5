/**
 * A real NATS for integration tests and benchmarks. `startNats` takes it from
 * where test/helpers/nats-source.ts says: NATS_URL, else a spawned
 * nats-server, else a testcontainers container. `spawnNats` and
 * `startNatsCluster` always spawn the binary (benchmarks, fault tests).
 *
 * A spawned server is controllable (stop/kill/restart on the same ports);
 * the others throw `NatsControlUnsupported`, so fault tests skip with a reason.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { scratchDir, spawnChild, type Proc, type ScratchDir } from "./children.js";
import { startNatsContainer } from "./nats-container.js";
import { NatsControlUnsupported } from "./nats-errors.js";
import { natsServerBinary, natsSource } from "./nats-source.js";
import { getJson, httpOk } from "./http.js";
import { freePorts } from "./ports.js";
import { waitFor } from "./wait.js";

export { NatsControlUnsupported } from "./nats-errors.js";
export { natsServerBinary, natsSource, type NatsSource } from "./nats-source.js";

export interface NatsOptions {
  jetstream?: boolean;
  /** Extra command line arguments for nats-server. */
  args?: string[];
  /** Lines of a configuration file passed with `-c` (the command line wins over it). */
  config?: string[];
  /** Startup timeout (default 10 s). */
  timeoutMs?: number;
}

export interface NatsServer {
  url: string;
  /** HTTP monitoring endpoint, undefined when unknown (external NATS without NATS_MONITOR_URL). */
  monitorUrl: string | undefined;
  /** Process id of the current nats-server, undefined when not spawned here. */
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

/** A nats-server child on fixed ports; its work dir (config, JetStream store) goes on stop(). */
class SpawnedNats implements NatsServer {
  readonly url: string;
  readonly monitorUrl: string;
  readonly controllable = true;
  /** Output of every run (kept across restarts). */
  readonly logs: string[] = [];
  private proc: Proc | undefined;

  constructor(
    private readonly bin: string,
    private readonly args: string[],
    readonly port: number,
    readonly monitorPort: number,
    private readonly workDir: ScratchDir | undefined,
    private readonly timeoutMs: number,
    readonly label = "nats",
  ) {
    this.url = `nats://127.0.0.1:${port}`;
    this.monitorUrl = `http://127.0.0.1:${monitorPort}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(): Promise<void> {
    const proc = spawnChild(this.label, this.bin, this.args, {
      maxLines: 5000,
      onLine: (line) => {
        this.logs.push(line);
        if (this.logs.length > 5000) this.logs.splice(0, this.logs.length - 5000);
      },
    });
    this.proc = proc;
    try {
      await waitFor(async () => (await httpOk(`${this.monitorUrl}/healthz`)) && (await httpOk(`${this.monitorUrl}/varz`)), {
        timeoutMs: this.timeoutMs,
        intervalMs: 50,
        proc,
        message: `${this.label} monitor ${this.monitorUrl} answering 200`,
      });
    } catch (err) {
      proc.kill("SIGKILL");
      throw new Error(`${(err as Error).message}\n--- ${this.label} log tail ---\n${this.logs.slice(-20).join("\n")}`);
    }
  }

  async kill(): Promise<void> {
    await this.proc?.stop(5000, "SIGKILL");
  }

  async stopProcess(): Promise<void> {
    await this.proc?.stop(10_000);
  }

  async stop(): Promise<void> {
    await this.stopProcess();
    this.workDir?.release();
  }

  async restart(): Promise<void> {
    await this.stopProcess();
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
  readonly controllable = false;
  readonly logs: string[] = [];
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
  return nats.controllable ? undefined : "NATS is external (NATS_URL) or a container; it cannot be killed or restarted from the test";
}

function requireBinary(what: string): string {
  const bin = natsServerBinary();
  if (!bin) throw new Error(`${what} needs a nats-server binary (NATS_SERVER_BIN, PATH, /usr/sbin or /usr/local/bin)`);
  return bin;
}

/** Arguments for one node; a work dir when JetStream or a config file needs one. */
function nodeArgs(label: string, port: number, monitorPort: number, opts: NatsOptions): { args: string[]; workDir: ScratchDir | undefined } {
  const args = ["-a", "127.0.0.1", "-p", String(port), "-m", String(monitorPort), "-n", label];
  // Removed by stop(), or at exit when the test never got there.
  const workDir = opts.jetstream || opts.config ? scratchDir(mkdtempSync(path.join(tmpdir(), "herald-nats-"))) : undefined;
  if (workDir && opts.config) {
    const file = path.join(workDir.dir, "nats.conf");
    writeFileSync(file, opts.config.join("\n") + "\n");
    args.unshift("-c", file);
  }
  if (workDir && opts.jetstream) args.push("--js", "-sd", path.join(workDir.dir, "js"));
  return { args, workDir };
}

/** A nats-server child on free loopback ports, whatever NATS_URL says (benchmarks, fault tests). */
export async function spawnNats(opts: NatsOptions = {}): Promise<NatsServer & { port: number; monitorPort: number }> {
  const bin = requireBinary("spawnNats");
  const [port, monitorPort] = (await freePorts(2)) as [number, number];
  const { args, workDir } = nodeArgs(`herald-test-${port}`, port, monitorPort, opts);
  const server = new SpawnedNats(bin, [...args, ...(opts.args ?? [])], port, monitorPort, workDir, opts.timeoutMs ?? 10_000);
  await server.start();
  return server;
}

/** NATS from NATS_URL, a spawned nats-server, or a testcontainers container (test/helpers/nats-source.ts). */
export async function startNats(opts: NatsOptions = {}): Promise<NatsServer> {
  const source = natsSource();
  switch (source.kind) {
    case "external":
      return new ExternalNats(source.url, source.monitorUrl);
    case "binary":
      return spawnNats(opts);
    case "container":
      return startNatsContainer(source.image, { ...(opts.args ? { args: opts.args } : {}), timeoutMs: Math.max(opts.timeoutMs ?? 0, 60_000) });
  }
}

export interface NatsCluster {
  nodes: NatsServer[];
  /** Comma list of every node's client URL (what NATS_URL takes). */
  urls: string;
  stop(): Promise<void>;
}

/** A cluster of `size` nodes named "herald", every node routed to every other. */
export async function startNatsCluster(size = 3, opts: NatsOptions = {}): Promise<NatsCluster> {
  const bin = requireBinary("startNatsCluster");
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
    const { args, workDir } = nodeArgs(`herald-node-${i}`, port, monitorPort, opts);
    args.push("--cluster_name", "herald", "--cluster", `nats://127.0.0.1:${clusterPorts[i]}`, "--routes", routes, ...(opts.args ?? []));
    nodes.push(new SpawnedNats(bin, args, port, monitorPort, workDir, opts.timeoutMs ?? 10_000, `nats node ${i}`));
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
