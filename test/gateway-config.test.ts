/**
 * readGatewayConfig (services/gateway/src/config.ts) on the shared sections:
 * every setting of the README's gateway table has its default, a valid value
 * and a refused one whose error names the variable.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { AUTH_DEFAULTS, HISTORY_DEFAULTS } from "@herald/core";
import { GATEWAY_DEFAULTS, readGatewayConfig, type GatewayConfig } from "../services/gateway/src/config.js";
import { testVariables, type VariableCase } from "./fixtures/config-cases.js";

const SECRET = "gateway-config-test-secret-0123456789";
const BASE = { JWT_SECRET: SECRET };

describe("gateway config: defaults", () => {
  test("every default is the documented one", () => {
    const c = readGatewayConfig(BASE);
    const d = GATEWAY_DEFAULTS;
    assert.deepEqual(
      {
        host: c.host, port: c.port, metricsPort: c.metricsPort, drainSeconds: c.drainSeconds, logLevel: c.logLevel,
        natsServers: c.natsServers, natsName: c.natsName, subjectPrefix: c.subjectPrefix, history: c.history,
        maxConnections: c.maxConnections, maxConnectionsPerIp: c.maxConnectionsPerIp, maxConnectionsPerUser: c.maxConnectionsPerUser,
        ipv6LimitPrefix: c.ipv6LimitPrefix, maxPayloadBytes: c.maxPayloadBytes, maxChannelsPerConnection: c.maxChannelsPerConnection,
        rateLimitPerSecond: c.rateLimitPerSecond, rateLimitBurst: c.rateLimitBurst, slowConsumerBytes: c.slowConsumerBytes,
        idleTimeoutSeconds: c.idleTimeoutSeconds, frameTimeoutSeconds: c.frameTimeoutSeconds, writeDelayMs: c.writeDelayMs,
        minOpenFiles: c.minOpenFiles, clockTolerance: c.auth.clockToleranceSeconds, algorithms: c.auth.algorithms,
        allowAllOrigins: c.origins.allowAll,
      },
      {
        host: undefined, port: 8080, metricsPort: undefined, drainSeconds: 10, logLevel: "info",
        natsServers: [], natsName: "herald-gateway", subjectPrefix: "herald", history: { ...HISTORY_DEFAULTS },
        maxConnections: d.maxConnections, maxConnectionsPerIp: d.maxConnectionsPerIp, maxConnectionsPerUser: d.maxConnectionsPerUser,
        ipv6LimitPrefix: d.ipv6LimitPrefix, maxPayloadBytes: d.maxPayloadBytes, maxChannelsPerConnection: d.maxChannelsPerConnection,
        rateLimitPerSecond: d.rateLimitPerSecond, rateLimitBurst: d.rateLimitBurst, slowConsumerBytes: d.slowConsumerBytes,
        idleTimeoutSeconds: d.idleTimeoutSeconds, frameTimeoutSeconds: d.frameTimeoutSeconds, writeDelayMs: d.writeDelayMs,
        minOpenFiles: undefined, clockTolerance: AUTH_DEFAULTS.clockToleranceSeconds, algorithms: ["HS256"],
        allowAllOrigins: false,
      },
    );
  });
});

const cases: VariableCase<GatewayConfig>[] = [
  { variable: "GATEWAY_HOST", valid: "::", expect: "::", pick: (c) => c.host, invalid: [] },
  { variable: "GATEWAY_PORT", valid: "9000", expect: 9000, pick: (c) => c.port, invalid: ["65536", "http"] },
  { variable: "METRICS_PORT", valid: "9464", expect: 9464, pick: (c) => c.metricsPort, invalid: ["0", "8080"] },
  {
    variable: "NATS_URL",
    valid: "nats://u:p@n1:4222,n2:4222",
    expect: ["nats://u:p@n1:4222", "n2:4222"],
    pick: (c) => c.natsServers,
    // Until issue 9 the gateway echoed this one whole, password included.
    invalid: ["http://gw:opensesame@n1:4222", "nats://gw:opensesame@"],
    secret: "opensesame",
  },
  { variable: "NATS_NAME", valid: "gw-a", expect: "gw-a", pick: (c) => c.natsName, invalid: [] },
  { variable: "SUBJECT_PREFIX", valid: "acme", expect: "acme", pick: (c) => c.subjectPrefix, invalid: ["a.>"] },
  { variable: "HISTORY", valid: "off", expect: false, pick: (c) => c.history.enabled, invalid: ["2"] },
  { variable: "JWT_SECRET", valid: "x".repeat(32), expect: "x".repeat(32), pick: (c) => c.auth.secret, invalid: ["short"] },
  { variable: "JWT_ALGORITHMS", valid: "HS512", expect: ["HS512"], pick: (c) => c.auth.algorithms, invalid: ["none", "RS256"] },
  { variable: "JWT_CLOCK_TOLERANCE_SECONDS", valid: "0", expect: 0, pick: (c) => c.auth.clockToleranceSeconds, invalid: ["301"] },
  { variable: "JWT_JWKS_TIMEOUT_MS", valid: "1000", expect: 1000, pick: (c) => c.auth.jwksTimeoutMs, invalid: ["99"] },
  { variable: "ALLOWED_ORIGINS", valid: "*", expect: true, pick: (c) => c.origins.allowAll, invalid: ["not an origin", "https://a.example/path"] },
  { variable: "TRUSTED_PROXIES", valid: "10.0.0.0/8", expect: true, pick: (c) => c.trustedProxies.trusts("10.1.2.3"), invalid: ["proxy", "10.0.0.0/33"] },
  { variable: "MAX_CONNECTIONS", valid: "10", expect: 10, pick: (c) => c.maxConnections, invalid: ["0"] },
  { variable: "LISTEN_BACKLOG", valid: "0", expect: 0, pick: (c) => c.listenBacklog, invalid: ["-1", "65536"] },
  { variable: "MAX_CONNECTIONS_PER_IP", valid: "0", expect: 0, pick: (c) => c.maxConnectionsPerIp, invalid: ["-1"] },
  { variable: "MAX_CONNECTIONS_PER_USER", valid: "0", expect: 0, pick: (c) => c.maxConnectionsPerUser, invalid: ["1.5"] },
  { variable: "IPV6_LIMIT_PREFIX", valid: "128", expect: 128, pick: (c) => c.ipv6LimitPrefix, invalid: ["31", "129"] },
  { variable: "MAX_PAYLOAD_BYTES", valid: "256", expect: 256, pick: (c) => c.maxPayloadBytes, invalid: ["255"] },
  { variable: "MAX_CHANNELS_PER_CONNECTION", valid: "1", expect: 1, pick: (c) => c.maxChannelsPerConnection, invalid: ["0"] },
  { variable: "RATE_LIMIT_PER_SECOND", valid: "0.5", expect: 0.5, pick: (c) => c.rateLimitPerSecond, invalid: ["0"] },
  { variable: "RATE_LIMIT_BURST", valid: "1", expect: 1, pick: (c) => c.rateLimitBurst, invalid: ["0"] },
  { variable: "SLOW_CONSUMER_BYTES", valid: "16384", expect: 16384, pick: (c) => c.slowConsumerBytes, invalid: ["16383"] },
  { variable: "IDLE_TIMEOUT_SECONDS", valid: "0", expect: 0, pick: (c) => c.idleTimeoutSeconds, invalid: ["4", "961"] },
  { variable: "FRAME_TIMEOUT_SECONDS", valid: "0", expect: 0, pick: (c) => c.frameTimeoutSeconds, invalid: ["3601"] },
  { variable: "DRAIN_SECONDS", valid: "0.3", expect: 0.3, pick: (c) => c.drainSeconds, invalid: ["-1", "3601"] },
  { variable: "WRITE_DELAY_MS", valid: "10", expect: 10, pick: (c) => c.writeDelayMs, invalid: ["1001"] },
  { variable: "MIN_OPEN_FILES", valid: "65536", expect: 65536, pick: (c) => c.minOpenFiles, invalid: ["0"] },
  { variable: "LOG_LEVEL", valid: "warn", expect: "warn", pick: (c) => c.logLevel, invalid: ["loud"] },
];

describe("gateway config: every variable", () => testVariables(readGatewayConfig, BASE, cases));
