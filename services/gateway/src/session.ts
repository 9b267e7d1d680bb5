/** Per-connection state, stored as uWS user data. */
import type { Identity } from "@herald/core";
import type { RecoveryBuffer } from "./fanout.js";
import type { RateLimiter } from "./rate-limiter.js";

export interface Session {
  /** Connection id sent in the welcome frame. */
  readonly id: string;
  readonly sub: string;
  readonly ip: string;
  readonly identity: Identity;
  /** uWS topic of the user's direct messages. */
  readonly userTopic: string;
  readonly limiter: RateLimiter;
  /** Channels this socket is subscribed to. */
  readonly channels: Set<string>;
  /** Channels whose recovery backlog is still being read (created on first use). */
  recovering: Map<string, RecoveryBuffer> | undefined;
  /** Set by the close handler; async work checks it before touching the socket. */
  closed: boolean;
  /** When the last complete inbound frame (message or pong) arrived, epoch ms. */
  lastFrameAt: number;
  /** A ping was sent since lastFrameAt and its pong is awaited. */
  pinged: boolean;
}

/** uWS topic names are internal; channel and user spaces cannot collide. */
export const channelTopic = (channel: string): string => `c:${channel}`;
export const userTopicOf = (token: string): string => `u:${token}`;
