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
 *   `user:` entry can never be mistaken for (or match) a channel. The shared
 *   verifier checks every entry (`user:*`, `user:<sub>` of 1 to 256
 *   characters, or a valid channel pattern) and refuses the token otherwise.
 *
 * Every 401 carries `error.reason` (the TokenRefusalReason, or
 * `invalid_api_key`) and an RFC 6750 `WWW-Authenticate: Bearer realm="herald"`
 * challenge, with `error="invalid_token"` and `error_description` once a
 * credential was sent. Neither ever contains the credential.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import {
  AuthError,
  TokenVerifier,
  USER_GRANT_PREFIX,
  bearerChallenge,
  bearerCredential,
  type AuthConfig,
  type Identity,
  type Logger,
  type TokenRefusalReason,
} from "@herald/core";
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

export { USER_GRANT_PREFIX };
export const ALL_USERS_GRANT = "user:*";

/** Why a credential was refused: a token refusal, or a wrong key where only PUBLISHER_API_KEY is accepted. */
export type CredentialRefusalReason = TokenRefusalReason | "invalid_api_key";

function unauthorized(reason: CredentialRefusalReason, message: string): HttpError {
  return new HttpError(401, "unauthorized", message, { "WWW-Authenticate": bearerChallenge({ reason, message }) }, reason);
}

function digest(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

export class Authenticator {
  private readonly apiKeyDigest: Buffer | undefined;
  private readonly verifier: TokenVerifier | undefined;

  private readonly logger: Logger | undefined;

  constructor(opts: { apiKey?: string; auth?: AuthConfig; verifier?: TokenVerifier; logger?: Logger }) {
    this.logger = opts.logger;
    this.apiKeyDigest = opts.apiKey !== undefined ? digest(opts.apiKey) : undefined;
    this.verifier = opts.verifier ?? (opts.auth ? new TokenVerifier(opts.auth) : undefined);
  }

  /** Resolves the caller or throws a 401 HttpError. Never logs or echoes the credential. */
  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (authorization === undefined || authorization.trim() === "") {
      throw this.refuse("missing", "missing bearer token: send Authorization: Bearer <API key or JWT>");
    }
    const credential = bearerCredential(authorization);
    // Another scheme (or "Bearer" alone) carries no bearer credential: RFC 6750 answers that without an error code.
    if (credential === undefined) throw this.refuse("missing", "Authorization must be 'Bearer <API key or JWT>'");

    if (this.apiKeyDigest && timingSafeEqual(digest(credential), this.apiKeyDigest)) {
      return { kind: "api-key", sub: "api-key" };
    }
    if (!this.verifier) throw this.refuse("invalid_api_key", "the credential is not the API key");

    let identity: Identity;
    try {
      identity = await this.verifier.verify(credential);
    } catch (err) {
      if (err instanceof AuthError) throw this.refuse(err.reason, err.message);
      throw err;
    }
    // The signature is verified; decoding again only reads the raw claim.
    return { kind: "token", sub: identity.sub, identity, publishClaim: identity.publishClaim };
  }

  /** The server API takes the API key only: anything else (a JWT included) is a 401. */
  authenticateApiKey(authorization: string | undefined): void {
    const credential = authorization === undefined ? undefined : bearerCredential(authorization);
    if (credential === undefined || credential === "") throw this.refuse("missing", "the server API needs Authorization: Bearer <PUBLISHER_API_KEY>");
    if (!this.apiKeyDigest) throw this.refuse("invalid_api_key", "PUBLISHER_API_KEY is not set: the server API is off");
    if (!timingSafeEqual(digest(credential), this.apiKeyDigest)) throw this.refuse("invalid_api_key", "the server API takes PUBLISHER_API_KEY only");
  }

  private refuse(reason: CredentialRefusalReason, message: string): HttpError {
    this.logger?.debug({ reason, detail: message }, "credential refused");
    return unauthorized(reason, message);
  }

  canPublishToChannel(principal: Principal, channel: string): boolean {
    return principal.kind === "api-key" || principal.identity.publish.matches(channel);
  }

  canPublishToUser(principal: Principal, sub: string): boolean {
    if (principal.kind === "api-key") return true;
    return principal.publishClaim.some((p) => p === ALL_USERS_GRANT || p === USER_GRANT_PREFIX + sub);
  }
}
