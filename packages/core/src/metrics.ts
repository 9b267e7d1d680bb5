/**
 * Every Prometheus metric Herald exports is defined here (DESIGN.md
 * "Operations"): `herald_` prefix, base units, `_total` counters and only
 * bounded label sets (never a user, channel or connection id).
 * Each service instance gets its own registry so several can share a process.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function newRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return registry;
}

export type UpgradeReason =
  | "ok"
  | "missing_token"
  | "invalid_token"
  | "expired_token"
  | "forbidden_origin"
  | "ip_limit"
  | "user_limit"
  | "capacity"
  | "draining"
  | "revoked_token"
  | "not_ready";

export function createGatewayMetrics(registry: Registry) {
  const registers = [registry];
  return {
    connectionsOpen: new Gauge({ name: "herald_connections_open", help: "WebSocket connections currently open", registers }),
    sseConnections: new Gauge({ name: "herald_sse_connections", help: "SSE streams (GET /sse) currently open; not counted in herald_connections_open", registers }),
    sseCommands: new Counter({
      name: "herald_sse_commands_total",
      help: "POST /sse/commands requests taken by this gateway, by result (accepted, unauthorized, forbidden, unknown_connection, bad_request, too_large, unavailable, forbidden_origin)",
      labelNames: ["result"] as const,
      registers,
    }),
    upgrades: new Counter({
      name: "herald_upgrades_total",
      help: "WebSocket upgrade attempts by result and reason",
      labelNames: ["result", "reason"] as const,
      registers,
    }),
    brokerMessages: new Counter({ name: "herald_broker_messages_total", help: "Messages received from the broker", registers }),
    deliveries: new Counter({ name: "herald_deliveries_total", help: "Message frames handed to sockets", registers }),
    clientMessages: new Counter({
      name: "herald_client_messages_total",
      help: "Frames received from clients by type",
      labelNames: ["type"] as const,
      registers,
    }),
    errors: new Counter({
      name: "herald_errors_total",
      help: "Error frames and error closes sent to clients by code",
      labelNames: ["code"] as const,
      registers,
    }),
    slowConsumerCloses: new Counter({
      name: "herald_slow_consumer_closes_total",
      help: "Sockets closed with 4009 because their send buffer passed SLOW_CONSUMER_BYTES",
      registers,
    }),
    drops: new Counter({
      name: "herald_message_drops_total",
      help:
        "Times messages were dropped for one or more clients, by where: slow_consumer (socket closed 4009), " +
        "backpressure (uWS send buffer full), broker_disconnect (NATS connection lost), catch_up_failed (history gap not filled)",
      labelNames: ["reason"] as const,
      registers,
    }),
    disconnects: new Counter({
      name: "herald_disconnects_total",
      help: "Closed WebSocket connections by close code",
      labelNames: ["code"] as const,
      registers,
    }),
    brokerConnected: new Gauge({ name: "herald_broker_connected", help: "1 when the broker connection is up", registers }),
    brokerSubscriptions: new Gauge({
      name: "herald_broker_subscriptions",
      help: "Broker subjects this process is subscribed to",
      registers,
    }),
    recoveries: new Counter({
      name: "herald_recoveries_total",
      help: "Subscriptions resumed from a position, by result (recovered, window_exceeded, epoch_changed)",
      labelNames: ["result"] as const,
      registers,
    }),
    controlRequests: new Counter({
      name: "herald_control_requests_total",
      help: "Server API control requests this gateway answered, by kind and result (ok, bad_request)",
      labelNames: ["kind", "result"] as const,
      registers,
    }),
    presenceMembers: new Gauge({
      name: "herald_presence_members",
      help: "Presence members (connections on channels of presence namespaces) on this gateway",
      registers,
    }),
    presenceMessages: new Counter({
      name: "herald_presence_messages_total",
      help: "Presence messages this gateway sent to the others: heartbeat (its only periodic traffic), changes (batched joins and leaves), snapshot (answers to a resync)",
      labelNames: ["kind"] as const,
      registers,
    }),
    presenceResyncs: new Counter({
      name: "herald_presence_resyncs_total",
      help: "Copies of another gateway's members replaced by its snapshot (at start, after a reconnect, after a gap)",
      registers,
    }),
    joinLeaveFrames: new Counter({
      name: "herald_join_leave_frames_total",
      help: "Join and leave frames sent to presence channels (once per member, copied to every subscriber), by type",
      labelNames: ["type"] as const,
      registers,
    }),
    revocations: new Gauge({
      name: "herald_revocations",
      help: "Blocked users (kind=user) and revoked tokens (kind=token) in force on this gateway",
      labelNames: ["kind"] as const,
      registers,
    }),
    controlConnections: new Counter({
      name: "herald_control_connections_total",
      help: "Connections reached by server API control requests (disconnected, subscribed, unsubscribed), by kind",
      labelNames: ["kind"] as const,
      registers,
    }),
    deliveryLatency: new Histogram({
      name: "herald_delivery_latency_seconds",
      help: "Time from Herald-Published-At to the frame being handed to sockets",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
  };
}
export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;

/** Where messages can be dropped (the `reason` label of herald_message_drops_total). */
export type DropReason = "slow_consumer" | "backpressure" | "broker_disconnect" | "catch_up_failed";

/** Close codes worth their own label value; everything else is "other". */
const KNOWN_CLOSE_CODES = new Set([1000, 1001, 1002, 1005, 1006, 1008, 1009, 1011, 4001, 4008, 4009, 4010, 4011]);
export function closeCodeLabel(code: number): string {
  return KNOWN_CLOSE_CODES.has(code) ? String(code) : "other";
}

export type PublisherRoute = "channel" | "user" | ServerApiRoute | "other";

/** The server API's routes (the `route` label of the publisher's request metrics). */
export type ServerApiRoute = "disconnect" | "subscribe" | "unsubscribe" | "history" | "channels" | "info" | "block" | "revoke" | "presence" | "presence_stats";

export function createPublisherMetrics(registry: Registry) {
  const registers = [registry];
  return {
    requests: new Counter({
      name: "herald_publisher_requests_total",
      help: "Publisher HTTP requests by route and status",
      labelNames: ["route", "status"] as const,
      registers,
    }),
    requestDuration: new Histogram({
      name: "herald_publisher_request_duration_seconds",
      help: "Publisher HTTP request duration",
      labelNames: ["route"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    messages: new Counter({
      name: "herald_publisher_messages_total",
      help: "Messages accepted and published to the broker",
      registers,
    }),
    controlRequests: new Counter({
      name: "herald_publisher_control_requests_total",
      help: "Server API requests sent to the gateways, by kind and result (complete: every known gateway answered; partial; unavailable)",
      labelNames: ["kind", "result"] as const,
      registers,
    }),
    gatewaysKnown: new Gauge({
      name: "herald_publisher_gateways_known",
      help: "Gateways that announced themselves within the roster's window",
      registers,
    }),
    brokerConnected: new Gauge({ name: "herald_broker_connected", help: "1 when the broker connection is up", registers }),
  };
}
export type PublisherMetrics = ReturnType<typeof createPublisherMetrics>;
