/**
 * One load-generator worker process (forked by LoadGen). It owns the
 * connections whose index i satisfies i % workers === worker, so several
 * workers split the sockets, the event-loop work and the open-files limit.
 */
import { Histogram } from "./hdr.js";
import { signHs256 } from "./jwt.js";
import { Conn, now, type Counters, type ConnOptions } from "./wsclient.js";
import type { ConnectPlan, FromWorker, ToWorker, WorkerSnapshot } from "./protocol.js";

const send = (m: FromWorker) => process.send!(m);

const counters: Counters = { msgs: 0, pausedMsgs: 0, bytes: 0, reads: 0, closes: {}, errors: {} };
const hist = new Histogram();
const connectHist = new Histogram();
let gaps = 0;
let dups = 0;
let probeMsgs = 0;
const conns: Conn[] = [];
const index = new Map<Conn, number>();
let attempted = 0;
let connectedN = 0;
let readyN = 0;
let closedAfterReady = 0;
const failures: Record<string, number> = {};
let firstReady = 0;
let lastReady = 0;
let inflight = 0;

const sink = {
  sample(conn: Conn, seq: number, sentMs: number) {
    probeMsgs++;
    hist.recordUs(Math.round((now() - sentMs) * 1000));
    if (conn.lastSeq >= 0) {
      if (seq > conn.lastSeq + 1) gaps += seq - conn.lastSeq - 1;
      else if (seq <= conn.lastSeq) dups++;
    }
    conn.lastSeq = seq;
  },
};

const events = {
  onConnected() {
    connectedN++;
  },
  onReady(c: Conn) {
    readyN++;
    inflight--;
    const t = now();
    if (!firstReady) firstReady = t;
    lastReady = t;
    connectHist.recordUs(Math.round((t - c.tConnect) * 1000));
  },
  onFail(_c: Conn, why: string) {
    inflight--;
    failures[why] = (failures[why] ?? 0) + 1;
  },
  onClose(c: Conn) {
    if (c.ready) closedAfterReady++;
  },
};

function optionsFor(plan: ConnectPlan, i: number): ConnOptions {
  const ep = plan.endpoints[i % plan.endpoints.length]!;
  let channel =
    plan.shape.kind === "shared" ? plan.shape.channel : plan.shape.kind === "per-user" ? `u.${i}` : `g.${Math.floor(i / plan.shape.k)}`;
  let headers = "";
  if (plan.proto === "herald") {
    const token = plan.token ?? signHs256(plan.secret!, { sub: `u${i}`, channels: [channel] });
    headers = `Authorization: Bearer ${token}\r\n`;
  } else {
    channel = `${plan.subjectPrefix}.ch.${channel}`;
  }
  const o: ConnOptions = {
    host: ep.host,
    port: ep.port,
    path: ep.path,
    localAddress: plan.spreadLocal ? `127.0.0.${2 + (Math.floor(i / plan.workers) % 249)}` : undefined,
    headers,
    proto: plan.proto,
    probe: i % plan.probeEvery === 0,
    channel,
  };
  if (plan.natsToken) o.natsToken = plan.natsToken;
  return o;
}

function connect(plan: ConnectPlan): void {
  const mine: number[] = [];
  for (let i = plan.offset; i < plan.offset + plan.count; i++) if (i % plan.workers === plan.worker) mine.push(i);
  let next = 0;
  const t0 = now();
  const perMs = plan.rate > 0 ? plan.rate / plan.workers / 1000 : Infinity;
  const deadline = Date.now() + plan.timeoutMs;
  const tick = () => {
    const allowed = perMs === Infinity ? mine.length : Math.floor((now() - t0) * perMs) + 1;
    while (next < mine.length && next < allowed && inflight < plan.inflight) {
      const i = mine[next++]!;
      attempted++;
      inflight++;
      const c = new Conn(optionsFor(plan, i), counters, sink, events);
      index.set(c, i);
      conns.push(c);
    }
    if ((next >= mine.length && inflight <= 0) || Date.now() > deadline) {
      send({ type: "connected", snapshot: snapshot() });
      return;
    }
    setTimeout(tick, plan.rate > 0 ? 2 : 1);
  };
  tick();
}

function snapshot(): WorkerSnapshot {
  const mem = process.memoryUsage();
  return {
    attempted,
    connected: connectedN,
    ready: readyN,
    open: readyN - closedAfterReady,
    failures: { ...failures },
    firstReady,
    lastReady,
    msgs: counters.msgs,
    pausedMsgs: counters.pausedMsgs,
    bytes: counters.bytes,
    reads: counters.reads,
    closes: { ...counters.closes },
    errors: { ...counters.errors },
    probeMsgs,
    gaps,
    dups,
    latency: hist.toSparse(),
    connectLatency: connectHist.toSparse(),
    cpu: process.cpuUsage(),
    rss: mem.rss,
    t: now(),
  };
}

process.on("message", (m: ToWorker) => {
  switch (m.type) {
    case "connect":
      connect(m.plan);
      break;
    case "reset":
      counters.msgs = counters.pausedMsgs = counters.bytes = counters.reads = 0;
      counters.closes = {};
      counters.errors = {};
      gaps = dups = probeMsgs = 0;
      hist.reset();
      if (m.connect) {
        connectHist.reset();
        attempted = connectedN = readyN = closedAfterReady = 0;
        firstReady = lastReady = 0;
        for (const k of Object.keys(failures)) delete failures[k];
      }
      send({ type: "ack", id: m.id });
      break;
    case "snapshot":
      send({ type: "snapshot", id: m.id, snapshot: snapshot() });
      break;
    case "pause": {
      let n = 0;
      for (const c of conns) {
        const i = index.get(c)!;
        if (!c.o.probe && i % m.every === 1 && c.ready) {
          c.pause();
          n++;
        }
      }
      send({ type: "ack", id: m.id, value: n });
      break;
    }
    case "close":
      for (const c of conns) c.destroy();
      conns.length = 0;
      index.clear();
      inflight = 0;
      send({ type: "ack", id: m.id });
      break;
    case "exit":
      for (const c of conns) c.destroy();
      process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));
const progress = setInterval(() => {
  send({ type: "progress", attempted, ready: readyN, failed: Object.values(failures).reduce((a, b) => a + b, 0), msgs: counters.msgs, cpu: process.cpuUsage() });
}, 1000);
progress.unref();
send({ type: "hello", pid: process.pid });
