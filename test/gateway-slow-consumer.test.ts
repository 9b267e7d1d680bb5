/**
 * Slow consumers (DESIGN.md close code 4009): a socket that stops reading is
 * closed once its send buffer passes SLOW_CONSUMER_BYTES, and a normal
 * client on the same channel keeps receiving every message, in order.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect as natsConnect, type NatsConnection } from "nats";
import { subscriptionCount, type NatsServer } from "./helpers/nats.js";
import { GATEWAY_MAIN, missingBuild, uniqueName, waitFor, withTimeout, type ServiceProcess } from "./helpers/procs.js";
import { scrape } from "./helpers/metrics.js";
import { hsToken } from "./helpers/tokens.js";
import { connect } from "./helpers/ws.js";
import { TestStack } from "./helpers/stack.js";

const SLOW_CONSUMER_BYTES = 256 * 1024;
const MESSAGE_BYTES = 8 * 1024;
const BATCH = 50;
const MAX_BATCHES = 200; // at most 80 MB in total; the kernel buffers a few MB at most

describe("gateway slow consumer handling", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  const { clients } = stack;
  let nats: NatsServer;
  let gw: ServiceProcess;
  let nc: NatsConnection;
  const name = uniqueName("herald-gw-slow");

  before(async () => {
    nats = await stack.nats();
    gw = await stack.gateway(nats, { NATS_NAME: name, SLOW_CONSUMER_BYTES: String(SLOW_CONSUMER_BYTES) });
    nc = await natsConnect({ servers: nats.url, name: "slow-test-publisher" });
    stack.defer(() => nc.close());
  });
  after(() => stack.close());

  test("a socket that stops reading is closed with 4009; a normal reader gets every message", async () => {
    const token = await hsToken({ sub: "reader", channels: ["firehose"] });
    const normal = await connect(gw.wsUrl, { token });
    const slow = await connect(gw.wsUrl, { token: await hsToken({ sub: "sloth", channels: ["firehose"] }) });
    clients.push(normal, slow);
    for (const c of [normal, slow]) {
      assert.equal((await c.request({ type: "subscribe", channel: "firehose", id: 1 })).type, "subscribed");
    }
    await waitFor(async () => ((await subscriptionCount(nats.monitorUrl, name, "herald.ch.firehose")) ?? 0) >= 1, {
      message: "gateway subscribed to herald.ch.firehose",
    });

    let received = 0;
    let outOfOrder = 0;
    normal.ws.on("message", (data) => {
      const text = data.toString();
      if (!text.startsWith('{"type":"message"')) return;
      const seq = (JSON.parse(text) as { data: { seq: number } }).data.seq;
      if (seq !== received) outOfOrder++;
      received++;
    });

    slow.pauseSocket();
    const pad = "x".repeat(MESSAGE_BYTES - 40);
    const enc = new TextEncoder();
    let sent = 0;
    let slowClosedByServer = false;
    for (let batch = 0; batch < MAX_BATCHES && !slowClosedByServer; batch++) {
      for (let i = 0; i < BATCH; i++) nc.publish("herald.ch.firehose", enc.encode(JSON.stringify({ seq: sent++, pad })));
      await nc.flush();
      // Pace the publisher by the normal reader, so only the paused socket falls behind.
      const target = sent;
      await waitFor(() => received >= target, { timeoutMs: 10_000, intervalMs: 10, message: `normal reader caught up to ${target}` });
      const m = await scrape(gw.url);
      slowClosedByServer = (m.get("herald_slow_consumer_closes_total") ?? 0) >= 1;
    }
    assert.ok(slowClosedByServer, `herald_slow_consumer_closes_total stayed 0 after ${sent} messages of ${MESSAGE_BYTES} bytes`);
    const kb = Math.round((sent * MESSAGE_BYTES) / 1024);
    console.log(`# slow consumer closed after ${sent} messages (~${kb} KiB published)`);

    slow.resumeSocket();
    const closed = await withTimeout(slow.closed, 15_000, "slow consumer close");
    const slowGot = slow.all((f) => f.type === "message").length;
    assert.equal(
      closed.code,
      4009,
      `slow consumer close code ${closed.code} (${closed.reason}); it had received ${slowGot} of ${sent} messages` +
        (slow.lastError ? `; client error: ${slow.lastError.message}` : ""),
    );

    // The normal reader got everything, in order, and is still connected.
    for (let i = 0; i < 20; i++) nc.publish("herald.ch.firehose", enc.encode(JSON.stringify({ seq: sent++, pad: "" })));
    await nc.flush();
    await waitFor(() => received >= sent, { timeoutMs: 10_000, message: `normal reader received all ${sent} messages` });
    assert.equal(received, sent);
    assert.equal(outOfOrder, 0, "messages arrived in publish order");
    assert.ok(normal.isOpen, "the normal reader is still connected");

    const m = await scrape(gw.url);
    assert.equal(m.get("herald_slow_consumer_closes_total"), 1, "exactly one slow consumer was closed");
    assert.ok((m.get("herald_disconnects_total", { code: "4009" }) ?? 0) >= 1);
  });
});
