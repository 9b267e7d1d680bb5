/**
 * The load-generator coordinator: forks worker processes, tells them to open
 * connections, runs publish phases and merges what the workers measured
 * (raw histogram counts are added, then percentiles are computed).
 */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { track } from "../../test/helpers/children.js";
import { Histogram, type LatencySummary } from "./hdr.js";
import type { ConnectPlan, Endpoint, FromWorker, ResilientStats, Shape, ToWorker, WorkerSnapshot } from "./protocol.js";
import { channelsOf } from "./shapes.js";
import { Publisher, type PublishVia } from "./publisher.js";
import { busiestThreadSeconds, machineBusyPercent, sampleAll, sampleMachine, sampleThreads } from "./procstat.js";
import type { Proto } from "./wsclient.js";

const WORKER = fileURLToPath(new URL("./worker.ts", import.meta.url));

export interface TargetSpec {
  name: string;
  proto: Proto;
  endpoints: Endpoint[];
  secret?: string;
  token?: string;
  natsToken?: string;
  subjectPrefix: string;
  publish: PublishVia;
  /** Local server processes: CPU/RSS come from /proc. `server` are the WebSocket servers, `broker` the NATS behind them (if separate). */
  serverPids: number[];
  brokerPids: number[];
  spreadLocal: boolean;
}

export interface ConnectResult {
  attempted: number;
  connected: number;
  ready: number;
  failed: number;
  failures: Record<string, number>;
  seconds: number;
  /** Ready (authenticated and subscribed) connections per second, first attempt to last ready. */
  perSecond: number;
  handshakeMs: LatencySummary;
  serverCpuSeconds: number;
  /** CPU of the broker (NATS behind Herald; none for targets that are the broker) and of the generator workers over the same window. */
  brokerCpuSeconds: number;
  generatorCpuSeconds: number;
  /** CPU of the server's busiest thread (a Node server's event loop) over the same window. */
  serverBusiestThreadCpuSeconds: number;
  /** Share of the machine's cores that were busy over the window (server, NATS, generator and all). */
  machineBusyPercent: number;
  serverRssBytes: number;
}

export interface PhaseResult {
  rate: number;
  size: number;
  seconds: number;
  published: number;
  publishFailed: number;
  expected: number;
  received: number;
  pausedReceived: number;
  deliveriesPerSecond: number;
  /** Messages that never arrived (expected - received, reading sockets only), and gaps seen on probes. */
  lost: number;
  lossRatio: number;
  probeGaps: number;
  probeDups: number;
  latencyMs: LatencySummary;
  closes: Record<string, number>;
  serverCpuSeconds: number;
  serverCpuPercent: number;
  brokerCpuPercent: number;
  serverRssBytes: number;
  generatorCpuPercent: number;
  /** Frames per socket read in the generator (batching by the server/kernel). */
  framesPerRead: number;
  openSockets: number;
  /** Bytes the generator's sockets read over the phase (as on the wire: TLS-less TCP payload, frame headers and all), and deflated frames among what they got. */
  bytesReceived: number;
  compressedFrames: number;
}

const log = (s: string) => process.stderr.write(s);

export class LoadGen {
  private workers: ChildProcess[] = [];
  private waiters = new Map<number, (m: FromWorker) => void>();
  private nextId = 1;
  private progress: { ready: number; attempted: number; failed: number; msgs: number }[] = [];
  private connectWaiters: ((s: WorkerSnapshot) => void)[] = [];
  private subscribers = new Map<string, number>();
  private pausedCount = 0;
  private totalConns = 0;
  quiet = false;

  constructor(
    readonly target: TargetSpec,
    readonly nWorkers: number,
  ) {}

  async start(): Promise<void> {
    const hellos: Promise<void>[] = [];
    for (let w = 0; w < this.nWorkers; w++) {
      const child = fork(WORKER, [], {
        execArgv: ["--import", "tsx", "--max-old-space-size=4096", ...(process.env.BENCH_WORKER_NODE_ARGS ?? "").split(" ").filter(Boolean)],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
        serialization: "advanced",
      });
      track(child); // killed with the other children if this process exits first
      this.workers.push(child);
      this.progress.push({ ready: 0, attempted: 0, failed: 0, msgs: 0 });
      hellos.push(
        new Promise((resolve, reject) => {
          child.once("error", reject);
          child.on("message", (m: FromWorker) => {
            if (m.type === "hello") resolve();
            else if (m.type === "progress") this.progress[w] = m;
            else if (m.type === "connected") this.connectWaiters[w]?.(m.snapshot);
            else if ("id" in m) this.waiters.get(m.id)?.(m);
          });
        }),
      );
    }
    await Promise.all(hellos);
  }

  get workerPids(): number[] {
    return this.workers.map((w) => w.pid!);
  }

  private ask(w: number, msg: ToWorker & { id: number }): Promise<FromWorker> {
    return new Promise((resolve) => {
      this.waiters.set(msg.id, (m) => {
        this.waiters.delete(msg.id);
        resolve(m);
      });
      this.workers[w]!.send(msg);
    });
  }

  private all(make: (id: number) => ToWorker & { id: number }): Promise<FromWorker[]> {
    return Promise.all(this.workers.map((_, w) => this.ask(w, make(this.nextId++))));
  }

  async snapshots(): Promise<WorkerSnapshot[]> {
    const r = await this.all((id) => ({ type: "snapshot", id }));
    return r.map((m) => (m as Extract<FromWorker, { type: "snapshot" }>).snapshot);
  }

  private ticker(label: string, line: () => string): () => void {
    if (this.quiet || !process.stderr.isTTY) {
      const iv = setInterval(() => log(`  [${label}] ${line()}\n`), 2000);
      return () => clearInterval(iv);
    }
    const iv = setInterval(() => log(`\r  [${label}] ${line()}\x1b[K`), 500);
    return () => {
      clearInterval(iv);
      log(`\r  [${label}] ${line()}\x1b[K\n`);
    };
  }

  /** Opens `count` connections (indices offset..offset+count) in the given shape. */
  async connect(opts: { count: number; rate: number; shape: Shape; probeEvery?: number; inflight?: number; offset?: number; timeoutMs?: number; resilient?: boolean; deflate?: boolean }): Promise<ConnectResult> {
    const t = this.target;
    const offset = opts.offset ?? this.totalConns;
    await this.all((id) => ({ type: "reset", id, connect: true }));
    const plans = this.workers.map(
      (_, w): ConnectPlan => ({
        proto: t.proto,
        endpoints: t.endpoints,
        offset,
        count: opts.count,
        worker: w,
        workers: this.nWorkers,
        rate: opts.rate,
        inflight: opts.inflight ?? 500,
        shape: opts.shape,
        probeEvery: opts.probeEvery ?? 100,
        spreadLocal: t.spreadLocal,
        subjectPrefix: t.subjectPrefix,
        timeoutMs: opts.timeoutMs ?? 120_000,
        ...(opts.resilient ? { resilient: true } : {}),
        ...(opts.deflate ? { deflate: true } : {}),
        ...(t.secret ? { secret: t.secret } : {}),
        ...(t.token ? { token: t.token } : {}),
        ...(t.natsToken ? { natsToken: t.natsToken } : {}),
      }),
    );
    // Tokens and options are made before the clock and the CPU counters start.
    await Promise.all(plans.map((plan, w) => this.ask(w, { type: "prepare", id: this.nextId++, plan })));
    const before = sampleAll(t.serverPids);
    const bBefore = sampleAll(t.brokerPids);
    const gBefore = sampleAll(this.workerPids);
    const threadsBefore = sampleThreads(t.serverPids);
    const machineBefore = sampleMachine();
    const t0 = performance.timeOrigin + performance.now();
    const done = this.workers.map((_, w) => new Promise<WorkerSnapshot>((r) => (this.connectWaiters[w] = r)));
    for (const child of this.workers) child.send({ type: "connect" } satisfies ToWorker);
    const stop = this.ticker(`${t.name} connect`, () => {
      const ready = this.progress.reduce((a, p) => a + p.ready, 0);
      const failed = this.progress.reduce((a, p) => a + p.failed, 0);
      return `${ready}/${opts.count} ready, ${failed} failed`;
    });
    const snaps = await Promise.all(done);
    stop();
    // Threads are read inside the processes' window (after them at the start,
    // before them at the end), so no thread's share can outgrow its process's.
    const threadsAfter = sampleThreads(t.serverPids);
    const after = sampleAll(t.serverPids);
    const bAfter = sampleAll(t.brokerPids);
    const gAfter = sampleAll(this.workerPids);
    const machineAfter = sampleMachine();
    const failures: Record<string, number> = {};
    for (const s of snaps) for (const [k, v] of Object.entries(s.failures)) failures[k] = (failures[k] ?? 0) + v;
    const h = new Histogram();
    for (const s of snaps) h.addSparse(s.connectLatency);
    const ready = snaps.reduce((a, s) => a + s.ready, 0);
    const lastReady = Math.max(...snaps.map((s) => s.lastReady));
    const seconds = ((lastReady || t0) - t0) / 1000;
    this.totalConns = Math.max(this.totalConns, offset + opts.count);
    // subscribers per channel (for expected deliveries)
    for (let i = offset; i < offset + opts.count; i++) {
      for (const ch of channelsOf(opts.shape, i)) this.subscribers.set(ch, (this.subscribers.get(ch) ?? 0) + 1);
    }
    if (ready < opts.count) {
      // failed sockets are not subscribers; spread the shortfall is unknowable per channel, record globally
      this.missing += opts.count - ready;
    }
    return {
      attempted: snaps.reduce((a, s) => a + s.attempted, 0),
      connected: snaps.reduce((a, s) => a + s.connected, 0),
      ready,
      failed: Object.values(failures).reduce((a, b) => a + b, 0),
      failures,
      seconds,
      perSecond: seconds > 0 ? ready / seconds : 0,
      handshakeMs: h.summaryMs(),
      serverCpuSeconds: after.cpuSeconds - before.cpuSeconds,
      brokerCpuSeconds: bAfter.cpuSeconds - bBefore.cpuSeconds,
      generatorCpuSeconds: gAfter.cpuSeconds - gBefore.cpuSeconds,
      serverBusiestThreadCpuSeconds: busiestThreadSeconds(threadsBefore, threadsAfter),
      machineBusyPercent: machineBusyPercent(machineBefore, machineAfter),
      serverRssBytes: after.rssBytes,
    };
  }
  private missing = 0;

  channels(): string[] {
    return [...this.subscribers.keys()];
  }

  /** Resilient clients: a kill/drain happens at t0 (epoch ms); `need` = messages published per channel so far. */
  async event(t0: number, need: Record<string, number>): Promise<void> {
    await this.all((id) => ({ type: "event", id, t0, need }));
  }

  /** Resilient clients' measurements of every worker (with `published`: what each still lacks). */
  async resilientStats(published?: Record<string, number>): Promise<ResilientStats[]> {
    const r = await this.all((id) => ({ type: "resilient", id, ...(published ? { published } : {}) }));
    return r.map((m) => (m as Extract<FromWorker, { type: "resilient" }>).stats);
  }

  /** Stops reading on every `every`-th socket (never a probe). Returns how many. */
  async pauseReaders(every: number): Promise<number> {
    const r = await this.all((id) => ({ type: "pause", id, every }));
    this.pausedCount = r.reduce((a, m) => a + ((m as { value?: number }).value ?? 0), 0);
    return this.pausedCount;
  }

  /** One measured publish phase: reset counters, publish, wait for delivery to settle, merge. */
  async phase(opts: { rate: number; size: number; seconds: number; channels?: string[]; settleMs?: number; payload?: (seq: number, size: number) => string }): Promise<PhaseResult> {
    const t = this.target;
    const channels = opts.channels ?? this.channels();
    await this.all((id) => ({ type: "reset", id }));
    const pub = await Publisher.open(t.publish);
    const sBefore = sampleAll(t.serverPids);
    const bBefore = sampleAll(t.brokerPids);
    const gBefore = sampleAll(this.workerPids);
    const t0 = performance.now();
    const stop = this.ticker(`${t.name} ${opts.rate}/s ${opts.size}B`, () => {
      const msgs = this.progress.reduce((a, p) => a + p.msgs, 0);
      return `published ${pub.sent}, received ${msgs} (counts every 1 s)`;
    });
    const res = await pub.run({ rate: opts.rate, size: opts.size, seconds: opts.seconds, channels, ...(opts.payload ? { payload: opts.payload } : {}) });
    const pubEnd = performance.now();
    let expected = 0;
    const live = (ch: string) => this.subscribers.get(ch) ?? 0;
    for (const [ch, n] of res.perChannel) expected += n * live(ch);
    // failed connections and paused readers are not expected to receive
    const shortfall = this.missing + this.pausedCount;
    if (shortfall > 0 && channels.length === 1) expected -= res.published * shortfall;
    // settle: wait until counts stop growing or match
    const settleEnd = Date.now() + (opts.settleMs ?? 5000);
    let last = -1;
    let snaps = await this.snapshots();
    let stableSince = Date.now();
    while (Date.now() < settleEnd) {
      const got = snaps.reduce((a, s) => a + s.msgs, 0);
      if (got >= expected) break;
      if (got !== last) {
        last = got;
        stableSince = Date.now();
      } else if (Date.now() - stableSince > 750) break;
      await new Promise((r) => setTimeout(r, 100));
      snaps = await this.snapshots();
    }
    stop();
    const endT = performance.now();
    const sAfter = sampleAll(t.serverPids);
    const bAfter = sampleAll(t.brokerPids);
    const gAfter = sampleAll(this.workerPids);
    await pub.close();
    const h = new Histogram();
    for (const s of snaps) h.addSparse(s.latency);
    const received = snaps.reduce((a, s) => a + s.msgs, 0);
    const closes: Record<string, number> = {};
    for (const s of snaps) for (const [k, v] of Object.entries(s.closes)) closes[k] = (closes[k] ?? 0) + v;
    const wall = (endT - t0) / 1000;
    // deliveries/s over the publishing window plus the drain that followed
    const activeSeconds = Math.max((pubEnd - t0) / 1000, wall - 0.75);
    const lost = Math.max(0, expected - received);
    const open = snaps.reduce((a, s) => a + s.open, 0);
    return {
      rate: opts.rate,
      size: opts.size,
      seconds: res.seconds,
      published: res.published,
      publishFailed: res.failed,
      expected,
      received,
      pausedReceived: snaps.reduce((a, s) => a + s.pausedMsgs, 0),
      deliveriesPerSecond: Math.round(received / activeSeconds),
      lost,
      lossRatio: expected > 0 ? lost / expected : 0,
      probeGaps: snaps.reduce((a, s) => a + s.gaps, 0),
      probeDups: snaps.reduce((a, s) => a + s.dups, 0),
      latencyMs: h.summaryMs(),
      closes,
      serverCpuSeconds: sAfter.cpuSeconds - sBefore.cpuSeconds,
      serverCpuPercent: Math.round(((sAfter.cpuSeconds - sBefore.cpuSeconds) / wall) * 100),
      brokerCpuPercent: Math.round(((bAfter.cpuSeconds - bBefore.cpuSeconds) / wall) * 100),
      serverRssBytes: sAfter.rssBytes,
      generatorCpuPercent: Math.round(((gAfter.cpuSeconds - gBefore.cpuSeconds) / wall) * 100),
      framesPerRead: +(received / Math.max(1, snaps.reduce((a, s) => a + s.reads, 0))).toFixed(2),
      openSockets: open,
      bytesReceived: snaps.reduce((a, s) => a + s.bytes, 0),
      compressedFrames: snaps.reduce((a, s) => a + s.compressedFrames, 0),
    };
  }

  /** Closes every connection (workers stay). */
  async closeAll(): Promise<void> {
    await this.all((id) => ({ type: "close", id }));
    this.subscribers.clear();
    this.pausedCount = 0;
    this.missing = 0;
    this.totalConns = 0;
  }

  kill(): void {
    for (const w of this.workers) if (w.exitCode === null) w.kill("SIGKILL");
  }

  async stop(): Promise<void> {
    for (const w of this.workers) {
      if (w.exitCode !== null) continue;
      const exited = new Promise((r) => w.once("exit", r));
      w.send({ type: "exit" } satisfies ToWorker);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (w.exitCode === null) w.kill("SIGKILL");
    }
    this.workers = [];
  }
}
