/**
 * Publisher settings (README "Settings"), read and validated
 * once at start. Every failure is a ConfigError naming the variable, so a bad
 * deployment stops with `config error: MAX_BODY_BYTES: ...` instead of
 * misbehaving later.
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

export const PUBLISHER_DEFAULTS = {
  host: "0.0.0.0",
  port: 8081,
  natsName: "herald-publisher",
  maxBodyBytes: 65536,
  drainSeconds: 5,
  controlTimeoutMs: 1000,
} as const;

/** Limits of the settings (not defaults): validated bounds. */
export const PUBLISHER_LIMITS = {
  /** NATS' max_payload can be raised to 64 MiB; a larger body could never be published. */
  maxBodyBytes: 64 * 1024 * 1024,
  minApiKeyLength: 16,
  maxApiKeyLength: 4096,
} as const;

/**
 * host, port, metricsPort (when set, /healthz, /readyz and /metrics are also
 * served there), drainSeconds (the longest wait for in-flight requests at
 * shutdown), logLevel, and the NATS section: shared with the gateway
 * (packages/core config-sections).
 */
export interface PublisherConfig extends ServeSection<string>, NatsSection {
  /** Static key accepted as `Authorization: Bearer <key>`; full publish rights. */
  apiKey?: string;
  /** JWT settings; absent when only the API key is configured. */
  auth?: AuthConfig;
  maxBodyBytes: number;
  /** CONTROL_TIMEOUT_MS: how long a server API request waits for the gateways' answers at most. */
  controlTimeoutMs: number;
}

/** Variables that select a JWT key; any of them turns JWT auth on. */
const JWT_KEY_VARS = ["JWT_SECRET", "JWT_PUBLIC_KEY", "JWT_JWKS_URL"] as const;

export function readPublisherConfig(env: Env): PublisherConfig {
  const d = PUBLISHER_DEFAULTS;
  const serve = readServeSection(env, { hostVariable: "PUBLISHER_HOST", portVariable: "PUBLISHER_PORT", host: d.host, port: d.port, drainSeconds: d.drainSeconds });
  const nats = readNatsSection(env, { natsName: d.natsName });
  const apiKey = readApiKey(env);
  const auth = readOptionalAuth(env, apiKey !== undefined);

  const config: PublisherConfig = {
    ...serve,
    ...nats,
    maxBodyBytes: read.int(env, "MAX_BODY_BYTES", d.maxBodyBytes, 1, PUBLISHER_LIMITS.maxBodyBytes),
    controlTimeoutMs: read.int(env, "CONTROL_TIMEOUT_MS", d.controlTimeoutMs, 50, 30_000),
  };
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
