/**
 * Publishes: the offline queue that holds them while there is no connection,
 * and the retry of publishes the gateway refused unread (`rate_limited` with
 * their id: definitely not applied, so safe to send again).
 */
import { backoffDelay } from "./backoff.js";
import type { Conn, Links, Queued } from "./connection.js";
import { HeraldError, invalidChannel } from "./errors.js";
import type { Requests } from "./requests.js";
import { RETRY_FLOOR_MS, type RetryOptions } from "./subscriptions.js";

/** A publish refused with `rate_limited` (it was not applied) is sent again up to this many times. */
export const MAX_PUBLISH_RETRIES = 3;

export class Publishes {
  private queue: Queued[] = [];
  /** Publishes refused with `rate_limited`, waiting for their retry. */
  private readonly retrying = new Map<Queued, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly links: Links,
    private readonly requests: Requests,
    private readonly opts: RetryOptions & { offlineQueueLimit: number },
  ) {}

  /** Publishes waiting for a connection. */
  get queued(): number {
    return this.queue.length;
  }

  publish(channel: string, data: unknown): Promise<void> {
    const invalid = invalidChannel(channel) ?? (data === undefined ? new HeraldError("invalid_argument", "data must be a JSON value, not undefined") : undefined);
    if (invalid) return Promise.reject(invalid);
    const conn = this.links.usable();
    if (conn) return new Promise<void>((resolve, reject) => conn.outbox.send({ kind: "publish", q: { channel, data, retries: 0, resolve, reject } }));
    const closed = this.links.closedError();
    if (closed) return Promise.reject(closed);
    const limit = this.opts.offlineQueueLimit;
    if (this.queue.length >= limit) {
      return Promise.reject(new HeraldError("queue_full", `offline queue full (${limit} publishes waiting for a connection)`, { channel }));
    }
    return new Promise<void>((resolve, reject) => this.queue.push({ channel, data, retries: 0, resolve, reject }));
  }

  /** Empties the offline queue, for the flush after a welcome. */
  drain(): Queued[] {
    return this.queue.splice(0);
  }

  /**
   * Publishes to send again (never sent on a connection going away, or due
   * for a retry), in order: on the usable connection, else into the offline
   * queue (`first`: ahead of it), beyond offlineQueueLimit if need be.
   */
  resend(items: Queued[], first = true): void {
    if (items.length === 0) return;
    const conn = this.links.usable();
    if (conn) {
      for (const q of items) conn.outbox.send({ kind: "publish", q });
      return;
    }
    const closed = this.links.closedError();
    if (closed) for (const q of items) q.reject(closed);
    else if (first) this.queue.unshift(...items);
    else this.queue.push(...items);
  }

  /** Sends `q` on `conn`: resolves on the ack; a `rate_limited` refusal is sent again after a delay, a few times. */
  sendOn(conn: Conn, q: Queued): void {
    this.requests.send(conn, { type: "publish", channel: q.channel, data: q.data }).then(
      () => q.resolve(),
      (err: HeraldError) => {
        if (err.code !== "rate_limited" || q.retries >= MAX_PUBLISH_RETRIES || this.links.closedError()) return q.reject(err);
        const delay = RETRY_FLOOR_MS + backoffDelay(q.retries++, this.opts.backoff, this.opts.random);
        this.retrying.set(
          q,
          setTimeout(() => {
            if (this.retrying.delete(q)) this.resend([q], false);
          }, delay),
        );
      },
    );
  }

  /** close() or a terminal error: `unsent`, the offline queue and the retries reject with `err`. */
  rejectAll(err: HeraldError, unsent: Queued[]): void {
    const retrying = [...this.retrying.keys()];
    for (const t of this.retrying.values()) clearTimeout(t);
    this.retrying.clear();
    const all = [...unsent, ...this.queue.splice(0), ...retrying];
    for (const q of all) q.reject(err);
  }
}
