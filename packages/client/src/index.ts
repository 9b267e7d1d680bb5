/**
 * @herald/client — browser and Node.js client for the Herald gateway.
 *
 * ```ts
 * import { HeraldClient } from "@herald/client";
 * const client = new HeraldClient({ url: "wss://rt.example.com/ws", token: () => fetchToken() });
 * client.on("state", ({ state }) => console.log(state));
 * await client.connect();
 * await client.subscribe("news.eu", { onMessage: (m) => console.log(m.data) });
 * await client.publish("chat.42", { text: "hi" });
 * ```
 */
export {
  HeraldClient,
  Subscription,
  DEFAULT_FLUSH_PACING,
  type ConnectionState,
  type FlushPacing,
  type GapInfo,
  type HeraldClientOptions,
  type HeraldEvents,
  type HeraldMessage,
  type HistoryPage,
  type PresenceEvent,
  type PresencePage,
  type PresenceStats,
  type RecoveryInfo,
  type StateChange,
  type SubscribeOptions,
  type SubscribedInfo,
  type TokenProvider,
  type TransportName,
  type FetchLike,
  type Welcome,
  type WelcomeSub,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./client.js";
export { HeraldError, isHeraldError, type ClientErrorCode, type HeraldErrorCode, type HeraldErrorDetails, type ServerErrorCode } from "./errors.js";
export { backoffDelay, backoffCeiling, drainDelay, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff.js";
export { decodeJwtPayload, tokenTimes, base64ToBytes as decodeBase64, type TokenTimes } from "./jwt.js";
export { CloseCodes, SUBPROTOCOL } from "./protocol.js";
export { DEFAULT_TRANSPORTS, deriveSseUrl } from "./transport-options.js";
