/** The public types of @herald/client: options, events, messages, states. */
import type { BackoffOptions } from "./backoff.js";
import type { HeraldError } from "./errors.js";
import type { FetchLike } from "./sse-socket.js";

export type { FetchLike, FetchInit, FetchResponse } from "./sse-socket.js";

/** How a connection reaches the gateway: a WebSocket (`url`), or SSE with HTTP commands (`sseUrl`). */
export type TransportName = "websocket" | "sse";

/**
 * `idle` before the first connect(); `connecting` during the first attempt;
 * `connected` after the server's welcome; `reconnecting` between a lost
 * connection and the next welcome; `closed` after close() or a terminal error
 * (see `lastError`). connect() may be called again from `closed`.
 */
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";

/** Returns a fresh JWT; called on connect, shortly before `exp`, and after a 4001. */
export type TokenProvider = () => string | Promise<string>;

/** The part of the WHATWG WebSocket the client uses (browsers, Node 22+, the `ws` package). */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol: string;
  binaryType: string;
  // `any` parameters keep both DOM and `ws` event types assignable.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onopen: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onmessage: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onclose: ((ev: any) => void) | null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface HeraldClientOptions {
  /** Gateway endpoint, e.g. `wss://rt.example.com/ws`. */
  url: string;
  /** A JWT, or a function returning one (sync or async). Only a provider lets the client survive token expiry. */
  token: string | TokenProvider;
  /** WebSocket implementation; default `globalThis.WebSocket`. In Node 20 pass `(await import("ws")).default`. Not needed when `transports` leaves "websocket" out. */
  WebSocket?: WebSocketConstructor;
  /**
   * Transports to try, in order of preference. An attempt that fails before
   * the welcome (network error, refused handshake, connect timeout) moves on
   * to the next one at once; the first one welcomed is used first for every
   * reconnect of this client; once all failed, the usual backoff. Default
   * ["websocket", "sse"] ("sse" left out when the runtime has no fetch).
   */
  transports?: TransportName[];
  /**
   * The gateway's SSE endpoint (`GET` stream; commands are POSTed to its path
   * + `/commands`). Default from `url`: ws → http, wss → https, a path ending
   * in `/ws` ends in `/sse` instead, any other path gets `/sse` appended.
   */
  sseUrl?: string;
  /** fetch implementation for SSE; default `globalThis.fetch` (browsers, Node 18+). */
  fetch?: FetchLike;
  /** Reconnect backoff: `random(0, min(maxMs, baseMs * 2 ** attempt))`. Default { baseMs: 500, maxMs: 30000 }. */
  backoff?: Partial<BackoffOptions>;
  /** After a 1001 (server draining) reconnect after `random(0, drainReconnectMaxMs)`. Default 5000. */
  drainReconnectMaxMs?: number;
  /** After a 4008 (rate limited) wait at least this long before reconnecting (plus backoff). Default 5000. */
  rateLimitedDelayMs?: number;
  /** Give up (terminal `reconnect_failed`) after this many consecutive failed attempts. Default Infinity. */
  maxReconnectAttempts?: number;
  /** An attempt that has not received the welcome frame after this long is abandoned. Default 10000. */
  connectTimeoutMs?: number;
  /**
   * The token provider must answer within this long; otherwise the attempt (or refresh) fails with
   * `token_provider_failed` and is retried with backoff like any other provider failure. 0 = wait forever.
   * Default 10000.
   */
  tokenTimeoutMs?: number;
  /** subscribe/unsubscribe/publish/ping reject with `timeout` after this long without an answer. Default 10000. */
  requestTimeoutMs?: number;
  /** Send a ping this often to detect dead connections (0 = never). Default 25000. */
  pingIntervalMs?: number;
  /** A connection whose ping is not answered within this long is considered dead. Default 10000. */
  pongTimeoutMs?: number;
  /** Refresh provider tokens this long before `exp` (at most 20% of the token's lifetime). Default 30000. */
  refreshLeadMs?: number;
  /** Publishes kept while disconnected; more reject with `queue_full`. 0 disables queueing. Default 100. */
  offlineQueueLimit?: number;
  /**
   * Pacing of what a new connection sends after the welcome (every re-subscribe, then the offline queue):
   * `burst` frames at once, the rest at `perSecond`, so a client with many subscriptions and a full queue
   * stays under the gateway's inbound rate limit (default 50/s, burst 100). Default { burst: 40, perSecond: 25 }.
   */
  flushPacing?: Partial<FlushPacing>;
  /** Random source in [0, 1) for jitter (tests). Default Math.random. */
  random?: () => number;
}

/** See HeraldClientOptions.flushPacing. */
export interface FlushPacing {
  /** Frames sent at once right after the welcome (at least 1). */
  burst: number;
  /** Rate of the frames beyond `burst`, per second (Infinity: no pacing). */
  perSecond: number;
}

/** Half the gateway's default RATE_LIMIT_PER_SECOND (50), and well under its RATE_LIMIT_BURST (100). */
export const DEFAULT_FLUSH_PACING: Readonly<FlushPacing> = { burst: 40, perSecond: 25 };

export interface Welcome {
  /** The user id (`sub` claim). */
  sub: string;
  /** Server-side connection id (differs on every reconnect). */
  connection: string;
  /** The transport this connection uses (set by the client, not sent by the server). */
  transport?: TransportName;
  /** The channels the server subscribed this connection to from the token's `subs` claim (absent: none); the client treats them as subscriptions. */
  subs?: WelcomeSub[];
}

/** A server-side subscription of a welcome: where it starts (`seq`, `epoch`) on a channel with history. */
export interface WelcomeSub {
  channel: string;
  seq?: number;
  epoch?: string;
}

export interface HeraldMessage<T = unknown> {
  /** Set for channel messages. */
  channel?: string;
  /** Set for direct messages to this user (`sub`). */
  user?: string;
  /** The payload; a base64 string when `encoding` is "base64" (use decodeBase64). */
  data: T;
  encoding?: "base64";
  /** Stream position (recovery-capable servers only). */
  seq?: number;
  /** Position of the previous message on the channel (recovery-capable servers only). */
  prev?: number;
}

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** Why the connection was lost or the client closed (also in `client.lastError`). */
  error?: HeraldError;
  /** For `reconnecting`: how long until the next attempt. */
  retryInMs?: number;
  /** For `reconnecting`: consecutive failed attempts so far. */
  attempt?: number;
  /** For `connected`: the transport in use. */
  transport?: TransportName;
}

export interface SubscribedInfo {
  channel: string;
  /** Server stream position, when the server supports recovery. */
  seq?: number;
  /** True when this confirmation follows a reconnect or token refresh. */
  resubscribed: boolean;
}

export interface RecoveryInfo {
  channel: string;
  /** The position the client asked to resume from. */
  since: number;
  /** The position the live stream continues from. */
  seq: number | undefined;
  /** The life of the server's history `seq` belongs to (servers with epochs). */
  epoch?: string;
  /** false: the server's history did not reach back to `since`, or it was started anew (another epoch); messages were lost for good. */
  recovered: boolean;
}

export interface GapInfo {
  channel: string;
  /** Last position the client had. */
  lastSeq: number;
  /** `prev` of the message that revealed the gap. */
  prev: number;
  seq: number;
  /** True when the client re-subscribes with `since` to get the missing messages. */
  recovering: boolean;
}

export interface HeraldEvents {
  state: (change: StateChange) => void;
  welcome: (info: Welcome) => void;
  /** Every channel and direct message, after de-duplication. */
  message: (msg: HeraldMessage) => void;
  subscribed: (info: SubscribedInfo) => void;
  /** A subscription ended: by unsubscribe(), or refused by the server on re-subscribe (`error` set). */
  unsubscribed: (info: { channel: string; error?: HeraldError }) => void;
  /** The server answered a resume request (`since`); `recovered: false` means messages were lost. */
  recovered: (info: RecoveryInfo) => void;
  /** A message arrived whose `prev` is not the last position seen. */
  gap: (info: GapInfo) => void;
  /** Errors not tied to a promise: terminal errors, refused re-subscriptions, token provider failures, error frames without id. */
  error: (err: HeraldError) => void;
  /** The token provider returned a new token (first connect, refresh before exp, after 4001); `expiresAt` in ms. */
  token: (info: { expiresAt: number | undefined }) => void;
  /** A member joined a channel the client is on (presence namespaces with join_leave). */
  join: (info: PresenceEvent) => void;
  leave: (info: PresenceEvent) => void;
}

/** Who is on a channel (HeraldClient.presenceStats). */
export interface PresenceStats {
  channel: string;
  /** Connections on the channel, over every gateway. */
  clients: number;
  /** Distinct users (`sub`) among them. */
  users: number;
}

/** A page of a channel's members (HeraldClient.presence): pass `cursor` for the next page until it is null. */
export interface PresencePage extends PresenceStats {
  members: Array<{ sub: string; connection: string; info: unknown }>;
  cursor: string | null;
}

/** A member joined or left a channel the client is on (namespaces with join_leave). */
export interface PresenceEvent {
  channel: string;
  sub: string;
  connection: string;
  /** The member's `info` claim (join only). */
  info?: unknown;
}

/** One page of a channel's stored messages (HeraldClient.history). */
export interface HistoryPage {
  channel: string;
  /** The history's life these positions belong to. */
  epoch: string;
  messages: Array<{ seq: number; prev: number; data: unknown; encoding?: "base64" }>;
  /** Pass as `since` for the next page; null once this page reached the newest stored message. */
  next: number | null;
}

export interface SubscribeOptions<T = unknown> {
  /** Called for every message on the channel (in addition to the client's `message` event). */
  onMessage?: (msg: HeraldMessage<T>) => void;
  /** Resume after this stream position (e.g. persisted from a previous page load). */
  since?: number;
  /** The history epoch `since` belongs to (persist it with `since`: `Subscription.epoch`). A position from another epoch is answered `recovered: false`. */
  epoch?: string;
}
