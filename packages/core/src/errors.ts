/**
 * Typed errors. Every error a client or operator can see carries a stable
 * code so tests and callers assert on codes, never on message text.
 */

/** Error codes of the client protocol (DESIGN.md "Client protocol"). */
export type ProtocolErrorCode =
  | "bad_request"
  | "forbidden"
  | "invalid_channel"
  | "rate_limited"
  | "too_large"
  | "unavailable";

export class HeraldError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A configuration value is missing or invalid; `variable` names the env var. */
export class ConfigError extends HeraldError {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super("config_invalid", `${variable}: ${message}`);
  }
}

/** A client request broke a protocol rule; `code` is sent in the error frame. */
export class ProtocolError extends HeraldError {
  constructor(
    override readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}

/** The broker is not connected; publishers answer 503, clients get `unavailable`. */
export class BrokerUnavailableError extends HeraldError {
  constructor(message = "broker is not connected", options?: { cause?: unknown }) {
    super("broker_unavailable", message, options);
  }
}

/** A token was refused: the `error.code` of the 401 and the metric label (bounded). */
export type AuthFailureCode = "missing_token" | "invalid_token" | "expired_token" | "revoked_token";

/**
 * Why a token was refused, finer than the code: the `error.reason` of the
 * 401 body. A bounded set, never derived from the token's text.
 */
export type TokenRefusalReason =
  | "missing"
  | "malformed"
  | "bad_signature"
  | "algorithm_not_allowed"
  | "expired"
  | "not_yet_valid"
  | "missing_claim"
  | "invalid_claim"
  | "wrong_issuer"
  | "wrong_audience"
  | "key_unavailable"
  /** A valid token whose `jti` was revoked, or whose user is blocked (server API). */
  | "revoked";

function authFailureCode(reason: TokenRefusalReason): AuthFailureCode {
  if (reason === "missing") return "missing_token";
  if (reason === "expired") return "expired_token";
  if (reason === "revoked") return "revoked_token";
  return "invalid_token";
}

/**
 * A token was refused. `code` is the coarse, stable code (and metric label),
 * `reason` the finer cause; the message is a short sentence for the client
 * that never contains the token or key material.
 */
export class AuthError extends HeraldError {
  declare readonly code: AuthFailureCode;

  constructor(
    readonly reason: TokenRefusalReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(authFailureCode(reason), message, options);
  }
}
