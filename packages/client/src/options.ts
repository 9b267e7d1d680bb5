/** HeraldClient options, parsed once: checked, with every default named here. */
import type { BackoffOptions } from "./backoff.js";
import { HeraldError } from "./errors.js";
import { resolveTransports, type ResolvedTransports } from "./transport-options.js";
import { DEFAULT_FLUSH_PACING, type FlushPacing, type HeraldClientOptions, type TokenProvider } from "./types.js";

/** Every option with its default filled in (the token and the transports are returned beside it). */
export type ClientOptions = Required<Omit<HeraldClientOptions, "WebSocket" | "backoff" | "token" | "flushPacing" | "transports" | "sseUrl" | "fetch">> & {
  backoff: Partial<BackoffOptions>;
  flushPacing: FlushPacing;
};

export interface ResolvedOptions {
  opts: ClientOptions;
  transports: ResolvedTransports;
  token: string | TokenProvider;
}

export function resolveOptions(options: HeraldClientOptions): ResolvedOptions {
  if (!options || typeof options.url !== "string" || options.url === "") {
    throw new HeraldError("invalid_argument", "HeraldClient needs a url (ws:// or wss://)");
  }
  if (typeof options.token !== "string" && typeof options.token !== "function") {
    throw new HeraldError("invalid_argument", "HeraldClient needs a token: a JWT string or a function returning one");
  }
  const transports = resolveTransports(options);
  const opts: ClientOptions = {
    url: options.url,
    backoff: options.backoff ?? {},
    drainReconnectMaxMs: options.drainReconnectMaxMs ?? 5_000,
    rateLimitedDelayMs: options.rateLimitedDelayMs ?? 5_000,
    maxReconnectAttempts: options.maxReconnectAttempts ?? Infinity,
    connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    tokenTimeoutMs: options.tokenTimeoutMs ?? 10_000,
    requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
    pingIntervalMs: options.pingIntervalMs ?? 25_000,
    pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
    refreshLeadMs: options.refreshLeadMs ?? 30_000,
    offlineQueueLimit: options.offlineQueueLimit ?? 100,
    flushPacing: {
      burst: Math.max(1, Math.floor(options.flushPacing?.burst ?? DEFAULT_FLUSH_PACING.burst)),
      perSecond: options.flushPacing?.perSecond !== undefined && options.flushPacing.perSecond > 0 ? options.flushPacing.perSecond : DEFAULT_FLUSH_PACING.perSecond,
    },
    random: options.random ?? Math.random,
  };
  return { opts, transports, token: options.token };
}
