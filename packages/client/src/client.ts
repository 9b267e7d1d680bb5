/**
 * HeraldClient: one logical connection to a Herald gateway that survives
 * network drops, server drains and token expiry.
 *
 * - connects with `new WebSocket(url, ["herald.v1", "bearer.<jwt>"])` (works in
 *   browsers, which cannot set headers);
 * - reconnects with exponential backoff and full jitter, after a random delay
 *   on 1001 (drain), with a longer floor on 4008 (rate limited);
 * - re-subscribes every channel after a reconnect, with `since` = the last
 *   stream position seen, so a recovery-capable gateway replays what was missed;
 *   drops duplicates (seq <= last) and re-subscribes on a gap (prev != last);
 * - refreshes provider tokens shortly before `exp` by opening a second
 *   connection with the new token, re-subscribing there and only then closing
 *   the old one (make before break), and after a 4001;
 * - queues publishes while disconnected (bounded) and flushes them on connect,
 *   paced (flushPacing) so the re-subscribes and the queue stay under the
 *   gateway's inbound rate limit; a publish refused with `rate_limited` (never
 *   applied) is retried a few times after a backoff delay;
 * - gives up with a terminal HeraldError on codes that a retry cannot fix.
 */
import { backoffDelay, drainDelay } from "./backoff.js";
import { Emitter, reportListenerError } from "./emitter.js";
import { HeraldError, type HeraldErrorCode } from "./errors.js";
import { tokenTimes } from "./jwt.js";
import { CloseCodes, SUBPROTOCOL, type ClientFrame, type MessageFrame, type ServerFrame, type SubscribedFrame } from "./protocol.js";
import { closeVerdict } from "./close-policy.js";
import { resolveOptions, type ClientOptions } from "./options.js";
import { Conn, type Outgoing, type Pending, type Queued } from "./connection.js";
import { Subscription, type Deferred, type SubState } from "./subscription.js";
import {
  type ConnectionState,
  type HeraldClientOptions,
  type HeraldEvents,
  type HeraldMessage,
  type StateChange,
  type SubscribeOptions,
  type TokenProvider,
  type WebSocketConstructor,
  type WebSocketLike,
  type Welcome,
} from "./types.js";

export * from "./types.js";
export { Subscription } from "./subscription.js";

/** Connections that lived at least this long reset the backoff attempt counter. */
const STABLE_AFTER_MS = 5_000;
/** Gap recoveries in a row (without an in-order message) before the client accepts the loss. */
const MAX_GAP_RECOVERIES = 3;
/** A publish refused with `rate_limited` (it was not applied) is sent again up to this many times. */
const MAX_PUBLISH_RETRIES = 3;
/** Minimum wait before re-sending a request the server refused as transient (plus backoff). */
const RETRY_FLOOR_MS = 250;
/** Longest delay setTimeout honours (2^31 - 1 ms, ~24.8 days); longer ones fire after ~1 ms. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;
export class HeraldClient extends Emitter<HeraldEvents> {
  private readonly opts: ClientOptions;
  private readonly WS: WebSocketConstructor;
  private readonly tokenSource: string | TokenProvider;

  private _state: ConnectionState = "idle";
  private _lastError: HeraldError | undefined;
  private _session: Welcome | undefined;
  /** The connection in use (welcomed), or the attempt in progress. */
  private conn: Conn | undefined;
  /** Second connection opened by a token refresh, until it takes over. */
  private next: Conn | undefined;
  /** Old connections finishing their in-flight requests after a refresh. */
  private readonly retiring = new Set<Conn>();
  private token: string | undefined;
  private attempt = 0;
  /** Bumped by close() and every new attempt, so stale async steps stop. */
  private generation = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private refreshFailures = 0;
  private forceTokenRefresh = false;
  private failedOpens = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly subs = new Map<string, SubState>();
  private queue: Queued[] = [];
  /** Publishes refused with `rate_limited`, waiting for their retry. */
  private readonly publishRetries = new Map<Queued, ReturnType<typeof setTimeout>>();
  private connectWaiters: Deferred[] = [];

  constructor(options: HeraldClientOptions) {
    super();
    const resolved = resolveOptions(options);
    this.WS = resolved.WebSocket;
    this.tokenSource = resolved.token;
    this.opts = resolved.opts;
    if (typeof this.tokenSource === "string") this.token = this.tokenSource;
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

  /** Channels this client wants to be subscribed to (kept across reconnects and close()/connect()). */
  get channels(): string[] {
    return [...this.subs.keys()];
  }

  /** Publishes waiting for a connection. */
  get queuedPublishes(): number {
    return this.queue.length;
  }

  /** Resolves once connected (the server's welcome); rejects if the client closes for good first. */
  connect(): Promise<void> {
    if (this._state === "connected") return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (this._state === "idle" || this._state === "closed") {
      this._lastError = undefined;
      this.attempt = 0;
      this.failedOpens = 0;
      this.setState("connecting");
      void this.openAttempt(this.generation);
    }
    return p;
  }

  /** Closes the connection (1000) and stops reconnecting. Pending requests and queued publishes reject with `closed`. */
  close(): void {
    if (this._state === "closed") return;
    const err = new HeraldError("closed", "the client was closed");
    if (this._state === "idle") {
      // Never connected, but publish()/subscribe() may already be waiting for a connection.
      this.shutdown(err);
      this._state = "closed";
      return;
    }
    this.shutdown(err);
    this._lastError = undefined;
    this.setState("closed");
  }

  /**
   * Subscribes to a channel. Resolves when the server confirms (waits for a
   * connection if there is none), rejects with the server's error code
   * (`forbidden`, `invalid_channel`, ...). Subscribing again to the same
   * channel adds `onMessage` and returns the same Subscription.
   */
  subscribe<T = unknown>(channel: string, options: SubscribeOptions<T> = {}): Promise<Subscription<T>> {
    if (typeof channel !== "string" || channel === "") {
      return Promise.reject(new HeraldError("invalid_argument", "channel must be a non-empty string"));
    }
    let sub = this.subs.get(channel);
    const isNew = !sub;
    if (!sub) {
      const state: SubState = {
        channel,
        handlers: new Set(),
        lastSeq: typeof options.since === "number" && Number.isFinite(options.since) ? options.since : undefined,
        recovering: false,
        gapRecoveries: 0,
        retries: 0,
        waiters: [],
        everConfirmed: false,
        retryTimer: undefined,
        handle: undefined as unknown as Subscription,
      };
      state.handle = new Subscription(channel, this, state);
      sub = state;
      this.subs.set(channel, sub);
    }
    const s = sub;
    if (options.onMessage) s.handlers.add(options.onMessage as (msg: HeraldMessage) => void);
    const handle = s.handle as Subscription<T>;
    if (this.conn?.welcomed && this.conn.confirmed.has(channel) && !isNew) return Promise.resolve(handle);
    const p = new Promise<Subscription<T>>((resolve, reject) => {
      s.waiters.push({ resolve: () => resolve(handle), reject });
    });
    if (isNew) {
      for (const c of this.liveConns()) this.send(c, { kind: "subscribe", sub: s, resub: false });
    }
    if (this._state === "closed") this.rejectWaiters(s, new HeraldError("closed", "the client is closed; call connect()"));
    return p;
  }

  /** Ends a subscription. Resolves at once when disconnected (the server forgot it anyway). */
  unsubscribe(channel: string): Promise<void> {
    const sub = this.subs.get(channel);
    if (!sub) return Promise.resolve();
    this.subs.delete(channel);
    if (sub.retryTimer !== undefined) clearTimeout(sub.retryTimer);
    this.rejectWaiters(sub, new HeraldError("closed", `unsubscribed from ${channel} before the server confirmed`, { channel }));
    this.emit("unsubscribed", { channel });
    const conns = this.liveConns().filter((c) => c.confirmed.has(channel) || c.welcomed);
    const sent = conns.map((c) => {
      c.confirmed.delete(channel);
      return this.request(c, { type: "unsubscribe", channel }).then(
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
   * Publishes `data` (any JSON value) to a channel; resolves on the server's
   * ack. While disconnected the publish waits in the offline queue (bounded by
   * offlineQueueLimit, `queue_full` beyond) and is sent after the next connect.
   */
  publish(channel: string, data: unknown): Promise<void> {
    if (typeof channel !== "string" || channel === "") {
      return Promise.reject(new HeraldError("invalid_argument", "channel must be a non-empty string"));
    }
    if (data === undefined) return Promise.reject(new HeraldError("invalid_argument", "data must be a JSON value, not undefined"));
    const conn = this.conn;
    if (this._state === "connected" && conn?.welcomed && !conn.ended) {
      return new Promise<void>((resolve, reject) => this.send(conn, { kind: "publish", q: { channel, data, retries: 0, resolve, reject } }));
    }
    if (this._state === "closed") {
      return Promise.reject(this._lastError ?? new HeraldError("closed", "the client is closed; call connect()"));
    }
    if (this.queue.length >= this.opts.offlineQueueLimit) {
      return Promise.reject(
        new HeraldError("queue_full", `offline queue full (${this.opts.offlineQueueLimit} publishes waiting for a connection)`, { channel }),
      );
    }
    return new Promise<void>((resolve, reject) => this.queue.push({ channel, data, retries: 0, resolve, reject }));
  }

  /** Round trip to the server in ms. Rejects with `disconnected` when not connected. */
  async ping(): Promise<number> {
    const conn = this.conn;
    if (this._state !== "connected" || !conn?.welcomed) throw new HeraldError("disconnected", "not connected");
    const t0 = Date.now();
    await this.request(conn, { type: "ping" });
    return Date.now() - t0;
  }

  /** True while the server has confirmed `channel` on the current connection. */
  isActive(channel: string): boolean {
    return this._state === "connected" && (this.conn?.confirmed.has(channel) ?? false);
  }

  // ---- connection lifecycle ---------------------------------------------------

  private setState(state: ConnectionState, extra: Omit<StateChange, "state" | "previous"> = {}): void {
    const previous = this._state;
    if (previous === state && state !== "reconnecting") return;
    this._state = state;
    this.emit("state", { state, previous, ...extra });
  }

  private liveConns(): Conn[] {
    const out: Conn[] = [];
    if (this.conn?.welcomed) out.push(this.conn);
    if (this.next?.welcomed) out.push(this.next);
    return out;
  }

  private async obtainToken(force: boolean): Promise<string> {
    if (typeof this.tokenSource === "string") return this.tokenSource;
    if (!force && this.token !== undefined) {
      const { expiresAt } = tokenTimes(this.token);
      if (expiresAt === undefined || expiresAt - Date.now() > 1_000) return this.token;
    }
    const timeoutMs = this.opts.tokenTimeoutMs;
    const timedOut = new HeraldError("token_provider_failed", `the token provider did not answer within ${timeoutMs} ms (tokenTimeoutMs)`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let value: unknown;
    try {
      const answer = Promise.resolve(this.tokenSource());
      // A provider that never settles must not hang the client: race it (a late answer is ignored).
      value = await (timeoutMs > 0
        ? Promise.race([answer, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(timedOut), Math.min(timeoutMs, MAX_TIMER_DELAY_MS))))])
        : answer);
    } catch (cause) {
      if (cause === timedOut) throw timedOut;
      throw new HeraldError("token_provider_failed", `the token provider failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    if (typeof value !== "string" || value === "") {
      throw new HeraldError("token_provider_failed", "the token provider did not return a non-empty string");
    }
    const changed = value !== this.token;
    this.token = value;
    if (changed) this.emit("token", { expiresAt: tokenTimes(value).expiresAt });
    return value;
  }

  private async openAttempt(gen: number): Promise<void> {
    const force = this.forceTokenRefresh;
    this.forceTokenRefresh = false;
    let token: string;
    try {
      token = await this.obtainToken(force);
    } catch (err) {
      if (gen !== this.generation) return;
      const e = err as HeraldError;
      this.emit("error", e);
      this.forceTokenRefresh = true;
      this.retryAfterFailure(e);
      return;
    }
    if (gen !== this.generation || this._state === "closed") return;
    const conn = new Conn(token, this.opts.flushPacing.burst);
    this.conn = conn;
    if (!this.openSocket(conn, gen)) return;
    conn.timers.push(
      setTimeout(() => this.abandon(conn, CloseCodes.Abnormal, "no welcome within connectTimeoutMs"), this.opts.connectTimeoutMs),
    );
  }

  /** Creates the socket of `conn` and wires its handlers; false (and terminal) when the constructor throws. */
  private openSocket(conn: Conn, gen: number): boolean {
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.opts.url, [SUBPROTOCOL, `bearer.${conn.token}`]);
    } catch (cause) {
      if (gen === this.generation) {
        this.fail(new HeraldError("connect_failed", `cannot open a WebSocket to ${this.opts.url}: ${(cause as Error)?.message ?? cause}`, { cause, terminal: true }));
      }
      return false;
    }
    conn.ws = ws;
    try {
      ws.binaryType = "arraybuffer";
    } catch {
      /* read-only in some implementations */
    }
    ws.onerror = (ev: { message?: string; error?: { message?: string } }) => {
      const text = ev?.message ?? ev?.error?.message;
      if (typeof text === "string") {
        conn.errorText = text;
        const m = /Unexpected server response: (\d{3})/.exec(text);
        if (m) conn.httpStatus = Number(m[1]);
      }
    };
    ws.onclose = (ev: { code?: number; reason?: string }) => this.onClose(conn, ev?.code ?? CloseCodes.Abnormal, ev?.reason ?? "");
    ws.onmessage = (ev: { data: unknown }) => this.onData(conn, ev.data);
    return true;
  }

  /** Gives up on a connection without waiting for the close handshake (dead peer, timeout). */
  private abandon(conn: Conn, code: number, reason: string): void {
    if (conn.ended) return;
    try {
      conn.ws?.close(4000, reason.slice(0, 100));
    } catch {
      /* ignore */
    }
    this.onClose(conn, code, reason);
  }

  private detach(conn: Conn): void {
    conn.ended = true;
    conn.clearTimers();
    conn.stopPacer();
    const ws = conn.ws;
    if (ws) {
      // No-op handlers rather than null: the `ws` package throws on an
      // 'error' event nobody listens to (e.g. close() while connecting).
      const noop = () => {};
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = noop;
    }
  }

  private closeSocket(conn: Conn, code: number, reason: string): void {
    this.detach(conn);
    try {
      conn.ws?.close(code, reason);
    } catch {
      /* already closing */
    }
  }

  private onData(conn: Conn, raw: unknown): void {
    if (conn.ended) return;
    let text: string;
    if (typeof raw === "string") text = raw;
    else if (raw instanceof ArrayBuffer || ArrayBuffer.isView(raw)) text = new TextDecoder().decode(raw as ArrayBuffer);
    else return;
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      this.emit("error", new HeraldError("protocol_error", "the server sent a frame that is not JSON"));
      return;
    }
    if (typeof frame !== "object" || frame === null) return;
    try {
      this.onFrame(conn, frame);
    } catch (err) {
      reportListenerError(err);
    }
  }

  private onFrame(conn: Conn, frame: ServerFrame): void {
    switch (frame.type) {
      case "welcome":
        return this.onWelcome(conn, frame.sub, frame.connection);
      case "message":
        return this.onMessageFrame(conn, frame);
      case "subscribed":
        return this.onSubscribed(conn, frame);
      case "unsubscribed":
      case "ack":
      case "pong": {
        const p = this.takePending(frame.id);
        p?.resolve(frame);
        return;
      }
      case "error": {
        const p = this.takePending(frame.id);
        const err = new HeraldError(frame.code as HeraldErrorCode, frame.message ?? frame.code, p?.channel ? { channel: p.channel } : {});
        if (!p) {
          this.emit("error", err);
          return;
        }
        if (p.kind === "subscribe" && p.channel !== undefined) return this.onSubscribeError(p, err);
        p.reject(err);
        return;
      }
      default:
        return; // unknown frame types are ignored (forward compatibility)
    }
  }

  private onWelcome(conn: Conn, sub: string, connection: string): void {
    conn.welcomed = true;
    conn.welcomedAt = Date.now();
    conn.welcome = { sub, connection };
    conn.clearTimers();
    this.failedOpens = 0;
    if (conn === this.next) return this.onRefreshWelcome(conn);
    if (conn !== this.conn) return;
    this._session = { sub, connection };
    this._lastError = undefined;
    this.refreshFailures = 0;
    this.setState("connected");
    this.emit("welcome", { sub, connection });
    // Every re-subscribe, then the offline queue in order: paced, so that many
    // subscriptions plus a full queue do not trip the gateway's rate limit.
    const flush: Outgoing[] = [...this.subs.values()].map((s) => ({ kind: "subscribe", sub: s, resub: false }));
    for (const q of this.queue.splice(0)) flush.push({ kind: "publish", q });
    this.flush(conn, flush);
    this.startPing(conn);
    this.scheduleRefresh(conn);
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.resolve();
  }

  private onClose(conn: Conn, code: number, reason: string): void {
    if (conn.ended) return;
    this.detach(conn);
    // Publishes still in the outbox were never sent: they go out again (current connection or offline queue).
    this.resend(this.takeOutbox(conn));
    const lostErr = (c: HeraldErrorCode, msg: string) => new HeraldError(c, msg, { closeCode: code, closeReason: reason });
    // In-flight requests of this connection: publishes/pings fail (the outcome is unknown),
    // subscribes are re-sent on the next connection, unsubscribes are moot.
    for (const [id, p] of this.pending) {
      if (p.conn !== conn) continue;
      this.pending.delete(id);
      if (p.timer !== undefined) clearTimeout(p.timer);
      if (p.kind === "unsubscribe") p.resolve({ type: "unsubscribed", channel: p.channel ?? "" });
      else if (p.kind === "subscribe") continue;
      else if (code === CloseCodes.TooLarge) p.reject(lostErr("too_large", "the server closed the connection: frame too large (1009)"));
      else p.reject(lostErr("disconnected", `the connection closed (${code}) before the server answered; the request may or may not have been applied`));
    }
    if (this.retiring.delete(conn)) return;
    if (conn === this.next) {
      this.next = undefined;
      this.refreshFailed(lostErr("connect_failed", `token refresh connection closed (${code}${conn.httpStatus ? `, HTTP ${conn.httpStatus}` : ""})`));
      return;
    }
    if (conn !== this.conn) return;
    this.conn = undefined;
    if (this.next?.welcomed && !this.next.ended && this._state === "connected") {
      // The refresh connection is up: let it take over now.
      this.handover(this.next);
      return;
    }
    this.stopRefresh();
    if (this._state === "closed") return;

    if (conn.welcomedAt && Date.now() - conn.welcomedAt >= STABLE_AFTER_MS) this.attempt = 0;
    const staticToken = typeof this.tokenSource === "string";

    if (!conn.welcomed) {
      // The attempt failed before the welcome: network error, HTTP refusal
      // (which a browser cannot see: it only reports 1006) or a timeout.
      this.failedOpens++;
      const status = conn.httpStatus;
      const detail = status ? `HTTP ${status}` : conn.errorText ? conn.errorText : `close ${code}`;
      const expired = (() => {
        const { expiresAt } = tokenTimes(conn.token);
        return expiresAt !== undefined && expiresAt <= Date.now();
      })();
      if (status === 401 || (expired && status === undefined)) {
        if (staticToken) {
          const c: HeraldErrorCode = expired ? "token_expired" : "unauthorized";
          const why = expired ? "the token has expired" : "the gateway refused the token (HTTP 401)";
          return this.fail(new HeraldError(c, `${why} and no token provider was given; create the client with token: () => fetchToken()`, { status, closeCode: code, terminal: true }));
        }
        this.forceTokenRefresh = true;
      }
      if (status === 403) {
        return this.fail(new HeraldError("policy_violation", "the gateway refused the connection (HTTP 403: origin not allowed)", { status, closeCode: code, terminal: true }));
      }
      // A provider token that keeps failing may be revoked or invalid: fetch a new one.
      if (!staticToken && this.failedOpens >= 2) this.forceTokenRefresh = true;
      return this.retryAfterFailure(new HeraldError("connect_failed", `could not connect to ${this.opts.url} (${detail})`, { status, closeCode: code, closeReason: reason }));
    }

    const verdict = closeVerdict(code, reason, staticToken);
    const err = new HeraldError(verdict.code, verdict.message, { closeCode: code, closeReason: reason, ...(verdict.kind === "terminal" ? { terminal: true } : {}) });
    switch (verdict.kind) {
      case "terminal":
        return this.fail(err);
      case "new_token":
        this.forceTokenRefresh = true;
        return this.retryAfterFailure(err);
      case "drain":
        return this.scheduleReconnect(err, drainDelay(this.opts.drainReconnectMaxMs, this.opts.random));
      case "retry":
        if (verdict.report) this.emit("error", err);
        return this.retryAfterFailure(err, verdict.rateLimited ? this.opts.rateLimitedDelayMs : 0);
    }
  }

  /** Backoff step; terminal after maxReconnectAttempts. */
  private retryAfterFailure(err: HeraldError, floorMs = 0): void {
    if (this._state === "closed") return;
    if (this.attempt >= this.opts.maxReconnectAttempts) {
      return this.fail(new HeraldError("reconnect_failed", `gave up after ${this.attempt} failed attempts: ${err.message}`, { closeCode: err.closeCode, status: err.status, terminal: true, cause: err }));
    }
    const delay = floorMs + backoffDelay(this.attempt, this.opts.backoff, this.opts.random);
    this.attempt++;
    this.scheduleReconnect(err, delay);
  }

  private scheduleReconnect(err: HeraldError, delayMs: number): void {
    this._lastError = err;
    this.stopPingAll();
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    const gen = ++this.generation;
    this.setState("reconnecting", { error: err, retryInMs: delayMs, attempt: this.attempt });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (gen !== this.generation) return;
      void this.openAttempt(gen);
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
    // Not stopRefresh(): the refresh connection is closed below with the others, and its requests rejected.
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    const unsent: Queued[] = [];
    for (const c of [this.conn, this.next, ...this.retiring]) {
      if (!c) continue;
      unsent.push(...this.takeOutbox(c));
      this.closeSocket(c, CloseCodes.Normal, "client closed");
    }
    this.conn = this.next = undefined;
    this.retiring.clear();
    for (const p of this.pending.values()) {
      if (p.timer !== undefined) clearTimeout(p.timer);
      if (p.kind === "unsubscribe") p.resolve({ type: "unsubscribed", channel: p.channel ?? "" });
      else if (p.kind !== "subscribe") p.reject(err);
    }
    this.pending.clear();
    const retrying = [...this.publishRetries];
    this.publishRetries.clear();
    for (const [, t] of retrying) clearTimeout(t);
    const queued = [...unsent, ...this.queue, ...retrying.map(([q]) => q)];
    this.queue = [];
    for (const q of queued) q.reject(err);
    for (const s of this.subs.values()) {
      this.rejectWaiters(s, err);
      s.recovering = false;
      if (s.retryTimer !== undefined) clearTimeout(s.retryTimer);
      s.retryTimer = undefined;
    }
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.reject(err);
  }

  // ---- keepalive -------------------------------------------------------------

  private startPing(conn: Conn): void {
    if (this.opts.pingIntervalMs <= 0) return;
    conn.pingTimer = setInterval(() => {
      if (conn.ended) return;
      const t = setTimeout(() => this.abandon(conn, CloseCodes.Abnormal, "no pong within pongTimeoutMs"), this.opts.pongTimeoutMs);
      this.request(conn, { type: "ping" }, 0).then(
        () => clearTimeout(t),
        () => clearTimeout(t),
      );
    }, this.opts.pingIntervalMs);
  }

  private stopPingAll(): void {
    for (const c of [this.conn, this.next]) {
      if (c?.pingTimer !== undefined) clearInterval(c.pingTimer);
      if (c) c.pingTimer = undefined;
    }
  }

  // ---- token refresh (make before break) ------------------------------------

  private scheduleRefresh(conn: Conn): void {
    this.stopRefresh();
    if (typeof this.tokenSource === "string") return;
    const { expiresAt, issuedAt } = tokenTimes(conn.token);
    if (expiresAt === undefined) return;
    const now = Date.now();
    const lifetime = expiresAt - (issuedAt ?? now);
    const lead = Math.min(this.opts.refreshLeadMs, Math.max(500, lifetime * 0.2));
    const dueAt = expiresAt - lead;
    // Long-lived tokens (> ~24.8 days) exceed what setTimeout can wait: wait
    // in steps of at most MAX_TIMER_DELAY_MS and refresh only once actually due.
    const arm = (): void => {
      this.refreshTimer = setTimeout(
        () => {
          this.refreshTimer = undefined;
          if (Date.now() < dueAt) return arm();
          void this.refresh(conn);
        },
        Math.min(MAX_TIMER_DELAY_MS, Math.max(0, dueAt - Date.now())),
      );
    };
    arm();
  }

  private stopRefresh(): void {
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
    const next = this.next;
    if (next) {
      this.next = undefined;
      this.closeSocket(next, CloseCodes.Normal, "refresh cancelled");
      this.settleRetired(next, "the token refresh connection was cancelled");
    }
  }

  private async refresh(old: Conn): Promise<void> {
    if (old !== this.conn || this._state !== "connected" || this.next) return;
    const gen = this.generation;
    let token: string;
    try {
      token = await this.obtainToken(true);
    } catch (err) {
      if (gen !== this.generation || old !== this.conn) return;
      return this.refreshFailed(err as HeraldError);
    }
    if (gen !== this.generation || old !== this.conn || this._state !== "connected") return;
    const newExp = tokenTimes(token).expiresAt;
    const oldExp = tokenTimes(old.token).expiresAt;
    if (newExp !== undefined && oldExp !== undefined && newExp <= oldExp) {
      return this.refreshFailed(new HeraldError("token_provider_failed", "the token provider returned a token that does not expire later than the current one"));
    }
    const next = new Conn(token, this.opts.flushPacing.burst);
    this.next = next;
    if (!this.openSocket(next, gen)) return;
    next.timers.push(setTimeout(() => this.abandon(next, CloseCodes.Abnormal, "no welcome within connectTimeoutMs"), this.opts.connectTimeoutMs));
  }

  private refreshFailed(err: HeraldError): void {
    this.emit("error", err);
    const conn = this.conn;
    if (!conn || this._state !== "connected") return;
    // Retry before the old token runs out; if it does, the 4001 path takes over.
    const delay = Math.min(backoffDelay(this.refreshFailures++, this.opts.backoff, this.opts.random), 5_000);
    if (this.refreshTimer !== undefined) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      void this.refresh(conn);
    }, delay);
  }

  private onRefreshWelcome(next: Conn): void {
    // Paced like a reconnect: the refresh connection has its own, fresh rate limit at the gateway.
    const flush: Outgoing[] = [];
    for (const s of this.subs.values()) {
      next.resubsPending++;
      flush.push({ kind: "subscribe", sub: s, resub: true });
    }
    this.flush(next, flush);
    next.timers.push(setTimeout(() => this.handover(next), this.opts.requestTimeoutMs));
    if (next.resubsPending === 0) this.handover(next);
  }

  /** The refresh connection has every subscription: it becomes the connection. */
  private handover(next: Conn): void {
    if (next !== this.next || next.ended) return;
    const old = this.conn;
    this.next = undefined;
    next.clearTimers();
    this.conn = next;
    this.refreshFailures = 0;
    this.attempt = 0;
    // Publishes the old connection had not sent yet (and any queued meanwhile) go out on the new one.
    this.resend([...(old ? this.takeOutbox(old) : []), ...this.queue.splice(0)]);
    if (old) {
      if (old.pingTimer !== undefined) clearInterval(old.pingTimer);
      old.pingTimer = undefined;
      old.clearTimers();
      old.stopPacer();
      this.retiring.add(old);
      // Everything but publishes moves to the new connection now (pings, subscribes)
      // or is moot (unsubscribes: closing the old connection drops its subscriptions).
      this.settleRetired(old, "the connection was retired after a token refresh", false);
      // Let in-flight publishes on the old connection get their acks first.
      const finish = () => {
        if (old.ended) return;
        this.retiring.delete(old);
        this.closeSocket(old, CloseCodes.Normal, "token refreshed");
        this.settleRetired(old, "the connection was retired after a token refresh");
      };
      const hasPending = () => [...this.pending.values()].some((p) => p.conn === old && p.kind === "publish");
      if (!hasPending()) finish();
      else {
        const poll = setInterval(() => {
          if (!hasPending() || old.ended) {
            clearInterval(poll);
            finish();
          }
        }, 50);
        old.timers.push(setTimeout(() => (clearInterval(poll), finish()), this.opts.requestTimeoutMs));
      }
    }
    this.startPing(next);
    this.scheduleRefresh(next);
    if (next.welcome) {
      this._session = next.welcome;
      this.emit("welcome", next.welcome);
    }
  }

  // ---- outbox: paced sends after a welcome ------------------------------------

  /** Sends `item` on `conn` now, or behind the frames still waiting in its outbox (keeps order and pacing). */
  private send(conn: Conn, item: Outgoing): void {
    if (conn.outbox.length > 0) conn.outbox.push(item);
    else this.sendNow(conn, item);
  }

  /** Sends `items` on `conn` through its token bucket: flushPacing.burst at once, then flushPacing.perSecond. */
  private flush(conn: Conn, items: Outgoing[]): void {
    if (items.length === 0) return;
    conn.outbox.push(...items);
    this.pump(conn);
  }

  private pump(conn: Conn): void {
    conn.pacer = undefined;
    if (conn.ended) return;
    const { burst, perSecond } = this.opts.flushPacing;
    const now = Date.now();
    conn.credit = Number.isFinite(perSecond) ? Math.min(burst, conn.credit + (Math.max(0, now - conn.creditAt) * perSecond) / 1000) : burst;
    conn.creditAt = now;
    while (conn.outbox.length > 0 && (conn.credit >= 1 || !Number.isFinite(perSecond))) {
      conn.credit--;
      this.sendNow(conn, conn.outbox.shift() as Outgoing);
      if (conn.ended) return;
    }
    if (conn.outbox.length > 0) {
      conn.pacer = setTimeout(() => this.pump(conn), Math.ceil(((1 - conn.credit) * 1000) / perSecond));
    }
  }

  private sendNow(conn: Conn, item: Outgoing): void {
    if (item.kind === "publish") return this.sendPublish(conn, item.q);
    const sub = item.sub;
    if (this.subs.get(sub.channel) !== sub) {
      // Unsubscribed while waiting in the outbox.
      if (item.resub && conn === this.next) this.resubDone(conn);
      return;
    }
    this.sendSubscribe(conn, sub, item.resub);
  }

  /** Takes the publishes out of a connection's outbox (never sent: safe to send again). */
  private takeOutbox(conn: Conn): Queued[] {
    conn.stopPacer();
    const items = conn.outbox;
    conn.outbox = [];
    const out: Queued[] = [];
    for (const item of items) if (item.kind === "publish") out.push(item.q);
    return out;
  }

  /** Unsent publishes of a connection going away: on the current connection if there is one, else first in the offline queue. */
  private resend(unsent: Queued[]): void {
    if (unsent.length === 0) return;
    const conn = this.conn;
    if (this._state === "connected" && conn?.welcomed && !conn.ended) {
      for (const q of unsent) this.send(conn, { kind: "publish", q });
    } else if (this._state === "closed") {
      const err = this._lastError ?? new HeraldError("closed", "the client was closed");
      for (const q of unsent) q.reject(err);
    } else {
      this.queue.unshift(...unsent);
    }
  }

  /** Publishes `q` now, or queues it when there is no connection (retries bypass offlineQueueLimit). */
  private dispatchPublish(q: Queued): void {
    const conn = this.conn;
    if (this._state === "connected" && conn?.welcomed && !conn.ended) return this.send(conn, { kind: "publish", q });
    if (this._state === "closed") return q.reject(this._lastError ?? new HeraldError("closed", "the client was closed", { channel: q.channel }));
    this.queue.push(q);
  }

  private sendPublish(conn: Conn, q: Queued): void {
    this.request(conn, { type: "publish", channel: q.channel, data: q.data }).then(
      () => q.resolve(),
      (err: HeraldError) => {
        // `rate_limited` with our id: the gateway refused the frame before handling it, so it
        // was definitely not published: send it again after a delay, a few times.
        if (err.code !== "rate_limited" || q.retries >= MAX_PUBLISH_RETRIES || this._state === "closed") return q.reject(err);
        const delay = RETRY_FLOOR_MS + backoffDelay(q.retries++, this.opts.backoff, this.opts.random);
        this.publishRetries.set(
          q,
          setTimeout(() => {
            if (!this.publishRetries.delete(q)) return;
            this.dispatchPublish(q);
          }, delay),
        );
      },
    );
  }

  /**
   * Settles the in-flight requests of a connection closed on purpose (retired
   * after a token refresh, or a cancelled refresh connection), which onClose
   * never sees: pings and needed subscribes are sent again on the current
   * connection, unsubscribes resolve (the server drops the connection's
   * subscriptions with it), publishes reject with `disconnected` (unknown
   * outcome) unless `publishes` is false (the caller still waits for their acks).
   */
  private settleRetired(conn: Conn, why: string, publishes = true): void {
    const cur = this.conn !== conn && this.conn?.welcomed && !this.conn.ended ? this.conn : undefined;
    const lost = () => new HeraldError("disconnected", `${why} before the server answered; the request may or may not have been applied`);
    for (const [id, p] of this.pending) {
      if (p.conn !== conn || (p.kind === "publish" && !publishes)) continue;
      this.pending.delete(id);
      const timeoutMs = p.timer === undefined ? 0 : this.opts.requestTimeoutMs;
      if (p.timer !== undefined) clearTimeout(p.timer);
      if (p.kind === "unsubscribe") p.resolve({ type: "unsubscribed", channel: p.channel ?? "" });
      else if (p.kind === "ping") {
        if (cur) this.request(cur, { type: "ping" }, timeoutMs).then(p.resolve, p.reject);
        else p.reject(lost());
      } else if (p.kind === "subscribe") {
        const sub = p.channel === undefined ? undefined : this.subs.get(p.channel);
        if (sub && cur && (sub.recovering || !cur.confirmed.has(sub.channel)) && !this.subscribePending(cur, sub.channel)) {
          this.send(cur, { kind: "subscribe", sub, resub: false });
        }
      } else p.reject(lost());
    }
  }

  private subscribePending(conn: Conn, channel: string): boolean {
    for (const p of this.pending.values()) if (p.conn === conn && p.kind === "subscribe" && p.channel === channel) return true;
    return conn.outbox.some((o) => o.kind === "subscribe" && o.sub.channel === channel);
  }

  // ---- requests ----------------------------------------------------------------

  private request(conn: Conn, frame: DistributiveOmit<ClientFrame, "id">, timeoutMs = this.opts.requestTimeoutMs, extra: Partial<Pick<Pending, "channel" | "since" | "resub">> = {}): Promise<ServerFrame> {
    const id = this.nextId++;
    const full = { ...frame, id } as ClientFrame;
    let text: string;
    try {
      text = JSON.stringify(full);
    } catch (cause) {
      return Promise.reject(new HeraldError("invalid_argument", `data is not serialisable as JSON: ${(cause as Error).message}`, { cause }));
    }
    if (!conn.ws || conn.ended) return Promise.reject(new HeraldError("disconnected", "not connected"));
    return new Promise<ServerFrame>((resolve, reject) => {
      const channel = "channel" in frame ? frame.channel : undefined;
      const p: Pending = { kind: frame.type, conn, resolve, reject, timer: undefined, ...extra };
      if (channel !== undefined) p.channel = channel;
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          if (this.pending.get(id) !== p) return;
          this.pending.delete(id);
          const err = new HeraldError("timeout", `no answer to ${frame.type} within ${timeoutMs} ms`, channel ? { channel } : {});
          if (p.kind === "subscribe" && channel !== undefined) this.onSubscribeError(p, err);
          else reject(err);
        }, timeoutMs);
      }
      this.pending.set(id, p);
      try {
        conn.ws?.send(text);
      } catch (cause) {
        this.pending.delete(id);
        if (p.timer !== undefined) clearTimeout(p.timer);
        reject(new HeraldError("disconnected", "the connection is closing", { cause }));
      }
    });
  }

  private takePending(id: unknown): Pending | undefined {
    if (typeof id !== "number") return undefined;
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    if (p.timer !== undefined) clearTimeout(p.timer);
    return p;
  }

  // ---- subscriptions -------------------------------------------------------------

  private sendSubscribe(conn: Conn, sub: SubState, resub = false): void {
    const since = sub.lastSeq;
    const frame: DistributiveOmit<ClientFrame, "id"> = since === undefined ? { type: "subscribe", channel: sub.channel } : { type: "subscribe", channel: sub.channel, since };
    const extra: Partial<Pick<Pending, "since" | "resub">> = since === undefined ? {} : { since };
    if (resub) extra.resub = true;
    // Resolution happens in onSubscribed / onSubscribeError (matched by id).
    void this.request(conn, frame, this.opts.requestTimeoutMs, extra).catch(() => undefined);
  }

  private onSubscribed(conn: Conn, frame: SubscribedFrame): void {
    const p = this.takePending(frame.id);
    const channel = frame.channel;
    const sub = this.subs.get(channel);
    if (p?.resub && p.conn === this.next && conn === this.next) this.resubDone(conn);
    if (!sub) return;
    conn.confirmed.add(channel);
    const seq = typeof frame.seq === "number" ? frame.seq : undefined;
    const since = p?.since;
    sub.recovering = false;
    sub.retries = 0;
    if (since !== undefined) {
      const recovered = frame.recovered !== false;
      if (seq !== undefined || frame.recovered !== undefined) {
        this.emit("recovered", { channel, since, seq, recovered });
      }
      // History did not reach back: accept the stream from here on.
      if (!recovered) sub.lastSeq = undefined;
      if (seq === undefined && frame.recovered === undefined) {
        // Plain server (no recovery): positions mean nothing here.
        sub.lastSeq = undefined;
      }
    } else if (seq !== undefined && sub.lastSeq === undefined) {
      sub.lastSeq = seq;
    }
    const resubscribed = sub.everConfirmed;
    sub.everConfirmed = true;
    const waiters = sub.waiters;
    sub.waiters = [];
    for (const w of waiters) w.resolve();
    this.emit("subscribed", seq === undefined ? { channel, resubscribed } : { channel, seq, resubscribed });
  }

  private onSubscribeError(p: Pending, err: HeraldError): void {
    const channel = p.channel as string;
    if (p.resub && p.conn === this.next) this.resubDone(p.conn);
    const sub = this.subs.get(channel);
    if (!sub) return;
    // Transient refusals: try again later instead of dropping the subscription.
    if (err.code === "rate_limited" || err.code === "unavailable" || err.code === "timeout") {
      if (sub.retryTimer !== undefined) return;
      const delay = RETRY_FLOOR_MS + backoffDelay(Math.min(sub.retries++, 6), this.opts.backoff, this.opts.random);
      sub.retryTimer = setTimeout(() => {
        sub.retryTimer = undefined;
        if (this.subs.get(channel) !== sub) return;
        // The connection that refused it, if still in use (e.g. the refresh connection), else the current one.
        const conn = (p.conn === this.conn || p.conn === this.next) && !p.conn.ended ? p.conn : this.conn;
        if (conn?.welcomed && !conn.ended) this.send(conn, { kind: "subscribe", sub, resub: false });
      }, delay);
      return;
    }
    this.subs.delete(channel);
    sub.recovering = false;
    const withChannel = new HeraldError(err.code, err.message, { channel });
    const hadWaiters = sub.waiters.length > 0;
    this.rejectWaiters(sub, withChannel);
    this.emit("unsubscribed", { channel, error: withChannel });
    // Nobody awaits a re-subscription: surface it as an event.
    if (!hadWaiters) this.emit("error", withChannel);
  }

  private resubDone(conn: Conn): void {
    conn.resubsPending = Math.max(0, conn.resubsPending - 1);
    if (conn.resubsPending === 0 && conn.welcomed) queueMicrotask(() => this.handover(conn));
  }

  private rejectWaiters(sub: SubState, err: HeraldError): void {
    const waiters = sub.waiters;
    sub.waiters = [];
    for (const w of waiters) w.reject(err);
  }

  private onMessageFrame(conn: Conn, frame: MessageFrame): void {
    const msg: HeraldMessage = { data: frame.data };
    if (frame.encoding === "base64") msg.encoding = "base64";
    if (typeof frame.channel !== "string") {
      // Direct user message: both connections get it during a token refresh; take the current one's.
      if (conn !== this.conn || typeof frame.user !== "string") return;
      msg.user = frame.user;
      this.emit("message", msg);
      return;
    }
    const channel = frame.channel;
    const sub = this.subs.get(channel);
    if (!sub) return; // unsubscribed; in flight
    msg.channel = channel;
    const seq = typeof frame.seq === "number" ? frame.seq : undefined;
    const prev = typeof frame.prev === "number" ? frame.prev : undefined;
    if (seq === undefined) {
      // Plain mode: exactly one connection delivers each channel (the refresh
      // connection once it confirmed the channel, else the current one).
      const owner = this.next?.confirmed.has(channel) ? this.next : this.conn;
      if (conn !== owner) return;
      return this.deliver(sub, msg);
    }
    if (conn !== this.conn && conn !== this.next && !this.retiring.has(conn)) return;
    msg.seq = seq;
    if (prev !== undefined) msg.prev = prev;
    if (sub.recovering) return; // will be replayed after the recovery subscribe
    const last = sub.lastSeq;
    if (last !== undefined && seq <= last) return; // duplicate
    if (last !== undefined && prev !== undefined && prev > last) {
      const recovering = sub.gapRecoveries < MAX_GAP_RECOVERIES && conn === this.conn && conn.welcomed;
      this.emit("gap", { channel, lastSeq: last, prev, seq, recovering });
      if (recovering) {
        sub.gapRecoveries++;
        sub.recovering = true;
        this.sendSubscribe(conn, sub);
        return;
      }
    }
    sub.lastSeq = seq;
    if (prev === undefined || last === undefined || prev === last) sub.gapRecoveries = 0;
    this.deliver(sub, msg);
  }

  private deliver(sub: SubState, msg: HeraldMessage): void {
    for (const h of [...sub.handlers]) {
      try {
        h(msg);
      } catch (err) {
        reportListenerError(err);
      }
    }
    this.emit("message", msg);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
