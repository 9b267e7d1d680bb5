/**
 * JWT verification shared by gateway and publisher (DESIGN.md "Connecting").
 * Algorithms come from an allow-list only; `none` is never accepted (jose
 * refuses unsecured tokens in jwtVerify); HMAC algorithms can only be checked
 * against JWT_SECRET and asymmetric ones only against the public key or JWKS,
 * which rules out HS/RS key confusion.
 */
import { createHash, createPublicKey, webcrypto, type KeyObject } from "node:crypto";

type CryptoKey = webcrypto.CryptoKey;
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTVerifyGetKey, type JWTPayload } from "jose";
import { ChannelPatterns } from "./channels.js";
import * as read from "./config.js";
import type { Env } from "./env.js";
import { AuthError, ConfigError } from "./errors.js";

const HMAC_ALGS = ["HS256", "HS384", "HS512"] as const;
const ASYMMETRIC_ALGS = [
  "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
] as const;
const KNOWN_ALGS: readonly string[] = [...HMAC_ALGS, ...ASYMMETRIC_ALGS];
const MIN_SECRET_BYTES = 32;

export interface AuthConfig {
  secret?: string;
  publicKeyPem?: string;
  jwksUrl?: string;
  algorithms: string[];
  issuer?: string;
  audience?: string;
  clockToleranceSeconds: number;
  /** JWKS fetch timeout; failures fail closed (the token is refused). */
  jwksTimeoutMs: number;
}

export const AUTH_DEFAULTS = {
  clockToleranceSeconds: 5,
  jwksTimeoutMs: 5000,
} as const;

export function readAuthConfig(env: Env): AuthConfig {
  const secret = read.str(env, "JWT_SECRET");
  const publicKeyPem = read.str(env, "JWT_PUBLIC_KEY")?.replace(/\\n/g, "\n");
  const jwksUrl = read.url(env, "JWT_JWKS_URL");
  if (!secret && !publicKeyPem && !jwksUrl) {
    throw new ConfigError("JWT_SECRET", "one of JWT_SECRET, JWT_PUBLIC_KEY or JWT_JWKS_URL must be set");
  }
  if (secret && Buffer.byteLength(secret) < MIN_SECRET_BYTES) {
    throw new ConfigError("JWT_SECRET", `must be at least ${MIN_SECRET_BYTES} bytes long`);
  }
  if (publicKeyPem && jwksUrl) {
    throw new ConfigError("JWT_JWKS_URL", "set either JWT_PUBLIC_KEY or JWT_JWKS_URL, not both");
  }
  const defaults = secret ? ["HS256"] : ["RS256", "ES256", "EdDSA"];
  const algorithms = read.list(env, "JWT_ALGORITHMS");
  const algs = algorithms.length > 0 ? algorithms : defaults;
  for (const alg of algs) {
    if (!KNOWN_ALGS.includes(alg)) {
      throw new ConfigError("JWT_ALGORITHMS", `unsupported algorithm "${alg}" (allowed: ${KNOWN_ALGS.join(", ")})`);
    }
    if (isHmac(alg) && !secret) throw new ConfigError("JWT_ALGORITHMS", `${alg} needs JWT_SECRET`);
    if (!isHmac(alg) && !publicKeyPem && !jwksUrl) {
      throw new ConfigError("JWT_ALGORITHMS", `${alg} needs JWT_PUBLIC_KEY or JWT_JWKS_URL`);
    }
  }
  if (publicKeyPem) {
    try {
      createPublicKey(publicKeyPem);
    } catch (err) {
      throw new ConfigError("JWT_PUBLIC_KEY", `is not a valid PEM public key (${(err as Error).message})`);
    }
  }
  const config: AuthConfig = {
    algorithms: algs,
    clockToleranceSeconds: read.int(env, "JWT_CLOCK_TOLERANCE_SECONDS", AUTH_DEFAULTS.clockToleranceSeconds, 0, 300),
    jwksTimeoutMs: read.int(env, "JWT_JWKS_TIMEOUT_MS", AUTH_DEFAULTS.jwksTimeoutMs, 100, 60000),
  };
  if (secret) config.secret = secret;
  if (publicKeyPem) config.publicKeyPem = publicKeyPem;
  if (jwksUrl) config.jwksUrl = jwksUrl;
  const issuer = read.str(env, "JWT_ISSUER");
  const audience = read.str(env, "JWT_AUDIENCE");
  if (issuer) config.issuer = issuer;
  if (audience) config.audience = audience;
  return config;
}

function isHmac(alg: string): boolean {
  return alg.startsWith("HS");
}

/** What a verified token grants. */
export interface Identity {
  sub: string;
  /** Patterns of channels the user may subscribe to. */
  channels: ChannelPatterns;
  /** Patterns of channels the user may publish to. */
  publish: ChannelPatterns;
  /** The `publish` claim as given (the publisher reads its `user:` grants). */
  publishClaim: readonly string[];
  /** Expiry, epoch milliseconds. */
  expiresAt: number;
}

/** Verified tokens kept so reconnects and connect storms skip the crypto. */
const CACHE_MAX_ENTRIES = 10_000;
/** A cached verification is re-done after this long (e.g. to notice a key removed from the JWKS). */
const CACHE_TTL_MS = 5 * 60_000;

const HMAC_HASH: Record<string, string> = { HS256: "SHA-256", HS384: "SHA-384", HS512: "SHA-512" };

export class TokenVerifier {
  private readonly getKey: JWTVerifyGetKey;
  /** sha256(token) -> identity and when the cached answer lapses (insertion order = age). */
  private readonly cache = new Map<string, { identity: Identity; until: number }>();

  constructor(private readonly config: AuthConfig) {
    const secret = config.secret ? new TextEncoder().encode(config.secret) : undefined;
    const publicKey: KeyObject | undefined = config.publicKeyPem ? createPublicKey(config.publicKeyPem) : undefined;
    // The HMAC key is imported into WebCrypto once per algorithm; handing jose
    // raw bytes would import it again on every verification.
    const hmacKeys = new Map<string, Promise<CryptoKey>>();
    const hmacKey = (alg: string, raw: Uint8Array): Promise<CryptoKey> => {
      let key = hmacKeys.get(alg);
      if (!key) {
        key = webcrypto.subtle.importKey("raw", raw, { name: "HMAC", hash: HMAC_HASH[alg] ?? "SHA-256" }, false, ["verify"]);
        hmacKeys.set(alg, key);
      }
      return key;
    };
    // jose's remote JWK set caches keys, keeps one fetch in flight, applies the
    // timeout and throws on failure, so a JWKS outage refuses tokens (fails closed).
    const jwks = config.jwksUrl
      ? createRemoteJWKSet(new URL(config.jwksUrl), {
          timeoutDuration: config.jwksTimeoutMs,
          cooldownDuration: 30_000,
          cacheMaxAge: 10 * 60_000,
        })
      : undefined;
    this.getKey = async (header, token) => {
      const alg = header.alg ?? "";
      if (isHmac(alg)) {
        if (!secret) throw new AuthError("invalid_token", "HMAC tokens are not accepted");
        return hmacKey(alg, secret);
      }
      if (publicKey) return publicKey;
      if (jwks) return jwks(header, token);
      throw new AuthError("invalid_token", "asymmetric tokens are not accepted");
    };
  }

  async verify(token: string): Promise<Identity> {
    if (!token) throw new AuthError("missing_token", "no token");
    const now = Date.now();
    // Keyed by a digest: the cache need not keep every token string alive.
    const key = createHash("sha256").update(token).digest("base64");
    const cached = this.cache.get(key);
    if (cached) {
      if (now < cached.until) {
        if (now >= cached.identity.expiresAt + this.config.clockToleranceSeconds * 1000) {
          this.cache.delete(key);
          throw new AuthError("expired_token", "token expired");
        }
        return cached.identity;
      }
      this.cache.delete(key);
    }
    const identity = await this.verifyUncached(token);
    if (this.cache.size >= CACHE_MAX_ENTRIES) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(key, { identity, until: now + CACHE_TTL_MS });
    return identity;
  }

  private async verifyUncached(token: string): Promise<Identity> {
    let payload: JWTPayload;
    try {
      const options: Parameters<typeof jwtVerify>[2] = {
        algorithms: this.config.algorithms,
        clockTolerance: this.config.clockToleranceSeconds,
        requiredClaims: ["exp", "sub"],
      };
      if (this.config.issuer) options.issuer = this.config.issuer;
      if (this.config.audience) options.audience = this.config.audience;
      ({ payload } = await jwtVerify(token, this.getKey, options));
    } catch (err) {
      if (err instanceof AuthError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new AuthError("expired_token", "token expired", { cause: err });
      const code = (err as { code?: string }).code ?? "ERR_UNKNOWN";
      throw new AuthError("invalid_token", `token rejected (${code})`, { cause: err });
    }
    return identityFrom(payload);
  }
}

function identityFrom(payload: JWTPayload): Identity {
  const { sub, exp } = payload;
  if (typeof sub !== "string" || sub.length === 0 || sub.length > 256) {
    throw new AuthError("invalid_token", "sub claim must be a non-empty string of at most 256 characters");
  }
  if (typeof exp !== "number") throw new AuthError("invalid_token", "exp claim is required");
  const publishClaim = stringArray(payload["publish"], "publish");
  return {
    sub,
    channels: ChannelPatterns.of(stringArray(payload["channels"], "channels")),
    publish: ChannelPatterns.of(publishClaim),
    publishClaim,
    expiresAt: exp * 1000,
  };
}

function stringArray(value: unknown, claim: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new AuthError("invalid_token", `${claim} claim must be an array of strings`);
  }
  return value as string[];
}
