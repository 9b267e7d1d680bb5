/**
 * Token refresh, make before break: shortly before the token expires a second
 * connection opens with a new one, re-subscribes every channel (paced, like
 * a reconnect) and only then takes over; the old connection is retired: it
 * closes once its publishes in flight are settled, so no message is missed.
 */
import { backoffDelay } from "./backoff.js";
import type { Conn, Emit, Outgoing } from "./connection.js";
import { HeraldError } from "./errors.js";
import { tokenTimes } from "./jwt.js";
import { CloseCodes } from "./protocol.js";
import type { Loss, Requests } from "./requests.js";
import type { RetryOptions } from "./subscriptions.js";
import { LongTimer, refreshDueAt, type TokenSource } from "./tokens.js";

/** A failed refresh is tried again within this long, well before the old token runs out. */
const MAX_REFRESH_RETRY_MS = 5_000;
const RETIRED = "the connection was retired after a token refresh";

/** What the refresh asks of the client's state machine. */
export interface RefreshHost {
  /** The current connection while the client is connected; refreshes happen only then. */
  connected(): Conn | undefined;
  /** Bumped by close() and every new attempt: a refresh begun before is stale. */
  generation(): number;
  open(token: string, gen: number): Conn | undefined;
  /** `next` becomes the current connection (pings, session, `welcome`); returns the one it replaces. */
  adopt(next: Conn): Conn | undefined;
  settleLost(conn: Conn, loss: Loss, keepPublishes?: boolean): void;
  usable(): Conn | undefined;
  resubscribeAll(conn: Conn): Outgoing[];
  emit: Emit;
}

export interface RefreshOptions extends RetryOptions {
  refreshLeadMs: number;
  requestTimeoutMs: number;
}

export class TokenRefresh {
  /** The second connection, until it takes over. */
  private nextConn: Conn | undefined;
  /** Old connections finishing their in-flight publishes. */
  private readonly retiring = new Set<Conn>();
  private readonly timer = new LongTimer();
  private failures = 0;

  constructor(
    private readonly host: RefreshHost,
    private readonly tokens: TokenSource,
    private readonly requests: Requests,
    private readonly opts: RefreshOptions,
  ) {}

  get next(): Conn | undefined {
    return this.nextConn;
  }

  isRetiring(conn: Conn): boolean {
    return this.retiring.has(conn);
  }

  /** `conn` was just welcomed as the current connection: refresh its token when due. */
  schedule(conn: Conn): void {
    this.stop();
    this.failures = 0;
    if (this.tokens.isStatic) return;
    const dueAt = refreshDueAt(conn.token, this.opts.refreshLeadMs);
    if (dueAt !== undefined) this.timer.at(dueAt, () => void this.refresh(conn));
  }

  /** No refresh any more (the current connection is gone): the timer stops, a refresh connection closes. */
  stop(): void {
    this.timer.cancel();
    const next = this.nextConn;
    if (!next) return;
    this.nextConn = undefined;
    next.close(CloseCodes.Normal, "refresh cancelled");
    this.host.settleLost(next, this.retiredLoss("the token refresh connection was cancelled"));
  }

  /** close() or a terminal error: hands over every connection the refresh holds, for the client to close. */
  release(): Conn[] {
    this.timer.cancel();
    const conns = [...(this.nextConn ? [this.nextConn] : []), ...this.retiring];
    this.nextConn = undefined;
    this.retiring.clear();
    return conns;
  }

  onWelcome(next: Conn): void {
    next.outbox.flush(this.host.resubscribeAll(next));
    // Channels whose re-subscribe gets no answer must not keep the old token's connection forever.
    next.timers.push(setTimeout(() => this.handover(next), this.opts.requestTimeoutMs));
    if (next.resubsPending === 0) this.handover(next);
  }

  resubAnswered(conn: Conn): void {
    if (conn !== this.nextConn) return;
    conn.resubsPending = Math.max(0, conn.resubsPending - 1);
    if (conn.resubsPending === 0 && conn.welcomed) queueMicrotask(() => this.handover(conn));
  }

  /** A connection of the refresh closed by itself; false when it is not one of them. */
  onClosed(conn: Conn, details: { closeCode: number; closeReason: string }): boolean {
    if (this.retiring.delete(conn)) return true;
    if (conn !== this.nextConn) return false;
    this.nextConn = undefined;
    const http = conn.httpStatus ? `, HTTP ${conn.httpStatus}` : "";
    this.failed(new HeraldError("connect_failed", `token refresh connection closed (${details.closeCode}${http})`, details));
    return true;
  }

  /** A request of `conn` settled: a retired connection closes once no publish of it waits any more. */
  onRequestSettled(conn: Conn): void {
    if (this.retiring.has(conn)) this.closeRetiredWhenIdle(conn);
  }

  /** The refresh connection has every subscription (or the current one was lost): it becomes the connection. */
  handover(next: Conn): void {
    if (next !== this.nextConn || next.ended) return;
    this.nextConn = undefined;
    next.clearTimers();
    const old = this.host.adopt(next);
    if (old) this.retire(old);
    this.schedule(next);
  }

  private async refresh(old: Conn): Promise<void> {
    if (old !== this.host.connected() || this.nextConn) return;
    const gen = this.host.generation();
    const stale = () => gen !== this.host.generation() || old !== this.host.connected();
    let token: string;
    try {
      token = await this.tokens.obtain(true);
    } catch (err) {
      if (!stale()) this.failed(err as HeraldError);
      return;
    }
    if (stale()) return;
    const newExp = tokenTimes(token).expiresAt;
    const oldExp = tokenTimes(old.token).expiresAt;
    if (newExp !== undefined && oldExp !== undefined && newExp <= oldExp) {
      return this.failed(new HeraldError("token_provider_failed", "the token provider returned a token that does not expire later than the current one"));
    }
    this.nextConn = this.host.open(token, gen);
  }

  private failed(err: HeraldError): void {
    this.host.emit("error", err);
    const conn = this.host.connected();
    if (!conn) return;
    // Retry before the old token runs out; if it does, the 4001 path takes over.
    const delay = Math.min(backoffDelay(this.failures++, this.opts.backoff, this.opts.random), MAX_REFRESH_RETRY_MS);
    this.timer.in(delay, () => void this.refresh(conn));
  }

  /** For requests of a connection closed on purpose, which onClose never sees: the current connection takes them over. */
  private retiredLoss(why: string): Loss {
    const error = new HeraldError("disconnected", `${why} before the server answered; the request may or may not have been applied`);
    return { error, successor: this.host.usable() };
  }

  /**
   * Pings and needed subscribes of the old connection move to the new one now,
   * unsubscribes are moot (closing it drops its subscriptions); its publishes
   * in flight keep waiting for their acks, and it closes once none is left
   * (each has its request timeout) or when the server closes it (onClosed).
   */
  private retire(old: Conn): void {
    old.clearTimers();
    old.outbox.stop();
    this.retiring.add(old);
    this.host.settleLost(old, this.retiredLoss(RETIRED), true);
    this.closeRetiredWhenIdle(old);
  }

  private closeRetiredWhenIdle(old: Conn): void {
    if (this.requests.has(old, "publish")) return;
    this.retiring.delete(old);
    old.close(CloseCodes.Normal, "token refreshed");
    this.host.settleLost(old, this.retiredLoss(RETIRED));
  }
}
