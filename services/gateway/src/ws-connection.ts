/**
 * The uWS WebSocket adapter of Connection: created by the upgrade, bound to
 * its socket in `open`. Frame
 * deadline bookkeeping (lastFrameAt, pinged) is WebSocket-only and lives
 * here, not in Connection.
 */
import type { Identity } from "@herald/core";
import type { Connection } from "./connection.js";
import type { RateLimiter } from "./rate-limiter.js";
import { TopicSet } from "./topic-set.js";
import type { WebSocket } from "./uws.js";

/**
 * The socket's uWS user data. uWS copies the object given to upgrade()
 * property by property (its prototype is lost), so it carries the
 * connection instead of being it.
 */
export interface WsUserData {
  conn: WsConnection;
}

export class WsConnection implements Connection {
  readonly topics = new TopicSet();
  closed = false;
  /** When the last complete inbound frame (message or pong) arrived, epoch ms. */
  lastFrameAt = Date.now();
  /** A ping was sent since lastFrameAt and its pong is awaited. */
  pinged = false;
  private ws: WebSocket<WsUserData> | undefined;

  constructor(
    readonly id: string,
    readonly identity: Identity,
    readonly ip: string,
    readonly userTopic: string,
    readonly limiter: RateLimiter,
  ) {}

  /** Called from uWS `open`. */
  bind(ws: WebSocket<WsUserData>): void {
    this.ws = ws;
  }

  /** Called from uWS `close`: the socket may not be touched after it. */
  unbind(): void {
    this.closed = true;
    this.ws = undefined;
  }

  /** Any complete inbound frame: the peer is alive and not stuck mid-frame. */
  heard(): void {
    this.lastFrameAt = Date.now();
    this.pinged = false;
  }

  send(frame: Buffer | string): void {
    this.ws?.send(frame, false);
  }

  batch(fn: () => void): void {
    if (this.ws) this.ws.cork(fn);
    else fn();
  }

  bufferedAmount(): number {
    return this.ws?.getBufferedAmount() ?? 0;
  }

  subscribe(topic: string): void {
    this.ws?.subscribe(topic);
  }

  unsubscribe(topic: string): void {
    this.ws?.unsubscribe(topic);
  }

  ping(): void {
    this.ws?.ping();
  }

  close(code: number, reason: string): void {
    this.ws?.end(code, reason);
  }
}
