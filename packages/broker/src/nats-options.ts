/** The NATS broker's options and their named defaults (read once by NatsBroker). */
import type { HistoryConfig, HistoryWindows, Logger, Subjects } from "@herald/core";

export interface NatsBrokerOptions {
  servers: string[];
  name: string;
  logger: Logger;
  /** How long publish() waits for the server to confirm (PONG) before failing. */
  publishTimeoutMs?: number;
  /** Backoff bounds for reconnect attempts. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** JetStream history for recovery; needs `subjects`. */
  history?: HistoryConfig | undefined;
  /** Which streams keep which channels (namespaces); HistoryWindows.single(history) when omitted. */
  windows?: HistoryWindows | undefined;
  subjects?: Subjects | undefined;
  /** How long to keep trying to set up the history stream before running without it. */
  historySetupMs?: number;
  /** How often the history stream is read again for its epoch (and recreated when gone). */
  epochCheckMs?: number;
}

export const NATS_DEFAULTS = {
  publishTimeoutMs: 2000,
  reconnectMinMs: 250,
  reconnectMaxMs: 5000,
  historySetupMs: 30_000,
  epochCheckMs: 5000,
} as const;
