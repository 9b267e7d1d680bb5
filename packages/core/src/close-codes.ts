/** WebSocket close codes from DESIGN.md "Client protocol". */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  TooLarge: 1009,
  TokenExpired: 4001,
  RateLimited: 4008,
  SlowConsumer: 4009,
} as const;

export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];
