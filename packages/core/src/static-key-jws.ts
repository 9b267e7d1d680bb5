/**
 * Synchronous verification of a compact JWT against a static key
 * (JWT_SECRET, JWT_PUBLIC_KEY) with node:crypto, under the rules the jose
 * path applies: algorithm allow-list (never `none`), HMAC only with the
 * secret and asymmetric algorithms only with a fitting public key (no HS/RS
 * confusion), `exp` and `sub` required, `nbf`, `iss`, `aud` and the clock
 * tolerance. JWKS keys stay with jose (they are fetched, so asynchronous).
 *
 * Why synchronous: the gateway can then complete a WebSocket upgrade inside
 * uWS's upgrade handler. An upgrade completed later, from a promise, has to
 * go through `res.cork()`, and uWebSockets.js 20.30 then sometimes reads the
 * freshly upgraded socket's memory as HTTP response state marked
 * "connection: close" and shuts the socket down right after the 101 (the
 * client sees 1006 before its first frame is read).
 */
import { constants, createHmac, timingSafeEqual, verify as cryptoVerify, type KeyObject } from "node:crypto";
import { AuthError } from "./errors.js";

/** The keys and rules of one verifier (from AuthConfig). */
export interface StaticKeys {
  secret: Buffer | undefined;
  publicKey: KeyObject | undefined;
  algorithms: readonly string[];
  clockToleranceSeconds: number;
  issuer: string | undefined;
  audience: string | undefined;
}

const HASH: Record<string, string> = {
  HS256: "sha256", HS384: "sha384", HS512: "sha512",
  RS256: "sha256", RS384: "sha384", RS512: "sha512",
  PS256: "sha256", PS384: "sha384", PS512: "sha512",
  ES256: "sha256", ES384: "sha384", ES512: "sha512",
};
/** ES signatures are r || s, each as long as the curve's coordinates (RFC 7518 §3.4). */
const ES_SIGNATURE_BYTES: Record<string, number> = { ES256: 64, ES384: 96, ES512: 132 };
const EC_CURVES: Record<string, string> = { ES256: "prime256v1", ES384: "secp384r1", ES512: "secp521r1" };
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** Unpadded base64url: its alphabet only, and no length that leaves a lone 6-bit group. */
function isBase64url(part: string): boolean {
  return BASE64URL.test(part) && part.length % 4 !== 1;
}

const MALFORMED = "token is not a well-formed JWT (three base64url parts: JSON header, JSON claims, signature)";

export function isHmac(alg: string): boolean {
  return alg.startsWith("HS");
}

/** Whether a PEM public key can check `alg` at all. */
export function keyFits(alg: string, key: KeyObject): boolean {
  const type = key.asymmetricKeyType;
  if (alg.startsWith("RS")) return type === "rsa";
  if (alg.startsWith("PS")) return type === "rsa" || type === "rsa-pss";
  if (alg.startsWith("ES")) return type === "ec" && key.asymmetricKeyDetails?.namedCurve === EC_CURVES[alg];
  if (alg === "EdDSA") return type === "ed25519" || type === "ed448";
  return false;
}

/**
 * A value from the token for a message: at most 40 characters, printable
 * ASCII without quotes or backslashes (each other character becomes '?'), so
 * it is safe in a WWW-Authenticate quoted-string and a log line.
 */
export function quoteClaimValue(value: string): string {
  const cut = value.length > 40 ? `${value.slice(0, 40)}...` : value;
  return `'${cut.replace(/[^\x20-\x7e]|['"\\]/g, "?")}'`;
}

function decodeJson(part: string): unknown {
  if (part === "" || !isBase64url(part)) throw new AuthError("malformed", MALFORMED);
  try {
    return JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  } catch (err) {
    throw new AuthError("malformed", MALFORMED, { cause: err });
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Decoded and checked headers by their encoded segment. The tokens of one
 * issuer share one header, so a connect storm decodes it once instead of once
 * per connection. Only the key-independent checks are cached (the allow-list
 * is per verifier); bounded, and long segments are not kept.
 */
const HEADER_ALGS = new Map<string, string>();
const HEADER_CACHE_ENTRIES = 64;
const HEADER_CACHE_SEGMENT = 256;

/** The `alg` of a header segment that decodes to a JWS header this server understands. */
function headerAlg(h: string): string {
  const known = HEADER_ALGS.get(h);
  if (known !== undefined) return known;
  const header = decodeJson(h);
  if (!isObject(header) || typeof header["alg"] !== "string") throw new AuthError("malformed", MALFORMED);
  // An extension the verifier must understand (RFC 7515 §4.1.11): none is supported.
  if (header["crit"] !== undefined || header["b64"] !== undefined) {
    throw new AuthError("malformed", "token uses a JWS extension (crit/b64) this server does not support");
  }
  const alg = header["alg"];
  if (h.length <= HEADER_CACHE_SEGMENT) {
    if (HEADER_ALGS.size >= HEADER_CACHE_ENTRIES) HEADER_ALGS.delete(HEADER_ALGS.keys().next().value!);
    HEADER_ALGS.set(h, alg);
  }
  return alg;
}

/** The verified claims of `token`; throws AuthError with the reason otherwise. */
export function verifyWithStaticKey(token: string, keys: StaticKeys, nowMs = Date.now()): Record<string, unknown> {
  // Exactly three parts: found with indexOf, so no array and the signed part is one slice.
  const dot1 = token.indexOf(".");
  const dot2 = dot1 < 0 ? -1 : token.indexOf(".", dot1 + 1);
  if (dot2 < 0 || token.indexOf(".", dot2 + 1) >= 0) throw new AuthError("malformed", MALFORMED);
  const alg = headerAlg(token.slice(0, dot1));
  if (alg === "none" || !keys.algorithms.includes(alg)) {
    throw new AuthError("algorithm_not_allowed", `token algorithm ${quoteClaimValue(alg)} is not allowed`);
  }
  const s = token.slice(dot2 + 1);
  if (!isBase64url(s)) throw new AuthError("malformed", MALFORMED);
  const signature = Buffer.from(s, "base64url");
  if (!signatureValid(alg, token.slice(0, dot2), signature, keys)) throw new AuthError("bad_signature", "token signature does not verify");

  const claims = decodeJson(token.slice(dot1 + 1, dot2));
  if (!isObject(claims)) throw new AuthError("malformed", "token claims are not a JSON object");
  checkClaims(claims, keys, Math.floor(nowMs / 1000));
  return claims;
}

/** `signing` is the token's "header.claims" text; 'latin1' feeds its characters as the bytes they stand for. */
function signatureValid(alg: string, signing: string, signature: Buffer, keys: StaticKeys): boolean {
  if (isHmac(alg)) {
    if (!keys.secret) throw new AuthError("algorithm_not_allowed", "HMAC-signed tokens are not accepted here");
    const expected = createHmac(HASH[alg]!, keys.secret).update(signing, "latin1").digest();
    return expected.length === signature.length && timingSafeEqual(expected, signature);
  }
  const key = keys.publicKey;
  if (!key) throw new AuthError("algorithm_not_allowed", "asymmetrically signed tokens are not accepted here");
  if (!keyFits(alg, key)) throw new AuthError("algorithm_not_allowed", `token algorithm ${alg} does not fit the configured public key`);
  const signed = Buffer.from(signing, "latin1");
  try {
    if (alg === "EdDSA") return cryptoVerify(null, signed, key, signature);
    if (alg.startsWith("PS")) {
      return cryptoVerify(HASH[alg]!, signed, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }, signature);
    }
    if (alg.startsWith("ES")) {
      if (signature.length !== ES_SIGNATURE_BYTES[alg]) return false;
      return cryptoVerify(HASH[alg]!, signed, { key, dsaEncoding: "ieee-p1363" }, signature);
    }
    return cryptoVerify(HASH[alg]!, signed, key, signature);
  } catch {
    return false; // a signature node:crypto cannot even parse does not verify
  }
}

/** jose's claim rules, in jose's order: required claims, iss, aud, then the times. */
function checkClaims(claims: Record<string, unknown>, keys: StaticKeys, now: number): void {
  const required = ["exp", "sub", ...(keys.issuer ? ["iss"] : []), ...(keys.audience ? ["aud"] : [])];
  for (const claim of required) {
    if (claims[claim] === undefined) throw new AuthError("missing_claim", `token has no '${claim}' claim, which is required`);
  }
  if (keys.issuer && claims["iss"] !== keys.issuer) {
    throw new AuthError("wrong_issuer", "token issuer ('iss') is not the one this server accepts");
  }
  if (keys.audience) {
    const aud = claims["aud"];
    const audiences = Array.isArray(aud) ? aud : [aud];
    if (!audiences.includes(keys.audience)) throw new AuthError("wrong_audience", "token audience ('aud') does not include this server");
  }
  const tolerance = keys.clockToleranceSeconds;
  for (const claim of ["iat", "nbf", "exp"]) {
    const v = claims[claim];
    if (v !== undefined && typeof v !== "number") {
      throw new AuthError("invalid_claim", `token claim '${claim}' must be a number (seconds since the epoch)`);
    }
  }
  if (typeof claims["nbf"] === "number" && claims["nbf"] > now + tolerance) {
    throw new AuthError("not_yet_valid", "token is not valid yet ('nbf' is in the future)");
  }
  if ((claims["exp"] as number) <= now - tolerance) throw new AuthError("expired", "token has expired");
}
