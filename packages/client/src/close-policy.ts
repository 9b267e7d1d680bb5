/**
 * What the client does when a welcomed connection closes, by close code: a
 * pure table, so the policy can be read (and tested) apart from the state
 * machine that carries it out.
 */
import type { HeraldErrorCode } from "./errors.js";
import { CloseCodes } from "./protocol.js";

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
