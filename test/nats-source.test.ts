/**
 * Where the tests take NATS from (test/helpers/nats-source.ts): NATS_URL,
 * else a nats-server binary, else a testcontainers container. The file
 * system is a set of paths here, so every branch runs on any machine.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { NATS_IMAGE, natsServerBinary, natsSource } from "./helpers/nats-source.js";

const files = (...paths: string[]) => {
  const set = new Set(paths);
  return (p: string) => set.has(p);
};

describe("NATS source selection", () => {
  test("NATS_URL wins over a binary; NATS_MONITOR_URL names its monitor", () => {
    const exists = files("/opt/nats/bin/nats-server", "/usr/sbin/nats-server");
    assert.deepEqual(natsSource({ NATS_URL: "nats://10.0.0.5:4222", PATH: "/opt/nats/bin" }, exists), {
      kind: "external",
      url: "nats://10.0.0.5:4222",
      monitorUrl: undefined,
    });
    assert.deepEqual(natsSource({ NATS_URL: " nats://a:4222 ", NATS_MONITOR_URL: "http://a:8222" }, exists), {
      kind: "external",
      url: "nats://a:4222",
      monitorUrl: "http://a:8222",
    });
  });

  test("an empty NATS_URL counts as unset", () => {
    const exists = files("/opt/nats/bin/nats-server");
    assert.deepEqual(natsSource({ NATS_URL: "  ", PATH: "/opt/nats/bin" }, exists), { kind: "binary", bin: "/opt/nats/bin/nats-server" });
  });

  test("the binary: NATS_SERVER_BIN when it exists, else the first PATH entry, else the sbin/bin directories", () => {
    const exists = files("/custom/nats", "/b/nats-server", "/c/nats-server", "/usr/sbin/nats-server");
    assert.equal(natsServerBinary({ NATS_SERVER_BIN: "/custom/nats", PATH: "/b" }, exists), "/custom/nats");
    assert.equal(natsServerBinary({ NATS_SERVER_BIN: "/missing/nats", PATH: "/a:/b:/c" }, exists), "/b/nats-server");
    assert.equal(natsServerBinary({ PATH: "/a" }, exists), "/usr/sbin/nats-server", "Debian installs it in /usr/sbin, often not on a user's PATH");
    assert.equal(natsServerBinary({}, files("/usr/local/bin/nats-server")), "/usr/local/bin/nats-server");
  });

  test("no NATS_URL and no binary: a nats:2.10 container through testcontainers", () => {
    assert.equal(NATS_IMAGE, "nats:2.10");
    assert.deepEqual(natsSource({ PATH: "/usr/bin:/bin" }, files("/usr/bin/node")), { kind: "container", image: "nats:2.10" });
    assert.deepEqual(natsSource({ NATS_SERVER_BIN: "/gone" }, files()), { kind: "container", image: "nats:2.10" });
  });

  test("this machine's own answer is one of the three", () => {
    assert.ok(["external", "binary", "container"].includes(natsSource().kind));
  });
});
