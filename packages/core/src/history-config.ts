/**
 * Message history for recovery (JetStream in production, a bounded in-memory
 * store in the embedded broker). Read by every service that creates a broker,
 * so gateways and publishers agree on the stream.
 */
import * as read from "./config.js";
import type { Env } from "./env.js";
import { ConfigError } from "./errors.js";

export interface HistoryConfig {
  /** false = core NATS only: no positions, no recovery. */
  enabled: boolean;
  /** JetStream stream name. */
  stream: string;
  /** Messages older than this are dropped from the history window. */
  maxAgeSeconds: number;
  /** At most this many messages are kept per channel. */
  maxPerChannel: number;
  /** JetStream replicas (3 on a 3-node cluster). */
  replicas: number;
}

export const HISTORY_DEFAULTS = {
  enabled: true,
  stream: "HERALD",
  maxAgeSeconds: 300,
  maxPerChannel: 1000,
  replicas: 1,
} as const;

export function readHistoryConfig(env: Env): HistoryConfig {
  const stream = read.str(env, "HISTORY_STREAM", HISTORY_DEFAULTS.stream);
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(stream)) {
    throw new ConfigError("HISTORY_STREAM", `must be 1-64 characters of [A-Za-z0-9_-], got "${stream}"`);
  }
  return {
    enabled: read.bool(env, "HISTORY", HISTORY_DEFAULTS.enabled),
    stream,
    maxAgeSeconds: read.int(env, "HISTORY_MAX_AGE_SECONDS", HISTORY_DEFAULTS.maxAgeSeconds, 1, 30 * 24 * 3600),
    maxPerChannel: read.int(env, "HISTORY_MAX_PER_CHANNEL", HISTORY_DEFAULTS.maxPerChannel, 1, 1_000_000),
    replicas: read.int(env, "HISTORY_REPLICAS", HISTORY_DEFAULTS.replicas, 1, 5),
  };
}
