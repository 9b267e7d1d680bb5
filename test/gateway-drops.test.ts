/**
 * Overload and outages lose messages with a sign (issue 8): losing the NATS
 * connection with clients connected is counted in
 * herald_message_drops_total{reason="broker_disconnect"} and logged with what
 * the clients lose (core NATS keeps nothing published meanwhile). The
 * slow-consumer and backpressure reasons are covered by
 * gateway-stalled-readers.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { scrape } from "./helpers/metrics.js";
import { type NatsServer } from "./helpers/nats.js";
import { GATEWAY_MAIN, missingBuild, waitFor, type ServiceProcess } from "./helpers/procs.js";
import { hsToken } from "./helpers/tokens.js";
import { connect } from "./helpers/ws.js";
import { TestStack } from "./helpers/stack.js";

describe("drops are counted where they happen", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  const { clients } = stack;
  let nats: NatsServer;
  let gw: ServiceProcess;

  before(async () => {
    nats = await stack.nats();
    gw = await stack.gateway(nats);
  });
  after(() => stack.close());

  test("a lost NATS connection with clients on it counts broker_disconnect and says what is lost", async () => {
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "watcher", channels: ["news"] }) });
    clients.push(c);
    assert.equal((await c.request({ type: "subscribe", channel: "news", id: 1 })).type, "subscribed");
    const before = (await scrape(gw.url)).get("herald_message_drops_total", { reason: "broker_disconnect" }) ?? 0;
    await nats.kill();
    await waitFor(async () => ((await scrape(gw.url)).get("herald_message_drops_total", { reason: "broker_disconnect" }) ?? 0) > before, {
      timeoutMs: 30_000,
      message: "herald_message_drops_total{reason=broker_disconnect} counted",
    });
    // The log line comes through the child's stdout pipe, maybe after the metric.
    await waitFor(() => gw.logs.some((l) => l.includes("broker disconnected") && l.includes("lost")), { timeoutMs: 10_000, message: "the loss is logged" });
    await nats.restart();
    await waitFor(async () => (await scrape(gw.url)).get("herald_broker_connected") === 1, { timeoutMs: 30_000, message: "broker back" });
    assert.ok(c.isOpen, "the client stayed connected through the outage");
  });
});
