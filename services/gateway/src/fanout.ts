/**
 * Interest-based broker subscriptions and the delivery hot path.
 *
 * A broker subject is subscribed only while at least one local connection
 * wants it: one ChannelStream per topic, reference counted. Each broker
 * message becomes one frame, built once, and the sink (uWS pub/sub, in C++)
 * copies it to every connection on the topic: no per-recipient work happens
 * in JavaScript.
 */
import pLimit from "p-limit";
import type { GatewayMetrics, Logger, Tracing } from "@herald/core";
import type { Broker } from "@herald/broker";
import { ChannelStream, type Destination, type JoinOptions, type StreamContext } from "./channel-stream.js";
import type { Connection, TopicSink } from "./connection.js";
import { TopicWriter } from "./topic-writer.js";

export type { Destination, JoinOptions, JoinedPosition } from "./channel-stream.js";

/**
 * Recoveries running at once in one process; more wait their turn. A burst
 * of resumes (a neighbour pod drained, NATS came back) then costs the
 * history a bounded number of requests in flight, not one per client.
 */
const RECOVERY_CONCURRENCY = 32;

export interface FanoutOptions {
  broker: Broker;
  sink: TopicSink;
  metrics: GatewayMetrics;
  tracing: Tracing;
  logger: Logger;
  /** WRITE_DELAY_MS: 0 writes every frame at once. */
  writeDelayMs: number;
  /** Told the size of every frame written to a topic (the send-buffer checks count them). */
  onWritten: (bytes: number) => void;
  slowConsumerBytes: number;
  /** Told when a connection is put on a topic and taken off it (presence). */
  membership?: { joined(conn: Connection, topic: string): void; left(conn: Connection, topic: string): void };
}

export class Fanout {
  private readonly streams = new Map<string, ChannelStream>();
  private readonly writer: TopicWriter;
  private readonly ctx: StreamContext;
  private readonly offStatus: () => void;
  private readonly membership: FanoutOptions["membership"];

  constructor(opts: FanoutOptions) {
    this.writer = new TopicWriter(opts.sink, opts.metrics, opts.writeDelayMs, opts.onWritten);
    this.membership = opts.membership;
    this.ctx = {
      broker: opts.broker,
      sink: opts.sink,
      writer: this.writer,
      metrics: opts.metrics,
      tracing: opts.tracing,
      logger: opts.logger,
      recoverySlot: pLimit(RECOVERY_CONCURRENCY),
      slowConsumerBytes: opts.slowConsumerBytes,
    };
    // After a reconnect the last messages may be missing with nothing newer
    // to reveal it, so every positioned stream checks the history once.
    this.offStatus = opts.broker.onStatus((status) => {
      if (status !== "connected") return;
      for (const stream of this.streams.values()) stream.checkAfterReconnect();
    });
  }


  /** Topics with a stream on this gateway, channel and user topics alike (the server API lists the channels). */
  topics(): IterableIterator<string> {
    return this.streams.keys();
  }
  /** Broker subscriptions held (one per topic with connections on it). */
  get subscriptions(): number {
    return this.streams.size;
  }

  /**
   * Puts a connection on a topic: takes a reference on its stream (and the
   * broker subscription with the first), then joins it — at once for topics
   * without positions, after its recovery for channels with history.
   * Resolves when it is on the topic (or left or closed meanwhile); rejects
   * when its recovery failed, and then it is off the topic again.
   */
  join(conn: Connection, dest: Destination, opts: JoinOptions = {}): Promise<void> {
    return this.take(conn, dest)
      .join(conn, opts)
      .catch((err: unknown) => {
        this.leave(conn, dest.topic);
        throw err;
      });
  }

  /**
   * Puts a connection on a topic without positions at once, with no reply
   * to make truthful: the user topic at open. Synchronous (no promise per
   * connection on the connect path); throws when the broker subscription
   * cannot be taken, and then the connection holds no reference.
   */
  joinNow(conn: Connection, dest: Destination): void {
    if (dest.historySubject) throw new Error("joinNow is for topics without positions");
    this.take(conn, dest);
    conn.subscribe(dest.topic);
  }

  /** Takes a connection off one topic; false when it was not on it. */
  leave(conn: Connection, topic: string): boolean {
    if (!conn.topics.delete(topic)) return false;
    this.drop(conn, topic);
    return true;
  }

  /** Takes a closed (or closing) connection off every topic. */
  leaveAll(conn: Connection): void {
    // drop() never edits conn.topics, and TopicSet replaces its array on every change anyway.
    for (const topic of conn.topics) this.drop(conn, topic);
    conn.topics.clear();
  }

  stop(): void {
    this.offStatus();
    this.writer.flush();
  }

  /** Takes a reference on the topic's stream (creating it subscribes the broker) for `conn`. */
  private take(conn: Connection, dest: Destination): ChannelStream {
    let stream = this.streams.get(dest.topic);
    if (stream) {
      stream.addRef();
    } else {
      stream = new ChannelStream(dest, this.ctx);
      this.streams.set(dest.topic, stream);
      // inc/dec, not set: the server API's control subscriptions count too (control.ts).
      this.ctx.metrics.brokerSubscriptions.inc();
      this.ctx.logger.debug({ subject: dest.subject }, "broker subscription added");
    }
    // Only once the reference is taken: if taking it throws, the connection
    // does not hold one that leaveAll would drop for another connection.
    conn.topics.add(dest.topic);
    this.membership?.joined(conn, dest.topic);
    return stream;
  }

  private drop(conn: Connection, topic: string): void {
    const stream = this.streams.get(topic);
    if (!stream) return;
    this.membership?.left(conn, topic);
    stream.leave(conn);
    if (!stream.release()) return;
    this.streams.delete(topic);
    this.ctx.metrics.brokerSubscriptions.dec();
    this.ctx.logger.debug({ topic }, "broker subscription removed");
  }
}
