/**
 * What the protocol handler and the fan-out know of a client connection,
 * whatever carries it. The uWS WebSocket adapter (ws-connection.ts)
 * implements it; a second transport (SSE) plugs in as another adapter
 * without touching the protocol handler or the fan-out.
 */
import type { Identity } from "@herald/core";
import type { RateLimiter } from "./rate-limiter.js";

export interface Connection {
  /** Connection id sent in the welcome frame. */
  readonly id: string;
  readonly identity: Identity;
  /** Client address (after trusted proxies), for the per-IP limit. */
  readonly ip: string;
  /** Topic of the user's direct messages. */
  readonly userTopic: string;
  /** Inbound frame budget. */
  readonly limiter: RateLimiter;
  /**
   * Topics this connection has joined through the fan-out, its user topic
   * included. Written by Fanout only (join / leave / leaveAll).
   */
  readonly topics: Topics;
  /** True once the transport has closed; async work checks it before touching the connection. */
  readonly closed: boolean;
  /** Queues one frame for this connection alone. */
  send(frame: Buffer | string): void;
  /** Runs `fn` with the connection's writes merged into one (uWS cork). */
  batch(fn: () => void): void;
  /** Bytes queued for this connection and not yet written to the network. */
  bufferedAmount(): number;
  /** Starts receiving what the sink publishes to `topic`. */
  subscribe(topic: string): void;
  unsubscribe(topic: string): void;
  /** Closes with a close code (DESIGN.md) and a short reason. */
  close(code: number, reason: string): void;
}

/** A set of topic names (TopicSet; a Set<string> fits too). */
export interface Topics extends Iterable<string> {
  readonly size: number;
  has(topic: string): boolean;
  add(topic: string): void;
  delete(topic: string): boolean;
  clear(): void;
}

/**
 * Where the fan-out writes: one frame to every connection on a topic, copied
 * by the transport (uWS pub/sub in C++), never per recipient in JavaScript.
 */
export interface TopicSink {
  publish(topic: string, frame: Buffer): void;
  /** Connections currently on `topic`. */
  subscribers(topic: string): number;
}

/** Topic names are internal; channel and user spaces cannot collide. */
export const channelTopic = (channel: string): string => `c:${channel}`;
export const userTopicOf = (token: string): string => `u:${token}`;
/** True when the connection is on at least one channel (not only its user subject), of those `which` accepts when given. */
export function holdsChannel(conn: { topics: Iterable<string> }, which?: (channel: string) => boolean): boolean {
  for (const topic of conn.topics) if (topic.startsWith("c:") && (!which || which(topic.slice(2)))) return true;
  return false;
}
