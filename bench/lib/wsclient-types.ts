/** What the load generator's WebSocket client (wsclient.ts) is given and reports to. */
import type { Conn } from "./wsclient.js";

/** herald: Herald's JSON frames over /ws; nats: the NATS protocol over WebSocket; sse: Herald's GET /sse event stream (sse-client.ts). */
export type Proto = "herald" | "nats" | "sse";

/** What the worker needs of any load connection (the WebSocket Conn or the SSE client). */
export interface LoadConn {
  readonly o: ConnOptions;
  ready: boolean;
  lastSeqs: number[];
  tConnect: number;
  pause(): void;
  destroy(): void;
}

/** Counters shared by every connection in the process (one object, no per-socket counters). */
export interface Counters {
  msgs: number; // message deliveries received by reading sockets
  pausedMsgs: number; // deliveries received by sockets told to stop reading
  presenceEvents: number; // join / leave frames
  deflateNegotiated: number; // sockets whose 101 accepted permessage-deflate (ConnOptions.deflate)
  compressedFrames: number; // data frames received with RSV1 set (deflated)
  bytes: number;
  reads: number;
  closes: Record<string, number>;
  errors: Record<string, number>;
}

export interface ProbeSink<C extends LoadConn = Conn> {
  /** A decoded message on a probe socket: publisher seq on channel `ch` (index into channels) and the send time (epoch ms, fractional). */
  sample(conn: C, seq: number, sentMs: number, ch: number): void;
}

export interface ConnEvents<C extends LoadConn = Conn> {
  onConnected(c: C): void;
  /** Every channel's subscription confirmed. */
  onReady(c: C): void;
  onFail(c: C, why: string): void;
  onClose(c: C): void;
  /** The text of every message frame on a `track` socket (sequence tracking by the owner). */
  onTracked?(c: C, text: string): void;
}

export interface ConnOptions {
  host: string;
  port: number;
  path: string;
  localAddress: string | undefined;
  /** Extra request header lines, each ending in \r\n (Authorization ...). */
  headers: string;
  proto: Proto;
  probe: boolean;
  /** Herald channel names; for NATS the subjects. Subscribed in this order (request id = index + 1). */
  channels: string[];
  /** Herald: resume position per channel (`since`), undefined entries subscribe plainly. */
  since?: (number | undefined)[];
  /** Hand every message frame's text to events.onTracked (costs a copy and a decode per message). */
  track?: boolean;
  /** Herald: offer permessage-deflate (no context takeover either way); deflated frames are inflated when decoded. */
  deflate?: boolean;
  /** NATS CONNECT auth token. */
  natsToken?: string;
}
