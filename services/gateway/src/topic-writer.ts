/**
 * Writes frames to topics through the sink: at once, or held for
 * WRITE_DELAY_MS and written in order in one go (uWS then merges what one
 * tick publishes into one write per socket). Records broker-to-socket
 * latency and tells the send-buffer checks how much was written.
 */
import type { GatewayMetrics } from "@herald/core";
import type { TopicSink } from "./connection.js";

interface PendingWrite {
  topic: string;
  frame: Buffer;
  publishedAt: string | undefined;
}

export class TopicWriter {
  /** Frames held for WRITE_DELAY_MS, in order. */
  private pending: PendingWrite[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: TopicSink,
    private readonly metrics: GatewayMetrics,
    private readonly writeDelayMs: number,
    /** Told the size of every frame written to a topic. */
    private readonly onWritten: (bytes: number) => void,
  ) {}

  /** Writes one frame now, or holds it for WRITE_DELAY_MS. */
  send(topic: string, frame: Buffer, publishedAt: string | undefined): void {
    if (this.writeDelayMs === 0) return this.write(topic, frame, publishedAt);
    this.pending.push({ topic, frame, publishedAt });
    this.timer ??= setTimeout(() => this.flush(), this.writeDelayMs);
  }

  /**
   * Writes every held frame now. Called before a connection joins a topic:
   * frames it already got from its recovery (or that precede the position
   * it was told) must not reach it a second time.
   */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const writes = this.pending;
    if (writes.length === 0) return;
    this.pending = [];
    for (const w of writes) this.write(w.topic, w.frame, w.publishedAt);
  }

  private write(topic: string, frame: Buffer, publishedAt: string | undefined): void {
    this.sink.publish(topic, frame);
    this.onWritten(frame.length);
    if (publishedAt !== undefined) {
      const ms = Date.now() - Number(publishedAt);
      if (ms >= 0 && ms < 3_600_000) this.metrics.deliveryLatency.observe(ms / 1000);
    }
  }
}
