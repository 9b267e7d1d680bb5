/**
 * Blocked users and revoked tokens, as the server API stores them in a
 * key-value bucket (JetStream KV; the embedded broker's memory) that every
 * gateway watches. One entry per user (`sub`) or token (`jti`), each with the
 * time it lapses (`until`, epoch seconds). Keys carry the id base64url-encoded,
 * since KV keys allow fewer characters than a `sub`.
 */
import { MAX_JTI_LENGTH } from "./claims.js";

/** The longest a block or a revocation may last (the bucket keeps entries a day longer). */
export const REVOCATION_MAX_SECONDS = 366 * 24 * 3600;
/** How long the bucket keeps an entry at most: every `until` lapses before that. */
export const REVOCATION_BUCKET_MAX_AGE_SECONDS = REVOCATION_MAX_SECONDS + 24 * 3600;

export type Revocation = { kind: "user"; sub: string; until: number } | { kind: "token"; jti: string; until: number };

/** The bucket of a deployment: named after its history stream, so deployments sharing a NATS keep theirs apart. */
export function revocationBucket(historyStream: string): string {
  return `${historyStream}_REVOCATIONS`;
}

export function revocationKey(r: { kind: "user"; sub: string } | { kind: "token"; jti: string }): string {
  const id = r.kind === "user" ? r.sub : r.jti;
  return `${r.kind === "user" ? "u" : "t"}.${Buffer.from(id, "utf8").toString("base64url")}`;
}

export function encodeRevocation(r: Revocation): Uint8Array {
  return Buffer.from(JSON.stringify(r));
}

/** Reads an entry back; undefined for anything malformed (a bucket anyone with NATS access could write to). */
export function parseRevocation(value: Uint8Array): Revocation | undefined {
  try {
    const r = JSON.parse(Buffer.from(value).toString("utf8")) as Record<string, unknown>;
    if (typeof r["until"] !== "number" || !Number.isFinite(r["until"])) return undefined;
    if (r["kind"] === "user" && typeof r["sub"] === "string") return { kind: "user", sub: r["sub"], until: r["until"] };
    if (r["kind"] === "token" && typeof r["jti"] === "string") return { kind: "token", jti: r["jti"], until: r["until"] };
  } catch {
    // fall through
  }
  return undefined;
}

/** Why `until` (epoch seconds) is refused; null when it is in the future and within REVOCATION_MAX_SECONDS. */
export function untilProblem(until: unknown, nowSeconds = Date.now() / 1000): string | null {
  if (typeof until !== "number" || !Number.isFinite(until)) return "until must be a number: seconds since the epoch";
  if (until <= nowSeconds) return "until is in the past";
  if (until > nowSeconds + REVOCATION_MAX_SECONDS) return `until is more than ${REVOCATION_MAX_SECONDS / 86400} days away`;
  return null;
}

/** Why a `jti` is refused; null when fine. */
export function jtiProblem(jti: unknown): string | null {
  return typeof jti === "string" && jti.length > 0 && jti.length <= MAX_JTI_LENGTH ? null : `jti must be a string of 1 to ${MAX_JTI_LENGTH} characters`;
}
