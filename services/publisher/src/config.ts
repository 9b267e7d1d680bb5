/**
 * Publisher settings (README "Settings"), read and validated
 * once at start. Every failure is a ConfigError naming the variable, so a bad
 * deployment stops with `config error: MAX_BODY_BYTES: ...` instead of
 * misbehaving later.
 */
import {
  ConfigError,
  LOG_LEVELS,
  isValidSubjectPrefix,
  read,
  readAuthConfig,
  readHistoryConfig,
  type HistoryConfig,
  type AuthConfig,
  type Env,
  type LogLevel,
} from "@herald/core";

export const PUBLISHER_DEFAULTS = {
  host: "0.0.0.0",
  port: 8081,
  natsName: "herald-publisher",
  subjectPrefix: "herald",
  maxBodyBytes: 65536,
  logLevel: "info",
  drainSeconds: 5,
} as const satisfies {
  host: string;
  port: number;
  natsName: string;
  subjectPrefix: string;
  maxBodyBytes: number;
  logLevel: LogLevel;
  drainSeconds: number;
};

/** Limits of the settings (not defaults): validated bounds. */
export const PUBLISHER_LIMITS = {
  /** NATS' max_payload can be raised to 64 MiB; a larger body could never be published. */
  maxBodyBytes: 64 * 1024 * 1024,
  minApiKeyLength: 16,
  maxApiKeyLength: 4096,
  maxDrainSeconds: 300,
} as const;

export interface PublisherConfig {
  host: string;
  port: number;
  /** When set, /healthz, /readyz and /metrics are also served on this port. */
  metricsPort?: number;
  /** NATS servers; empty means the in-process memory broker. */
  natsServers: string[];
  natsName: string;
  subjectPrefix: string;
  /** History stream settings; must match the gateways'. */
  history: HistoryConfig;
  /** Static key accepted as `Authorization: Bearer <key>`; full publish rights. */
  apiKey?: string;
  /** JWT settings; absent when only the API key is configured. */
  auth?: AuthConfig;
  maxBodyBytes: number;
  logLevel: LogLevel;
  /** Upper bound on waiting for in-flight requests at shutdown. */
  drainSeconds: number;
}

/** Variables that select a JWT key; any of them turns JWT auth on. */
const JWT_KEY_VARS = ["JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL"] as const;

export function readPublisherConfig(env: Env): PublisherConfig {
  const subjectPrefix = read.str(env, "SUBJECT_PREFIX", PUBLISHER_DEFAULTS.subjectPrefix);
  if (!isValidSubjectPrefix(subjectPrefix)) {
    throw new ConfigError(
      "SUBJECT_PREFIX",
      `must be dot-separated tokens of A-Z a-z 0-9 _ - (at most 64 characters), got "${subjectPrefix}"`,
    );
  }

  const apiKey = readApiKey(env);
  const auth = readOptionalAuth(env, apiKey !== undefined);

  const config: PublisherConfig = {
    host: read.str(env, "PUBLISHER_HOST", PUBLISHER_DEFAULTS.host),
    port: read.port(env, "PUBLISHER_PORT", PUBLISHER_DEFAULTS.port),
    natsServers: readNatsServers(env),
    history: readHistoryConfig(env),
    natsName: read.str(env, "NATS_NAME", PUBLISHER_DEFAULTS.natsName),
    subjectPrefix,
    maxBodyBytes: read.int(env, "MAX_BODY_BYTES", PUBLISHER_DEFAULTS.maxBodyBytes, 1, PUBLISHER_LIMITS.maxBodyBytes),
    logLevel: read.oneOf(env, "LOG_LEVEL", PUBLISHER_DEFAULTS.logLevel, LOG_LEVELS),
    drainSeconds: read.int(env, "DRAIN_SECONDS", PUBLISHER_DEFAULTS.drainSeconds, 0, PUBLISHER_LIMITS.maxDrainSeconds),
  };
  const metricsPort = read.optionalPort(env, "METRICS_PORT");
  if (metricsPort !== undefined) {
    if (metricsPort === config.port) {
      throw new ConfigError("METRICS_PORT", `must differ from PUBLISHER_PORT (${config.port}); leave it unset to serve metrics on the main port`);
    }
    config.metricsPort = metricsPort;
  }
  if (apiKey !== undefined) config.apiKey = apiKey;
  if (auth !== undefined) config.auth = auth;
  return config;
}

function readApiKey(env: Env): string | undefined {
  const key = read.str(env, "PUBLISHER_API_KEY");
  if (key === undefined) return undefined;
  const { minApiKeyLength, maxApiKeyLength } = PUBLISHER_LIMITS;
  // Never echo the value: it is a credential.
  if (key.length < minApiKeyLength) {
    throw new ConfigError("PUBLISHER_API_KEY", `must be at least ${minApiKeyLength} characters long`);
  }
  if (key.length > maxApiKeyLength) {
    throw new ConfigError("PUBLISHER_API_KEY", `must be at most ${maxApiKeyLength} characters long`);
  }
  if (!/^[\x21-\x7e]+$/.test(key)) {
    throw new ConfigError("PUBLISHER_API_KEY", "must be printable ASCII without spaces (it is sent as a bearer token)");
  }
  return key;
}

/**
 * JWT auth is optional when an API key is set: with no JWT_* variable at all
 * only the API key is accepted. A partial JWT configuration (say JWT_ISSUER
 * without a key) is still an error, reported by readAuthConfig.
 */
function readOptionalAuth(env: Env, haveApiKey: boolean): AuthConfig | undefined {
  const anyJwtVar = Object.keys(env).some((name) => name.startsWith("JWT_") && read.str(env, name) !== undefined);
  if (anyJwtVar) return readAuthConfig(env);
  if (haveApiKey) return undefined;
  throw new ConfigError(
    "PUBLISHER_API_KEY",
    `no way to authenticate publishers: set PUBLISHER_API_KEY and/or one of ${JWT_KEY_VARS.join(", ")}`,
  );
}

const NATS_SCHEMES = new Set(["nats:", "tls:", "ws:", "wss:"]);

function readNatsServers(env: Env): string[] {
  const servers = read.list(env, "NATS_URL");
  for (const server of servers) {
    // nats.js accepts bare host:port as well as URLs.
    const candidate = server.includes("://") ? server : `nats://${server}`;
    let url: URL;
    try {
      url = new URL(candidate);
    } catch {
      throw new ConfigError("NATS_URL", `"${redactUserinfo(server)}" is not a valid server URL`);
    }
    if (!NATS_SCHEMES.has(url.protocol) || url.hostname === "") {
      throw new ConfigError(
        "NATS_URL",
        `"${redactUserinfo(server)}" must be a nats://, tls://, ws:// or wss:// URL (comma-separated list)`,
      );
    }
  }
  return servers;
}

/** NATS URLs may carry user:password@; keep credentials out of error messages. */
function redactUserinfo(server: string): string {
  return server.replace(/\/\/[^@/]*@/, "//[redacted]@");
}
