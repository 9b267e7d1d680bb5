/** One WebSocket attempt or connection of the client, and the requests and publishes riding on it. */
import type { HeraldError } from "./errors.js";
import type { ClientFrame, ServerFrame } from "./protocol.js";
import type { SubState } from "./subscription.js";
import type { WebSocketLike, Welcome } from "./types.js";

export interface Pending {
  kind: ClientFrame["type"];
  conn: Conn;
  channel?: string;
  since?: number;
  /** A re-subscribe sent on the refresh connection (counted in resubsPending). */
  resub?: boolean;
  resolve: (frame: ServerFrame) => void;
  reject: (err: HeraldError) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

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
  welcomed = false;
  welcomedAt = 0;
  ended = false;
  /** HTTP status of a refused upgrade (Node `ws` only). */
  httpStatus: number | undefined;
  errorText: string | undefined;
  /** Channels the server confirmed on this connection. */
  readonly confirmed = new Set<string>();
  /** Re-subscribe requests (token refresh) not yet answered. */
  resubsPending = 0;
  welcome: Welcome | undefined;
  timers: Array<ReturnType<typeof setTimeout>> = [];
  pingTimer: ReturnType<typeof setInterval> | undefined;
  /** Frames waiting for their turn (flushPacing), in order; while non-empty, new frames queue behind them. */
  outbox: Outgoing[] = [];
  /** Token bucket of the outbox: frames that may go out now, refilled at flushPacing.perSecond. */
  credit: number;
  creditAt = 0;
  pacer: ReturnType<typeof setTimeout> | undefined;
  constructor(
    readonly token: string,
    burst: number,
  ) {
    this.credit = burst;
  }
  clearTimers(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    if (this.pingTimer !== undefined) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }
  stopPacer(): void {
    if (this.pacer !== undefined) clearTimeout(this.pacer);
    this.pacer = undefined;
  }
}
