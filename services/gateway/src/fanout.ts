/**
 * Interest-based broker subscriptions and the delivery hot path.
 *
 * A broker subject is subscribed only while at least one local socket wants
 * it (reference counted by uWS topic). Each broker message becomes one frame,
 * built once, and uWS pub/sub copies it to every subscribed socket in C++:
 * no per-recipient work happens in JavaScript.
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
  /** Messages carry stream positions (Nats-Sequence headers) to put in the frame. */
  positioned: boolean;
}

/**
 * Live frames collected for one socket while its recovery backlog is read,
 * so nothing published meanwhile is lost or sent out of order.
 */
export interface RecoveryBuffer {
  frames: Array<{ seq: number; frame: Buffer }>;
}

interface Entry {
  refs: number;
  sub: BrokerSubscription | undefined;
  /** Sockets in recovery on this topic (usually empty). */
  recovering: Set<RecoveryBuffer>;
}


export class Fanout {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly app: TemplatedApp,
    private readonly broker: Broker,
    private readonly metrics: GatewayMetrics,
    private readonly tracing: Tracing,
    private readonly logger: Logger,
  ) {}

  get subscriptions(): number {
    return this.entries.size;
  }

  /**
   * Adds one reference; the promise resolves when the broker has the
   * subscription, so a `subscribed` reply sent after it is truthful.
   */
  acquire(dest: Destination): Promise<void> {
    const entry = this.entries.get(dest.topic);
    if (entry) {
      entry.refs++;
      return entry.sub?.ready ?? Promise.resolve();
    }
    const created: Entry = { refs: 1, sub: undefined, recovering: new Set() };
    const sub = this.broker.subscribe(dest.subject, this.deliverer(dest, created));
    created.sub = sub;
    this.entries.set(dest.topic, created);
    this.metrics.brokerSubscriptions.set(this.entries.size);
    this.logger.debug({ subject: dest.subject }, "broker subscription added");
    return sub.ready;
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

  /** Starts collecting live frames of `topic` for a socket in recovery. */
  watch(topic: string, buffer: RecoveryBuffer): void {
    this.entries.get(topic)?.recovering.add(buffer);
  }

  unwatch(topic: string, buffer: RecoveryBuffer): void {
    this.entries.get(topic)?.recovering.delete(buffer);
  }

  private deliverer(dest: Destination, entry: Entry): (msg: BrokerMessage) => void {
    const { app, metrics, tracing } = this;
    const { topic, head, positioned } = dest;
    return (msg) => {
      metrics.brokerMessages.inc();
      const recipients = app.numSubscribers(topic);
      if (recipients === 0 && entry.recovering.size === 0) return;
      let seq: number | undefined;
      let prev: number | undefined;
      if (positioned) {
        const seqText = msg.header(Header.Sequence);
        if (seqText !== undefined) {
          seq = Number(seqText);
          prev = Number(msg.header(Header.LastSequence) ?? 0);
        }
      }
      const frame = messageFrame(head, msg.data, seq, prev);
      if (entry.recovering.size > 0 && seq !== undefined) {
        for (const buffer of entry.recovering) buffer.frames.push({ seq, frame });
      }
      if (recipients === 0) return;
      if (tracing.enabled) {
        const parent = extractTraceContext((name) => msg.header(name));
        const span = tracing.tracer.startSpan(
          "herald.fanout",
          { kind: SpanKind.CONSUMER, attributes: { "messaging.system": "nats", "herald.recipients": recipients } },
          parent,
        );
        context.with(parent, () => app.publish(topic, frame, false, false));
        span.end();
      } else {
        app.publish(topic, frame, false, false);
      }
      metrics.deliveries.inc(recipients);
      const publishedAt = msg.header(Header.PublishedAt);
      if (publishedAt !== undefined) {
        const ms = Date.now() - Number(publishedAt);
        if (ms >= 0 && ms < 3_600_000) metrics.deliveryLatency.observe(ms / 1000);
      }
    };
  }
}
