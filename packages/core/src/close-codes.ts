/** WebSocket close codes from DESIGN.md "Client protocol". */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  /** RFC 6455 §5.1: a client frame that is not masked (seen as raw control characters: see protocol.ts). */
  ProtocolError: 1002,
  /** A frame not completed, or a ping not answered, within FRAME_TIMEOUT_SECONDS. */
  PolicyViolation: 1008,
  TooLarge: 1009,
  /** RFC 6455 internal error: the server could not set the connection up; reconnect. */
  InternalError: 1011,
  TokenExpired: 4001,
  RateLimited: 4008,
  SlowConsumer: 4009,
  /** Disconnected by the server API; the client may reconnect after its backoff. */
  ServerDisconnect: 4010,
  /** The token was revoked or the user blocked: do not reconnect with the same token. */
  Revoked: 4011,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
