/**
 * Clients that outlive their gateway (the avalanche scenario), inside one
 * worker. Each client keeps, per channel, the last stream position (`seq`
 * of Herald's message frames, for `since`) and the last publisher sequence
 * (`data.seq`, consecutive per channel: the loss/duplicate count). When a
 * subscribed connection drops, the client reconnects to another endpoint
 * (round-robin by client index, with the SDK's reconnect delays: full-jitter
 * exponential backoff from 500 ms, a uniform 0-5 s after a 1001; bounded
 * attempts and time) and resubscribes with `since`.
 *
 * "Recovered" (per displaced client, per event): a new connection is open,
 * every channel's `subscribed` reply came with recovered:true, and the
 * client holds every message published on its channels before the event
 * (publisher count at the event, sent by the coordinator as `need`).
 */
import { CloseCode } from "@herald/core";
import { backoffDelay, drainDelay } from "../../packages/client/src/backoff.js";
import { Histogram } from "./hdr.js";
import { Conn, now, type ConnEvents, type ConnOptions, type Counters, type ProbeSink } from "./wsclient.js";
import type { ResilientStats } from "./protocol.js";

/** The SDK's default drainReconnectMaxMs. */
const SDK_DRAIN_RECONNECT_MAX_MS = 5000;
/** Give up on a displaced client after this many failed attempts or this long. */
const MAX_ATTEMPTS = 30;
const GIVE_UP_MS = 90_000;
/** An endpoint that refused a connection is skipped by this worker for a while (a client-side "it's down"). */
const DOWN_MS = 3000;
/**
 * A reconnect without a welcome by then is abandoned and retried (like the
 * SDK's connectTimeoutMs); once welcomed, the resubscribe gets longer (the
 * backlog read may be queued behind thousands of others: abandoning it
 * early would only add load).
 */
const WELCOME_TIMEOUT_MS = 10_000;
const SUBSCRIBED_TIMEOUT_MS = 30_000;

class Client {
  conn: Conn | null = null;
  ep: number;
  /** Last stream position and last publisher seq, per channel. */
  readonly lastStream: number[];
  readonly lastData: number[];
  everReady = false;
  /** The current displacement (0 = not displaced in this event). */
  droppedAt = 0;
  droppedEp = -1;
  /** The event that displaced it (stats count only the current event's clients). */
  epoch = 0;
  attempts = 0;
  resumed = false;
  recoveredAt = 0;
  gaveUp = false;

  constructor(
    readonly i: number,
    readonly base: ConnOptions,
    ep: number,
  ) {
    this.ep = ep;
    this.lastStream = base.channels.map(() => -1);
    this.lastData = base.channels.map(() => 0);
  }
}

/** The integer right after `key` in `text`, searching from `from`; [value, index after it] or [-1, -1]. */
function intAfter(text: string, key: string, from: number): [number, number] {
  const k = text.indexOf(key, from);
  if (k < 0) return [-1, -1];
  let p = k + key.length;
  let v = 0;
  for (let c = text.charCodeAt(p); c >= 48 && c <= 57; c = text.charCodeAt(++p)) v = v * 10 + (c - 48);
  return [v, p];
}

export class Resilient {
  private readonly clients: Client[] = [];
  private readonly downUntil: number[];
  private stopping = false;
  // per event
  private epoch = 0;
  private t0 = 0;
  private need = new Map<string, number>();
  private displaced = 0;
  private recovered = 0;
  private resumedFalse = 0;
  private gaveUp = 0;
  private attempts = 0;
  private readonly failures: Record<string, number> = {};
  private readonly fromEvent = new Histogram();
  private readonly fromDrop = new Histogram();
  private buckets: Record<number, number> = {};
  // whole run
  private lost = 0;
  private dups = 0;
  private prevMismatch = 0;
  private tracked = 0;

  constructor(
    private readonly endpoints: { host: string; port: number; path: string }[],
    private readonly counters: Counters,
    private readonly sink: ProbeSink,
    /** The worker's own events, for the first connection of each client (its connect counts). */
    private readonly initial: ConnEvents,
  ) {
    this.downUntil = endpoints.map(() => 0);
  }

  /** The first connection of client i (plain subscribe). */
  open(i: number, base: ConnOptions, ep: number): Conn {
    const cl = new Client(i, base, ep);
    this.clients.push(cl);
    return this.dial(cl, base);
  }

  private dial(cl: Client, o: ConnOptions): Conn {
    const conn = new Conn({ ...o, host: this.endpoints[cl.ep]!.host, port: this.endpoints[cl.ep]!.port, path: this.endpoints[cl.ep]!.path, track: true }, this.counters, this.sink, this.eventsFor(cl));
    cl.conn = conn;
    return conn;
  }

  private eventsFor(cl: Client): ConnEvents {
    const first = !cl.everReady;
    return {
      onConnected: (c) => first && this.initial.onConnected(c),
      onReady: (c) => {
        for (let k = 0; k < c.subSeqs.length; k++) if (cl.lastStream[k]! < 0) cl.lastStream[k] = c.subSeqs[k]!;
        if (first) {
          cl.everReady = true;
          this.initial.onReady(c);
          return;
        }
        const t = now();
        this.buckets[Math.floor((t - this.t0) / 1000)] = (this.buckets[Math.floor((t - this.t0) / 1000)] ?? 0) + 1;
        cl.resumed = true;
        if (!c.recovered) this.resumedFalse++;
        this.checkRecovered(cl);
      },
      onFail: (c, why) => {
        if (first) return this.initial.onFail(c, why);
        this.failures[why] = (this.failures[why] ?? 0) + 1;
        if (why === "ECONNREFUSED" || why === "http_503") this.downUntil[cl.ep] = Date.now() + DOWN_MS;
        this.retry(cl);
      },
      onTracked: (c, text) => this.track(cl, c, text),
      onClose: (c) => {
        if (first) this.initial.onClose(c);
        if (this.stopping || cl.conn !== c || !c.ready) return; // failed attempts are handled by onFail
        cl.conn = null;
        this.displace(cl, c.closeCode);
      },
    };
  }

  private displace(cl: Client, closeCode: number): void {
    this.displaced++;
    cl.droppedAt = now();
    cl.droppedEp = cl.ep;
    cl.attempts = 0;
    cl.resumed = false;
    cl.recoveredAt = 0;
    cl.gaveUp = false;
    cl.epoch = this.epoch;
    // As the SDK (@herald/client) schedules it: after a 1001 (draining) a
    // uniform delay within drainReconnectMaxMs, after a lost connection its
    // first full-jitter backoff step.
    setTimeout(() => this.attempt(cl), closeCode === CloseCode.GoingAway ? drainDelay(SDK_DRAIN_RECONNECT_MAX_MS) : backoffDelay(0));
  }

  private attempt(cl: Client): void {
    if (this.stopping) return;
    // round-robin by client index over the other endpoints not seen refusing lately (all of them when every one was)
    const t = Date.now();
    const others = this.endpoints.map((_, ep) => ep).filter((ep) => ep !== cl.droppedEp || this.endpoints.length === 1);
    const up = others.filter((ep) => this.downUntil[ep]! <= t);
    const from = up.length ? up : others;
    cl.ep = from[(cl.i + cl.attempts) % from.length]!;
    cl.attempts++;
    this.attempts++;
    const conn = this.dial(cl, { ...cl.base, since: cl.lastStream.map((s) => (s >= 0 ? s : undefined)) });
    const abandon = (why: string) => {
      if (cl.conn !== conn || conn.ready || this.stopping) return;
      this.failures[why] = (this.failures[why] ?? 0) + 1;
      conn.destroy(); // its close is ignored (not ready): the retry is ours
      this.retry(cl);
    };
    setTimeout(() => (conn.connected ? setTimeout(() => abandon("subscribed_timeout"), SUBSCRIBED_TIMEOUT_MS - WELCOME_TIMEOUT_MS).unref() : abandon("welcome_timeout")), WELCOME_TIMEOUT_MS).unref();
  }

  private retry(cl: Client): void {
    cl.conn = null;
    if (this.stopping) return;
    if (cl.attempts >= MAX_ATTEMPTS || now() - cl.droppedAt > GIVE_UP_MS) {
      cl.gaveUp = true;
      if (cl.epoch === this.epoch) this.gaveUp++;
      return;
    }
    setTimeout(() => this.attempt(cl), backoffDelay(cl.attempts)); // the SDK's next step
  }

  /** Message frame on a client's socket: positions and publisher seq, gaps and duplicates. */
  private track(cl: Client, c: Conn, text: string): void {
    if (cl.conn !== c) return;
    this.tracked++;
    let k = 0;
    if (cl.base.channels.length > 1) {
      const s = text.indexOf('"channel":"') + 11;
      k = cl.base.channels.findIndex((ch) => text.startsWith(ch + '"', s));
      if (k < 0) return;
    }
    const [seq, p1] = intAfter(text, '"seq":', 0);
    const [prev] = intAfter(text, '"prev":', p1);
    const [dseq] = intAfter(text, '"data":{"seq":', p1);
    if (seq < 0 || dseq < 0) return;
    const last = cl.lastData[k]!;
    if (dseq <= last) {
      this.dups++;
      return;
    }
    if (dseq > last + 1) this.lost += dseq - last - 1;
    if (cl.lastStream[k]! >= 0 && prev !== cl.lastStream[k]) this.prevMismatch++;
    cl.lastData[k] = dseq;
    cl.lastStream[k] = seq;
    if (cl.droppedAt && cl.resumed && !cl.recoveredAt) this.checkRecovered(cl);
  }

  private checkRecovered(cl: Client): void {
    if (!cl.conn?.ready || !cl.conn.recovered) return;
    for (let k = 0; k < cl.base.channels.length; k++) if (cl.lastData[k]! < (this.need.get(cl.base.channels[k]!) ?? 0)) return;
    const t = now();
    cl.recoveredAt = t;
    if (cl.epoch !== this.epoch) return; // a straggler of an earlier event
    this.recovered++;
    this.fromEvent.recordUs(Math.round((t - this.t0) * 1000));
    this.fromDrop.recordUs(Math.round((t - cl.droppedAt) * 1000));
  }

  /** A new event (kill/drain) starts now: per-event counters reset; `need` = publisher count per channel so far. */
  event(t0: number, need: Record<string, number>): void {
    this.epoch++;
    this.t0 = t0;
    this.need = new Map(Object.entries(need));
    this.displaced = this.recovered = this.resumedFalse = this.gaveUp = this.attempts = 0;
    for (const k of Object.keys(this.failures)) delete this.failures[k];
    this.fromEvent.reset();
    this.fromDrop.reset();
    this.buckets = {};
  }

  stats(published?: Record<string, number>): ResilientStats {
    const perEndpoint = this.endpoints.map(() => 0);
    let missing = 0;
    let missingUnrecovered = 0;
    for (const cl of this.clients) {
      const live = cl.conn?.ready === true;
      if (live) perEndpoint[cl.ep]!++;
      if (!published) continue;
      cl.base.channels.forEach((ch, k) => {
        const short = Math.max(0, (published[ch] ?? 0) - cl.lastData[k]!);
        if (live) missing += short;
        else missingUnrecovered += short;
      });
    }
    return {
      clients: this.clients.length,
      perEndpoint,
      displaced: this.displaced,
      recovered: this.recovered,
      resumedFalse: this.resumedFalse,
      gaveUp: this.gaveUp,
      attempts: this.attempts,
      failures: { ...this.failures },
      fromEvent: this.fromEvent.toSparse(),
      fromDrop: this.fromDrop.toSparse(),
      buckets: { ...this.buckets },
      lost: this.lost,
      dups: this.dups,
      prevMismatch: this.prevMismatch,
      tracked: this.tracked,
      missingAtEnd: missing,
      missingUnrecovered,
    };
  }

  destroyAll(): void {
    this.stopping = true;
    for (const cl of this.clients) cl.conn?.destroy();
    this.clients.length = 0;
  }
}
