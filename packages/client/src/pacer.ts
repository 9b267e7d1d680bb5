/**
 * A token bucket in front of a connection: what a new connection sends after
 * its welcome (every re-subscribe, then the offline queue) goes out `burst`
 * frames at once and the rest at `perSecond`, so it stays under the gateway's
 * inbound rate limit instead of drawing `rate_limited` errors and a 4008.
 */
import type { FlushPacing } from "./types.js";

export class Pacer<T> {
  /** Items waiting for their turn, in order; while non-empty, new items queue behind them. */
  private waiting: T[] = [];
  /** Items that may go out now, refilled at `perSecond`. */
  private credit: number;
  private creditAt = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(
    private readonly pacing: FlushPacing,
    private readonly deliver: (item: T) => void,
  ) {
    this.credit = pacing.burst;
  }

  get length(): number {
    return this.waiting.length;
  }

  /** Delivers `item` now, or behind the items still waiting (keeps order and pacing). */
  send(item: T): void {
    if (this.waiting.length > 0) this.waiting.push(item);
    else this.deliver(item);
  }

  /** Delivers `items` through the bucket: what credit allows now, the rest as it refills. */
  flush(items: T[]): void {
    if (items.length === 0) return;
    this.waiting.push(...items);
    this.pump();
  }

  some(pred: (item: T) => boolean): boolean {
    return this.waiting.some(pred);
  }

  /** Stops the paced delivery and hands back what was not delivered yet. */
  take(): T[] {
    this.clearTimer();
    const items = this.waiting;
    this.waiting = [];
    return items;
  }

  /** For good: the connection is gone, nothing waiting is delivered any more (take() still returns it). */
  stop(): void {
    this.stopped = true;
    this.clearTimer();
  }

  private pump(): void {
    this.timer = undefined;
    if (this.stopped) return;
    const { burst, perSecond } = this.pacing;
    const unpaced = !Number.isFinite(perSecond);
    const now = Date.now();
    this.credit = unpaced ? burst : Math.min(burst, this.credit + (Math.max(0, now - this.creditAt) * perSecond) / 1000);
    this.creditAt = now;
    while (this.waiting.length > 0 && (this.credit >= 1 || unpaced)) {
      this.credit--;
      this.deliver(this.waiting.shift() as T);
      // Delivering may end the connection (a send that throws).
      if (this.stopped) return;
    }
    if (this.waiting.length > 0) this.timer = setTimeout(() => this.pump(), Math.ceil(((1 - this.credit) * 1000) / perSecond));
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
