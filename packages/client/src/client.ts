/**
 * HeraldClient: one logical connection to a Herald gateway that survives
 * network drops, server drains and token expiry. This file holds the state
 * machine (idle → connecting → connected ⇄ reconnecting → closed) and the
 * public API; it drives transport.ts (the WebSocket or SSE socket, picked by
 * transport-choice.ts), frames.ts (validating server frames), requests.ts
 * (answers and the one settle-on-loss rule), pacer.ts (the paced outbox),
 * publishes.ts (offline queue, retries), subscriptions.ts and subscription.ts
 * (channels and their positions), tokens.ts and token-refresh.ts (provider,
 * make-before-break refresh) and close-policy.ts (what a close code means).
 */
import { backoffDelay, drainDelay } from "./backoff.js";
import { inFlightLossError, planAfterClose } from "./close-policy.js";
import { Conn, type Links, type Outgoing } from "./connection.js";
import { Emitter } from "./emitter.js";
import { HeraldError, invalidChannel } from "./errors.js";
import { resolveOptions, type ClientOptions } from "./options.js";
import { measurePing, requestHistory, requestPresence, requestPresenceStats, type HistoryOptions } from "./direct-requests.js";
import { routeFrame, type FrameRouter } from "./frame-router.js";
import { CloseCodes } from "./protocol.js";
import { Publishes } from "./publishes.js";
import { Requests, type Loss } from "./requests.js";
import { settleAll, type Deferred, type Subscription } from "./subscription.js";
import { Subscriptions } from "./subscriptions.js";
import { TokenRefresh, type RefreshHost } from "./token-refresh.js";
import { TokenSource, tokenExpired } from "./tokens.js";
import { openTransport } from "./transport.js";
import { TransportChoice } from "./transport-choice.js";
import type {
  ConnectionState,
  HeraldClientOptions,
  HeraldEvents,
  HistoryPage,
  PresencePage,
  PresenceStats,
  StateChange,
  SubscribeOptions,
  TransportName,
  Welcome,
} from "./types.js";

export * from "./types.js";
export { Subscription } from "./subscription.js";

/** Connections that lived at least this long reset the backoff attempt counter. */
const STABLE_AFTER_MS = 5_000;

export class HeraldClient extends Emitter<HeraldEvents> {
  private readonly opts: ClientOptions;
  private readonly choice: TransportChoice;
  private readonly tokens: TokenSource;
  private readonly requests: Requests;
  private readonly subs: Subscriptions;
  private readonly router: FrameRouter;
  private readonly publishes: Publishes;
  private readonly refresh: TokenRefresh;

  private _state: ConnectionState = "idle";
  private _lastError: HeraldError | undefined;
  private _session: Welcome | undefined;
  /** The connection in use (welcomed), or the attempt in progress. */
  private conn: Conn | undefined;
  private attempt = 0;
  /** Bumped by close() and every new attempt, so stale async steps stop. */
  private generation = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private forceTokenRefresh = false;
  private failedOpens = 0;
  /** The last welcomed connection closed with 4011: a refused replacement token is terminal. */
  private revoked = false;
  /** connect() promises: resolved by a welcome, rejected when the client closes first. */
  private connectWaiters: Deferred[] = [];

  constructor(options: HeraldClientOptions) {
    super();
    const resolved = resolveOptions(options);
    this.choice = new TransportChoice(resolved.transports);
    this.opts = resolved.opts;
    this.tokens = new TokenSource(resolved.token, this.opts.tokenTimeoutMs, (expiresAt) => this.emit("token", { expiresAt }));
    this.requests = new Requests(this.opts.requestTimeoutMs, (conn) => this.refresh.onRequestSettled(conn));
    const host: Links & RefreshHost = {
      current: () => this.conn,
      next: () => this.refresh.next,
      isRetiring: (conn) => this.refresh.isRetiring(conn),
      usable: () => this.usable(),
      closedError: () => (this._state === "closed" ? (this._lastError ?? new HeraldError("closed", "the client is closed; call connect()")) : undefined),
      resubAnswered: (conn) => this.refresh.resubAnswered(conn),
      emit: this.emit.bind(this),
      connected: () => (this._state === "connected" ? this.conn : undefined),
      generation: () => this.generation,
      open: (token, gen) => this.openConn(token, gen),
      adopt: (next) => this.adopt(next),
      settleLost: (conn, loss, keepPublishes) => this.settleLost(conn, loss, keepPublishes),
      resubscribeAll: (conn) => this.subs.resubscribeAll(conn, true),
    };
    this.subs = new Subscriptions(host, this, this.requests, this.opts);
    this.publishes = new Publishes(host, this.requests, this.opts);
    this.refresh = new TokenRefresh(host, this.tokens, this.requests, this.opts);
    this.router = { requests: this.requests, subs: this.subs, onWelcome: (conn, welcome) => this.onWelcome(conn, welcome), emit: host.emit };
  }

  // ---- public API ----------------------------------------------------------

  get state(): ConnectionState {
    return this._state;
  }

  /** Why the client last lost its connection or gave up; cleared by a successful connect. */
  get lastError(): HeraldError | undefined {
    return this._lastError;
  }

  /** The server's welcome on the current connection. */
  get session(): Welcome | undefined {
    return this._state === "connected" ? this._session : undefined;
  }

  /** The transport of the current connection ("websocket" or "sse"), while connected. */
  get transport(): TransportName | undefined {
    return this.session?.transport;
  }

  /** Channels this client wants to be subscribed to (kept across reconnects and close()/connect()). */
  get channels(): string[] {
    return this.subs.channels;
  }

  /** Publishes waiting for a connection. */
  get queuedPublishes(): number {
    return this.publishes.queued;
  }

  /** Resolves once connected (the server's welcome); rejects if the client closes for good first. */
  connect(): Promise<void> {
    if (this._state === "connected") return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (this._state === "idle" || this._state === "closed") {
      this._lastError = undefined;
      this.attempt = 0;
      this.failedOpens = 0;
      this.choice.restart();
      this.setState("connecting");
      void this.openAttempt(this.generation);
    }
    return p;
  }

  /** Closes the connection (1000) and stops reconnecting. Pending requests and queued publishes reject with `closed`. */
  close(): void {
    if (this._state === "closed") return;
    // Also when never connected (no state event then): publish()/subscribe() may already be waiting for a connection.
    const never = this._state === "idle";
    this.shutdown(new HeraldError("closed", "the client was closed"));
    this._lastError = undefined;
    if (never) this._state = "closed";
    else this.setState("closed");
  }

  /**
   * Subscribes to a channel. Resolves when the server confirms (waits for a
   * connection if there is none), rejects with the server's error code
   * (`forbidden`, `invalid_channel`, ...). Subscribing again to the same
   * channel adds `onMessage` and returns the same Subscription.
   */
  subscribe<T = unknown>(channel: string, options: SubscribeOptions<T> = {}): Promise<Subscription<T>> {
    const invalid = invalidChannel(channel);
    return invalid ? Promise.reject(invalid) : this.subs.subscribe(channel, options);
  }

  /** Ends a subscription. Resolves at once when disconnected (the server forgot it anyway). */
  unsubscribe(channel: string): Promise<void> {
    return this.subs.unsubscribe(channel);
  }

  /**
   * Publishes `data` (any JSON value) to a channel; resolves on the server's
   * ack. While disconnected the publish waits in the offline queue (bounded by
   * offlineQueueLimit, `queue_full` beyond) and is sent after the next connect.
   */
  publish(channel: string, data: unknown): Promise<void> {
    return this.publishes.publish(channel, data);
  }

  /** One page of `channel`'s stored messages; page on with `since: page.next` until it is null. Rejects with the server's code or `disconnected`. */
  history(channel: string, options: HistoryOptions = {}): Promise<HistoryPage> {
    return requestHistory(this.requests, this.usable(), channel, options);
  }

  /** A page of who is on `channel` (a presence namespace); pass `page.cursor` for the next one until it is null. */
  presence(channel: string, cursor: string | null = null): Promise<PresencePage> {
    return requestPresence(this.requests, this.usable(), channel, cursor);
  }

  /** How many clients and distinct users are on `channel`, over every gateway. */
  presenceStats(channel: string): Promise<PresenceStats> {
    return requestPresenceStats(this.requests, this.usable(), channel);
  }

  /** Round trip to the server in ms. Rejects with `disconnected` when not connected. */
  ping(): Promise<number> {
    return measurePing(this.requests, this.usable());
  }

  /** The subscription of `channel`: one made by subscribe(), or by the server from the token's `subs` (see the welcome). */
  subscription<T = unknown>(channel: string): Subscription<T> | undefined {
    return this.subs.handle(channel) as Subscription<T> | undefined;
  }

  /** True while the server has confirmed `channel` on the current connection. */
  isActive(channel: string): boolean {
    return this.usable()?.confirmed.has(channel) ?? false;
  }

  // ---- connection lifecycle ---------------------------------------------------

  private setState(state: ConnectionState, extra: Omit<StateChange, "state" | "previous"> = {}): void {
    const previous = this._state;
    if (previous === state && state !== "reconnecting") return;
    this._state = state;
    this.emit("state", { state, previous, ...extra });
  }

  /** The one answer to "can requests go out now, and where": the current connection, welcomed and open, while connected. */
  private usable(): Conn | undefined {
    const conn = this.conn;
    return this._state === "connected" && conn?.usable() ? conn : undefined;
  }

  private async openAttempt(gen: number): Promise<void> {
    const force = this.forceTokenRefresh;
    this.forceTokenRefresh = false;
    let token: string;
    try {
      token = await this.tokens.obtain(force);
    } catch (err) {
      if (gen !== this.generation) return;
      this.emit("error", err as HeraldError);
      this.forceTokenRefresh = true;
      return this.retryAfterFailure(err as HeraldError);
    }
    if (gen !== this.generation || this._state === "closed") return;
    this.conn = this.openConn(token, gen);
  }

  /** A new connection with `token`, abandoned without a welcome within connectTimeoutMs; undefined (terminal) when the WebSocket constructor throws. */
  private openConn(token: string, gen: number): Conn | undefined {
    const conn = new Conn(token, this.opts.flushPacing, (c, item) =>
      item.kind === "publish" ? this.publishes.sendOn(c, item.q) : this.subs.sendQueued(c, item.sub, item.resub),
    );
    conn.transport = this.choice.current;
    try {
      conn.ws = openTransport(conn.transport, this.choice.resolved, this.opts.url, token, {
        onText: (text) => this.onText(conn, text),
        onClose: (code, reason) => this.onClose(conn, code, reason),
        onError: (text, status, refusal) => conn.noteError(text, status, refusal),
      });
    } catch (cause) {
      const message = `cannot open a ${conn.transport} connection to ${this.opts.url}: ${(cause as Error)?.message ?? cause}`;
      if (gen === this.generation) this.fail(new HeraldError("connect_failed", message, { cause, terminal: true }));
      return undefined;
    }
    conn.timers.push(setTimeout(() => this.abandon(conn, CloseCodes.Abnormal, "no welcome within connectTimeoutMs"), this.opts.connectTimeoutMs));
    return conn;
  }

  /** Gives up on a connection without waiting for the close handshake (dead peer, timeout). */
  private abandon(conn: Conn, code: number, reason: string): void {
    if (conn.ended) return;
    this.onClose(conn, code, reason);
    conn.close(4000, reason.slice(0, 100));
  }

  private onText(conn: Conn, text: string): void {
    if (!conn.ended) routeFrame(this.router, conn, text);
  }

  private onWelcome(conn: Conn, welcome: Welcome): void {
    conn.welcomed = true;
    conn.welcomedAt = Date.now();
    conn.welcome = { ...welcome, transport: conn.transport };
    conn.clearTimers();
    this.failedOpens = 0;
    this.choice.welcomed(conn.transport);
    if (conn === this.refresh.next) return this.refresh.onWelcome(conn);
    if (conn !== this.conn) return;
    this._session = conn.welcome;
    this._lastError = undefined;
    this.setState("connected", { transport: conn.transport });
    this.emit("welcome", conn.welcome);
    // Every re-subscribe, then the offline queue in order: paced, so that many
    // subscriptions plus a full queue do not trip the gateway's rate limit.
    const publishes = this.publishes.drain().map((q): Outgoing => ({ kind: "publish", q }));
    conn.outbox.flush([...this.subs.resubscribeAll(conn, false), ...publishes]);
    this.startPing(conn);
    this.refresh.schedule(conn);
    settleAll(this.connectWaiters.splice(0));
  }

  /** Settles what was in flight on `conn` (every connection when undefined) by the one rule (Requests.settleLost). */
  private settleLost(conn: Conn | undefined, loss: Loss, keepPublishes = false): void {
    this.subs.resumeLost(this.requests.settleLost(conn, loss, keepPublishes), loss.successor);
  }

  private onClose(conn: Conn, code: number, reason: string): void {
    if (conn.ended) return;
    conn.end();
    // Publishes still in the outbox were never sent: they go out again (current connection or offline queue).
    this.publishes.resend(conn.takeUnsentPublishes());
    // The refresh connection takes over a lost current one; the current one takes over any other.
    const next = this.refresh.next;
    const successor = conn === this.conn ? (this._state === "connected" && next?.usable() ? next : undefined) : this.usable();
    this.settleLost(conn, { error: inFlightLossError(code, reason), successor });
    if (this.refresh.onClosed(conn, { closeCode: code, closeReason: reason }) || conn !== this.conn) return;
    this.conn = undefined;
    if (successor) return this.refresh.handover(successor);
    this.refresh.stop();
    if (this._state === "closed") return;
    // A transport that did not get through: the next one at once (transport-choice.ts).
    if (this.choice.moveOn(conn, code)) return void (this.conn = this.openConn(conn.token, this.generation));
    if (conn.welcomedAt && Date.now() - conn.welcomedAt >= STABLE_AFTER_MS) this.attempt = 0;
    const afterRevocation = this.revoked;
    if (conn.welcomed) this.revoked = code === CloseCodes.Revoked;
    else this.failedOpens++;
    const plan = planAfterClose(conn, code, reason, { staticToken: this.tokens.isStatic, failedOpens: this.failedOpens, afterRevocation, url: this.choice.urlOf(conn.transport) });
    if (plan.kind === "terminal") return this.fail(plan.error);
    if (plan.newToken) this.forceTokenRefresh = true;
    if (plan.report) this.emit("error", plan.error);
    if (plan.kind === "drain") return this.scheduleReconnect(plan.error, drainDelay(this.opts.drainReconnectMaxMs, this.opts.random));
    this.retryAfterFailure(plan.error, plan.rateLimited ? this.opts.rateLimitedDelayMs : 0);
  }

  /** Backoff step; terminal after maxReconnectAttempts. */
  private retryAfterFailure(err: HeraldError, floorMs = 0): void {
    if (this._state === "closed") return;
    if (this.attempt >= this.opts.maxReconnectAttempts) {
      const message = `gave up after ${this.attempt} failed attempts: ${err.message}`;
      return this.fail(new HeraldError("reconnect_failed", message, { closeCode: err.closeCode, status: err.status, terminal: true, cause: err }));
    }
    const delay = floorMs + backoffDelay(this.attempt, this.opts.backoff, this.opts.random);
    this.attempt++;
    this.scheduleReconnect(err, delay);
  }

  private scheduleReconnect(err: HeraldError, delayMs: number): void {
    this._lastError = err;
    for (const c of [this.conn, this.refresh.next]) c?.stopPing();
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    const gen = ++this.generation;
    this.setState("reconnecting", { error: err, retryInMs: delayMs, attempt: this.attempt });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (gen === this.generation) void this.openAttempt(gen);
    }, delayMs);
  }

  /** Terminal: closed with `err`; everything waiting rejects with it. */
  private fail(err: HeraldError): void {
    this.shutdown(err);
    this._lastError = err;
    this.setState("closed", { error: err });
    this.emit("error", err);
  }

  private shutdown(err: HeraldError): void {
    this.generation++;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const unsent = [];
    for (const c of [this.conn, ...this.refresh.release()]) {
      if (!c) continue;
      unsent.push(...c.takeUnsentPublishes());
      c.close(CloseCodes.Normal, "client closed");
    }
    this.conn = undefined;
    this.settleLost(undefined, { error: err, successor: undefined });
    this.publishes.rejectAll(err, unsent);
    this.subs.shutdown(err);
    settleAll(this.connectWaiters.splice(0), err);
  }

  /** A ping every pingIntervalMs; no pong within pongTimeoutMs means a dead connection. */
  private startPing(conn: Conn): void {
    const { pingIntervalMs, pongTimeoutMs } = this.opts;
    conn.keepAlive(pingIntervalMs, pongTimeoutMs, () => this.requests.send(conn, { type: "ping" }, 0), () => this.abandon(conn, CloseCodes.Abnormal, "no pong within pongTimeoutMs"));
  }

  /** The refresh connection takes over: unsent publishes move to it, pings start, its welcome becomes the session. */
  private adopt(next: Conn): Conn | undefined {
    const old = this.conn;
    this.conn = next;
    this.attempt = 0;
    this.publishes.resend([...(old?.takeUnsentPublishes() ?? []), ...this.publishes.drain()]);
    this.startPing(next);
    if (next.welcome) {
      this._session = next.welcome;
      this.emit("welcome", next.welcome);
    }
    return old;
  }
}
