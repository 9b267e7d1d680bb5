/**
 * Who may publish what.
 *
 * Credentials arrive as `Authorization: Bearer <credential>` and are either
 * the static PUBLISHER_API_KEY (full rights) or a JWT checked by the shared
 * TokenVerifier.
 *
 * - Channel routes: the token's `publish` claim must cover the channel
 *   (NATS wildcard patterns, as on the gateway).
 * - User routes (`/v1/users/{sub}/messages`): a token needs the LITERAL
 *   entry `user:*` (any user) or `user:<sub>` (that user) in its `publish`
 *   claim. Channel patterns never grant direct messages, not even `>`:
 *   direct messages bypass channel authorization on the gateway, so they
 *   must be granted on purpose. `:` is not a valid channel character, so a
 *   `user:` entry can never be mistaken for (or match) a channel.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { AuthError, TokenVerifier, type AuthConfig, type Identity } from "@herald/core";
import { HttpError } from "./http-error.js";

export type Principal =
  | { readonly kind: "api-key"; readonly sub: "api-key" }
  | {
      readonly kind: "token";
      readonly sub: string;
      readonly identity: Identity;
      /** The raw `publish` claim, for the literal `user:` entries. */
      readonly publishClaim: readonly string[];
    };

export const USER_GRANT_PREFIX = "user:";
export const ALL_USERS_GRANT = "user:*";

const CHALLENGE = 'Bearer realm="herald"';
const BEARER = /^Bearer +([^\s]+) *$/i;

function unauthorized(message: string, error?: "invalid_token"): HttpError {
  const challenge = error ? `${CHALLENGE}, error="${error}"` : CHALLENGE;
  return new HttpError(401, "unauthorized", message, { "WWW-Authenticate": challenge });
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

export class Authenticator {
  private readonly apiKeyDigest: Buffer | undefined;
  private readonly verifier: TokenVerifier | undefined;

  constructor(opts: { apiKey?: string; auth?: AuthConfig; verifier?: TokenVerifier }) {
    this.apiKeyDigest = opts.apiKey !== undefined ? digest(opts.apiKey) : undefined;
    this.verifier = opts.verifier ?? (opts.auth ? new TokenVerifier(opts.auth) : undefined);
  }

  /** Resolves the caller or throws a 401 HttpError. Never logs or echoes the credential. */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (authorization === undefined || authorization.trim() === "") {
      throw unauthorized("missing bearer token");
    }
    const credential = BEARER.exec(authorization)?.[1];
    if (credential === undefined) throw unauthorized("Authorization must be 'Bearer <token>'", "invalid_token");

    if (this.apiKeyDigest && timingSafeEqual(digest(credential), this.apiKeyDigest)) {
      return { kind: "api-key", sub: "api-key" };
    }
    if (!this.verifier) throw unauthorized("invalid API key", "invalid_token");

    let identity: Identity;
    try {
      identity = await this.verifier.verify(credential);
    } catch (err) {
      if (err instanceof AuthError) {
        throw unauthorized(err.reason === "expired_token" ? "token expired" : "invalid token", "invalid_token");
      }
      throw err;
    }
    // The signature is verified; decoding again only reads the raw claim.
    return { kind: "token", sub: identity.sub, identity, publishClaim: identity.publishClaim };
  }

  canPublishToChannel(principal: Principal, channel: string): boolean {
    return principal.kind === "api-key" || principal.identity.publish.matches(channel);
  }

  canPublishToUser(principal: Principal, sub: string): boolean {
    if (principal.kind === "api-key") return true;
    return principal.publishClaim.some((p) => p === ALL_USERS_GRANT || p === USER_GRANT_PREFIX + sub);
  }
}
