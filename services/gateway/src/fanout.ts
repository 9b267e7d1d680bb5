/**
 * Interest-based broker subscriptions and the delivery hot path.
 *
 * A broker subject is subscribed only while at least one local socket wants
 * it (reference counted by uWS topic). Each broker message becomes one frame,
 * built once, and uWS pub/sub copies it to every subscribed socket in C++:
 * no per-recipient work happens in JavaScript.
 *
 * Positioned destinations (channels with history) also guard their stream:
 * core NATS is at-most-once, so when this process misses messages (a NATS
 * reconnect, a slow subscription) the next message's `prev` shows the gap and
 * the missing ones are read back from history and delivered, in order, before
 * anything newer. Clients of this process then never see that gap.
 */
import {
  Header,
  SpanKind,
  context,
  extractTraceContext,
  messageFrame,
  type GatewayMetrics,
  type Logger,
  type Tracing,
} from "@herald/core";
import type { Broker, BrokerMessage, BrokerSubscription } from "@herald/broker";
import type { TemplatedApp } from "./uws.js";

export interface Destination {
  /** uWS topic the sockets subscribe to. */
  topic: string;
  /** Broker subject feeding it. */
  subject: string;
  /** Fixed head of every message frame for this destination. */
  head: Buffer;
  /**
   * For channels with history: the stored subject, whose positions
   * (Nats-Sequence / Nats-Last-Sequence) go into every frame.
   */
  historySubject?: string;
}

/**
 * Live frames collected for one socket while its recovery backlog is read,
 * so nothing published meanwhile is lost or sent out of order.
 */
export class RecoveryBuffer {
  frames: PositionedFrame[] = [];
  /** Bytes held in `frames`: a recovery that falls this far behind is a slow consumer. */
  bytes = 0;

  push(f: PositionedFrame): void {
    this.frames.push(f);
    this.bytes += f.frame.length;
  }

  /** The first held frame after position `last`. */
  firstAfter(last: number): PositionedFrame | undefined {
    return firstAfter(this.frames, last);
  }

  /** Forgets frames at or before `last` (already sent from the history). */
  dropThrough(last: number): void {
    if (!this.frames.some((f) => f.seq <= last)) return;
    this.frames = this.frames.filter((f) => f.seq > last);
    this.bytes = this.frames.reduce((n, f) => n + f.frame.length, 0);
  }
}

/** The frame with the lowest position after `last`. */
function firstAfter(frames: readonly PositionedFrame[], last: number): PositionedFrame | undefined {
  let first: PositionedFrame | undefined;
  for (const f of frames) if (f.seq > last && (!first || f.seq < first.seq)) first = f;
  return first;
}

export interface PositionedFrame {
  seq: number;
  /** Position of the previous message on the channel: shows whether a frame follows on from another. */
  prev: number;
  frame: Buffer;
}

/** Messages read from the history per round trip while catching up. */
const CATCH_UP_PAGE = 100;
/** Bound of one catch-up (the history window is far smaller by default). */
const CATCH_UP_MAX_PAGES = 100;

interface Entry {
  readonly topic: string;
  readonly head: Buffer;
  readonly historySubject: string | undefined;
  refs: number;
  sub: BrokerSubscription | undefined;
  /** Sockets in recovery on this topic; created on first use (most topics never need it). */
  recovering: Set<RecoveryBuffer> | undefined;
  /** Position of the last message delivered on this topic (0 = none yet). */
  lastSeq: number;
  /** Set while missed messages are read back; live frames wait here. */
  catchingUp: PositionedFrame[] | undefined;
  /** Settles when the running catch-up has finished. */
  caughtUp: Promise<void> | undefined;
}

interface PendingWrite {
  topic: string;
  frame: Buffer;
  publishedAt: string | undefined;
}

export class Fanout {
  private readonly entries = new Map<string, Entry>();
  private readonly offStatus: () => void;
  /** Frames held for WRITE_DELAY_MS, in order. */
  private pendingWrites: PendingWrite[] = [];
  private writeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly app: TemplatedApp,
    private readonly broker: Broker,
    private readonly metrics: GatewayMetrics,
    private readonly tracing: Tracing,
    private readonly logger: Logger,
    private readonly writeDelayMs = 0,
    /** Told the size of every frame written to a topic (the gateway's send-buffer checks count them). */
    private readonly onWritten: (bytes: number) => void = () => {},
  ) {
    // After a reconnect the last messages may be missing with nothing newer
    // to reveal it, so every positioned topic checks the history once.
    this.offStatus = broker.onStatus((status) => {
      if (status !== "connected") return;
      for (const entry of this.entries.values()) {
        if (entry.historySubject && entry.lastSeq > 0 && !entry.catchingUp) this.catchUp(entry, []);
      }
    });
  }

  stop(): void {
    this.offStatus();
    this.flushWrites();
  }

  /**
   * Writes every held frame now. Called before a socket joins a channel
   * topic: frames it already got from its recovery (or that precede the
   * position it was told) must not reach it a second time.
   */
  flushWrites(): void {
    if (this.writeTimer !== undefined) clearTimeout(this.writeTimer);
    this.writeTimer = undefined;
    const writes = this.pendingWrites;
    if (writes.length === 0) return;
    this.pendingWrites = [];
    // uWS merges everything published in one tick into one write per socket.
    for (const w of writes) this.write(w.topic, w.frame, w.publishedAt);
  }

  /**
   * Adds one reference; the promise resolves when the broker has the
   * subscription, so a `subscribed` reply sent after it is truthful.
   */
  acquire(dest: Destination): Promise<void> {
    const existing = this.entries.get(dest.topic);
    if (existing) {
      existing.refs++;
      return existing.sub?.ready ?? Promise.resolve();
    }
    const entry: Entry = {
      topic: dest.topic,
      head: dest.head,
      historySubject: dest.historySubject,
      refs: 1,
      sub: undefined,
      recovering: undefined,
      lastSeq: 0,
      catchingUp: undefined,
      caughtUp: undefined,
    };
    entry.sub = this.broker.subscribe(dest.subject, (msg) => this.deliver(entry, msg));
    this.entries.set(dest.topic, entry);
    this.metrics.brokerSubscriptions.set(this.entries.size);
    this.logger.debug({ subject: dest.subject }, "broker subscription added");
    return entry.sub.ready;
  }

  release(topic: string): void {
    const entry = this.entries.get(topic);
    if (!entry) return;
    if (--entry.refs > 0) return;
    entry.sub?.unsubscribe();
    this.entries.delete(topic);
    this.metrics.brokerSubscriptions.set(this.entries.size);
    this.logger.debug({ topic }, "broker subscription removed");
  }

  /**
   * Position of the last message this process delivered on `topic`, when it
   * is known and current (not catching up). A socket that joins the topic
   * synchronously right now continues exactly from there.
   */
  position(topic: string): number | undefined {
    const entry = this.entries.get(topic);
    return entry && entry.lastSeq > 0 && !entry.catchingUp ? entry.lastSeq : undefined;
  }

  /**
   * Resolves once this process has delivered `topic` at least up to `last`,
   * the position a recovering socket has been sent up to: only then may it
   * join the topic, or frames it already has would reach it again (a
   * catch-up still running, live copies still in flight behind the history
   * read). A topic behind `last` is caught up from the history now; one that
   * has delivered nothing, with nobody on it and no other recovery in
   * flight, simply takes `last` as its position.
   */
  async settle(topic: string, last: number): Promise<void> {
    const entry = this.entries.get(topic);
    if (!entry?.historySubject) return;
    for (let round = 0; round < 3 && this.entries.get(topic) === entry; round++) {
      if (entry.catchingUp) {
        await entry.caughtUp;
        continue;
      }
      if (entry.lastSeq >= last) return;
      if (entry.lastSeq === 0 && this.app.numSubscribers(topic) === 0 && (entry.recovering?.size ?? 0) <= 1) {
        entry.lastSeq = last;
        return;
      }
      this.catchUp(entry, []);
    }
  }

  /** Starts collecting live frames of `topic` for a socket in recovery. */
  watch(topic: string, buffer: RecoveryBuffer): void {
    const entry = this.entries.get(topic);
    if (entry) (entry.recovering ??= new Set()).add(buffer);
  }

  unwatch(topic: string, buffer: RecoveryBuffer): void {
    const entry = this.entries.get(topic);
    if (!entry?.recovering) return;
    entry.recovering.delete(buffer);
    if (entry.recovering.size === 0) entry.recovering = undefined;
  }

  private deliver(entry: Entry, msg: BrokerMessage): void {
    this.metrics.brokerMessages.inc();
    const recipients = this.app.numSubscribers(entry.topic);
    if (!entry.historySubject) {
      if (recipients === 0) return;
      this.emit(entry, undefined, 0, messageFrame(entry.head, msg.data), msg, recipients);
      return;
    }
    const seqText = msg.header(Header.Sequence);
    if (seqText === undefined) return; // not from the history stream: cannot be positioned
    const seq = Number(seqText);
    const prev = Number(msg.header(Header.LastSequence) ?? 0);
    if (seq <= entry.lastSeq) return; // already delivered (e.g. by a catch-up)
    if (recipients === 0 && !entry.recovering) {
      entry.lastSeq = seq;
      return;
    }
    const frame = messageFrame(entry.head, msg.data, seq, prev);
    if (entry.catchingUp) {
      entry.catchingUp.push({ seq, prev, frame });
      return;
    }
    if (entry.lastSeq > 0 && prev > entry.lastSeq) {
      this.catchUp(entry, [{ seq, prev, frame }]);
      return;
    }
    entry.lastSeq = seq;
    this.emit(entry, seq, prev, frame, msg, recipients);
  }

  /** Reads what this process missed after entry.lastSeq and delivers it in order. */
  private catchUp(entry: Entry, waiting: PositionedFrame[]): void {
    const history = this.broker.history;
    const subject = entry.historySubject;
    if (!history || !subject) return;
    entry.catchingUp = waiting;
    let caughtUp!: () => void;
    entry.caughtUp = new Promise<void>((resolve) => (caughtUp = resolve));
    const from = entry.lastSeq;
    // Released (and perhaps re-created for new sockets) meanwhile: this entry
    // must not publish into the topic any more.
    const current = () => this.entries.get(entry.topic) === entry;
    const run = async () => {
      let count = 0;
      for (let page = 0; page < CATCH_UP_MAX_PAGES; page++) {
        const messages = await history.read(subject, entry.lastSeq, CATCH_UP_PAGE);
        // When the window no longer reaches back to the last delivered
        // message, what follows may not follow on: its `prev` must not claim
        // it does, or clients would never notice the gap (they resume with
        // `since` and are told recovered: false). Asked after the read: if
        // the window still reaches back now, it did when the page was read.
        const continuous = messages.length === 0 || (await history.reaches(subject, entry.lastSeq));
        if (!current()) return;
        let first = true;
        for (const m of messages) {
          if (m.seq <= entry.lastSeq) continue;
          const prev = continuous || !first ? entry.lastSeq : m.seq - 1;
          first = false;
          this.emit(entry, m.seq, prev, messageFrame(entry.head, m.data, m.seq, prev), undefined);
          entry.lastSeq = m.seq;
          count++;
        }
        // Caught up once the oldest waiting live frame follows on.
        const next = firstAfter(entry.catchingUp ?? [], entry.lastSeq);
        if (messages.length < CATCH_UP_PAGE || (next && next.prev <= entry.lastSeq)) break;
      }
      if (count > 0) this.logger.info({ topic: entry.topic, from, to: entry.lastSeq, count }, "caught up missed messages");
    };
    run()
      .catch((err: unknown) => {
        this.metrics.drops.inc({ reason: "catch_up_failed" });
        this.logger.warn({ err, topic: entry.topic }, "catch-up from history failed; clients will see a gap");
      })
      .finally(() => {
        const pending = entry.catchingUp ?? [];
        entry.catchingUp = undefined;
        entry.caughtUp = undefined;
        if (current()) {
          pending.sort((a, b) => a.seq - b.seq);
          for (const p of pending) {
            if (p.seq <= entry.lastSeq) continue;
            entry.lastSeq = p.seq;
            this.emit(entry, p.seq, p.prev, p.frame, undefined);
          }
        }
        caughtUp();
      });
  }

  /**
   * Hands one frame to every socket on the topic (and to sockets in
   * recovery). `recipients` is passed when the caller already counted them.
   */
  private emit(
    entry: Entry,
    seq: number | undefined,
    prev: number,
    frame: Buffer,
    msg: BrokerMessage | undefined,
    recipients = this.app.numSubscribers(entry.topic),
  ): void {
    const { metrics, tracing } = this;
    if (seq !== undefined && entry.recovering) {
      const positioned = { seq, prev, frame };
      for (const buffer of entry.recovering) buffer.push(positioned);
    }
    if (recipients === 0) return;
    const publishedAt = msg?.header(Header.PublishedAt);
    if (tracing.enabled && msg) {
      const parent = extractTraceContext((name) => msg.header(name));
      const span = tracing.tracer.startSpan(
        "herald.fanout",
        {
          kind: SpanKind.CONSUMER,
          attributes: {
            "messaging.system": "nats",
            "messaging.operation.type": "process",
            "messaging.destination.name": msg.subject,
            "herald.recipients": recipients,
          },
        },
        parent,
      );
      context.with(parent, () => this.send(entry.topic, frame, publishedAt));
      span.end();
    } else {
      this.send(entry.topic, frame, publishedAt);
    }
    metrics.deliveries.inc(recipients);
  }

  /** Writes one frame now, or holds it for WRITE_DELAY_MS. */
  private send(topic: string, frame: Buffer, publishedAt: string | undefined): void {
    if (this.writeDelayMs === 0) return this.write(topic, frame, publishedAt);
    this.pendingWrites.push({ topic, frame, publishedAt });
    this.writeTimer ??= setTimeout(() => this.flushWrites(), this.writeDelayMs);
  }

  /** Hands one frame to uWS pub/sub and records its broker-to-socket latency. */
  private write(topic: string, frame: Buffer, publishedAt: string | undefined): void {
    this.app.publish(topic, frame, false, false);
    this.onWritten(frame.length);
    if (publishedAt !== undefined) {
      const ms = Date.now() - Number(publishedAt);
      if (ms >= 0 && ms < 3_600_000) this.metrics.deliveryLatency.observe(ms / 1000);
    }
  }
}
