/**
 * @herald/client against real gateway processes: a 1009 close (frame too
 * large), giving up after maxReconnectAttempts, and message recovery with
 * `since` over JetStream after the gateway was killed.
 *
 * Every wait is on an event or a bounded poll; every process is stopped in `after`.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HeraldError } from "@herald/client";
import { clientGatewayHarness, inbox, nextEvent, subscribedClient } from "./helpers/client-gateway.js";
import { natsControlSkipReason, startNats } from "./helpers/nats.js";
import { freePort } from "./helpers/ports.js";
import { GATEWAY_MAIN, PUBLISHER_MAIN, missingBuild, startPublisher, uniqueName, waitFor, type Env } from "./helpers/procs.js";

const skip = missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN);

describe("@herald/client against a real gateway: close codes and recovery", { skip }, () => {
  const { client, gateway, allChannels, publishers, natsServers } = clientGatewayHarness();

  test("1009 (frame too large): the publish rejects with too_large, the client reconnects and keeps its subscriptions", async () => {
    const gw = await gateway({ MAX_PAYLOAD_BYTES: "1024" });
    const channel = uniqueName("big");
    const a = client(gw.wsUrl, await allChannels());
    const { errors, box } = await subscribedClient(a, channel);
    const resub = nextEvent(a, "subscribed", (s) => s.channel === channel && s.resubscribed);
    await assert.rejects(a.publish(channel, "x".repeat(1500)), (e: unknown) => e instanceof HeraldError && e.code === "too_large" && e.closeCode === 1009);
    await resub;
    assert.ok(errors.some((e) => e.code === "too_large"));
    await a.publish(channel, "small");
    await waitFor(() => box.messages.some((m) => m.data === "small"), { message: "message after 1009" });
  });

  test("maxReconnectAttempts: gives up with reconnect_failed when nothing listens", async () => {
    const port = await freePort();
    const a = client(`ws://127.0.0.1:${port}/ws`, await allChannels(), { maxReconnectAttempts: 3, backoff: { baseMs: 5, maxMs: 20 } });
    await assert.rejects(a.connect(), (e: unknown) => e instanceof HeraldError && e.code === "reconnect_failed" && e.terminal);
    assert.equal(a.state, "closed");
  });

  test("recovery: messages published while the client was away are replayed in order after reconnect (since)", async (t) => {
    const nats = await startNats({ jetstream: true });
    natsServers.push(nats);
    const control = natsControlSkipReason(nats);
    if (control) return t.skip(control);
    const port = await freePort();
    const env: Env = { NATS_URL: nats.url, GATEWAY_PORT: String(port), NATS_NAME: uniqueName("gw-recovery") };
    let gw = await gateway(env);
    const apiKey = "k".repeat(32);
    const pub = await startPublisher({ NATS_URL: nats.url, PUBLISHER_API_KEY: apiKey, NATS_NAME: uniqueName("pub-recovery") });
    publishers.push(pub);
    const channel = uniqueName("hist");
    const publish = async (data: unknown) => {
      const res = await fetch(`${pub.url}/v1/channels/${channel}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
        body: JSON.stringify(data),
      });
      assert.equal(res.status, 202, await res.text());
    };

    const a = client(gw.wsUrl, await allChannels());
    await a.connect();
    const first = nextEvent(a, "subscribed", (s) => s.channel === channel);
    const sub = await a.subscribe(channel);
    if ((await first).seq === undefined) {
      return t.skip("the gateway does not advertise recovery (no seq in the subscribed reply); enable history/JetStream on the server");
    }
    const box = inbox(a, channel);
    const recoveries: unknown[] = [];
    a.on("recovered", (r) => recoveries.push(r));
    await publish({ n: 1 });
    await box.waitFor(1);
    const seenBefore = sub.lastSeq;
    assert.equal(typeof seenBefore, "number");

    gw.kill("SIGKILL");
    await gw.exited;
    await nextEvent(a, "state", (s) => s.state === "reconnecting");
    await publish({ n: 2 });
    await publish({ n: 3 });
    const recovered = nextEvent(a, "recovered", (r) => r.channel === channel);
    gw = await gateway(env);
    const r = await recovered;
    assert.equal(r.since, seenBefore);
    assert.equal(r.recovered, true);
    await box.waitFor(3);
    await publish({ n: 4 });
    await box.waitFor(4);
    assert.deepEqual(box.messages.map((m) => (m.data as { n: number }).n), [1, 2, 3, 4], "in order, nothing lost, no duplicates");
    const seqs = box.messages.map((m) => m.seq as number);
    assert.ok(seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as number)), `increasing positions ${seqs}`);
    assert.equal(recoveries.length, 1);
  });
});
