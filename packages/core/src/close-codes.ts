/** WebSocket close codes from DESIGN.md "Client protocol". */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  TooLarge: 1009,
  /** RFC 6455 internal error: the server could not set the connection up; reconnect. */
  InternalError: 1011,
  TokenExpired: 4001,
  RateLimited: 4008,
  SlowConsumer: 4009,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
