/**
 * The uWS WebSocket adapter of Connection: created by the upgrade, bound to
 * its socket in `open`. Frame
 * deadline bookkeeping (lastFrameAt, pinged) is WebSocket-only and lives
 * here, not in Connection, and so does the hold of a connection whose
 * welcome waits for its token's subs (pre-welcome.ts).
 */
import type { Identity } from "@herald/core";
import type { Connection } from "./connection.js";
import { HeldFrames, type HeldTopics } from "./pre-welcome.js";
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
  /** From hold() until the welcome: what this connection is sent meanwhile (pre-welcome.ts). */
  private held: HeldFrames | undefined;

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
    this.held?.end();
    this.held = undefined;
  }

  /** Keeps every frame for this connection, and its topic joins, until welcome(): its welcome waits for the token's subs. */
  hold(topics: HeldTopics): void {
    this.held = new HeldFrames(topics);
  }

  /** Sends the welcome, then what was held in order, and puts the socket on the held topics: in one write, nothing between. */
  welcome(frame: string): void {
    const held = this.held;
    this.held = undefined;
    if (!held) return this.send(frame);
    held.end();
    this.batch(() => {
      const ws = this.ws;
      if (!ws) return;
      ws.send(frame, false);
      for (const f of held.frames) ws.send(f, false);
      for (const topic of held.topics) ws.subscribe(topic);
    });
  }

  /** Any complete inbound frame: the peer is alive and not stuck mid-frame. */
  heard(): void {
    this.lastFrameAt = Date.now();
    this.pinged = false;
  }

  send(frame: Buffer | string): void {
    if (this.held) this.held.push(frame);
    else this.ws?.send(frame, false);
  }

  batch(fn: () => void): void {
    if (this.ws) this.ws.cork(fn);
    else fn();
  }

  bufferedAmount(): number {
    return (this.ws?.getBufferedAmount() ?? 0) + (this.held?.bytes ?? 0);
  }

  subscribe(topic: string): void {
    if (this.held) this.held.join(topic);
    else this.ws?.subscribe(topic);
  }

  unsubscribe(topic: string): void {
    if (this.held) this.held.leave(topic);
    else this.ws?.unsubscribe(topic);
  }

  ping(): void {
    this.ws?.ping();
  }

  close(code: number, reason: string): void {
    this.ws?.end(code, reason);
  }
}
