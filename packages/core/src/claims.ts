/**
 * What a verified token grants: its claims read into an Identity, once per
 * verification (auth.ts), by the rules of docs/protocol.md "Claims". A claim
 * that cannot be read exactly refuses the whole token: a grant is never
 * skipped or widened.
 */
import type { JWTPayload } from "jose";
import { ChannelPatterns, channelProblem, patternProblem } from "./channels.js";
import { AuthError } from "./errors.js";
import { quoteClaimValue } from "./static-key-jws.js";

/** What a verified token grants. */
export interface Identity {
  sub: string;
  /** Patterns of channels the user may subscribe to. */
  channels: ChannelPatterns;
  /** Patterns of channels the user may publish to. */
  publish: ChannelPatterns;
  /** The `publish` claim as given (the publisher reads its `user:` grants). */
  publishClaim: readonly string[];
  /**
   * The `subs` claim: concrete channels the gateway subscribes the
   * connection to before its welcome, each once, in the claim's order
   * (empty when the claim is absent or empty).
   */
  subs: readonly string[];
  /** Expiry, epoch milliseconds. */
  expiresAt: number;
  /** The `jti` claim (a token id the server API can revoke), when the token has one. */
  jti?: string;
  /** The `info` claim as compact JSON (a JSON object of at most MAX_INFO_BYTES), shown in presence; absent without the claim. */
  info?: string;
}

/** Largest `info` claim, as compact JSON: presence repeats it for every member. */
export const MAX_INFO_BYTES = 1024;

/** Longest `jti` kept: longer ones cannot be revoked (the server API refuses them too). */
export const MAX_JTI_LENGTH = 256;

/** A `publish` entry granting direct messages to users (read by the publisher), not a channel pattern. */
export const USER_GRANT_PREFIX = "user:";
/** Longest `sub`, and so the longest user in a `user:<sub>` grant. */
const MAX_SUB_LENGTH = 256;

/** The identity a verified token's claims grant; an AuthError (`invalid_claim`, `missing_claim`) when a claim is unusable. */
export function identityFrom(payload: JWTPayload): Identity {
  const { sub, exp } = payload;
  if (typeof sub !== "string" || sub.length === 0 || sub.length > MAX_SUB_LENGTH) {
    throw new AuthError("invalid_claim", `token claim 'sub' must be a non-empty string of at most ${MAX_SUB_LENGTH} characters`);
  }
  if (typeof exp !== "number") throw new AuthError("missing_claim", "token has no 'exp' claim, which is required");
  const channels = patternList(payload["channels"], "channels", false);
  const publishClaim = patternList(payload["publish"], "publish", true);
  const subscribable = ChannelPatterns.of(channels);
  return {
    sub,
    channels: subscribable,
    // `user:` grants are not channels (':' is no channel character) and are left to the publisher.
    publish: ChannelPatterns.of(publishClaim.filter((p) => !p.startsWith(USER_GRANT_PREFIX))),
    publishClaim,
    subs: subsList(payload["subs"], subscribable),
    expiresAt: exp * 1000,
    ...(typeof payload.jti === "string" && payload.jti.length > 0 && payload.jti.length <= MAX_JTI_LENGTH ? { jti: payload.jti } : {}),
    ...infoClaim(payload["info"]),
  };
}

/** The `info` claim: absent, or a JSON object whose compact JSON is at most MAX_INFO_BYTES. */
function infoClaim(value: unknown): { info?: string } {
  if (value === undefined) return {};
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new AuthError("invalid_claim", "token claim 'info' must be a JSON object");
  const info = JSON.stringify(value);
  if (Buffer.byteLength(info) > MAX_INFO_BYTES) {
    throw new AuthError("invalid_claim", `token claim 'info' is ${Buffer.byteLength(info)} bytes as JSON; at most ${MAX_INFO_BYTES}`);
  }
  return { info };
}

/** Shared by every token without the claim. */
const NO_PATTERNS: readonly string[] = Object.freeze([]);

/**
 * A claim that lists channel patterns: absent, or an array of valid patterns
 * (patternProblem). In `publish`, `user:*` and `user:<sub>` (1 to 256
 * characters, matched literally by the publisher) are allowed too. Anything
 * else refuses the whole token: a grant is never skipped or widened.
 */
function patternList(value: unknown, claim: string, userGrants: boolean): readonly string[] {
  if (value === undefined) return NO_PATTERNS;
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new AuthError("invalid_claim", `token claim '${claim}' must be an array of strings`);
  }
  for (const entry of value as string[]) {
    if (userGrants && entry.startsWith(USER_GRANT_PREFIX)) {
      const user = entry.length - USER_GRANT_PREFIX.length;
      if (user === 0 || user > MAX_SUB_LENGTH) {
        throw new AuthError("invalid_claim", `token claim '${claim}' has an invalid user grant: 'user:' must be followed by '*' or a sub of 1 to ${MAX_SUB_LENGTH} characters`);
      }
      continue;
    }
    const problem = patternProblem(entry);
    if (problem !== null) {
      throw new AuthError(
        "invalid_claim",
        entry === "" ? `token claim '${claim}' has an empty pattern` : `token claim '${claim}' has an invalid pattern ${quoteClaimValue(entry)}: ${problem}`,
      );
    }
  }
  return value as string[];
}

/**
 * The `subs` claim: absent, or an array of concrete channels, each valid as
 * a client `subscribe` would name it (channelProblem: no `*` or `>`) and
 * covered by the token's own `channels` patterns, so it grants nothing a
 * client subscribe could not take. A channel listed twice is subscribed
 * once. Limits of the gateway's configuration (MAX_CHANNELS_PER_CONNECTION,
 * namespaces) are checked at its upgrade.
 */
function subsList(value: unknown, channels: ChannelPatterns): readonly string[] {
  if (value === undefined) return NO_PATTERNS;
  if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
    throw new AuthError("invalid_claim", "token claim 'subs' must be an array of strings");
  }
  for (const channel of value as string[]) {
    const problem = channelProblem(channel);
    if (problem !== null) throw new AuthError("invalid_claim", `token claim 'subs' has an invalid channel ${quoteClaimValue(channel)}: ${problem}`);
    if (!channels.matches(channel)) {
      throw new AuthError("invalid_claim", `token claim 'subs' lists ${quoteClaimValue(channel)}, which its 'channels' claim does not allow subscribing to`);
    }
  }
  return value.length === 0 ? NO_PATTERNS : [...new Set(value as string[])];
}
