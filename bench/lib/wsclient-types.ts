/** What the load generator's WebSocket client (wsclient.ts) is given and reports to. */
import type { Conn } from "./wsclient.js";

export type Proto = "herald" | "nats";

/** Counters shared by every connection in the process (one object, no per-socket counters). */
export interface Counters {
  msgs: number; // message deliveries received by reading sockets
  pausedMsgs: number; // deliveries received by sockets told to stop reading
  presenceEvents: number; // join / leave frames
  bytes: number;
  reads: number;
  closes: Record<string, number>;
  errors: Record<string, number>;
}

export interface ProbeSink {
  /** A decoded message on a probe socket: publisher seq on channel `ch` (index into channels) and the send time (epoch ms, fractional). */
  sample(conn: Conn, seq: number, sentMs: number, ch: number): void;
}

export interface ConnEvents {
  onConnected(c: Conn): void;
  /** Every channel's subscription confirmed. */
  onReady(c: Conn): void;
  onFail(c: Conn, why: string): void;
  onClose(c: Conn): void;
  /** The text of every message frame on a `track` socket (sequence tracking by the owner). */
  onTracked?(c: Conn, text: string): void;
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
  /** NATS CONNECT auth token. */
  natsToken?: string;
}
