/**
 * The SSE side of the topic sink: which streams are on which topic, one
 * encoding of each topic frame as `data:` lines shared by all of them (only
 * the per-stream `id:` line is written per recipient), and one keepalive
 * timer for every open stream. Streams write once per event-loop turn
 * (schedule): what arrived in that turn goes out in one send() each.
 */
import type { SseConnection, SseTopics } from "./sse-connection.js";
import { dataLines, messagePosition } from "./sse-connection.js";

export class SseHub implements SseTopics {
  /** Open streams by connection id: where their commands (sse-commands.ts) go. */
  private readonly ids = new Map<string, SseConnection>();
  private readonly stoppers: Array<() => void> = [];
  private readonly byTopic = new Map<string, Set<SseConnection>>();
  private readonly timer: NodeJS.Timeout;
  /** Streams with queued events, flushed together at the end of this event-loop turn. */
  private dirty: SseConnection[] = [];
  private flushScheduled = false;
  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    const streams = this.dirty;
    this.dirty = [];
    for (const conn of streams) conn.flush();
  };

  constructor(keepaliveMs: number) {
    this.timer = setInterval(() => {
      for (const conn of this.ids.values()) conn.keepalive();
    }, keepaliveMs);
    this.timer.unref();
  }

  /** After the last stream closed (drain) or at close: the keepalive timer and whatever registered with onStop. */
  stop(): void {
    clearInterval(this.timer);
    for (const stop of this.stoppers.splice(0)) stop();
  }

  /** What stops with the hub: the commands' broker subscription (sse-route.ts). */
  onStop(stop: () => void): void {
    this.stoppers.push(stop);
  }

  /**
   * Open streams (the socket guard, drain and revocations walk them with the
   * WebSockets): a view of the id map, not a second table (a Set entry per
   * stream costs as much as the Map's).
   */
  get streams(): { readonly size: number; [Symbol.iterator](): Iterator<SseConnection> } {
    const ids = this.ids;
    return { size: ids.size, [Symbol.iterator]: () => ids.values() };
  }

  add(conn: SseConnection): void {
    this.ids.set(conn.id, conn);
  }

  remove(conn: SseConnection): void {
    if (this.ids.get(conn.id) === conn) this.ids.delete(conn.id);
  }

  /** The open stream with this connection id. */
  byId(id: string): SseConnection | undefined {
    return this.ids.get(id);
  }

  join(topic: string, conn: SseConnection): void {
    let set = this.byTopic.get(topic);
    if (!set) this.byTopic.set(topic, (set = new Set()));
    set.add(conn);
  }

  leave(topic: string, conn: SseConnection): void {
    const set = this.byTopic.get(topic);
    if (!set?.delete(conn)) return;
    if (set.size === 0) this.byTopic.delete(topic);
  }

  schedule(conn: SseConnection): void {
    this.dirty.push(conn);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate, not a microtask: it runs after every socket read of this
    // turn (a burst of NATS messages) was handled, so they share one send().
    setImmediate(this.flushAll);
  }

  count(topic: string): number {
    return this.byTopic.get(topic)?.size ?? 0;
  }

  /** A frame published to `topic`: encoded once, written to each stream on it. */
  publish(topic: string, frame: Buffer): void {
    const set = this.byTopic.get(topic);
    if (!set) return;
    const data = dataLines(frame);
    const at = messagePosition(frame);
    for (const conn of set) conn.deliver(at, data, frame);
  }
}
