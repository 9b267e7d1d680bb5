/** The one error type of the SDK: every rejection and every `error` event is a HeraldError. */

/** Error codes the server sends in `{"type":"error"}` frames. */
export type ServerErrorCode = "bad_request" | "forbidden" | "invalid_channel" | "rate_limited" | "too_large" | "unavailable";

/** Error codes raised by the client itself. */
export type ClientErrorCode =
  /** The token expired (close 4001) and there is no token provider to get a new one. Terminal. */
  | "token_expired"
  /** The gateway refused the token at the upgrade (HTTP 401, seen in Node only). Terminal for a static token. */
  | "unauthorized"
  /**
   * The token was revoked or its user blocked (close 4011). With a token
   * provider the client asks for a new token once; when that one is refused
   * too (or there is no provider) it stops. Terminal.
   */
  | "revoked"
  /** The gateway refused the connection for policy reasons (HTTP 403, close 4003). Terminal. */
  | "policy_violation"
  /** The connection attempt failed (network, HTTP 429/503, or an HTTP error a browser cannot see). */
  | "connect_failed"
  /** The connection was lost (abnormal close, ping timeout, server close). */
  | "connection_lost"
  /** The server closed the connection with 4008 (this client sent too much). */
  | "rate_limited_close"
  /** The server closed the connection with 4009 (this client read too slowly). */
  | "slow_consumer"
  /** The token provider threw, returned something that is not a string, or did not answer within tokenTimeoutMs. */
  | "token_provider_failed"
  /** The offline publish queue is full. */
  | "queue_full"
  /** The request was sent but the connection closed before the server answered (it may or may not have been applied). */
  | "disconnected"
  /** No answer from the server within requestTimeoutMs. */
  | "timeout"
  /** close() was called. */
  | "closed"
  /** maxReconnectAttempts consecutive attempts failed. Terminal. */
  | "reconnect_failed"
  /** The server sent something that is not herald.v1. */
  | "protocol_error"
  /** Invalid use of the API (bad option, publish of undefined, ...). */
  | "invalid_argument";

export type HeraldErrorCode = ServerErrorCode | ClientErrorCode;

export interface HeraldErrorDetails {
  /** WebSocket close code that caused the error, when there was one. */
  closeCode?: number;
  /** Close reason text sent by the server. */
  closeReason?: string;
  /** HTTP status of a refused upgrade, when the runtime exposes it (Node `ws`; never in browsers). */
  status?: number;
  /** Channel the error is about. */
  channel?: string;
  /** True when the client gave up and is now `closed`. */
  terminal?: boolean;
  cause?: unknown;
}

export class HeraldError extends Error {
  override readonly name = "HeraldError";
  readonly code: HeraldErrorCode;
  readonly closeCode: number | undefined;
  readonly closeReason: string | undefined;
  readonly status: number | undefined;
  readonly channel: string | undefined;
  readonly terminal: boolean;

  constructor(code: HeraldErrorCode, message: string, details: HeraldErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.closeCode = details.closeCode;
    this.closeReason = details.closeReason;
    this.status = details.status;
    this.channel = details.channel;
    this.terminal = details.terminal ?? false;
  }
}

export function isHeraldError(err: unknown): err is HeraldError {
  return err instanceof HeraldError;
}

/** The error for a channel argument that is not a non-empty string; undefined for a good one (the server checks the rest). */
export function invalidChannel(channel: unknown): HeraldError | undefined {
  return typeof channel === "string" && channel !== "" ? undefined : new HeraldError("invalid_argument", "channel must be a non-empty string");
}
