/**
 * History epochs (issue 11): every positioned `subscribed` names the life of
 * the history its `seq` belongs to, and a resume that names another life is
 * answered `recovered: false` from the current position, even where the
 * position numbers of the two lives overlap. Both brokers: the embedded one
 * (a restart starts a new epoch) and JetStream (a deleted and recreated
 * stream does; every gateway derives the same epoch from the stream).
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import { readHistoryConfig } from "@herald/core";
import { connect as natsConnect } from "nats";
import { startGatewayInProcess, startPublisherInProcess, type InProcessGateway, type InProcessPublisher } from "./helpers/in-process.js";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { TestStack } from "./helpers/stack.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { waitFor } from "./helpers/wait.js";
import { closeAll, connect, type Client, type Frame } from "./helpers/ws.js";
import { withApiKey } from "./helpers/api-key.js";

const API_KEY = "epochs-test-api-key-0123456789abcd";
const isMessage = (f: Frame) => f.type === "message";

const { publish } = withApiKey(API_KEY);

/** A gateway and a publisher on one embedded broker with history. */
async function embedded(): Promise<{ broker: MemoryBroker; gw: InProcessGateway; pub: InProcessPublisher; close(): Promise<void> }> {
  const broker = new MemoryBroker({ history: readHistoryConfig({}) });
  const gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0" }, { broker });
  const pub = await startPublisherInProcess({ JWT_SECRET: TEST_SECRET, PUBLISHER_API_KEY: API_KEY }, { broker });
  return {
    broker,
    gw,
    pub,
    async close() {
      await pub.close();
      await gw.close();
      await broker.close();
    },
  };
}

describe("history epochs on the embedded broker", () => {
  const clients: Client[] = [];
  const client = async (url: string) => {
    const c = await connect(url, { token: await hsToken({ sub: "reader", channels: ["news"] }) });
    clients.push(c);
    return c;
  };
  after(() => closeAll(clients));

  test("subscribed names the epoch; a resume in it recovers, one from another epoch continues from now with recovered: false", async () => {
    const life = await embedded();
    try {
      const epoch = life.broker.history!.epochOf("herald.ch.x");
      const a = await client(life.gw.wsUrl);
      const first = await a.request({ type: "subscribe", channel: "news", id: 1 });
      assert.equal(first["epoch"], epoch);
      assert.equal(first["recovered"], true);
      const start = first["seq"] as number;
      for (let i = 1; i <= 3; i++) await publish(life.pub.url, "news", { i });
      const got = [await a.next(isMessage), await a.next(isMessage), await a.next(isMessage)];
      const last = got[2]!["seq"] as number;

      const same = await client(life.gw.wsUrl);
      const resumed = await same.request({ type: "subscribe", channel: "news", since: start, epoch, id: 1 });
      assert.deepEqual([resumed["recovered"], resumed["epoch"]], [true, epoch]);
      assert.deepEqual((await same.next(isMessage))["data"], { i: 1 }, "the missed messages follow");

      const other = await client(life.gw.wsUrl);
      const refused = await other.request({ type: "subscribe", channel: "news", since: start, epoch: "another-life", id: 1 });
      assert.deepEqual([refused["recovered"], refused["seq"], refused["epoch"]], [false, last, epoch], "continues from the current position");
      await publish(life.pub.url, "news", { i: 4 });
      const next = await other.next(isMessage);
      assert.deepEqual([next["data"], next["prev"]], [{ i: 4 }, last], "nothing replayed; prev is the position it was given");

      const bad = await other.request({ type: "subscribe", channel: "news", since: 1, epoch: 7, id: 2 });
      assert.deepEqual([bad.type, bad["code"]], ["error", "bad_request"]);
    } finally {
      await life.close();
    }
  });

  test("a restarted embedded broker is a new epoch: an old position is not recovered even where the numbers overlap", async () => {
    const one = await embedded();
    let oldEpoch: string;
    let since: number;
    try {
      oldEpoch = one.broker.history!.epochOf("herald.ch.x");
      const a = await client(one.gw.wsUrl);
      await a.request({ type: "subscribe", channel: "news", id: 1 });
      await publish(one.pub.url, "news", { life: 1 });
      since = (await a.next(isMessage))["seq"] as number;
    } finally {
      await one.close();
    }
    const two = await embedded();
    try {
      assert.notEqual(two.broker.history!.epochOf("herald.ch.x"), oldEpoch);
      for (let i = 0; i < since + 3; i++) await publish(two.pub.url, "news", { life: 2, i });
      const b = await client(two.gw.wsUrl);
      const reply = await b.request({ type: "subscribe", channel: "news", since, epoch: oldEpoch, id: 1 });
      assert.deepEqual([reply["recovered"], reply["epoch"]], [false, two.broker.history!.epochOf("herald.ch.x")]);
    } finally {
      await two.close();
    }
  });
});

describe("history epochs on JetStream", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  after(() => stack.close());

  test("every gateway names the same epoch; a deleted and recreated stream is a new one", async () => {
    const nats = await stack.nats({ jetstream: true });
    const env = { HISTORY_STREAM: "EPOCH_TEST" };
    const token = await hsToken({ sub: "reader", channels: ["news"] });
    const start = async (): Promise<[ServiceProcess, ServiceProcess, ServiceProcess]> =>
      Promise.all([stack.gateway(nats, env), stack.gateway(nats, env), stack.publisher(nats, { ...env, PUBLISHER_API_KEY: API_KEY })]);
    const subscribe = async (url: string, extra: Frame = {}) => {
      const c = await stack.connect(url, { token });
      return c.request({ type: "subscribe", channel: "news", id: 1, ...extra });
    };

    let [gw1, gw2, pub] = await start();
    const first = await subscribe(gw1.wsUrl);
    const epoch = first["epoch"] as string;
    assert.equal(typeof epoch, "string");
    assert.equal((await subscribe(gw2.wsUrl))["epoch"], epoch, "both gateways derive the same epoch");
    for (let i = 0; i < 3; i++) await publish(pub.url, "news", { i });
    const resumed = await subscribe(gw2.wsUrl, { since: first["seq"] as number, epoch });
    assert.equal(resumed["recovered"], true);

    // The history is lost: services stopped, the stream deleted, then started again (which recreates it).
    await Promise.all([gw1.stop(), gw2.stop(), pub.stop()]);
    const nc = await natsConnect({ servers: nats.url });
    try {
      await (await nc.jetstreamManager()).streams.delete("EPOCH_TEST");
    } finally {
      await nc.close();
    }
    [gw1, gw2, pub] = await start();
    for (let i = 0; i < 6; i++) await publish(pub.url, "news", { again: i });
    const after = await subscribe(gw1.wsUrl, { since: 2, epoch });
    assert.equal(after["recovered"], false, "position 2 of the old stream is not position 2 of the new one");
    assert.notEqual(after["epoch"], epoch);
    assert.equal((await subscribe(gw2.wsUrl))["epoch"], after["epoch"]);
  });

  test("a stream deleted while the gateways run: it is recreated, channel clients are closed with 1001, and their resume is recovered: false in the new epoch", async () => {
    const nats = await stack.nats({ jetstream: true });
    const env = { HISTORY_STREAM: "EPOCH_LIVE" };
    const token = await hsToken({ sub: "reader", channels: ["news"] });
    const [gw1, gw2, pub] = await Promise.all([stack.gateway(nats, env), stack.gateway(nats, env), stack.publisher(nats, { ...env, PUBLISHER_API_KEY: API_KEY })]);
    const a = await stack.connect(gw1.wsUrl, { token });
    const first = await a.request({ type: "subscribe", channel: "news", id: 1 });
    const oldEpoch = first["epoch"] as string;
    for (let i = 1; i <= 5; i++) await publish(pub.url, "news", { old: i });
    let last = 0;
    for (let i = 1; i <= 5; i++) last = (await a.next(isMessage))["seq"] as number;

    const nc = await natsConnect({ servers: nats.url });
    try {
      await (await nc.jetstreamManager()).streams.delete("EPOCH_LIVE");
    } finally {
      await nc.close();
    }
    // Each service reads the stream again every 5 s, recreates it, and sees the new epoch.
    const closed = await Promise.race([a.closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 20_000))]);
    assert.equal(closed?.code, 1001, "the channel client is told to resume");

    for (let i = 1; i <= last + 3; i++) await publish(pub.url, "news", { fresh: i });
    for (const gw of [gw1, gw2]) {
      const reply = await waitFor(
        async () => {
          const c = await stack.connect(gw.wsUrl, { token });
          const r = await c.request({ type: "subscribe", channel: "news", since: last, epoch: oldEpoch, id: 1 });
          return r["epoch"] !== oldEpoch && r;
        },
        { timeoutMs: 20_000, intervalMs: 500 },
      );
      assert.equal(reply["recovered"], false, `position ${last} of the old stream is not position ${last} of the new one`);
      assert.equal(reply["seq"], last + 3, "continues from the new stream's current position");
    }
  });
});
