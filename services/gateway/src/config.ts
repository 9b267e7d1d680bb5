/**
 * Gateway configuration: read from the environment once, validated, typed.
 * Every error names the variable (ConfigError). Defaults are named in
 * GATEWAY_DEFAULTS so the README and the code cannot drift apart silently.
 */
import {
  ConfigError,
  read,
  readAuthConfig,
  readNatsSection,
  readServeSection,
  type AuthConfig,
  type Env,
  type NatsSection,
  type ServeSection,
} from "@herald/core";
import { OriginPolicy } from "./origin.js";
import { TrustedProxies } from "./client-ip.js";

/** WebSocket permessage-deflate: off, one compressor shared by every socket, or one per socket (more memory, better ratio). */
export const COMPRESSION_MODES = ["off", "shared", "dedicated"] as const;
export type CompressionMode = (typeof COMPRESSION_MODES)[number];

export const GATEWAY_DEFAULTS = {
  port: 8080,
  natsName: "herald-gateway",
  maxConnections: 50_000,
  maxConnectionsPerIp: 1000,
  maxConnectionsPerUser: 100,
  /** IPv6 clients are counted per network of this many bits (a /64 is usually one host or site). */
  ipv6LimitPrefix: 64,
  maxPayloadBytes: 64 * 1024,
  maxChannelsPerConnection: 100,
  rateLimitPerSecond: 50,
  rateLimitBurst: 100,
  slowConsumerBytes: 1024 * 1024,
  idleTimeoutSeconds: 60,
  frameTimeoutSeconds: 15,
  drainSeconds: 10,
  writeDelayMs: 0,
  /** Accept queue asked of Linux (capped by net.core.somaxconn); uSockets alone gives 512 (listen-backlog.ts). */
  listenBacklog: 4096,
  presenceTtlSeconds: 30,
  sseKeepaliveMs: 15_000,
  compression: "off" as CompressionMode,
} as const;

/** Shortest IPV6_LIMIT_PREFIX: a /32 is a whole provider allocation; shorter would lump unrelated clients together. */
export const IPV6_LIMIT_PREFIX_MIN = 32;

/**
 * host (undefined = every interface, IPv4 and IPv6), port, metricsPort (a
 * separate port for /healthz, /readyz and /metrics; undefined = the main
 * port), drainSeconds (1001 closes are spread over it), logLevel, and the
 * NATS section: shared with the publisher (packages/core config-sections).
 */
export interface GatewayConfig extends ServeSection<string | undefined>, NatsSection {
  auth: AuthConfig;
  origins: OriginPolicy;
  trustedProxies: TrustedProxies;
  maxConnections: number;
  /** Accept queue of the WebSocket port (0 = keep uSockets' 512): connections a storm can queue before Linux drops SYNs. */
  listenBacklog: number;
  maxConnectionsPerIp: number;
  /** Per `sub` on this process (0 = off): with the frame cap, bounds what one token holder can make it buffer. */
  maxConnectionsPerUser: number;
  /** MAX_CONNECTIONS_PER_IP counts IPv6 clients per network of this many bits (128 = per address). */
  ipv6LimitPrefix: number;
  maxPayloadBytes: number;
  maxChannelsPerConnection: number;
  rateLimitPerSecond: number;
  rateLimitBurst: number;
  slowConsumerBytes: number;
  idleTimeoutSeconds: number;
  /**
   * Every connection must complete an inbound frame (a message, or the pong
   * to a ping the gateway sends after this long of quiet) within this many
   * seconds, or it is closed with 1008: a stalled or trickled partial frame
   * cannot pin its buffer. 0 = off.
   */
  frameTimeoutSeconds: number;
  /**
   * Broadcast frames are held up to this long and written together: one
   * send() per socket for all of them instead of one per frame. 0 = at once.
   */
  writeDelayMs: number;
  /** When set, the fd soft limit must be at least this (checked at start). */
  minOpenFiles: number | undefined;
  /** A gateway not heard from for this long is taken for dead: its presence members leave. */
  presenceTtlSeconds: number;
  /** Time between `: keepalive` comments on every SSE stream (one timer for all), so proxies do not cut idle streams. */
  sseKeepaliveMs: number;
  /** COMPRESSION: permessage-deflate for WebSocket (inflated frames stay bounded by MAX_PAYLOAD_BYTES). */
  compression: CompressionMode;
}

export function readGatewayConfig(env: Env): GatewayConfig {
  const d = GATEWAY_DEFAULTS;
  const idleTimeoutSeconds = read.int(env, "IDLE_TIMEOUT_SECONDS", d.idleTimeoutSeconds, 0, 960);
  if (idleTimeoutSeconds !== 0 && idleTimeoutSeconds < 8) {
    throw new ConfigError("IDLE_TIMEOUT_SECONDS", "must be 0 (off) or at least 8 (uWebSockets.js resolution is 4 s)");
  }
  const minOpenFiles = env["MIN_OPEN_FILES"] === undefined || env["MIN_OPEN_FILES"] === ""
    ? undefined
    : read.int(env, "MIN_OPEN_FILES", 0, 1, 100_000_000);
  return {
    ...readServeSection(env, { hostVariable: "GATEWAY_HOST", portVariable: "GATEWAY_PORT", host: undefined, port: d.port, drainSeconds: d.drainSeconds }),
    ...readNatsSection(env, { natsName: d.natsName }),
    auth: readAuthConfig(env),
    origins: OriginPolicy.parse(read.list(env, "ALLOWED_ORIGINS"), "ALLOWED_ORIGINS"),
    trustedProxies: TrustedProxies.parse(read.list(env, "TRUSTED_PROXIES"), "TRUSTED_PROXIES"),
    maxConnections: read.int(env, "MAX_CONNECTIONS", d.maxConnections, 1, 10_000_000),
    listenBacklog: read.int(env, "LISTEN_BACKLOG", d.listenBacklog, 0, 65_535),
    maxConnectionsPerIp: read.int(env, "MAX_CONNECTIONS_PER_IP", d.maxConnectionsPerIp, 0, 10_000_000),
    maxConnectionsPerUser: read.int(env, "MAX_CONNECTIONS_PER_USER", d.maxConnectionsPerUser, 0, 10_000_000),
    ipv6LimitPrefix: read.int(env, "IPV6_LIMIT_PREFIX", d.ipv6LimitPrefix, IPV6_LIMIT_PREFIX_MIN, 128),
    maxPayloadBytes: read.int(env, "MAX_PAYLOAD_BYTES", d.maxPayloadBytes, 256, 16 * 1024 * 1024),
    maxChannelsPerConnection: read.int(env, "MAX_CHANNELS_PER_CONNECTION", d.maxChannelsPerConnection, 1, 100_000),
    rateLimitPerSecond: read.num(env, "RATE_LIMIT_PER_SECOND", d.rateLimitPerSecond, 0.1, 1_000_000),
    rateLimitBurst: read.int(env, "RATE_LIMIT_BURST", d.rateLimitBurst, 1, 1_000_000),
    slowConsumerBytes: read.int(env, "SLOW_CONSUMER_BYTES", d.slowConsumerBytes, 16 * 1024, 1024 * 1024 * 1024),
    idleTimeoutSeconds,
    frameTimeoutSeconds: read.int(env, "FRAME_TIMEOUT_SECONDS", d.frameTimeoutSeconds, 0, 3600),
    writeDelayMs: read.int(env, "WRITE_DELAY_MS", d.writeDelayMs, 0, 1000),
    compression: read.oneOf(env, "COMPRESSION", d.compression, COMPRESSION_MODES),
    minOpenFiles,
    presenceTtlSeconds: read.int(env, "PRESENCE_TTL_SECONDS", d.presenceTtlSeconds, 1, 3600),
    sseKeepaliveMs: read.int(env, "SSE_KEEPALIVE_MS", d.sseKeepaliveMs, 100, 600_000),
  };
}
