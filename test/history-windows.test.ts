/**
 * Per-namespace history windows (issue 11): each namespace with history keeps
 * its channels for its own age and count, on JetStream (one stream per
 * namespace) and on the embedded broker alike; a message older than its
 * namespace's age is gone while another namespace's is not; a namespace
 * with history off has no positions; layouts JetStream cannot express are
 * refused at start, and an earlier layout's streams are kept and named.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import { ConfigError, HistoryWindows, readHistoryConfig, readNamespaces } from "@herald/core";
import { readGatewayConfig } from "@herald/gateway";
import { connect as natsConnect } from "nats";
import { startGatewayInProcess, startPublisherInProcess } from "./helpers/in-process.js";
import { httpStatus } from "./helpers/http.js";
import { GATEWAY_MAIN, missingBuild } from "./helpers/procs.js";
import { TestStack } from "./helpers/stack.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { waitFor } from "./helpers/wait.js";
import { closeAll, connect, type Client, type Frame } from "./helpers/ws.js";
import { withApiKey } from "./helpers/api-key.js";

const API_KEY = "history-windows-api-key-0123456789ab";
/** `brief` forgets after 1 s, `long` keeps for an hour and at most 3 per channel, `live` keeps nothing; no default namespace. */
const NAMESPACES = JSON.stringify({
  brief: { history: true, history_max_age_seconds: 1 },
  long: { history: true, history_max_age_seconds: 3600, history_max_per_channel: 3 },
  live: { history: false },
});
const isMessage = (f: Frame) => f.type === "message";

const { publish } = withApiKey(API_KEY);

async function historyOf(c: Client, channel: string): Promise<unknown[]> {
  const page = await c.request({ type: "history", channel, id: 9 });
  assert.equal(page.type, "history", JSON.stringify(page));
  return (page["messages"] as Array<{ data: unknown }>).map((m) => m.data);
}

/**
 * The same story on either broker: `brief` forgets, `long` keeps its last 3,
 * `live` has no positions at all.
 */
async function windowsHonoured(wsUrl: string, pubUrl: string, clients: Client[]): Promise<void> {
  const c = await connect(wsUrl, { token: await hsToken({ sub: "reader", channels: ["brief.>", "long.>", "live.>"] }) });
  clients.push(c);
  await publish(pubUrl, "brief.a", { n: 1 });
  for (let n = 1; n <= 5; n++) await publish(pubUrl, "long.a", { n });
  assert.deepEqual(await historyOf(c, "long.a"), [{ n: 3 }, { n: 4 }, { n: 5 }], "long keeps its last 3");
  // Expiry runs on the broker's clock: poll for it (bounded), never a fixed sleep.
  await waitFor(async () => (await historyOf(c, "brief.a")).length === 0, { timeoutMs: 10_000, intervalMs: 200 });
  assert.deepEqual(await historyOf(c, "long.a"), [{ n: 3 }, { n: 4 }, { n: 5 }], "brief's age did not touch long");

  const live = await c.request({ type: "subscribe", channel: "live.a", id: 2 });
  assert.equal(live.type, "subscribed");
  assert.equal(live["seq"], undefined, "no positions where history is off");
  await publish(pubUrl, "live.a", { live: true });
  const m = await c.next((f) => isMessage(f) && f["channel"] === "live.a");
  assert.deepEqual([m["data"], m["seq"]], [{ live: true }, undefined]);
  const refused = await c.request({ type: "history", channel: "live.a", id: 3 });
  assert.deepEqual([refused.type, refused["code"]], ["error", "forbidden"]);
}

describe("history windows: configuration", () => {
  const windows = (ns: unknown, env: Record<string, string> = {}) => {
    const history = readHistoryConfig(env);
    return HistoryWindows.of(readNamespaces({ NAMESPACES: JSON.stringify(ns) }, history), history, "NAMESPACES");
  };

  test("without a default namespace keeping history, one stream per namespace with its own limits", () => {
    const w = windows({ chat: { history_max_age_seconds: 86400, history_max_per_channel: 10 }, news: {}, typing: { history: false }, "": { history: false } });
    assert.deepEqual(w.list, [
      { stream: "HERALD_chat", namespace: "chat", maxAgeSeconds: 86400, maxPerChannel: 10 },
      { stream: "HERALD_news", namespace: "news", maxAgeSeconds: 300, maxPerChannel: 1000 },
    ]);
    assert.equal(w.of("chat.1")?.stream, "HERALD_chat");
    assert.equal(w.of("typing.1"), undefined);
    assert.equal(w.of("other"), undefined, "in the default namespace, which has history off");
  });

  test("a default namespace with history is one catch-all stream; a namespace with history off is stored there but not served", () => {
    const w = windows({ "": { history_max_age_seconds: 60 }, chat: { history_max_age_seconds: 60 }, typing: { history: false } });
    assert.deepEqual(w.list, [{ stream: "HERALD", namespace: null, maxAgeSeconds: 60, maxPerChannel: 1000 }]);
    assert.equal(w.of("chat.1")?.stream, "HERALD");
    assert.equal(w.of("typing.1"), undefined);
    assert.equal(w.storing("typing.1")?.stream, "HERALD");
  });

  test("a namespace window unlike the catch-all's is refused, naming the namespace and option", () => {
    assert.throws(
      () => windows({ "": {}, chat: { history_max_per_channel: 5 } }),
      (err: unknown) => err instanceof ConfigError && err.variable === "NAMESPACES" && /namespace "chat": history_max_per_channel 5 \(the default's is 1000\)/.test(err.message),
    );
    assert.throws(
      () => readGatewayConfig({ JWT_SECRET: TEST_SECRET, NAMESPACES: JSON.stringify({ "": {}, chat: { history_max_age_seconds: 9 } }) }),
      (err: unknown) => err instanceof ConfigError && /history_max_age_seconds 9/.test(err.message),
    );
  });

  test("HISTORY_STREAM names the streams; HISTORY=false means none", () => {
    assert.equal(windows({ chat: {} }, { HISTORY_STREAM: "APP" }).list[0]?.stream, "APP_chat");
    assert.equal(windows({ chat: {} }, { HISTORY: "false" }).enabled, false);
  });
});

describe("history windows on the embedded broker", () => {
  const clients: Client[] = [];
  after(() => closeAll(clients));

  test("a message older than its namespace's age is gone, another namespace's is not", async () => {
    const env = { JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0", NAMESPACES };
    const config = readGatewayConfig(env);
    const broker = new MemoryBroker({ history: config.history, windows: config.windows });
    const gw = await startGatewayInProcess(env, { broker });
    const pub = await startPublisherInProcess({ ...env, PUBLISHER_API_KEY: API_KEY }, { broker });
    try {
      await windowsHonoured(gw.wsUrl, pub.url, clients);
    } finally {
      await closeAll(clients);
      await pub.close();
      await gw.close();
      await broker.close();
    }
  });
});

describe("history windows on JetStream", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  after(() => stack.close());

  test("one stream per namespace with its own limits; a message older than its namespace's age is gone, another namespace's is not", async () => {
    const nats = await stack.nats({ jetstream: true });
    const env = { HISTORY_STREAM: "WIN", NAMESPACES };
    const [gw, pub] = await Promise.all([stack.gateway(nats, env), stack.publisher(nats, { ...env, PUBLISHER_API_KEY: API_KEY })]);
    const nc = await natsConnect({ servers: nats.url });
    stack.defer(() => nc.close());
    const jsm = await nc.jetstreamManager();
    const brief = (await jsm.streams.info("WIN_brief")).config;
    const long = (await jsm.streams.info("WIN_long")).config;
    assert.deepEqual([brief.max_age, brief.subjects], [1e9, ["herald.ch.brief", "herald.ch.brief.>"]]);
    assert.deepEqual([long.max_age, long.max_msgs_per_subject], [3600e9, 3]);
    await assert.rejects(jsm.streams.info("WIN_live"), "no stream for a namespace without history");
    await windowsHonoured(gw.wsUrl, pub.url, stack.clients);
  });

  test("an earlier layout's stream is kept: the overlap is explained, and an unused one is named in the log", async () => {
    const nats = await stack.nats({ jetstream: true });
    // First the catch-all layout (no namespaces), with one message in it.
    const old = await stack.publisher(nats, { HISTORY_STREAM: "LAY", PUBLISHER_API_KEY: API_KEY });
    await publish(old.url, "chat.1", { kept: true });
    await old.stop();
    // Then namespaces: LAY_chat would overlap LAY, which Herald must not delete.
    const gw = await stack.gateway(nats, { HISTORY_STREAM: "LAY", NAMESPACES: JSON.stringify({ chat: {} }), LOG_LEVEL: "info" }, { waitFor: "healthz" });
    await waitFor(() => gw.logs.some((l) => /LAY_chat cannot be created: .*overlap stream LAY\b.*never deletes history/.test(l)), { timeoutMs: 10_000 });
    const nc = await natsConnect({ servers: nats.url });
    stack.defer(() => nc.close());
    const jsm = await nc.jetstreamManager();
    assert.equal((await jsm.streams.info("LAY")).state.messages, 1, "the old stream and its message are still there");

    // The operator removes it: the waiting gateway creates its stream.
    await jsm.streams.delete("LAY");
    assert.equal(await httpStatus(`${gw.url}/readyz`), 503, "not ready while its history cannot be set up");
    await waitFor(() => gw.logs.some((l) => /history stream ready/.test(l) && /LAY_chat/.test(l)), { timeoutMs: 10_000 });
    await waitFor(async () => (await httpStatus(`${gw.url}/readyz`)) === 200, { timeoutMs: 10_000 });
    await gw.stop();
    // A later configuration without chat keeps LAY_chat and names it.
    const two = await stack.gateway(nats, { HISTORY_STREAM: "LAY", NAMESPACES: JSON.stringify({ news: {} }) });
    await jsm.streams.info("LAY_news");
    assert.ok(two.logs.some((l) => /still there, unused/.test(l) && /LAY_chat/.test(l)), "the unused stream is named in the log");
    await jsm.streams.info("LAY_chat");
  });
});
