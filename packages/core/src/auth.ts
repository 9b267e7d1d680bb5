/**
 * JWT verification shared by gateway and publisher (DESIGN.md "Connecting").
 * Algorithms come from an allow-list only; `none` is never accepted (jose
 * refuses unsecured tokens in jwtVerify); HMAC algorithms can only be checked
 * against JWT_SECRET and asymmetric ones only against the public key or JWKS,
 * which rules out HS/RS key confusion.
 */
import { createHash, createPublicKey, webcrypto, type KeyObject } from "node:crypto";

type CryptoKey = webcrypto.CryptoKey;
import { createRemoteJWKSet, decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTVerifyGetKey, type JWTPayload } from "jose";
import { identityFrom, type Identity } from "./claims.js";
import * as read from "./config.js";
import type { Env } from "./env.js";
import { AuthError, ConfigError } from "./errors.js";
import { isHmac, keyFits, quoteClaimValue, verifyWithStaticKey, type StaticKeys } from "./static-key-jws.js";

export { quoteClaimValue } from "./static-key-jws.js";
export { USER_GRANT_PREFIX, type Identity } from "./claims.js";

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


/** Verified tokens kept so reconnects and connect storms skip the crypto. */
const CACHE_MAX_ENTRIES = 10_000;
/** A cached verification is re-done after this long (e.g. to notice a key removed from the JWKS). */
const CACHE_TTL_MS = 5 * 60_000;

const HMAC_HASH: Record<string, string> = { HS256: "SHA-256", HS384: "SHA-384", HS512: "SHA-512" };

export class TokenVerifier {
  private readonly getKey: JWTVerifyGetKey;
  /** Set unless keys come from a JWKS: then tokens are checked synchronously (static-key-jws.ts). */
  private readonly staticKeys: StaticKeys | undefined;
  /** sha256(token) -> identity and when the cached answer lapses (insertion order = age). */
  private readonly cache = new Map<string, { identity: Identity; until: number }>();

  constructor(private readonly config: AuthConfig) {
    const secret = config.secret ? new TextEncoder().encode(config.secret) : undefined;
    const publicKey: KeyObject | undefined = config.publicKeyPem ? createPublicKey(config.publicKeyPem) : undefined;
    this.staticKeys = config.jwksUrl
      ? undefined
      : {
          secret: config.secret ? Buffer.from(config.secret) : undefined,
          publicKey,
          algorithms: config.algorithms,
          clockToleranceSeconds: config.clockToleranceSeconds,
          issuer: config.issuer,
          audience: config.audience,
        };
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
        if (!secret) throw new AuthError("algorithm_not_allowed", "HMAC-signed tokens are not accepted here");
        return hmacKey(alg, secret);
      }
      if (publicKey) {
        if (!keyFits(alg, publicKey)) {
          throw new AuthError("algorithm_not_allowed", `token algorithm ${alg} does not fit the configured public key`);
        }
        return publicKey;
      }
      if (jwks) {
        try {
          return await jwks(header, token);
        } catch (err) {
          if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
            throw new AuthError("key_unavailable", "no key of the JWKS matches the token's kid and alg", { cause: err });
          }
          throw new AuthError("key_unavailable", "the signing keys (JWKS) could not be fetched; retry later", { cause: err });
        }
      }
      throw new AuthError("algorithm_not_allowed", "asymmetrically signed tokens are not accepted here");
    };
  }

  /** True when verifySync can answer (static keys; JWKS keys are fetched). */
  get synchronous(): boolean {
    return this.staticKeys !== undefined;
  }

  async verify(token: string): Promise<Identity> {
    if (this.staticKeys) return this.verifySync(token);
    const now = Date.now();
    const key = this.cacheKey(token);
    const cached = this.cached(key, now);
    if (cached) return cached;
    return this.remember(key, await this.verifyUncached(token), now);
  }

  /** Synchronous verification; only when `synchronous` (throws otherwise). */
  verifySync(token: string): Identity {
    const keys = this.staticKeys;
    if (!keys) throw new Error("verifySync needs static keys (JWT_SECRET or JWT_PUBLIC_KEY), not a JWKS");
    const now = Date.now();
    // An HMAC check costs about what the cache's own digest of the token
    // costs, and a cache entry per connection is memory: with only a secret,
    // every token is checked. Signature checks with a public key cost ten
    // times more, so those answers are kept.
    if (!keys.publicKey) {
      if (!token) throw new AuthError("missing", "no token");
      return identityFrom(verifyWithStaticKey(token, keys, now));
    }
    const key = this.cacheKey(token);
    const cached = this.cached(key, now);
    if (cached) return cached;
    return this.remember(key, identityFrom(verifyWithStaticKey(token, keys, now)), now);
  }

  /** Keyed by a digest: the cache need not keep every token string alive. */
  private cacheKey(token: string): string {
    if (!token) throw new AuthError("missing", "no token");
    return createHash("sha256").update(token).digest("base64");
  }

  private cached(key: string, now: number): Identity | undefined {
    const cached = this.cache.get(key);
    if (!cached) return undefined;
    if (now >= cached.until) {
      this.cache.delete(key);
      return undefined;
    }
    if (now >= cached.identity.expiresAt + this.config.clockToleranceSeconds * 1000) {
      this.cache.delete(key);
      throw new AuthError("expired", "token has expired");
    }
    return cached.identity;
  }

  private remember(key: string, identity: Identity, now: number): Identity {
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
      throw refusalOf(err, token);
    }
    return identityFrom(payload);
  }
}

/** The token's header `alg`, for a message (undefined when the header does not decode). */
function headerAlg(token: string): string | undefined {
  try {
    const alg = decodeProtectedHeader(token).alg;
    return typeof alg === "string" ? alg : undefined;
  } catch {
    return undefined;
  }
}

/** Maps what jose (or our key lookup) threw to a refusal with a reason and a short human sentence. */
function refusalOf(err: unknown, token: string): AuthError {
  if (err instanceof AuthError) return err;
  const cause = { cause: err };
  if (err instanceof joseErrors.JWTExpired) {
    return new AuthError("expired", "token has expired", cause);
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const claim = err.claim;
    if (err.reason === "missing") return new AuthError("missing_claim", `token has no '${claim}' claim, which is required`, cause);
    if (err.reason === "invalid") return new AuthError("invalid_claim", `token claim '${claim}' must be a number (seconds since the epoch)`, cause);
    if (claim === "nbf") return new AuthError("not_yet_valid", "token is not valid yet ('nbf' is in the future)", cause);
    if (claim === "iat") return new AuthError("not_yet_valid", "token was issued in the future ('iat')", cause);
    if (claim === "iss") return new AuthError("wrong_issuer", "token issuer ('iss') is not the one this server accepts", cause);
    if (claim === "aud") return new AuthError("wrong_audience", "token audience ('aud') does not include this server", cause);
    return new AuthError("invalid_claim", `token claim '${claim}' is not accepted`, cause);
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) {
    const alg = headerAlg(token);
    return new AuthError(
      "algorithm_not_allowed",
      alg === undefined ? "token algorithm is not allowed" : `token algorithm ${quoteClaimValue(alg)} is not allowed`,
      cause,
    );
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new AuthError("bad_signature", "token signature does not verify", cause);
  }
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) {
    return new AuthError("key_unavailable", "no key of the JWKS matches the token's kid and alg", cause);
  }
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) {
    return new AuthError("key_unavailable", "the signing keys (JWKS) could not be fetched; retry later", cause);
  }
  if (err instanceof joseErrors.JWTInvalid) {
    return new AuthError("malformed", "token claims are not a JSON object", cause);
  }
  // JWSInvalid (not three parts, bad base64url, header not JSON, no alg),
  // JOSENotSupported (unknown crit header), and anything unforeseen.
  return new AuthError("malformed", "token is not a well-formed JWT (three base64url parts: JSON header, JSON claims, signature)", cause);
}

/** RFC 6750 realm of Herald's Bearer challenges. */
export const AUTH_REALM = "herald";

/** RFC 7230 quoted-string, restricted to printable ASCII (anything else becomes '?'). */
function quotedString(text: string): string {
  return `"${text.replace(/[^\x20-\x7e]/g, "?").replace(/["\\]/g, "\\$&")}"`;
}

/**
 * The WWW-Authenticate value of a 401 (RFC 6750 section 3): only the realm
 * when no token was sent, else `error="invalid_token"` and the refusal's
 * message as `error_description`. Messages never carry the token.
 */
export function bearerChallenge(refusal?: { reason: string; message: string }): string {
  const base = `Bearer realm=${quotedString(AUTH_REALM)}`;
  if (refusal === undefined || refusal.reason === "missing") return base;
  return `${base}, error="invalid_token", error_description=${quotedString(refusal.message)}`;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/**
 * The credential of an `Authorization: Bearer <credential>` header value, or
 * undefined for another scheme or "Bearer" alone. The one Bearer rule of both
 * services: the scheme is case-insensitive (RFC 7235) and the credential is
 * one run of non-space characters.
 */
export function bearerCredential(authorization: string): string | undefined {
  return BEARER.exec(authorization)?.[1];
}
