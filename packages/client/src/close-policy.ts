/**
 * What the client does when a welcomed connection closes, by close code: a
 * pure table, so the policy can be read (and tested) apart from the state
 * machine that carries it out.
 */
import { HeraldError, type HeraldErrorCode } from "./errors.js";
import { CloseCodes } from "./protocol.js";
import { tokenExpired } from "./tokens.js";

export type CloseVerdict =
  /** A reconnect cannot fix it: stop, with a terminal error. */
  | { kind: "terminal"; code: HeraldErrorCode; message: string }
  /** Reconnect (with backoff) using a token fetched anew from the provider. */
  | { kind: "new_token"; code: HeraldErrorCode; message: string }
  /** The server is draining: reconnect after a random delay, to any gateway. */
  | { kind: "drain"; code: HeraldErrorCode; message: string }
  /** Reconnect with backoff; `rateLimited` adds the longer floor, `report` also emits the error. */
  | { kind: "retry"; code: HeraldErrorCode; message: string; rateLimited?: boolean; report?: boolean };

/**
 * Close codes a reconnect cannot fix. 4001 is terminal only without a token
 * provider. 1008 is not here: Herald sends it when a frame or the answer to
 * its ping did not arrive in time (FRAME_TIMEOUT_SECONDS), which is network
 * trouble a reconnect (with backoff) does fix.
 */
const TERMINAL_CLOSE_CODES = new Set<number>([
  CloseCodes.ProtocolError,
  CloseCodes.UnsupportedData,
  CloseCodes.InvalidPayload,
  CloseCodes.MandatoryExtension,
  CloseCodes.Forbidden,
]);
const PROTOCOL_ERRORS = new Set<number>([CloseCodes.ProtocolError, CloseCodes.UnsupportedData, CloseCodes.InvalidPayload, CloseCodes.MandatoryExtension]);

/** The verdict for a welcomed connection closed with `code`; `staticToken`: no provider to ask for a new one. */
export function closeVerdict(code: number, reason: string, staticToken: boolean): CloseVerdict {
  const why = reason ? ` (${reason})` : "";
  if (code === CloseCodes.Revoked) {
    if (staticToken) return { kind: "terminal", code: "revoked", message: `the token was revoked or its user blocked (close 4011${reason ? `: ${reason}` : ""}) and no token provider was given; not reconnecting` };
    return { kind: "new_token", code: "revoked", message: `the token was revoked or its user blocked (close 4011${reason ? `: ${reason}` : ""}); asking the token provider for a new one` };
  }
  if (code === CloseCodes.ServerDisconnect) {
    return { kind: "retry", code: "connection_lost", message: `disconnected by the server (4010${reason ? `: ${reason}` : ""}); reconnecting after backoff` };
  }
  if (code === CloseCodes.TokenExpired) {
    return staticToken
      ? { kind: "terminal", code: "token_expired", message: "the token expired (close 4001) and no token provider was given; create the client with token: () => fetchToken()" }
      : { kind: "new_token", code: "token_expired", message: "the token expired (close 4001); reconnecting with a new token" };
  }
  if (TERMINAL_CLOSE_CODES.has(code)) {
    return { kind: "terminal", code: PROTOCOL_ERRORS.has(code) ? "protocol_error" : "policy_violation", message: `the server closed the connection with ${code}${why}; not reconnecting` };
  }
  if (code === CloseCodes.GoingAway) return { kind: "drain", code: "connection_lost", message: `the server is going away (1001${reason ? `: ${reason}` : ""})` };
  if (code === CloseCodes.RateLimited) {
    return { kind: "retry", code: "rate_limited_close", message: "the server closed the connection: rate limited (4008)", rateLimited: true };
  }
  if (code === CloseCodes.SlowConsumer) return { kind: "retry", code: "slow_consumer", message: "the server closed the connection: slow consumer (4009)" };
  if (code === CloseCodes.TooLarge) {
    return { kind: "retry", code: "too_large", message: "the server closed the connection: a frame was too large (1009)", report: true };
  }
  return { kind: "retry", code: "connection_lost", message: `the connection was lost (${code}${reason ? `: ${reason}` : ""})` };
}

export type OpenFailureVerdict =
  /** Retrying cannot help: stop, with a terminal error. */
  | { kind: "terminal"; code: HeraldErrorCode; message: string }
  /** Retry with backoff; `newToken`: ask the provider for a fresh token first. */
  | { kind: "retry"; newToken: boolean };

export interface OpenFailure {
  /** HTTP status of the refused upgrade, when the runtime tells (Node `ws`; browsers never do). */
  status: number | undefined;
  /** The attempt's token carries an `exp` that has passed. */
  tokenExpired: boolean;
  /** No provider to ask for a new token. */
  staticToken: boolean;
  /** Attempts in a row that closed before the welcome, this one included. */
  failedOpens: number;
  /** The last welcomed connection was closed with 4011: this attempt carries the provider's replacement token. */
  afterRevocation?: boolean;
}

/**
 * The verdict for an attempt that closed before the welcome: network error,
 * HTTP refusal (which a browser cannot see: it only reports 1006) or a
 * timeout. A 401, or an expired token where the status is unknown, needs a
 * new token (terminal without a provider); a 403 (origin) is terminal; a
 * provider token that keeps failing may be revoked: it is replaced after two
 * failures in a row.
 */
export function openFailureVerdict(f: OpenFailure): OpenFailureVerdict {
  // A browser cannot see the 401: after a revocation, any refusal before the welcome is taken for the replacement token refused too.
  if (f.afterRevocation && (f.status === 401 || f.status === undefined)) {
    return { kind: "terminal", code: "revoked", message: "the token was revoked or its user blocked (close 4011), and the replacement token was refused too; not reconnecting" };
  }
  const refused = f.status === 401 || (f.tokenExpired && f.status === undefined);
  if (refused && f.staticToken) {
    const why = f.tokenExpired ? "the token has expired" : "the gateway refused the token (HTTP 401)";
    return { kind: "terminal", code: f.tokenExpired ? "token_expired" : "unauthorized", message: `${why} and no token provider was given; create the client with token: () => fetchToken()` };
  }
  if (f.status === 403) return { kind: "terminal", code: "policy_violation", message: "the gateway refused the connection (HTTP 403: origin not allowed)" };
  return { kind: "retry", newToken: refused || (!f.staticToken && f.failedOpens >= 2) };
}

/** The error for a request in flight (publish, ping) on a connection that closed with `code`: its outcome is unknown. */
export function inFlightLossError(code: number, reason: string): HeraldError {
  const details = { closeCode: code, closeReason: reason };
  if (code === CloseCodes.TooLarge) return new HeraldError("too_large", "the server closed the connection: frame too large (1009)", details);
  return new HeraldError("disconnected", `the connection closed (${code}) before the server answered; the request may or may not have been applied`, details);
}

/** What the state machine does once a connection is gone, whatever the verdict was. */
export interface ReconnectPlan {
  /** terminal: stop with `error`; drain: reconnect after drainDelay; retry: reconnect with backoff. */
  kind: "terminal" | "drain" | "retry";
  error: HeraldError;
  /** Ask the token provider for a new token first. */
  newToken: boolean;
  /** Wait at least rateLimitedDelayMs (plus backoff). */
  rateLimited: boolean;
  /** Also emit the error as an `error` event. */
  report: boolean;
}

/** The plan after a welcomed connection closed with `code` (closeVerdict). */
export function closedPlan(code: number, reason: string, staticToken: boolean): ReconnectPlan {
  const v = closeVerdict(code, reason, staticToken);
  const error = new HeraldError(v.code, v.message, { closeCode: code, closeReason: reason, ...(v.kind === "terminal" ? { terminal: true } : {}) });
  const retry = v.kind === "retry" ? v : undefined;
  return { kind: v.kind === "new_token" ? "retry" : v.kind, error, newToken: v.kind === "new_token", rateLimited: retry?.rateLimited === true, report: retry?.report === true };
}

/** The plan after an attempt closed before its welcome (openFailureVerdict); `close` says how, for the error. */
export function openFailedPlan(f: OpenFailure, close: { code: number; reason: string; url: string; errorText: string | undefined }): ReconnectPlan {
  const v = openFailureVerdict(f);
  const status = f.status;
  if (v.kind === "terminal") {
    return { kind: "terminal", error: new HeraldError(v.code, v.message, { status, closeCode: close.code, terminal: true }), newToken: false, rateLimited: false, report: false };
  }
  const detail = status ? `HTTP ${status}` : (close.errorText ?? `close ${close.code}`);
  const error = new HeraldError("connect_failed", `could not connect to ${close.url} (${detail})`, { status, closeCode: close.code, closeReason: close.reason });
  return { kind: "retry", error, newToken: v.newToken, rateLimited: false, report: false };
}

/** The plan once `conn` closed with `code`: closedPlan when it was welcomed, openFailedPlan when it closed before its welcome. */
export function planAfterClose(
  conn: { welcomed: boolean; httpStatus: number | undefined; token: string; errorText: string | undefined },
  code: number,
  reason: string,
  c: { staticToken: boolean; failedOpens: number; afterRevocation: boolean; url: string },
): ReconnectPlan {
  if (conn.welcomed) return closedPlan(code, reason, c.staticToken);
  const failure: OpenFailure = { status: conn.httpStatus, tokenExpired: tokenExpired(conn.token), staticToken: c.staticToken, failedOpens: c.failedOpens, afterRevocation: c.afterRevocation };
  return openFailedPlan(failure, { code, reason, url: c.url, errorText: conn.errorText });
}
