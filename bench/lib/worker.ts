/**
 * One load-generator worker process (forked by LoadGen). It owns the
 * connections whose index i satisfies i % workers === worker, so several
 * workers split the sockets, the event-loop work and the open-files limit.
 */
import { Histogram } from "./hdr.js";
import { signHs256 } from "./jwt.js";
import { Resilient } from "./resilient.js";
import { channelsOf } from "./shapes.js";
import { SseConn } from "./sse-client.js";
import { Conn, now, type Counters, type ConnEvents, type ConnOptions, type LoadConn } from "./wsclient.js";
import type { ConnectPlan, FromWorker, ToWorker, WorkerSnapshot } from "./protocol.js";

const send = (m: FromWorker) => process.send!(m);

const counters: Counters = { msgs: 0, pausedMsgs: 0, presenceEvents: 0, deflateNegotiated: 0, compressedFrames: 0, bytes: 0, reads: 0, closes: {}, errors: {} };
const hist = new Histogram();
const connectHist = new Histogram();
let gaps = 0;
let dups = 0;
let probeMsgs = 0;
const conns: LoadConn[] = [];
const index = new Map<LoadConn, number>();
let attempted = 0;
let connectedN = 0;
let readyN = 0;
let closedAfterReady = 0;
const failures: Record<string, number> = {};
let firstReady = 0;
let lastReady = 0;
let inflight = 0;

const sink = {
  sample(conn: LoadConn, seq: number, sentMs: number, ch: number) {
    probeMsgs++;
    hist.recordUs(Math.round((now() - sentMs) * 1000));
    const last = conn.lastSeqs[ch]!;
    if (last >= 0) {
      if (seq > last + 1) gaps += seq - last - 1;
      else if (seq <= last) dups++;
    }
    conn.lastSeqs[ch] = seq;
  },
};

const events: ConnEvents<LoadConn> = {
  onConnected() {
    connectedN++;
  },
  onReady(c: LoadConn) {
    readyN++;
    inflight--;
    const t = now();
    if (!firstReady) firstReady = t;
    lastReady = t;
    connectHist.recordUs(Math.round((t - c.tConnect) * 1000));
  },
  onFail(_c: LoadConn, why: string) {
    inflight--;
    failures[why] = (failures[why] ?? 0) + 1;
  },
  onClose(c: LoadConn) {
    if (c.ready) closedAfterReady++;
  },
};

/** Reconnecting clients of resilient plans (one manager per worker, made on the first such plan). */
let resilient: Resilient | undefined;

function optionsFor(plan: ConnectPlan, i: number): ConnOptions {
  const ep = plan.endpoints[i % plan.endpoints.length]!;
  let channels = channelsOf(plan.shape, i);
  let headers = "";
  let path = ep.path;
  if (plan.proto === "herald" || plan.proto === "sse") {
    const token = plan.token ?? signHs256(plan.secret!, { sub: `u${i}`, channels });
    headers = `Authorization: Bearer ${token}\r\n`;
    // GET /sse?channel=a&channel=b: the stream subscribes to its URL's channels
    if (plan.proto === "sse") path = `${ep.path}?${channels.map((ch) => `channel=${encodeURIComponent(ch)}`).join("&")}`;
    if (plan.deflate) headers += "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n";
  } else {
    channels = channels.map((ch) => `${plan.subjectPrefix}.ch.${ch}`);
  }
  const o: ConnOptions = {
    host: ep.host,
    port: ep.port,
    path,
    localAddress: plan.spreadLocal ? `127.0.0.${2 + (Math.floor(i / plan.workers) % 249)}` : undefined,
    headers,
    proto: plan.proto,
    probe: i % plan.probeEvery === 0,
    channels,
  };
  if (plan.deflate) o.deflate = true;
  if (plan.natsToken) o.natsToken = plan.natsToken;
  return o;
}

/** The next storm's connection options, made before the clock starts (a reconnecting client already holds its token). */
let prepared: { plan: ConnectPlan; mine: number[]; options: ConnOptions[] } | undefined;

function prepare(plan: ConnectPlan): void {
  const mine: number[] = [];
  for (let i = plan.offset; i < plan.offset + plan.count; i++) if (i % plan.workers === plan.worker) mine.push(i);
  prepared = { plan, mine, options: mine.map((i) => optionsFor(plan, i)) };
}

function connect(): void {
  if (!prepared) throw new Error("connect before prepare");
  const { plan, mine, options } = prepared;
  prepared = undefined;
  let next = 0;
  const t0 = now();
  const perMs = plan.rate > 0 ? plan.rate / plan.workers / 1000 : Infinity;
  const deadline = Date.now() + plan.timeoutMs;
  const tick = () => {
    const allowed = perMs === Infinity ? mine.length : Math.floor((now() - t0) * perMs) + 1;
    while (next < mine.length && next < allowed && inflight < plan.inflight) {
      const k = next++;
      const i = mine[k]!;
      const o = options[k]!;
      attempted++;
      inflight++;
      const c = plan.resilient
        ? (resilient ??= new Resilient(plan.endpoints, counters, sink, events)).open(i, o, i % plan.endpoints.length)
        : plan.proto === "sse"
          ? new SseConn(o, counters, sink, events)
          : new Conn(o, counters, sink, events);
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
    presenceEvents: counters.presenceEvents,
    deflateNegotiated: counters.deflateNegotiated,
    compressedFrames: counters.compressedFrames,
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
    case "prepare":
      prepare(m.plan);
      send({ type: "ack", id: m.id });
      break;
    case "connect":
      connect();
      break;
    case "reset":
      counters.msgs = counters.pausedMsgs = counters.presenceEvents = counters.compressedFrames = counters.bytes = counters.reads = 0;
      if (m.connect) counters.deflateNegotiated = 0;
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
    case "event":
      resilient?.event(m.t0, m.need);
      send({ type: "ack", id: m.id });
      break;
    case "resilient":
      if (!resilient) throw new Error("no resilient clients in this worker");
      send({ type: "resilient", id: m.id, stats: resilient.stats(m.published) });
      break;
    case "close":
      resilient?.destroyAll();
      resilient = undefined;
      for (const c of conns) c.destroy();
      conns.length = 0;
      index.clear();
      inflight = 0;
      send({ type: "ack", id: m.id });
      break;
    case "exit":
      resilient?.destroyAll();
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
