/**
 * The client's channels: what to (re-)subscribe on which connection, the
 * server's confirmations and refusals, and the message stream, which each
 * channel's SubState places by position (duplicates, gaps).
 */
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import type { Conn, Links, Outgoing } from "./connection.js";
import { reportListenerError } from "./emitter.js";
import { HeraldError, type HeraldErrorCode } from "./errors.js";
import type { MessageFrame, SubscribedFrame } from "./protocol.js";
import type { Pending, Requests } from "./requests.js";
import { SubState, type Subscription, type SubscriptionOwner } from "./subscription.js";
import type { HeraldMessage, PresenceEvent, SubscribeOptions } from "./types.js";
import { takeWelcomeSub } from "./welcome-subs.js";

/** Minimum wait before re-sending a request the server refused as transient (plus backoff). */
export const RETRY_FLOOR_MS = 250;
/** Refusals that a later subscribe can overcome: retried without limit instead of dropping the subscription. */
const TRANSIENT = new Set<HeraldErrorCode>(["rate_limited", "unavailable", "timeout"]);

export interface RetryOptions {
  backoff: Partial<BackoffOptions>;
  random: () => number;
}

export class Subscriptions {
  private readonly subs = new Map<string, SubState>();

  constructor(
    private readonly links: Links,
    private readonly owner: SubscriptionOwner,
    private readonly requests: Requests,
    private readonly retry: RetryOptions,
  ) {}

  get channels(): string[] {
    return [...this.subs.keys()];
  }

  /** The handle of `channel`'s subscription, whether subscribe() or the welcome's `subs` made it. */
  handle(channel: string): Subscription | undefined {
    return this.subs.get(channel)?.handle;
  }

  subscribe<T>(channel: string, options: SubscribeOptions<T>): Promise<Subscription<T>> {
    const existing = this.subs.get(channel);
    const sub = existing ?? new SubState(channel, this.owner, options.since, options.epoch);
    if (!existing) this.subs.set(channel, sub);
    if (options.onMessage) sub.handlers.add(options.onMessage as (msg: HeraldMessage) => void);
    const handle = sub.handle as Subscription<T>;
    if (existing && this.links.usable()?.confirmed.has(channel)) return Promise.resolve(handle);
    const p = new Promise<Subscription<T>>((resolve, reject) => sub.waiters.push({ resolve: () => resolve(handle), reject }));
    if (!existing) for (const c of this.live()) c.outbox.send({ kind: "subscribe", sub, resub: false });
    if (this.links.closedError()) sub.rejectWaiters(new HeraldError("closed", "the client is closed; call connect()"));
    return p;
  }

  unsubscribe(channel: string): Promise<void> {
    const sub = this.subs.get(channel);
    if (!sub) return Promise.resolve();
    this.subs.delete(channel);
    sub.stopRetry();
    sub.rejectWaiters(new HeraldError("closed", `unsubscribed from ${channel} before the server confirmed`, { channel }));
    this.links.emit("unsubscribed", { channel });
    const sent = this.live().map((c) => {
      c.confirmed.delete(channel);
      c.resuming.delete(channel);
      return this.requests.send(c, { type: "unsubscribe", channel }).then(
        () => undefined,
        (err: HeraldError) => {
          if (err.code === "disconnected") return; // the server dropped it with the connection
          throw err;
        },
      );
    });
    return Promise.all(sent).then(() => undefined);
  }

  /**
   * After `conn`'s welcome: takes the server-side subscriptions it lists
   * (welcome-subs.ts), then a subscribe per channel `conn` still needs, for
   * the flush; `resub` (the refresh connection): counted until answered.
   */
  resubscribeAll(conn: Conn, resub: boolean): Outgoing[] {
    const host = { subs: this.subs, owner: this.owner, emit: this.links.emit };
    for (const entry of conn.welcome?.subs ?? []) takeWelcomeSub(host, conn, entry, !resub);
    const items: Outgoing[] = [];
    for (const sub of this.subs.values()) {
      if (conn.confirmed.has(sub.channel)) continue; // the welcome's, where the client is
      if (resub) conn.resubsPending++;
      items.push({ kind: "subscribe", sub, resub });
    }
    return items;
  }

  /** A subscribe's turn in `conn`'s outbox has come. */
  sendQueued(conn: Conn, sub: SubState, resub: boolean): void {
    if (this.subs.get(sub.channel) === sub) return this.sendSubscribe(conn, sub, resub);
    // Unsubscribed while waiting in the outbox.
    if (resub) this.links.resubAnswered(conn);
  }

  /** Subscribes that were in flight on a lost connection, sent again on the successor where it still needs them. */
  resumeLost(channels: string[], successor: Conn | undefined): void {
    // Without a successor the next welcome re-subscribes every channel.
    if (!successor) return;
    for (const channel of channels) {
      const sub = this.subs.get(channel);
      if (!sub || (!sub.recovering && successor.confirmed.has(channel)) || this.subscribing(successor, channel)) continue;
      successor.outbox.send({ kind: "subscribe", sub, resub: false });
    }
  }

  onSubscribed(conn: Conn, frame: SubscribedFrame, p: Pending | undefined): void {
    const channel = frame.channel;
    conn.resuming.delete(channel);
    if (p?.resub && p.conn === conn) this.links.resubAnswered(conn);
    const sub = this.subs.get(channel);
    if (!sub) return;
    conn.confirmed.add(channel);
    const recovery = sub.confirm(p?.since, frame.seq, frame.recovered, frame.epoch);
    if (recovery) this.links.emit("recovered", recovery);
    const resubscribed = sub.everConfirmed;
    sub.everConfirmed = true;
    sub.resolveWaiters();
    this.links.emit("subscribed", frame.seq === undefined ? { channel, resubscribed } : { channel, seq: frame.seq, resubscribed });
  }

  /** A join or leave frame: told once (the current connection's, as for direct messages), to the subscription and as a client event. */
  onPresence(conn: Conn, type: "join" | "leave", e: PresenceEvent): void {
    if (conn !== this.links.current()) return;
    const sub = this.subs.get(e.channel);
    for (const fn of (type === "join" ? sub?.joins : sub?.leaves) ?? []) {
      try {
        fn(e);
      } catch (err) {
        reportListenerError(err);
      }
    }
    this.links.emit(type, e);
  }

  onMessage(conn: Conn, frame: MessageFrame): void {
    const msg: HeraldMessage = { data: frame.data };
    if (frame.encoding === "base64") msg.encoding = "base64";
    const channel = frame.channel;
    if (channel === undefined) {
      // Direct user message: both connections get it during a token refresh; take the current one's.
      if (conn !== this.links.current() || frame.user === undefined) return;
      msg.user = frame.user;
      return this.links.emit("message", msg);
    }
    const sub = this.subs.get(channel);
    if (!sub) return; // unsubscribed; in flight
    if (conn.resuming.has(channel)) return; // a server-side subscription before its resume's answer, which replays this
    msg.channel = channel;
    const { seq, prev } = frame;
    if (seq === undefined) {
      // Plain mode: exactly one connection delivers each channel (the refresh
      // connection once it confirmed the channel, else the current one).
      const next = this.links.next();
      if (conn !== (next?.confirmed.has(channel) ? next : this.links.current())) return;
      return this.deliver(sub, msg);
    }
    // With positions every connection may deliver: duplicates are dropped by position.
    if (conn !== this.links.current() && conn !== this.links.next() && !this.links.isRetiring(conn)) return;
    msg.seq = seq;
    if (prev !== undefined) msg.prev = prev;
    const placed = sub.place(seq, prev, conn === this.links.current() && conn.welcomed);
    if (placed.gap) this.links.emit("gap", placed.gap);
    if (placed.recover) this.sendSubscribe(conn, sub, false);
    else if (placed.deliver) this.deliver(sub, msg);
  }

  /** close() or a terminal error: subscribe() promises reject, retries stop; the channels are kept for the next connect(). */
  shutdown(err: HeraldError): void {
    for (const sub of this.subs.values()) {
      sub.rejectWaiters(err);
      sub.recovering = false;
      sub.stopRetry();
    }
  }

  private live(): Conn[] {
    return [this.links.current(), this.links.next()].filter((c): c is Conn => c?.usable() === true);
  }

  private subscribing(conn: Conn, channel: string): boolean {
    return this.requests.has(conn, "subscribe", channel) || conn.outbox.some((o) => o.kind === "subscribe" && o.sub.channel === channel);
  }

  private sendSubscribe(conn: Conn, sub: SubState, resub: boolean): void {
    const since = sub.lastSeq;
    const channel = sub.channel;
    // The epoch goes with the position it qualifies; a server without epochs ignores it.
    const epoch = sub.epoch;
    const frame = { type: "subscribe" as const, channel, ...(since === undefined ? {} : epoch === undefined ? { since } : { since, epoch }) };
    // The confirmation is handled in onSubscribed (also a late one, after a timeout); refusals here.
    this.requests.send(conn, frame, undefined, since === undefined ? { resub } : { since, resub }).catch((err: HeraldError) => this.onRefused(conn, sub, resub, err));
  }

  private onRefused(conn: Conn, sub: SubState, resub: boolean, err: HeraldError): void {
    // Lost with its connection: the settle-on-loss rule (or the next welcome) sends it again.
    if (err.code === "disconnected") return;
    if (resub) this.links.resubAnswered(conn);
    const channel = sub.channel;
    if (this.subs.get(channel) !== sub) return;
    if (TRANSIENT.has(err.code)) {
      if (sub.retryTimer !== undefined) return;
      const delay = RETRY_FLOOR_MS + backoffDelay(Math.min(sub.retries++, 6), this.retry.backoff, this.retry.random);
      sub.retryTimer = setTimeout(() => {
        sub.retryTimer = undefined;
        if (this.subs.get(channel) !== sub) return;
        // The connection that refused it, if still in use (e.g. the refresh connection), else the current one.
        const inUse = (conn === this.links.current() || conn === this.links.next()) && conn.usable();
        (inUse ? conn : this.links.usable())?.outbox.send({ kind: "subscribe", sub, resub: false });
      }, delay);
      return;
    }
    this.subs.delete(channel);
    sub.recovering = false;
    const withChannel = new HeraldError(err.code, err.message, { channel });
    const hadWaiters = sub.waiters.length > 0;
    sub.rejectWaiters(withChannel);
    this.links.emit("unsubscribed", { channel, error: withChannel });
    // Nobody awaits a re-subscription: surface it as an event.
    if (!hadWaiters) this.links.emit("error", withChannel);
  }

  private deliver(sub: SubState, msg: HeraldMessage): void {
    for (const h of [...sub.handlers]) {
      try {
        h(msg);
      } catch (err) {
        reportListenerError(err);
      }
    }
    this.links.emit("message", msg);
  }
}
