/**
 * The service shell's shared pieces (packages/core/src/service): the NATS and
 * serve config sections (every variable: default, valid, invalid naming the
 * variable, NATS credentials never in an error), the one NATS URL redaction,
 * the one Bearer rule, and the one readiness and error body.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  HISTORY_DEFAULTS,
  SHELL_DEFAULTS,
  bearerCredential,
  errorBody,
  natsUrlProblem,
  readNatsSection,
  readServeSection,
  readinessReply,
  redactNatsUrl,
  redactServers,
  type Env,
} from "@herald/core";
import { configError, testVariables } from "./fixtures/config-cases.js";

const readNats = (env: Env) => readNatsSection(env, { natsName: "svc" });
const readServe = (env: Env) =>
  readServeSection(env, { hostVariable: "SVC_HOST", portVariable: "SVC_PORT", host: "0.0.0.0", port: 8090, drainSeconds: 7 });

describe("redactNatsUrl: credentials never shown", () => {
  const cases: Array<[string, string]> = [
    ["nats://alice:pw@nats:4222", "nats://***@nats:4222"],
    ["nats://token@nats:4222", "nats://***@nats:4222"],
    ["alice:pw@nats:4222", "***@nats:4222"],
    // A password holding '@' or '/' (unencoded) is hidden whole: everything up to the last '@'.
    ["nats://alice:p@ss/w@rd@nats:4222", "nats://***@nats:4222"],
    ["tls://u:p@a.example:4443", "tls://***@a.example:4443"],
    ["nats://nats:4222", "nats://nats:4222"],
    ["nats:4222", "nats:4222"],
  ];
  for (const [url, shown] of cases) test(`${url} -> ${shown}`, () => assert.equal(redactNatsUrl(url), shown));
  test("redactServers maps a list", () => {
    assert.deepEqual(redactServers(["nats://a:b@x:1", "y:2"]), ["nats://***@x:1", "y:2"]);
  });
});

describe("natsUrlProblem", () => {
  for (const ok of ["nats://h:4222", "tls://h", "ws://h:80", "wss://h", "h:4222", "h", "nats://u:p@h:4222"]) {
    test(`"${ok}" is a NATS server`, () => assert.equal(natsUrlProblem(ok), null));
  }
  for (const bad of ["http://h:4222", "nats://", "nats://[::1", "nats://u:secret@:4222"]) {
    test(`"${bad}" is not, and the reason hides credentials`, () => {
      const problem = natsUrlProblem(bad);
      assert.ok(problem !== null);
      assert.ok(!problem.includes("secret"), problem);
    });
  }
});

describe("readNatsSection", () => {
  test("defaults: memory broker, the service's connection name, prefix herald, history on", () => {
    const { namespaces, windows, ...rest } = readNats({});
    assert.deepEqual(rest, { natsServers: [], natsName: "svc", subjectPrefix: SHELL_DEFAULTS.subjectPrefix, history: { ...HISTORY_DEFAULTS } });
    assert.equal(namespaces.configured, false, "no NAMESPACES: every channel in one implicit namespace (test/namespaces.test.ts)");
    assert.deepEqual(windows.list, [{ stream: "HERALD", namespace: null, maxAgeSeconds: 300, maxPerChannel: 1000 }], "one catch-all stream, as before namespaces");
  });
  testVariables(readNats, {}, [
    {
      variable: "NATS_URL",
      valid: " nats://a:4222 , tls://u:p@b:4443,c:4222 ",
      expect: ["nats://a:4222", "tls://u:p@b:4443", "c:4222"],
      pick: (c) => c.natsServers,
      invalid: ["http://alice:hunter2@a:4222", "nats://a:4222,ftp://alice:hunter2@b", "nats://alice:hunter2@"],
      secret: "hunter2",
    },
    { variable: "NATS_NAME", valid: "my-gw", expect: "my-gw", pick: (c) => c.natsName, invalid: [] },
    { variable: "SUBJECT_PREFIX", valid: "acme.rt", expect: "acme.rt", pick: (c) => c.subjectPrefix, invalid: ["a..b", "a*", "x".repeat(65)] },
    { variable: "HISTORY", valid: "false", expect: false, pick: (c) => c.history.enabled, invalid: ["maybe"] },
    { variable: "HISTORY_STREAM", valid: "S1", expect: "S1", pick: (c) => c.history.stream, invalid: ["a b"] },
    { variable: "HISTORY_MAX_AGE_SECONDS", valid: "60", expect: 60, pick: (c) => c.history.maxAgeSeconds, invalid: ["0", "1.5"] },
    { variable: "HISTORY_MAX_PER_CHANNEL", valid: "10", expect: 10, pick: (c) => c.history.maxPerChannel, invalid: ["0"] },
    { variable: "HISTORY_REPLICAS", valid: "3", expect: 3, pick: (c) => c.history.replicas, invalid: ["6"] },
    { variable: "NAMESPACES", valid: '{"chat": {"client_publish": false}}', expect: false, pick: (c) => c.namespaces.of("chat.1")?.clientPublish, invalid: ["{", '{"chat": {"presence": "yes"}}'] },
  ]);
});

describe("readServeSection", () => {
  test("defaults: the service's host, port and drain seconds; no metrics port; log level info", () => {
    assert.deepEqual(readServe({}), { host: "0.0.0.0", port: 8090, metricsPort: undefined, drainSeconds: 7, logLevel: "info" });
  });
  test("the host default may be undefined (every interface)", () => {
    const serve = readServeSection({}, { hostVariable: "SVC_HOST", portVariable: "SVC_PORT", host: undefined, port: 1, drainSeconds: 1 });
    assert.equal(serve.host, undefined);
  });
  testVariables(readServe, {}, [
    { variable: "SVC_HOST", valid: "127.0.0.1", expect: "127.0.0.1", pick: (c) => c.host, invalid: [] },
    { variable: "SVC_PORT", valid: "0", expect: 0, pick: (c) => c.port, invalid: ["-1", "65536", "80a"] },
    { variable: "METRICS_PORT", valid: "9464", expect: 9464, pick: (c) => c.metricsPort, invalid: ["0", "65536", "x", "8090"] },
    { variable: "DRAIN_SECONDS", valid: "2.5", expect: 2.5, pick: (c) => c.drainSeconds, invalid: ["-1", "3601", "ten", "Infinity"] },
    { variable: "LOG_LEVEL", valid: "debug", expect: "debug", pick: (c) => c.logLevel, invalid: ["verbose"] },
  ]);
  test("DRAIN_SECONDS: 0 and 3600 are the bounds", () => {
    assert.equal(readServe({ DRAIN_SECONDS: "0" }).drainSeconds, 0);
    assert.equal(readServe({ DRAIN_SECONDS: "3600" }).drainSeconds, SHELL_DEFAULTS.maxDrainSeconds);
  });
  test("METRICS_PORT equal to the service port names both", () => {
    const err = configError(() => readServe({ SVC_PORT: "9000", METRICS_PORT: "9000" }), "METRICS_PORT");
    assert.match(err.message, /must differ from SVC_PORT \(9000\)/);
  });
  test("an empty value counts as unset", () => {
    assert.deepEqual(readServe({ SVC_HOST: "", SVC_PORT: " ", DRAIN_SECONDS: "", LOG_LEVEL: "", METRICS_PORT: "" }), readServe({}));
  });
});

describe("bearerCredential: the one Bearer rule", () => {
  const cases: Array<[string, string | undefined]> = [
    ["Bearer abc.def", "abc.def"],
    ["bearer abc", "abc"],
    ["BEARER   abc  ", "abc"],
    ["Bearer\tabc", "abc"],
    ["Bearer", undefined],
    ["Bearer ", undefined],
    ["Bearer a b", undefined],
    ["Basic YWxhZGRpbjpvcGVu", undefined],
    ["Bearerabc", undefined],
  ];
  for (const [header, credential] of cases) test(JSON.stringify(header), () => assert.equal(bearerCredential(header), credential));
});

describe("one readiness body and one error body", () => {
  test("ready", () => {
    assert.deepEqual(readinessReply({ brokerConnected: true, draining: false }, { connections: 3 }), {
      ready: true,
      status: 200,
      body: { status: "ready", broker: "connected", draining: false, connections: 3 },
    });
  });
  test("not ready: draining wins over a lost broker", () => {
    assert.deepEqual(readinessReply({ brokerConnected: false, draining: true }).body, { status: "not ready", reason: "draining", broker: "disconnected", draining: true });
    const lost = readinessReply({ brokerConnected: false, draining: false });
    assert.equal(lost.status, 503);
    assert.deepEqual(lost.body, { status: "not ready", reason: "broker_disconnected", broker: "disconnected", draining: false });
  });
  test("error body: code and message; reason only when given", () => {
    assert.deepEqual(errorBody("not_found", "no such route"), { error: { code: "not_found", message: "no such route" } });
    assert.deepEqual(JSON.stringify(errorBody("unauthorized", "token expired", "expired")), '{"error":{"code":"unauthorized","reason":"expired","message":"token expired"}}');
  });
});
