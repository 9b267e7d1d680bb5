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

/** A token was refused. `reason` is a bounded metric label, never the token. */
export type AuthFailureReason = "missing_token" | "invalid_token" | "expired_token";

export class AuthError extends HeraldError {
  constructor(
    readonly reason: AuthFailureReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(reason, message, options);
  }
}
