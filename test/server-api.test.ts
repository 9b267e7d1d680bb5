/**
 * The server API (issue 11): disconnect, subscribe and unsubscribe reach
 * every connection of a user on every gateway and the answer counts them;
 * channels and info gather every gateway; history pages come from the
 * broker; the answer says how many gateways answered and how many known ones
 * did not. Embedded broker (one process) and real nats-server with three
 * gateway processes. Bad input gets clear errors.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import { readHistoryConfig } from "@herald/core";
import { startGatewayInProcess, startPublisherInProcess, type InProcessGateway, type InProcessPublisher } from "./helpers/in-process.js";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { TestStack } from "./helpers/stack.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { withApiKey } from "./helpers/api-key.js";
import { waitFor } from "./helpers/wait.js";
import { closeAll, connect, type Client, type Frame } from "./helpers/ws.js";

const API_KEY = "server-api-test-key-0123456789abcdef";
const NAMESPACES = JSON.stringify({ chat: {}, news: { client_publish: false } });

const { call: api, publish } = withApiKey(API_KEY);

const userToken = (sub: string) => hsToken({ sub, channels: ["chat.lobby"] });

describe("server API on the embedded broker", () => {
  const broker = new MemoryBroker({ history: readHistoryConfig({}) });
  let gw: InProcessGateway;
  let pub: InProcessPublisher;
  const clients: Client[] = [];
  const client = async (sub: string) => {
    const c = await connect(gw.wsUrl, { token: await userToken(sub) });
    clients.push(c);
    return c;
  };

  before(async () => {
    gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0", NAMESPACES }, { broker });
    pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY, NAMESPACES, CONTROL_TIMEOUT_MS: "300" }, { broker });
  });
  after(async () => {
    await closeAll(clients);
    await pub?.close();
    await gw?.close();
    await broker.close();
  });

  test("subscribe puts every connection of the user on a channel its token does not name; messages follow; unsubscribe takes it off", async () => {
    const [a1, a2, other] = [await client("alice"), await client("alice"), await client("bob")];
    const sub = await api(pub.url, "POST", "/v1/users/alice/subscribe", { channel: "news.eu" });
    assert.deepEqual([sub.status, sub.body["connections"], sub.body["gateways"], sub.body["missing"]], [200, 2, 1, 0]);
    for (const c of [a1, a2]) {
      const f = await c.next((x) => x.type === "subscribed");
      assert.deepEqual([f["channel"], f["server"], typeof f["seq"], typeof f["epoch"]], ["news.eu", true, "number", "string"]);
    }
    await publish(pub.url, "news.eu", { n: 1 });
    for (const c of [a1, a2]) assert.deepEqual((await c.next((x) => x.type === "message"))["data"], { n: 1 });

    const listed = await api(pub.url, "GET", "/v1/channels?prefix=news");
    assert.deepEqual(listed.body["channels"], [{ channel: "news.eu", clients: 2 }]);
    const again = await api(pub.url, "POST", "/v1/users/alice/subscribe", { channel: "news.eu" });
    assert.equal(again.body["connections"], 2, "already subscribed connections count as reached");

    const unsub = await api(pub.url, "POST", "/v1/users/alice/unsubscribe", { channel: "news.eu" });
    assert.deepEqual([unsub.status, unsub.body["connections"]], [200, 2]);
    for (const c of [a1, a2]) assert.deepEqual(await c.next((x) => x.type === "unsubscribed"), { type: "unsubscribed", channel: "news.eu", server: true });
    assert.equal(other.all((x) => x["channel"] === "news.eu").length, 0, "another user is untouched");
  });

  test("disconnect closes every connection of the user with 4010 (or the code given) and counts them; an unknown user is 0", async () => {
    const [c1, c2] = [await client("carol"), await client("carol")];
    const res = await api(pub.url, "POST", "/v1/users/carol/disconnect");
    assert.deepEqual([res.status, res.body["connections"]], [200, 2]);
    assert.deepEqual([(await c1.closed).code, (await c2.closed).code], [4010, 4010]);
    const c3 = await client("carol");
    const custom = await api(pub.url, "POST", "/v1/users/carol/disconnect", { code: 4321, reason: "moved" });
    assert.equal(custom.body["connections"], 1);
    assert.deepEqual(await c3.closed, { code: 4321, reason: "moved" });
    const nobody = await api(pub.url, "POST", "/v1/users/nobody/disconnect", {});
    assert.deepEqual([nobody.status, nobody.body["connections"]], [200, 0]);
  });

  test("info and history", async () => {
    const info = await api(pub.url, "GET", "/v1/info");
    const gateways = info.body["gateways"] as Array<Record<string, unknown>>;
    assert.equal(gateways.length, 1);
    assert.deepEqual(Object.keys(gateways[0]!).sort(), ["channels", "connections", "id", "uptime_seconds", "version"]);
    for (let i = 1; i <= 5; i++) await publish(pub.url, "chat.hist", { i });
    const first = await api(pub.url, "GET", "/v1/channels/chat.hist/history?limit=3");
    const messages = first.body["messages"] as Array<{ seq: number; data: unknown }>;
    assert.deepEqual(messages.map((m) => m.data), [{ i: 1 }, { i: 2 }, { i: 3 }]);
    assert.equal(typeof first.body["epoch"], "string");
    const rest = await api(pub.url, "GET", `/v1/channels/chat.hist/history?since=${first.body["next"]}`);
    assert.deepEqual((rest.body["messages"] as Array<{ data: unknown }>).map((m) => m.data), [{ i: 4 }, { i: 5 }]);
    assert.equal(rest.body["next"], null);
  });

  test("bad input: no key or a JWT (401), malformed bodies and values (400), wrong methods (405)", async () => {
    const cases: Array<[string, string, unknown, string | null, number, string]> = [
      ["POST", "/v1/users/x/disconnect", undefined, null, 401, "unauthorized"],
      ["GET", "/v1/info", undefined, await hsToken({ sub: "x", publish: [">"] }), 401, "unauthorized"],
      ["POST", "/v1/users/x/disconnect", "{not json", API_KEY, 400, "bad_request"],
      ["POST", "/v1/users/x/disconnect", [1], API_KEY, 400, "bad_request"],
      ["POST", "/v1/users/x/disconnect", { code: 1000 }, API_KEY, 400, "bad_request"],
      ["POST", "/v1/users/x/disconnect", { reason: "r".repeat(200) }, API_KEY, 400, "bad_request"],
      ["POST", "/v1/users/x/subscribe", {}, API_KEY, 400, "bad_request"],
      ["POST", "/v1/users/x/subscribe", { channel: "chat.*" }, API_KEY, 400, "invalid_channel"],
      ["POST", "/v1/users/x/subscribe", { channel: "nowhere.1" }, API_KEY, 400, "invalid_channel"],
      ["GET", "/v1/channels/chat.a/history?limit=5000", undefined, API_KEY, 400, "bad_request"],
      ["GET", "/v1/channels/chat.a/history?since=-1", undefined, API_KEY, 400, "bad_request"],
      ["GET", "/v1/users/x/disconnect", undefined, API_KEY, 405, "method_not_allowed"],
    ];
    for (const [method, path, body, key, status, code] of cases) {
      const res = await api(pub.url, method, path, body, key);
      const label = `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`;
      assert.deepEqual([res.status, (res.body["error"] as { code: string } | undefined)?.code], [status, code], label);
    }
  });
});

describe("server API across three gateways on a 3-node NATS cluster", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  let gateways: ServiceProcess[];
  let pub: ServiceProcess;
  after(() => stack.close());

  before(async () => {
    // Each gateway on its own node: control requests and answers cross the cluster's routes.
    const cluster = await stack.natsCluster(3, { jetstream: true });
    const env = { NAMESPACES, HISTORY_STREAM: "API_TEST", HISTORY_REPLICAS: "3" };
    gateways = [await stack.gateway(cluster.nodes[0], env, { timeoutMs: 45_000 })];
    gateways.push(...(await Promise.all([stack.gateway(cluster.nodes[1], env), stack.gateway(cluster.nodes[2], env)])));
    pub = await stack.publisher(cluster.nodes[0], { ...env, PUBLISHER_API_KEY: API_KEY, CONTROL_TIMEOUT_MS: "1500" });
  });

  /** Two connections of `sub` on each gateway. */
  async function spread(sub: string): Promise<Client[]> {
    const token = await userToken(sub);
    return Promise.all(gateways.flatMap((g) => [stack.connect(g.wsUrl, { token }), stack.connect(g.wsUrl, { token })]));
  }

  test("subscribe, unsubscribe and disconnect reach all six connections of a user over three gateways, and say so", async (t) => {
    const conns = await spread("dana");
    // The publisher hears every gateway's hello within a heartbeat.
    await waitFor(async () => ((await api(pub.url, "GET", "/v1/info")).body["gateways"] as unknown[]).length === 3, { timeoutMs: 10_000 });

    const sub = await api(pub.url, "POST", "/v1/users/dana/subscribe", { channel: "news.all" });
    assert.deepEqual([sub.body["connections"], sub.body["gateways"], sub.body["missing"]], [6, 3, 0]);
    await Promise.all(conns.map((c) => c.next((f: Frame) => f.type === "subscribed" && f["server"] === true)));
    await publish(pub.url, "news.all", { hello: "everyone" });
    for (const c of conns) assert.deepEqual((await c.next((f) => f.type === "message"))["data"], { hello: "everyone" });

    const listed = await api(pub.url, "GET", "/v1/channels?prefix=news.");
    assert.deepEqual(listed.body["channels"], [{ channel: "news.all", clients: 6 }]);
    const info = await api(pub.url, "GET", "/v1/info");
    const total = (info.body["gateways"] as Array<{ connections: number }>).reduce((n, g) => n + g.connections, 0);
    assert.equal(total, 6);

    const unsub = await api(pub.url, "POST", "/v1/users/dana/unsubscribe", { channel: "news.all" });
    assert.deepEqual([unsub.body["connections"], unsub.body["gateways"]], [6, 3]);
    const askedAt = Date.now();
    const off = await api(pub.url, "POST", "/v1/users/dana/disconnect", { reason: "bye" });
    t.diagnostic(`disconnect over 3 gateways answered in ${Date.now() - askedAt} ms`);
    assert.deepEqual([off.body["connections"], off.body["gateways"], off.body["missing"]], [6, 3, 0]);
    for (const c of conns) assert.equal((await c.closed).code, 4010);
  });

  test("a gateway killed without a word: the answer comes after CONTROL_TIMEOUT_MS and names it missing", async () => {
    await waitFor(async () => ((await api(pub.url, "GET", "/v1/info")).body["gateways"] as unknown[]).length === 3, { timeoutMs: 10_000 });
    gateways[2]!.kill("SIGKILL");
    await gateways[2]!.exited;
    const started = Date.now();
    const res = await api(pub.url, "POST", "/v1/users/erin/disconnect");
    assert.deepEqual([res.status, res.body["connections"], res.body["gateways"], res.body["missing"]], [200, 0, 2, 1]);
    assert.ok(Date.now() - started >= 1400, "waited for the missing gateway up to the timeout");
  });
});
