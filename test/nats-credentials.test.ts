/**
 * Credentials in NATS_URL (`user:password@`, `token@`) reach the server:
 * nats.js keeps only a URL's host and port, so the broker hands them over as
 * connect options. Real nats-server with authorization on.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { NatsBroker } from "@herald/broker";
import { ConfigError, createLogger, natsCredentials, readNatsSection } from "@herald/core";
import { spawnNats } from "./helpers/nats.js";
import { waitFor } from "./helpers/wait.js";

const stops: Array<() => Promise<unknown>> = [];
after(() => Promise.all(stops.map((s) => s())));

test("natsCredentials: user:password, token, percent-decoding; different ones are a config error naming NATS_URL", () => {
  assert.deepEqual(natsCredentials(["nats://gw:p%40ss%2Fw0rd@a:4222", "b:4222"]), { user: "gw", pass: "p@ss/w0rd" });
  assert.deepEqual(natsCredentials(["nats://s3cr3t@a:4222"]), { token: "s3cr3t" });
  assert.deepEqual(natsCredentials(["a:4222"]), {});
  assert.throws(
    () => readNatsSection({ NATS_URL: "nats://a:1@x:4222,nats://a:2@y:4222" }, { natsName: "t" }),
    (err: unknown) => err instanceof ConfigError && err.variable === "NATS_URL" && !/:[12]@/.test(err.message),
  );
});

for (const [what, args, url] of [
  ["user and password", ["--user", "gateway", "--pass", "pw@with/odd:chars"], (port: number) => `nats://gateway:${encodeURIComponent("pw@with/odd:chars")}@127.0.0.1:${port}`],
  ["a token", ["--auth", "tok3n"], (port: number) => `nats://tok3n@127.0.0.1:${port}`],
] as const) {
  test(`the broker logs in with ${what} from the URL`, async () => {
    const nats = await spawnNats({ args: [...args] });
    stops.push(() => nats.stop());
    const broker = new NatsBroker({ servers: [url(nats.port)], name: "cred-test", logger: createLogger("test", "silent") });
    stops.push(() => broker.close());
    await waitFor(() => broker.connected, { timeoutMs: 10_000, message: "connected with the URL's credentials" });
  });
}
