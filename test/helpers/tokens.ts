/** JWTs for the tests: valid ones and every flavour of forged one. */
import { randomBytes } from "node:crypto";
import { SignJWT, exportSPKI, generateKeyPair, type CryptoKey, type JWTPayload, type KeyObject } from "jose";

/** A random HS256 secret (64 characters, well above the 32-byte minimum). */
export const TEST_SECRET = randomBytes(48).toString("base64url");

export interface Claims extends JWTPayload {
  sub?: string;
  channels?: string[];
  publish?: string[];
}

export interface TokenOptions {
  /** Secret for HS256 (default TEST_SECRET). */
  secret?: string | Uint8Array;
  /** Seconds from now for `exp` when the claims carry none (default 3600). */
  expiresInSeconds?: number;
  /** Leave `exp` out entirely. */
  noExp?: boolean;
  /** Header `alg` (default HS256 / RS256). */
  alg?: string;
  kid?: string;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

function payloadOf(claims: Claims, opts: TokenOptions): JWTPayload {
  const payload: JWTPayload = { ...claims };
  if (opts.noExp) delete payload.exp;
  else if (payload.exp === undefined) payload.exp = nowSeconds() + (opts.expiresInSeconds ?? 3600);
  if (payload.iat === undefined) payload.iat = nowSeconds();
  return payload;
}

export async function hsToken(claims: Claims, opts: TokenOptions = {}): Promise<string> {
  const secret = opts.secret ?? TEST_SECRET;
  const key = typeof secret === "string" ? new TextEncoder().encode(secret) : secret;
  const header = { alg: opts.alg ?? "HS256", typ: "JWT", ...(opts.kid ? { kid: opts.kid } : {}) };
  return new SignJWT(payloadOf(claims, opts)).setProtectedHeader(header).sign(key);
}

export interface RsKeys {
  privateKey: CryptoKey | KeyObject;
  publicKey: CryptoKey | KeyObject;
  /** SPKI PEM of the public key, as JWT_PUBLIC_KEY takes it. */
  publicPem: string;
}

export async function rsKeys(): Promise<RsKeys> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  return { privateKey, publicKey, publicPem: await exportSPKI(publicKey) };
}

export async function rsToken(privateKey: CryptoKey | KeyObject, claims: Claims, opts: TokenOptions = {}): Promise<string> {
  const header = { alg: opts.alg ?? "RS256", typ: "JWT", ...(opts.kid ? { kid: opts.kid } : {}) };
  return new SignJWT(payloadOf(claims, opts)).setProtectedHeader(header).sign(privateKey);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value), "utf8").toString("base64url");
}

/** An unsecured JWT: `{"alg":"none"}` header, claims, empty signature. */
export function noneToken(claims: Claims, opts: TokenOptions = {}): string {
  return `${b64url({ alg: "none", typ: "JWT" })}.${b64url(payloadOf(claims, opts))}.`;
}

/** The classic key-confusion forgery: HS256 "signed" with the RSA public key PEM as the HMAC secret. */
export async function hsRsConfusionToken(publicKeyPem: string, claims: Claims, opts: TokenOptions = {}): Promise<string> {
  return hsToken(claims, { ...opts, secret: new TextEncoder().encode(publicKeyPem) });
}

/** Same token with one signature character changed in the middle (so the decoded bytes really differ). */
export function tamper(token: string): string {
  const parts = token.split(".");
  const sig = parts[2] ?? "";
  if (sig.length < 4) throw new Error("tamper() needs a signed token");
  const i = Math.floor(sig.length / 2);
  const c = sig[i] === "A" ? "B" : "A";
  parts[2] = sig.slice(0, i) + c + sig.slice(i + 1);
  return parts.join(".");
}

/** Same signature, but the payload rewritten (e.g. to escalate channels). */
export function forgePayload(token: string, claims: Claims): string {
  const parts = token.split(".");
  return `${parts[0]}.${b64url(claims)}.${parts[2] ?? ""}`;
}
