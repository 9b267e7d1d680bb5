/**
 * Blocking users and revoking tokens (issue 11): the server API stores them
 * in a bucket every gateway watches; live connections close with 4011 within
 * a second on every gateway, new upgrades are refused with 401
 * `revoked_token` at once, the state survives a gateway restart (it is in
 * KV), and entries lapse at `until`. Embedded broker and real nats-server.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import { HeraldClient, type HeraldError } from "@herald/client";
import { startGatewayInProcess, startPublisherInProcess, type InProcessGateway, type InProcessPublisher } from "./helpers/in-process.js";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { TestStack } from "./helpers/stack.js";
import { TEST_SECRET, hsToken, nowSeconds } from "./helpers/tokens.js";
import { withApiKey } from "./helpers/api-key.js";
import { waitFor } from "./helpers/wait.js";
import { WS } from "./helpers/client-gateway.js";
import { closeAll, connect, expectRejected, type Client } from "./helpers/ws.js";

const API_KEY = "revocations-test-key-0123456789abcdef";

const { call: api } = withApiKey(API_KEY);

async function refusedAsRevoked(wsUrl: string, token: string): Promise<void> {
  const r = await expectRejected(wsUrl, { token });
  assert.equal(r.status, 401);
  assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, "revoked_token");
}

describe("block and revoke on the embedded broker", () => {
  const broker = new MemoryBroker();
  let gw: InProcessGateway;
  let pub: InProcessPublisher;
  const clients: Client[] = [];
  before(async () => {
    gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0" }, { broker });
    pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY }, { broker });
  });
  after(async () => {
    await closeAll(clients);
    await pub?.close();
    await gw?.close();
    await broker.close();
  });
  const open = async (token: string) => {
    const c = await connect(gw.wsUrl, { token });
    clients.push(c);
    return c;
  };

  test("a blocked user's connections close with 4011 and its upgrades get 401 revoked_token until the block is lifted", async () => {
    const token = await hsToken({ sub: "mallory" });
    const [a, b] = [await open(token), await open(token)];
    const bystander = await open(await hsToken({ sub: "alice" }));
    const res = await api(pub.url, "POST", "/v1/users/mallory/block", { until: nowSeconds() + 3600 });
    assert.equal(res.status, 200);
    assert.deepEqual([(await a.closed).code, (await b.closed).code], [4011, 4011]);
    await refusedAsRevoked(gw.wsUrl, token);
    assert.ok(bystander.isOpen, "another user is untouched");
    assert.equal((await api(pub.url, "DELETE", "/v1/users/mallory/block")).status, 200);
    await waitFor(async () => (await open(token)).isOpen, { timeoutMs: 5000 });
  });

  test("a revoked jti closes that token's connections only; the user's other tokens still connect", async () => {
    const revoked = await hsToken({ sub: "bob", jti: "token-1" });
    const other = await hsToken({ sub: "bob", jti: "token-2" });
    const [a, b] = [await open(revoked), await open(other)];
    assert.equal((await api(pub.url, "POST", "/v1/tokens/revoke", { jti: "token-1", until: nowSeconds() + 60 })).status, 200);
    assert.equal((await a.closed).code, 4011);
    await refusedAsRevoked(gw.wsUrl, revoked);
    assert.ok(b.isOpen);
    await open(other);
  });

  test("entries lapse at until", async () => {
    const token = await hsToken({ sub: "brief" });
    assert.equal((await api(pub.url, "POST", "/v1/users/brief/block", { until: nowSeconds() + 2 })).status, 200);
    await refusedAsRevoked(gw.wsUrl, token);
    await waitFor(
      async () => {
        try {
          return (await open(token)).isOpen;
        } catch {
          return false;
        }
      },
      { timeoutMs: 5000, intervalMs: 250 },
    );
  });

  test("SDK: after 4011 it asks the token provider once; a new token that is refused too ends it with a terminal revoked error", async () => {
    let calls = 0;
    const provider = async () => {
      calls++;
      return hsToken({ sub: "sdk-user", jti: `sdk-${calls}` });
    };
    const c = new HeraldClient({ url: gw.wsUrl, token: provider, WebSocket: WS, backoff: { baseMs: 20, maxMs: 100 } });
    try {
      await c.connect();
      // A revoked jti: the provider's next token (another jti) is welcomed.
      const reconnected = new Promise<void>((resolve) => c.on("state", (s) => s.state === "connected" && s.previous !== "connected" && resolve()));
      await api(pub.url, "POST", "/v1/tokens/revoke", { jti: "sdk-1", until: nowSeconds() + 60 });
      await reconnected;
      assert.equal(calls, 2, "one new token");
      // A blocked user: the replacement token is refused too, and the client stops.
      const ended = new Promise<HeraldError>((resolve) => c.on("state", (s) => s.state === "closed" && resolve(s.error!)));
      await api(pub.url, "POST", "/v1/users/sdk-user/block", { until: nowSeconds() + 60 });
      const err = await ended;
      assert.deepEqual([err.code, err.terminal], ["revoked", true]);
      assert.equal(calls, 3, "asked once more, then stopped");
    } finally {
      c.close();
    }
  });

  test("bad input: until in the past or too far, no until, a bad jti", async () => {
    for (const [path, body] of [
      ["/v1/users/x/block", { until: nowSeconds() - 1 }],
      ["/v1/users/x/block", { until: nowSeconds() + 400 * 86400 }],
      ["/v1/users/x/block", {}],
      ["/v1/tokens/revoke", { until: nowSeconds() + 60 }],
      ["/v1/tokens/revoke", { jti: "", until: nowSeconds() + 60 }],
    ] as const) {
      const res = await api(pub.url, "POST", path, body);
      assert.deepEqual([res.status, (res.body["error"] as { code: string }).code], [400, "bad_request"], `${path} ${JSON.stringify(body)}`);
    }
  });
});

describe("block and revoke across three gateways on a 3-node NATS cluster", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  let gateways: ServiceProcess[];
  let pub: ServiceProcess;
  let cluster: Awaited<ReturnType<TestStack["natsCluster"]>>;
  // The bucket is replicated like the history (R3), each gateway on its own node.
  const env = { HISTORY_STREAM: "REVOKE_TEST", HISTORY_REPLICAS: "3" };
  after(() => stack.close());
  before(async () => {
    cluster = await stack.natsCluster(3, { jetstream: true });
    gateways = [await stack.gateway(cluster.nodes[0], env, { timeoutMs: 45_000 })];
    gateways.push(...(await Promise.all([stack.gateway(cluster.nodes[1], env), stack.gateway(cluster.nodes[2], env)])));
    pub = await stack.publisher(cluster.nodes[2], { ...env, PUBLISHER_API_KEY: API_KEY });
  });

  test("live connections on every gateway close with 4011 within 1 s; upgrades are refused at once, also after a gateway restart; the block lapses at until", async (t) => {
    const token = await hsToken({ sub: "eve" });
    const conns = await Promise.all(gateways.map((g) => stack.connect(g.wsUrl, { token })));
    const until = nowSeconds() + 6;
    const started = Date.now();
    assert.equal((await api(pub.url, "POST", "/v1/users/eve/block", { until })).status, 200);
    const closes = await Promise.all(conns.map((c) => c.closed.then((info) => ({ code: info.code, ms: Date.now() - started }))));
    for (const close of closes) {
      assert.equal(close.code, 4011);
      assert.ok(close.ms < 1000, `closed within 1 s (took ${close.ms} ms)`);
    }
    t.diagnostic(`block to 4011 on 3 gateways: ${closes.map((c) => c.ms).join(", ")} ms (from the API call)`);
    for (const g of gateways) await refusedAsRevoked(g.wsUrl, token);

    // The state is in KV: a restarted gateway refuses from its first upgrade.
    await gateways[0]!.stop();
    gateways[0] = await stack.gateway(cluster.nodes[0], env);
    await refusedAsRevoked(gateways[0].wsUrl, token);

    await waitFor(
      async () => {
        try {
          return (await stack.connect(gateways[1]!.wsUrl, { token })).isOpen;
        } catch {
          return false;
        }
      },
      { timeoutMs: 15_000, intervalMs: 250 },
    );
    assert.ok(Date.now() / 1000 >= until - 1, "open again only once until has passed");
  });
});
