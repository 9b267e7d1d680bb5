/**
 * Interest-based NATS subscriptions (DESIGN.md "Data path"): a gateway holds a
 * NATS subscription for a channel only while at least one local socket is
 * subscribed to it, reference counted. Checked from the NATS side through
 * the monitor's /connz?subs=1, by the gateway's connection name (NATS_NAME).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { userToken } from "../packages/core/src/subjects.js";
import { natsSubscriptions, subscriptionCount, type NatsServer } from "./helpers/nats.js";
import { GATEWAY_MAIN, missingBuild, uniqueName, waitFor, type ServiceProcess } from "./helpers/procs.js";
import { scrape } from "./helpers/metrics.js";
import { hsToken } from "./helpers/tokens.js";
import { connect, type Client } from "./helpers/ws.js";
import { TestStack } from "./helpers/stack.js";

describe("gateway NATS interest follows local subscribers", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  const { clients } = stack;
  let nats: NatsServer;
  let gw: ServiceProcess;
  const name = uniqueName("herald-gw-interest");

  before(async () => {
    nats = await stack.nats();
    gw = await stack.gateway(nats, { NATS_NAME: name });
    await waitFor(async () => (await natsSubscriptions(nats.monitorUrl)).some((c) => c.name === name), {
      message: `a NATS connection named ${name}`,
    });
  });

  after(() => stack.close());

  const count = (subject: string) => subscriptionCount(nats.monitorUrl, name, subject);
  const waitCount = (subject: string, want: number, what: string) =>
    waitFor(async () => (await count(subject)) === want, { timeoutMs: 5000, message: what });

  async function client(sub: string, channels: string[]): Promise<Client> {
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub, channels }) });
    clients.push(c);
    return c;
  }

  test("a channel subscription exists in NATS exactly while local sockets want it (ref-counted)", async () => {
    const subject = "herald.ch.room.1";
    assert.equal(await count(subject), 0, "no subscription before any client subscribes");

    const a = await client("ia", ["room.*"]);
    // Connecting alone must not create channel interest.
    assert.equal(await count(subject), 0);
    assert.deepEqual(await a.request({ type: "subscribe", channel: "room.1", id: 1 }), { type: "subscribed", channel: "room.1", id: 1 });
    await waitCount(subject, 1, "subscription present after the first local subscriber");

    const b = await client("ib", ["room.*"]);
    assert.deepEqual(await b.request({ type: "subscribe", channel: "room.1", id: 1 }), { type: "subscribed", channel: "room.1", id: 1 });
    // Subscribing the same socket twice must not add interest either.
    const again = await b.request({ type: "subscribe", channel: "room.1", id: 2 });
    assert.ok(again.type === "subscribed" || again.type === "error", `unexpected reply ${JSON.stringify(again)}`);
    // Give a wrongly implemented gateway the chance to add a second SUB, then check it did not.
    const probe = await a.request({ type: "ping", id: "p1" });
    assert.equal(probe.type, "pong");
    await waitCount(subject, 1, "still exactly one subscription with two local subscribers");
    const all = (await natsSubscriptions(nats.monitorUrl)).filter((c) => c.name === name);
    assert.equal(all.length, 1, "one NATS connection per gateway process");
    assert.equal(all[0]!.subscriptions_list.filter((s) => s === subject).length, 1);

    assert.deepEqual(await a.request({ type: "unsubscribe", channel: "room.1", id: 3 }), {
      type: "unsubscribed",
      channel: "room.1",
      id: 3,
    });
    await b.request({ type: "ping", id: "p2" });
    assert.equal(await count(subject), 1, "still subscribed while b remains");

    await b.close();
    await waitCount(subject, 0, "subscription removed once the last local subscriber is gone (socket closed)");
  });

  test("unsubscribe by every subscriber (sockets still open) removes the NATS subscription", async () => {
    const subject = "herald.ch.room.2";
    const a = await client("ic", ["room.*"]);
    const b = await client("id", ["room.*"]);
    await a.request({ type: "subscribe", channel: "room.2", id: 1 });
    await b.request({ type: "subscribe", channel: "room.2", id: 1 });
    await waitCount(subject, 1, "one subscription for two subscribers");
    await a.request({ type: "unsubscribe", channel: "room.2", id: 2 });
    await b.request({ type: "unsubscribe", channel: "room.2", id: 2 });
    await waitCount(subject, 0, "no subscription after both unsubscribed");
    assert.ok(a.isOpen && b.isOpen);
  });

  test("an abruptly dropped socket (no close handshake) releases its interest too", async () => {
    const subject = "herald.ch.room.3";
    const a = await client("ie", ["room.*"]);
    await a.request({ type: "subscribe", channel: "room.3", id: 1 });
    await waitCount(subject, 1, "subscription present");
    a.terminate();
    await waitCount(subject, 0, "subscription removed after the TCP connection dropped");
  });

  test("the user subject is subscribed while a socket of that user is open, and released after the last one", async () => {
    const subject = `herald.user.${userToken("interest-user")}`;
    assert.equal(await count(subject), 0);
    const a = await client("interest-user", []);
    const b = await client("interest-user", []);
    await waitCount(subject, 1, "one user subscription for two sockets of the same user");
    await a.close();
    await b.request({ type: "ping", id: 1 });
    assert.equal(await count(subject), 1, "kept while another socket of the user is open");
    await b.close();
    await waitCount(subject, 0, "user subscription released after the user's last socket closed");
  });

  test("herald_broker_subscriptions matches what NATS sees", async () => {
    const a = await client("ig", ["room.*"]);
    await a.request({ type: "subscribe", channel: "room.9", id: 1 });
    await waitCount("herald.ch.room.9", 1, "subscription present");
    await waitFor(
      async () => {
        const natsView = (await natsSubscriptions(nats.monitorUrl)).find((c) => c.name === name);
        const herald = natsView?.subscriptions_list.filter((s) => s.startsWith("herald.")).length;
        const metric = (await scrape(gw.url)).get("herald_broker_subscriptions");
        return herald !== undefined && metric === herald;
      },
      { timeoutMs: 5000, message: "herald_broker_subscriptions equal to the gateway's herald.* subscriptions in /connz" },
    );
  });
});
