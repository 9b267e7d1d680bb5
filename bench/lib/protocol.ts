/** Messages between the LoadGen coordinator and its worker processes. */
import type { SparseCounts } from "./hdr.js";
import type { Proto } from "./wsclient.js";

export interface Endpoint {
  host: string;
  port: number;
  path: string;
}

export type Shape = { kind: "shared"; channel: string } | { kind: "per-user" } | { kind: "groups"; k: number };

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
  | { type: "connect"; plan: ConnectPlan }
  | { type: "reset"; id: number; connect?: boolean }
  | { type: "snapshot"; id: number }
  | { type: "pause"; id: number; every: number }
  | { type: "close"; id: number }
  | { type: "exit" };

export type FromWorker =
  | { type: "hello"; pid: number }
  | { type: "connected"; snapshot: WorkerSnapshot }
  | { type: "ack"; id: number; value?: number }
  | { type: "snapshot"; id: number; snapshot: WorkerSnapshot }
  | { type: "progress"; attempted: number; ready: number; failed: number; msgs: number; cpu: { user: number; system: number } };
