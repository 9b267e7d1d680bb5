/**
 * The request table (packages/client/src/requests.ts) and its one
 * settle-on-loss rule, on connections with scripted sockets: what becomes of
 * an unsubscribe, a ping, a publish and a subscribe in flight when their
 * connection goes away, with and without a successor.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Conn } from "../packages/client/src/connection.js";
import { HeraldError } from "../packages/client/src/errors.js";
import { Requests, type Loss } from "../packages/client/src/requests.js";
import { ScriptedSocket, flushAsync, mockClock, track } from "./helpers/scripted-socket.js";

/** A welcomed connection on a scripted socket. */
function conn(): Conn {
  const c = new Conn("t.e.st", { burst: 10, perSecond: 10 }, () => {});
  c.ws = new ScriptedSocket("ws://scripted/ws");
  c.welcomed = true;
  return c;
}

const sockOf = (c: Conn) => c.ws as ScriptedSocket;
const lost = (successor?: Conn): Loss => ({ error: new HeraldError("disconnected", "lost"), successor });

describe("request table", () => {
  test("replies are matched by id; unknown ids and non-numbers match nothing", async () => {
    const settled: Conn[] = [];
    const requests = new Requests(0, (c) => settled.push(c));
    const a = conn();
    const ping = track(requests.send(a, { type: "ping" }));
    const id = sockOf(a).lastSent("ping")["id"];
    assert.equal(requests.take(12345), undefined);
    assert.equal(requests.take(String(id)), undefined);
    assert.ok(requests.has(a, "ping"));
    requests.answer({ type: "pong", id: id as number });
    await flushAsync();
    assert.equal(ping.status, "resolved");
    assert.equal(requests.has(a, "ping"), false);
    assert.deepEqual(settled, [a], "onSettled hears of the answer");
  });

  test("an error frame rejects its request with the server's code and the channel; one that answers nothing is handed back", async () => {
    const requests = new Requests(0);
    const a = conn();
    const pub = track(requests.send(a, { type: "publish", channel: "x", data: 1 }));
    assert.equal(requests.answer({ type: "error", id: sockOf(a).lastSent("publish")["id"] as number, code: "forbidden", message: "no" }), undefined);
    const orphan = requests.answer({ type: "error", code: "bad_request", message: "frame is not valid JSON" });
    await flushAsync();
    assert.ok(pub.error instanceof HeraldError && pub.error.code === "forbidden" && pub.error.channel === "x");
    assert.equal(orphan?.code, "bad_request");
  });

  test("a request without an answer times out with `timeout` (and onSettled hears of it)", async (t) => {
    mockClock(t);
    const settled: Conn[] = [];
    const requests = new Requests(1_000, (c) => settled.push(c));
    const a = conn();
    const sub = track(requests.send(a, { type: "subscribe", channel: "news" }));
    t.mock.timers.tick(999);
    await flushAsync();
    assert.equal(sub.status, "pending");
    t.mock.timers.tick(1);
    await flushAsync();
    assert.ok(sub.error instanceof HeraldError && sub.error.code === "timeout" && sub.error.channel === "news");
    assert.deepEqual(settled, [a]);
  });

  test("settle on loss, no successor: unsubscribes resolve, pings and publishes reject with the loss, subscribes are handed back", async () => {
    const requests = new Requests(0);
    const a = conn();
    const other = conn();
    const unsub = track(requests.send(a, { type: "unsubscribe", channel: "u" }));
    const ping = track(requests.send(a, { type: "ping" }));
    const pub = track(requests.send(a, { type: "publish", channel: "p", data: 1 }));
    const sub = track(requests.send(a, { type: "subscribe", channel: "s" }));
    const untouched = track(requests.send(other, { type: "publish", channel: "p", data: 2 }));
    const loss = lost();
    assert.deepEqual(requests.settleLost(a, loss), ["s"]);
    await flushAsync();
    assert.equal(unsub.status, "resolved");
    assert.equal(ping.error, loss.error);
    assert.equal(pub.error, loss.error);
    assert.equal(sub.status, "pending", "a subscribe is sent again by its owner, not rejected");
    assert.equal(untouched.status, "pending", "requests of other connections stay");
    assert.equal(requests.has(a, "subscribe"), false);
  });

  test("settle on loss with a successor: a ping moves there (same timeout) and resolves on its pong", async () => {
    const requests = new Requests(0);
    const old = conn();
    const successor = conn();
    const ping = track(requests.send(old, { type: "ping" }));
    requests.settleLost(old, lost(successor));
    const moved = sockOf(successor).lastSent("ping");
    assert.ok(requests.has(successor, "ping"));
    requests.answer({ type: "pong", id: moved["id"] as number });
    await flushAsync();
    assert.equal(ping.status, "resolved");
  });

  test("keepPublishes: a retired connection's publishes keep waiting for their acks; everything else is settled", async () => {
    const requests = new Requests(0);
    const old = conn();
    const pub = track(requests.send(old, { type: "publish", channel: "p", data: 1 }));
    const unsub = track(requests.send(old, { type: "unsubscribe", channel: "u" }));
    requests.settleLost(old, lost(conn()), true);
    await flushAsync();
    assert.equal(unsub.status, "resolved");
    assert.equal(pub.status, "pending");
    requests.answer({ type: "ack", id: sockOf(old).lastSent("publish")["id"] as number });
    await flushAsync();
    assert.equal(pub.status, "resolved");
  });

  test("every connection at once (close()): the same rule", async () => {
    const requests = new Requests(0);
    const [a, b] = [conn(), conn()];
    const pubs = [track(requests.send(a, { type: "publish", channel: "p", data: 1 })), track(requests.send(b, { type: "publish", channel: "p", data: 2 }))];
    const closed = { error: new HeraldError("closed", "the client was closed"), successor: undefined };
    requests.settleLost(undefined, closed);
    await flushAsync();
    assert.deepEqual(pubs.map((p) => (p.error as HeraldError).code), ["closed", "closed"]);
  });

  test("nothing is sent on an ended connection or when data is not JSON", async () => {
    const requests = new Requests(0);
    const a = conn();
    const circular: Record<string, unknown> = {};
    circular["self"] = circular;
    await assert.rejects(requests.send(a, { type: "publish", channel: "p", data: circular }), (e: unknown) => (e as HeraldError).code === "invalid_argument");
    a.end();
    await assert.rejects(requests.send(a, { type: "ping" }), (e: unknown) => (e as HeraldError).code === "disconnected");
    assert.equal(sockOf(a).sent.length, 0);
  });
});
