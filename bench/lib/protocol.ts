/** Messages between the LoadGen coordinator and its worker processes. */
import type { SparseCounts } from "./hdr.js";
import type { Proto } from "./wsclient.js";

export interface Endpoint {
  host: string;
  port: number;
  path: string;
}

/**
 * Channels per connection i: "groups" puts k consecutive connections on g.<i/k>;
 * "group-of" spreads them round-robin over `groups` channels g.<i % groups>;
 * "personal+group" subscribes to u.<i> AND g.<i % groups> (two subscriptions);
 * "presence" subscribes to one big `channel` AND <prefix>.<i % rooms> (the presence benchmark).
 */
export type Shape =
  | { kind: "shared"; channel: string }
  | { kind: "per-user" }
  | { kind: "groups"; k: number }
  | { kind: "group-of"; groups: number }
  | { kind: "personal+group"; groups: number }
  | { kind: "presence"; channel: string; rooms: number; prefix: string };

export interface ConnectPlan {
  proto: Proto;
  endpoints: Endpoint[];
  /** Global connection indices [offset, offset + count). */
  offset: number;
  count: number;
  worker: number;
  workers: number;
  /** Connections per second over all workers; 0 = as fast as `inflight` allows. */
  rate: number;
  /** Max handshakes in flight per worker. */
  inflight: number;
  shape: Shape;
  /** Every probeEvery-th connection decodes payloads (latency, sequence). */
  probeEvery: number;
  spreadLocal: boolean;
  /** Herald: HS256 secret to sign a token per user, or one token for all. */
  secret?: string;
  token?: string;
  natsToken?: string;
  subjectPrefix: string;
  timeoutMs: number;
  /** Clients reconnect elsewhere and resume with `since` when their connection drops (bench/lib/resilient.ts). */
  resilient?: boolean;
  /** Herald over /ws: offer permessage-deflate in the upgrade (the compression scenario). */
  deflate?: boolean;
}

/** What a worker's resilient clients measured (per event, except lost/dups/prevMismatch/tracked: whole run). */
export interface ResilientStats {
  clients: number;
  /** Subscribed clients per endpoint index right now. */
  perEndpoint: number[];
  displaced: number;
  recovered: number;
  /** Resumes answered recovered:false. */
  resumedFalse: number;
  gaveUp: number;
  attempts: number;
  failures: Record<string, number>;
  /** Event -> recovered, and own drop -> recovered (us). */
  fromEvent: Sparse;
  fromDrop: Sparse;
  /** Successful reconnects per second since the event (key: whole seconds). */
  buckets: Record<number, number>;
  /** Publisher seqs skipped (gaps) and seen twice, over every client; frames whose prev was not the last position. */
  lost: number;
  dups: number;
  prevMismatch: number;
  tracked: number;
  /** With `published`: messages subscribed clients still lack at the end, and what unrecovered ones lack. */
  missingAtEnd: number;
  missingUnrecovered: number;
}

type Sparse = { counts: SparseCounts; max: number; min: number; clamped: number };

export interface WorkerSnapshot {
  attempted: number;
  connected: number;
  ready: number;
  open: number;
  failures: Record<string, number>;
  firstReady: number;
  lastReady: number;
  msgs: number;
  pausedMsgs: number;
  /** join / leave frames received (counted, not parsed). */
  presenceEvents: number;
  /** Sockets whose upgrade accepted permessage-deflate; data frames received deflated (RSV1). */
  deflateNegotiated: number;
  compressedFrames: number;
  bytes: number;
  reads: number;
  closes: Record<string, number>;
  errors: Record<string, number>;
  probeMsgs: number;
  gaps: number;
  dups: number;
  latency: Sparse;
  connectLatency: Sparse;
  cpu: { user: number; system: number };
  rss: number;
  t: number;
}

export type ToWorker =
  | { type: "prepare"; id: number; plan: ConnectPlan }
  | { type: "connect" }
  | { type: "reset"; id: number; connect?: boolean }
  | { type: "snapshot"; id: number }
  | { type: "pause"; id: number; every: number }
  | { type: "close"; id: number }
  | { type: "event"; id: number; t0: number; need: Record<string, number> }
  | { type: "resilient"; id: number; published?: Record<string, number> }
  | { type: "exit" };

export type FromWorker =
  | { type: "hello"; pid: number }
  | { type: "connected"; snapshot: WorkerSnapshot }
  | { type: "ack"; id: number; value?: number }
  | { type: "snapshot"; id: number; snapshot: WorkerSnapshot }
  | { type: "resilient"; id: number; stats: ResilientStats }
  | { type: "progress"; attempted: number; ready: number; failed: number; msgs: number; cpu: { user: number; system: number } };
