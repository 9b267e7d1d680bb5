/**
 * @herald/client promises always settle, driven through a scripted socket:
 * rate_limited refusals are retried, close() and a retired connection settle
 * every request, and which close codes the client reconnects after.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HeraldClient, HeraldError } from "@herald/client";
import { ScriptedSocket, flushAsync, nextSocket, refreshingClient, scriptedClient, track, until } from "./helpers/scripted-socket.js";

describe("rate_limited error frames that echo the request id", () => {
  test("a refused publish (definitely not applied) is sent again after a delay and resolves on the ack", async () => {
    const { client, sock } = await scriptedClient();
    const pub = track(client.publish("chat", { text: "hi" }));
    const first = sock.lastSent("publish");
    sock.push({ type: "error", id: first["id"], code: "rate_limited", message: "too many messages, slow down" });
    await flushAsync();
    assert.equal(pub.status, "pending", "not rejected: it will be retried");
    await until(() => sock.sentOf("publish").length === 2, "the publish to be sent again");
    const retry = sock.lastSent("publish");
    assert.notEqual(retry["id"], first["id"]);
    assert.deepEqual({ channel: retry["channel"], data: retry["data"] }, { channel: "chat", data: { text: "hi" } });
    sock.push({ type: "ack", id: retry["id"] });
    await until(() => pub.status !== "pending", "the publish to settle");
    assert.equal(pub.status, "resolved");
    client.close();
  });

  test("a publish refused again and again rejects with rate_limited after a few retries", async () => {
    const { client, sock } = await scriptedClient();
    const pub = track(client.publish("chat", 1));
    let refused = 0;
    while (pub.status === "pending") {
      await until(() => sock.sentOf("publish").length > refused || pub.status !== "pending", "a publish attempt");
      if (pub.status !== "pending") break;
      sock.push({ type: "error", id: sock.lastSent("publish")["id"], code: "rate_limited", message: "slow down" });
      refused++;
      await flushAsync();
    }
    assert.equal(pub.status, "rejected");
    assert.ok(pub.error instanceof HeraldError && pub.error.code === "rate_limited");
    assert.equal(refused, 4, "the first attempt and 3 retries");
    client.close();
  });

  test("a refused subscribe is retried and resolves on the confirmation", async () => {
    const { client, sock } = await scriptedClient();
    const errors: HeraldError[] = [];
    client.on("error", (e) => errors.push(e));
    const sub = track(client.subscribe("news"));
    sock.push({ type: "error", id: sock.lastSent("subscribe")["id"], code: "rate_limited", message: "slow down" });
    await flushAsync();
    assert.equal(sub.status, "pending");
    await until(() => sock.sentOf("subscribe").length === 2, "the subscribe to be sent again");
    sock.push({ type: "subscribed", channel: "news", id: sock.lastSent("subscribe")["id"] });
    await until(() => sub.status !== "pending", "the subscribe to settle");
    assert.equal(sub.status, "resolved");
    assert.deepEqual(errors, []);
    client.close();
  });
});

describe("close() and retired connections settle every promise", () => {
  test("close() before connect() rejects publish() and subscribe() promises made before it with `closed`", async () => {
    const client = new HeraldClient({ url: "ws://scripted/ws", token: "t.e.st", WebSocket: ScriptedSocket });
    const pub = track(client.publish("x", 1));
    const sub = track(client.subscribe("y"));
    client.close();
    await flushAsync();
    assert.equal(client.state, "closed");
    for (const p of [pub, sub]) {
      assert.equal(p.status, "rejected");
      assert.ok(p.error instanceof HeraldError && p.error.code === "closed", String(p.error));
    }
    assert.equal(client.queuedPublishes, 0);
  });

  test("token refresh: a ping and an unsubscribe in flight on the retired connection are settled, not left hanging", async (t) => {
    const { client, sock1 } = await refreshingClient(t, ["news", "sports"]);

    t.mock.timers.tick(48_000); // the refresh is due
    const sock2 = await nextSocket(2);
    // In flight on the old connection while the new one re-subscribes.
    const ping = track(client.ping());
    const unsub = track(client.unsubscribe("sports"));
    assert.equal(sock1.sentOf("ping").length, 1);
    assert.equal(sock1.sentOf("unsubscribe").length, 1);
    for (const f of sock2.sentOf("subscribe")) sock2.push({ type: "subscribed", channel: f["channel"], id: f["id"] });
    for (const f of sock2.sentOf("unsubscribe")) sock2.push({ type: "unsubscribed", channel: f["channel"], id: f["id"] });
    await flushAsync();
    assert.equal(sock1.readyState, 3, "the old connection is closed after the handover");

    // The ping moved to the new connection; the unsubscribe is moot on a closed connection.
    assert.equal(unsub.status, "resolved");
    const moved = sock2.lastSent("ping");
    sock2.push({ type: "pong", id: moved["id"] });
    await flushAsync();
    assert.equal(ping.status, "resolved");
    assert.equal(client.state, "connected");
    assert.deepEqual(client.channels, ["news"]);
    client.close();
  });
});

describe("a retired connection closes when its last publish settles (no polling)", () => {
  test("token refresh: the old connection stays open for its publish in flight and closes on that ack, without any timer", async (t) => {
    const { client, sock1 } = await refreshingClient(t, ["news"]);

    t.mock.timers.tick(48_000); // the refresh is due
    const sock2 = await nextSocket(2);
    // Sent on the old connection while the new one re-subscribes.
    const inFlight = track(client.publish("news", { n: 1 }));
    assert.equal(sock1.sentOf("publish").length, 1);
    sock2.push({ type: "subscribed", channel: "news", id: sock2.lastSent("subscribe")["id"] });
    await flushAsync();
    const after = track(client.publish("news", { n: 2 }));
    assert.equal(sock2.sentOf("publish").length, 1, "new publishes go out on the new connection");
    assert.notEqual(sock1.readyState, 3, "the retired connection waits for its publish's ack");

    sock1.push({ type: "ack", id: sock1.lastSent("publish")["id"] });
    await flushAsync();
    assert.equal(inFlight.status, "resolved");
    assert.equal(sock1.readyState, 3, "closed as soon as its last publish settled");
    sock2.push({ type: "ack", id: sock2.lastSent("publish")["id"] });
    await flushAsync();
    assert.equal(after.status, "resolved");
    client.close();
  });
});

describe("close codes: which ones the client reconnects after", () => {
  test("1008 (a frame or pong the gateway did not get in time) reconnects; 1002 (protocol error) is terminal", async () => {
    const { client, sock } = await scriptedClient();
    sock.close(1008, "frame not completed in time");
    await flushAsync();
    assert.equal(client.state, "reconnecting", "1008 is network trouble: the client reconnects");
    client.close();

    const second = await scriptedClient();
    second.client.on("error", () => undefined);
    second.sock.close(1002, "frames must be masked JSON text");
    await flushAsync();
    assert.equal(second.client.state, "closed");
    assert.equal(second.client.lastError?.terminal, true);
    assert.equal(second.client.lastError?.code, "protocol_error");
  });
});
