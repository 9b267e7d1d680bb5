/**
 * One topic's stream: the broker subscription feeding it, its references,
 * and — for channels with history — its position, the gap catch-up and the
 * recovery of connections that join it with a position. Nothing else reads
 * or writes that state.
 *
 * Core NATS is at-most-once: when this process misses messages (a NATS
 * reconnect, a slow subscription) the next message's `prev` shows the gap
 * and the missing ones are read back from the history and delivered, in
 * order, before anything newer. Clients of this process never see that gap.
 */
import { Header, SpanKind, context, extractTraceContext, messageFrame } from "@herald/core";
import type { BrokerMessage, BrokerSubscription, MessageReceiver } from "@herald/broker";
import type { Connection } from "./connection.js";
import { RecoveryBuffer, firstAfter, inOrderAfter, type PositionedFrame } from "./held-frames.js";
import { HistoryCursor } from "@herald/broker";
import { recoverConnection } from "./connection-recovery.js";
import { RecentFrames, type ArrivedFrame } from "./recent-frames.js";
import { SETTLE_ROUNDS, type Destination, type JoinOptions, type StreamContext } from "./stream-context.js";

export type { Destination, JoinOptions, JoinedPosition, StreamContext } from "./stream-context.js";
export { SETTLE_ROUNDS } from "./stream-context.js";

/** Bound of one catch-up (the history window is far smaller by default). */
const CATCH_UP_MAX_PAGES = 100;

export class ChannelStream implements MessageReceiver {
  readonly topic: string;
  private readonly headOf: (name: string) => Buffer;
  private readonly name: string;
  private builtHead: Buffer | undefined;
  readonly historySubject: string | undefined;
  private refs = 1;
  private released = false;
  private readonly sub: BrokerSubscription;
  /** Position of the last message delivered on this topic (0 = none yet). */
  private lastSeq = 0;
  /** Set while missed messages are read back; live frames wait here, with when they arrived. */
  private catchingUp: ArrivedFrame[] | undefined;
  /** Settles when the running catch-up has finished. */
  private caughtUp: Promise<void> | undefined;
  /** Connections recovering on this topic, queued or running (created on first use: most topics never need it). */
  private recoveries: Map<Connection, RecoveryBuffer> | undefined;
  /** Buffers of running recoveries: every live frame is kept for them. */
  private held: Set<RecoveryBuffer> | undefined;
  /** The last live frames, for resumes a little behind (created by the first one; dropped when the chain breaks). */
  private recent: RecentFrames | undefined;

  constructor(
    dest: Destination,
    private readonly ctx: StreamContext,
  ) {
    this.topic = dest.topic;
    this.headOf = dest.head;
    this.name = dest.name;
    this.historySubject = dest.historySubject;
    this.sub = ctx.broker.subscribe(dest.subject, this);
  }

  get head(): Buffer {
    return (this.builtHead ??= this.headOf(this.name));
  }

  addRef(): void {
    this.refs++;
  }

  /** Drops one reference; true when it was the last and the broker subscription is gone. */
  release(): boolean {
    if (--this.refs > 0) return false;
    this.released = true;
    this.sub.unsubscribe();
    return true;
  }

  /**
   * Brings a connection onto the topic (it already holds a reference).
   * Resolves once it is on it, or quietly when it left or closed meanwhile;
   * rejects when its recovery failed while it still wanted the topic.
   */
  join(conn: Connection, opts: JoinOptions): Promise<void> {
    if (this.historySubject && this.ctx.broker.history) return this.recover(conn, opts);
    return this.joinLive(conn, opts);
  }

  /** Takes a connection off the topic, stopping any recovery it has running. */
  leave(conn: Connection): void {
    const buffer = this.recoveries?.get(conn);
    if (buffer) this.endRecovery(conn, buffer);
    if (!conn.closed) conn.unsubscribe(this.topic);
  }

  /** After a broker reconnect the last messages may be missing with nothing newer to reveal it. */
  checkAfterReconnect(): void {
    if (this.historySubject && this.lastSeq > 0 && !this.catchingUp) this.catchUp([]);
  }

  private async joinLive(conn: Connection, opts: JoinOptions): Promise<void> {
    // Join only once the broker has the interest, with the reply: nothing
    // arrives before `subscribed`, and `subscribed` is truthful.
    await this.sub.ready;
    if (conn.closed || this.released || !conn.topics.has(this.topic)) return;
    conn.batch(() => {
      opts.onJoined?.(undefined);
      conn.subscribe(this.topic);
    });
  }

  private recover(conn: Connection, opts: JoinOptions): Promise<void> {
    const { logger } = this.ctx;
    if (this.joinFromMemory(conn, opts)) return Promise.resolve();
    const buffer = new RecoveryBuffer();
    (this.recoveries ??= new Map()).set(conn, buffer);
    const stillWanted = () => !conn.closed && !this.released && this.recoveries?.get(conn) === buffer;
    return this.ctx
      .recoverySlot(() =>
        // While it waited for its slot, the stream may have learned its
        // position (another recovery on it finished, a message arrived):
        // then it joins from memory like a connection arriving now.
        stillWanted() && this.joinFromMemory(conn, opts)
          ? Promise.resolve()
          : recoverConnection(this.ctx, conn, opts, {
              topic: this.topic,
              head: this.head,
              subject: this.historySubject as string,
              buffer,
              stillWanted,
              // From here on every live frame of the topic is kept for this
              // connection; only with a recovery slot, so queued recoveries hold nothing.
              hold: () => (this.held ??= new Set()).add(buffer),
              ready: this.sub.ready,
              settle: (last) => this.settle(last),
            }),
      )
      .then(
        () => this.endRecovery(conn, buffer),
        (err: unknown) => {
          const wanted = stillWanted();
          this.endRecovery(conn, buffer);
          logger.warn({ err, topic: this.topic }, "recovery failed");
          if (wanted) throw err;
        },
      );
  }

  /**
   * Joins a connection at once when the stream can answer from what it
   * holds: it is current at `since` (or the client asks for no position), or
   * `since` is one of its recent frames. True when it joined.
   */
  private joinFromMemory(conn: Connection, opts: JoinOptions): boolean {
    const { metrics, writer } = this.ctx;
    // This process is already delivering the channel and knows its position:
    // joining the topic now continues exactly from there, with no round trip
    // to the history (10k connections subscribing to one channel cost one
    // history read, not 10k).
    const position = this.lastSeq > 0 && !this.catchingUp ? this.lastSeq : undefined;
    if (position === undefined) return false;
    if (opts.since === undefined || opts.since === position) {
      if (opts.since !== undefined) metrics.recoveries.inc({ result: "recovered" });
      writer.flush();
      opts.onJoined?.({ seq: position, recovered: true });
      conn.subscribe(this.topic);
      return true;
    }
    // A little behind: what it missed is still in the recent frames.
    const missed = this.recent?.after(opts.since, this.lastSeq);
    if (!missed) return false;
    metrics.recoveries.inc({ result: "recovered" });
    writer.flush(); // frames still waiting for the topic go to its present members only
    const since = opts.since;
    conn.batch(() => {
      opts.onJoined?.({ seq: since, recovered: true });
      for (const f of missed) conn.send(f.frame);
      conn.subscribe(this.topic);
    });
    return true;
  }

  private endRecovery(conn: Connection, buffer: RecoveryBuffer): void {
    if (this.recoveries?.get(conn) === buffer) {
      this.recoveries.delete(conn);
      if (this.recoveries.size === 0) this.recoveries = undefined;
    }
    if (this.held?.delete(buffer) && this.held.size === 0) this.held = undefined;
  }

  /**
   * Resolves once this stream has delivered at least up to `last`, the
   * position a recovering connection has been sent up to: only then may it
   * join the topic, or frames it already has would reach it again (a
   * catch-up still running, live copies still in flight behind the history
   * read). A stream behind `last` is caught up from the history now; one
   * that has delivered nothing, with nobody on it and no other recovery in
   * flight, simply takes `last` as its position.
   */
  private async settle(last: number): Promise<void> {
    for (let round = 0; round < SETTLE_ROUNDS && !this.released; round++) {
      if (this.catchingUp) {
        await this.caughtUp;
        continue;
      }
      if (this.lastSeq >= last) return;
      if (this.lastSeq === 0 && this.ctx.sink.subscribers(this.topic) === 0 && (this.held?.size ?? 0) <= 1) {
        this.lastSeq = last;
        return;
      }
      this.catchUp([]);
    }
  }

  /** A message from the broker subscription (the stream is its MessageReceiver). */
  receive(msg: BrokerMessage): void {
    this.ctx.metrics.brokerMessages.inc();
    const recipients = this.ctx.sink.subscribers(this.topic);
    if (!this.historySubject) {
      if (recipients === 0) return;
      this.emit(undefined, 0, messageFrame(this.head, msg.data), msg, 0, recipients);
      return;
    }
    const seqText = msg.header(Header.Sequence);
    if (seqText === undefined) return; // not from the history stream: cannot be positioned
    const seq = Number(seqText);
    const prev = Number(msg.header(Header.LastSequence) ?? 0);
    if (seq <= this.lastSeq) return; // already delivered (e.g. by a catch-up)
    const at = Date.now();
    if (recipients === 0 && !this.held) {
      this.lastSeq = seq;
      // Nobody here yet (its connections may be queued for recovery slots),
      // but kept among the recent frames: they resume from right here.
      if (this.catchingUp) this.recent = undefined; // the chain breaks here
      else this.remember({ seq, prev, frame: messageFrame(this.head, msg.data, seq, prev) }, at);
      return;
    }
    const frame = messageFrame(this.head, msg.data, seq, prev);
    if (this.catchingUp) {
      this.catchingUp.push({ seq, prev, frame, at });
      return;
    }
    if (this.lastSeq > 0 && prev > this.lastSeq) {
      this.catchUp([{ seq, prev, frame, at }]);
      return;
    }
    this.lastSeq = seq;
    this.emit(seq, prev, frame, msg, at, recipients);
  }

  /** Reads what this stream missed after lastSeq and delivers it in order, then the live frames that waited. */
  private catchUp(waiting: ArrivedFrame[]): void {
    const history = this.ctx.broker.history;
    const subject = this.historySubject;
    if (!history || !subject) return;
    this.catchingUp = waiting;
    let caughtUp!: () => void;
    this.caughtUp = new Promise<void>((resolve) => (caughtUp = resolve));
    const from = this.lastSeq;
    const run = async () => {
      const cursor = new HistoryCursor(history, subject, from, CATCH_UP_MAX_PAGES);
      let count = 0;
      let firstRead = true;
      // Read until a short page, or until the oldest waiting live frame follows on.
      const more = () => {
        if (firstRead) {
          firstRead = false;
          return true;
        }
        const next = firstAfter(this.catchingUp ?? [], this.lastSeq);
        return cursor.lastPageFull && !(next && next.prev <= this.lastSeq);
      };
      for await (const page of cursor.pages(more)) {
        // Released (and perhaps re-created for new connections) meanwhile:
        // this stream must not publish into the topic any more.
        if (this.released) return;
        for (const m of page) {
          this.emit(m.seq, m.prev, messageFrame(this.head, m.data, m.seq, m.prev), undefined, 0);
          this.lastSeq = m.seq;
          count++;
        }
      }
      if (count > 0) this.ctx.logger.info({ topic: this.topic, from, to: this.lastSeq, count }, "caught up missed messages");
    };
    run()
      .catch((err: unknown) => {
        this.ctx.metrics.drops.inc({ reason: "catch_up_failed" });
        this.ctx.logger.warn({ err, topic: this.topic }, "catch-up from history failed; clients will see a gap");
      })
      .finally(() => {
        const pending = this.catchingUp ?? [];
        this.catchingUp = undefined;
        this.caughtUp = undefined;
        if (!this.released) {
          for (const p of inOrderAfter(pending, this.lastSeq)) {
            if (p.seq <= this.lastSeq) continue;
            this.lastSeq = p.seq;
            this.emit(p.seq, p.prev, p.frame, undefined, p.at);
          }
        }
        caughtUp();
      })
      .catch((err: unknown) => this.ctx.logger.error({ err, topic: this.topic }, "delivering after a catch-up failed"));
  }

  private remember(delivered: PositionedFrame, at: number): void {
    if (!this.recent) {
      const window = this.ctx.broker.history?.windowOf(this.historySubject!);
      if (!window) return;
      this.recent = new RecentFrames(window.maxPerChannel, window.maxAgeSeconds * 1000);
    }
    this.recent.remember(delivered, at);
  }

  /**
   * Hands one frame to every connection on the topic (and to recoveries
   * running on it). `receivedAt` is when a live frame arrived (0 for one read
   * from the history: its age is unknown). `recipients` is passed when the
   * caller already counted them.
   */
  private emit(
    seq: number | undefined,
    prev: number,
    frame: Buffer,
    msg: BrokerMessage | undefined,
    receivedAt: number,
    recipients = this.ctx.sink.subscribers(this.topic),
  ): void {
    const { metrics, tracing, writer } = this.ctx;
    if (seq !== undefined) {
      const positioned = { seq, prev, frame };
      this.remember(positioned, receivedAt);
      if (this.held) for (const buffer of this.held) buffer.push(positioned);
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
      context.with(parent, () => writer.send(this.topic, frame, publishedAt));
      span.end();
    } else {
      writer.send(this.topic, frame, publishedAt);
    }
    metrics.deliveries.inc(recipients);
  }
}
