/** One attempt or connection of the client (WebSocket or SSE), and what rides on it. */
import type { HeraldError } from "./errors.js";
import { Pacer } from "./pacer.js";
import type { SubState } from "./subscription.js";
import { closeSocket, unbindSocket } from "./transport.js";
import type { FlushPacing, HeraldEvents, TransportName, WebSocketLike, Welcome } from "./types.js";

/** A publish waiting for a connection or for its ack. */
export interface Queued {
  channel: string;
  data: unknown;
  /** Times the server refused this publish with `rate_limited` so far. */
  retries: number;
  resolve: () => void;
  reject: (err: HeraldError) => void;
}

/** A frame waiting in a connection's outbox (paced flush after a welcome). */
export type Outgoing = { kind: "subscribe"; sub: SubState; resub: boolean } | { kind: "publish"; q: Queued };

/** Numbers connections in creation order (debugging and tests). */
let connSerial = 0;

export class Conn {
  readonly n = ++connSerial;
  ws: WebSocketLike | undefined;
  /** What `ws` is (set when it is opened). */
  transport: TransportName = "websocket";
  welcomed = false;
  welcomedAt = 0;
  ended = false;
  /** HTTP status of a refused upgrade (Node `ws` only) or SSE stream. */
  httpStatus: number | undefined;
  /** The Herald error code of a refused SSE stream (a clear answer, not a proxy's). */
  refusal: string | undefined;
  errorText: string | undefined;
  /** Channels the server confirmed on this connection. */
  readonly confirmed = new Set<string>();
  /** Server-side subscriptions (the welcome's `subs`) whose messages here wait for the answer to the client's resume (welcome-subs.ts). */
  readonly resuming = new Set<string>();
  /** Re-subscribe requests (token refresh) not yet answered. */
  resubsPending = 0;
  welcome: Welcome | undefined;
  timers: Array<ReturnType<typeof setTimeout>> = [];
  pingTimer: ReturnType<typeof setInterval> | undefined;
  /** Frames after a welcome go out through here, paced (flushPacing). */
  readonly outbox: Pacer<Outgoing>;

  constructor(
    readonly token: string,
    pacing: FlushPacing,
    deliver: (conn: Conn, item: Outgoing) => void,
  ) {
    this.outbox = new Pacer(pacing, (item) => deliver(this, item));
  }

  /** The socket reported an error; Node `ws` and SSE name the HTTP status of a refusal. */
  noteError(text: string, httpStatus: number | undefined, refusal: string | undefined): void {
    this.errorText = text;
    if (httpStatus !== undefined) this.httpStatus = httpStatus;
    if (refusal !== undefined) this.refusal = refusal;
  }

  /** Welcomed and not closed: requests can go out on it. */
  usable(): boolean {
    return this.welcomed && !this.ended;
  }

  clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.stopPing();
  }

  /** A ping every `intervalMs` (0: never); `onDead` when one is not answered within `pongTimeoutMs`. */
  keepAlive(intervalMs: number, pongTimeoutMs: number, ping: () => Promise<unknown>, onDead: () => void): void {
    if (intervalMs <= 0) return;
    this.pingTimer = setInterval(() => {
      if (this.ended) return;
      const deadline = setTimeout(onDead, pongTimeoutMs);
      const answered = () => clearTimeout(deadline);
      ping().then(answered, answered);
    }, intervalMs);
  }

  stopPing(): void {
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }

  /** The publishes still in the outbox: never sent, so safe to send again elsewhere. */
  takeUnsentPublishes(): Queued[] {
    const out: Queued[] = [];
    for (const item of this.outbox.take()) if (item.kind === "publish") out.push(item.q);
    return out;
  }

  /** Done with this connection: no timers, no pacing, no more events from its socket. */
  end(): void {
    this.ended = true;
    this.clearTimers();
    this.outbox.stop();
    if (this.ws) unbindSocket(this.ws);
  }

  /** end(), and close the socket with `code`. */
  close(code: number, reason: string): void {
    this.end();
    if (this.ws) closeSocket(this.ws, code, reason);
  }
}

export type Emit = <K extends keyof HeraldEvents>(event: K, ...args: Parameters<HeraldEvents[K]>) => void;

/** What the subscription and publish bookkeeping may ask of the client about its connections. */
export interface Links {
  /** The connection in use (welcomed), or the attempt in progress. */
  current(): Conn | undefined;
  /** The second connection opened by a token refresh, until it takes over. */
  next(): Conn | undefined;
  /** An old connection finishing its in-flight publishes after a token refresh. */
  isRetiring(conn: Conn): boolean;
  /** The connection to send on now, if any (see HeraldClient.usable). */
  usable(): Conn | undefined;
  /** Why nothing can be sent any more once the client is closed; undefined while it may still connect. */
  closedError(): HeraldError | undefined;
  /** A re-subscribe of the refresh connection was answered or dropped. */
  resubAnswered(conn: Conn): void;
  emit: Emit;
}
