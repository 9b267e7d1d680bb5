/**
 * readPublisherConfig (services/publisher/src/config.ts) on the shared
 * sections: every setting of the README's publisher table has its default,
 * a valid value and a refused one whose error names the variable; the rules
 * the two services share (DRAIN_SECONDS, NATS_URL, METRICS_PORT, LOG_LEVEL)
 * give the same answers in both.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HISTORY_DEFAULTS, type Env } from "@herald/core";
import { readGatewayConfig } from "../services/gateway/src/config.js";
import { PUBLISHER_DEFAULTS, readPublisherConfig, type PublisherConfig } from "../services/publisher/src/config.js";
import { configError, testVariables, type VariableCase } from "./fixtures/config-cases.js";

const API_KEY = "publisher-config-test-key";
const BASE = { PUBLISHER_API_KEY: API_KEY };

describe("publisher config: defaults", () => {
  test("every default is the documented one", () => {
    const { namespaces, windows, ...c } = readPublisherConfig(BASE);
    assert.equal(namespaces.configured, false);
    assert.deepEqual(windows.list.map((w) => w.stream), ["HERALD"]);
    assert.deepEqual(c, {
      host: "0.0.0.0",
      port: 8081,
      metricsPort: undefined,
      drainSeconds: PUBLISHER_DEFAULTS.drainSeconds,
      logLevel: "info",
      natsServers: [],
      natsName: "herald-publisher",
      subjectPrefix: "herald",
      history: { ...HISTORY_DEFAULTS },
      maxBodyBytes: 65536,
      controlTimeoutMs: 1000,
      apiKey: API_KEY,
    });
    assert.equal(PUBLISHER_DEFAULTS.drainSeconds, 5);
  });
  test("no credential at all is refused, naming PUBLISHER_API_KEY", () => {
    configError(() => readPublisherConfig({}), "PUBLISHER_API_KEY");
  });
});

const cases: VariableCase<PublisherConfig>[] = [
  { variable: "PUBLISHER_HOST", valid: "127.0.0.1", expect: "127.0.0.1", pick: (c) => c.host, invalid: [] },
  { variable: "PUBLISHER_PORT", valid: "0", expect: 0, pick: (c) => c.port, invalid: ["65536", "x"] },
  { variable: "METRICS_PORT", valid: "9464", expect: 9464, pick: (c) => c.metricsPort, invalid: ["8081", "-5"] },
  {
    variable: "NATS_URL",
    valid: "tls://pub:pw@n1:4443",
    expect: ["tls://pub:pw@n1:4443"],
    pick: (c) => c.natsServers,
    invalid: ["https://pub:opensesame@n1", "nats://pub:open@sesame@"],
    secret: "sesame",
  },
  { variable: "NATS_NAME", valid: "pub-a", expect: "pub-a", pick: (c) => c.natsName, invalid: [] },
  { variable: "SUBJECT_PREFIX", valid: "a.b", expect: "a.b", pick: (c) => c.subjectPrefix, invalid: ["a b"] },
  { variable: "HISTORY_REPLICAS", valid: "3", expect: 3, pick: (c) => c.history.replicas, invalid: ["0"] },
  { variable: "PUBLISHER_API_KEY", valid: "k".repeat(16), expect: "k".repeat(16), pick: (c) => c.apiKey, invalid: ["k".repeat(15), "has a space in it!", "k".repeat(4097)] },
  { variable: "JWT_SECRET", valid: "s".repeat(32), expect: "s".repeat(32), pick: (c) => c.auth?.secret, invalid: ["s".repeat(31)] },
  { variable: "MAX_BODY_BYTES", valid: "1", expect: 1, pick: (c) => c.maxBodyBytes, invalid: ["0", String(64 * 1024 * 1024 + 1)] },
  // An integer 0-300 until issue 9: now the gateway's rule.
  { variable: "DRAIN_SECONDS", valid: "2.5", expect: 2.5, pick: (c) => c.drainSeconds, invalid: ["-1", "3601", "soon"] },
  { variable: "LOG_LEVEL", valid: "trace", expect: "trace", pick: (c) => c.logLevel, invalid: ["INFO!"] },
];

describe("publisher config: every variable", () => testVariables(readPublisherConfig, BASE, cases));

describe("the shared settings read the same in both services", () => {
  const gateway = (env: Env) => readGatewayConfig({ JWT_SECRET: "s".repeat(32), ...env });
  const publisher = (env: Env) => readPublisherConfig({ ...BASE, ...env });
  const message = (read: () => unknown, variable: string) => configError(read, variable).message;

  for (const [variable, value] of [
    ["DRAIN_SECONDS", "3601"],
    ["DRAIN_SECONDS", "-0.5"],
    ["NATS_URL", "http://a:b@c"],
    ["SUBJECT_PREFIX", "a..b"],
    ["LOG_LEVEL", "chatty"],
    ["HISTORY_STREAM", "no spaces"],
  ] as const) {
    test(`${variable}="${value}": the same error from both`, () => {
      assert.equal(message(() => gateway({ [variable]: value }), variable), message(() => publisher({ [variable]: value }), variable));
    });
  }
  test("DRAIN_SECONDS: the same type and range; each service keeps its documented default (10 / 5)", () => {
    for (const value of ["0", "0.25", "3600"]) assert.equal(gateway({ DRAIN_SECONDS: value }).drainSeconds, publisher({ DRAIN_SECONDS: value }).drainSeconds);
    assert.deepEqual([gateway({}).drainSeconds, publisher({}).drainSeconds], [10, 5]);
  });
  test("METRICS_PORT equal to the service port is refused by both", () => {
    configError(() => gateway({ GATEWAY_PORT: "9000", METRICS_PORT: "9000" }), "METRICS_PORT");
    configError(() => publisher({ PUBLISHER_PORT: "9000", METRICS_PORT: "9000" }), "METRICS_PORT");
  });
});
