/** herald.v1 wire types as the client sees them (DESIGN.md "Client protocol"). */

export const SUBPROTOCOL = "herald.v1";

/** Close codes of DESIGN.md, and the standard ones the client reacts to. */
export const CloseCodes = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  UnsupportedData: 1003,
  Abnormal: 1006,
  InvalidPayload: 1007,
  PolicyViolation: 1008,
  TooLarge: 1009,
  MandatoryExtension: 1010,
  InternalError: 1011,
  TokenExpired: 4001,
  Forbidden: 4003,
  RateLimited: 4008,
  SlowConsumer: 4009,
  /** Disconnected by the server API: reconnect after the usual backoff. */
  ServerDisconnect: 4010,
  /** The token was revoked or the user blocked: not with this token again. */
  Revoked: 4011,
} as const;

export type RequestId = number | string;

export interface WelcomeFrame {
  type: "welcome";
  sub: string;
  connection: string;
  /** The server-side subscriptions the token's `subs` claim made, with their positions on channels with history. */
  subs?: WelcomeSubFrame[];
}

/** One entry of a welcome's `subs`: `seq` and `epoch` together (a channel with history), or neither. */
export interface WelcomeSubFrame {
  channel: string;
  seq?: number;
  epoch?: string;
}

export interface SubscribedFrame {
  type: "subscribed";
  channel: string;
  id?: RequestId;
  /** Stream position the live stream continues from (recovery-capable servers). */
  seq?: number;
  /** The life of the history `seq` belongs to; it changes when the history is lost and started again. */
  epoch?: string;
  /** false: the `since` position was older than the server's history, or from another epoch; messages were lost. */
  recovered?: boolean;
}

export interface MessageFrame {
  type: "message";
  channel?: string;
  user?: string;
  data: unknown;
  encoding?: "base64";
  seq?: number;
  prev?: number;
}

export interface ErrorFrame {
  type: "error";
  id?: RequestId;
  code: string;
  message?: string;
}

/** One page of a channel's stored messages (answer to a `history` request). */
export interface HistoryFrame {
  type: "history";
  channel: string;
  id?: RequestId;
  epoch: string;
  messages: Array<{ seq: number; prev: number; data: unknown; encoding?: "base64" }>;
  /** The `since` of the next page; null once the page reached the newest stored message. */
  next: number | null;
}

/** A page of a channel's members (answer to a `presence` request). */
export interface PresenceFrame {
  type: "presence";
  channel: string;
  id?: RequestId;
  clients: number;
  users: number;
  members: Array<{ sub: string; connection: string; info: unknown }>;
  cursor: string | null;
}

export interface PresenceStatsFrame {
  type: "presence_stats";
  channel: string;
  id?: RequestId;
  clients: number;
  users: number;
}

/** A member joined or left a channel this connection is on (join_leave namespaces). */
export interface JoinLeaveFrame {
  type: "join" | "leave";
  channel: string;
  sub: string;
  connection: string;
  /** The member's `info` claim (join only). */
  info?: unknown;
}

export type ServerFrame =
  | WelcomeFrame
  | PresenceFrame
  | PresenceStatsFrame
  | JoinLeaveFrame
  | SubscribedFrame
  | { type: "unsubscribed"; channel: string; id?: RequestId }
  | { type: "ack"; id?: RequestId }
  | { type: "pong"; id?: RequestId }
  | HistoryFrame
  | MessageFrame
  | ErrorFrame;

export type ClientFrame =
  | { type: "subscribe"; channel: string; id: number; since?: number; epoch?: string }
  | { type: "unsubscribe"; channel: string; id: number }
  | { type: "publish"; channel: string; data: unknown; id: number }
  | { type: "ping"; id: number }
  | { type: "history"; channel: string; since?: number; limit?: number; id: number }
  | { type: "presence"; channel: string; cursor: string | null; id: number }
  | { type: "presence_stats"; channel: string; id: number };

/** A client frame before the request table gives it its id. */
export type ClientRequest = WithoutId<ClientFrame>;
type WithoutId<F> = F extends unknown ? Omit<F, "id"> : never;
