/**
 * @herald/client stream positions, driven through a scripted socket:
 * duplicates are dropped, a gap re-subscribes with `since`, `recovered: false`
 * is surfaced, plain servers deliver everything; and the bookkeeping itself
 * (SubState: confirm and place) as a table.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HeraldError, decodeBase64 } from "@herald/client";
import { scriptedClient } from "./helpers/scripted-socket.js";

describe("positions: duplicates and gaps (scripted herald.v1 frames)", () => {
  test("fresh subscribe takes the server's seq; duplicates are dropped", async () => {
    const { client, sock, got } = await scriptedClient();
    const p = client.subscribe("news");
    const req = sock.lastSent("subscribe");
    assert.equal(req["since"], undefined);
    sock.push({ type: "subscribed", channel: "news", id: req["id"], seq: 10, recovered: true });
    const sub = await p;
    assert.equal(sub.lastSeq, 10);
    sock.push({ type: "message", channel: "news", data: { n: 11 }, seq: 11, prev: 10 });
    sock.push({ type: "message", channel: "news", data: { n: 11 }, seq: 11, prev: 10 }); // duplicate
    sock.push({ type: "message", channel: "news", data: { n: 9 }, seq: 9, prev: 8 }); // old
    sock.push({ type: "message", channel: "news", data: { n: 12 }, seq: 12, prev: 11 });
    assert.deepEqual(got.map((m) => m.seq), [11, 12]);
    assert.equal(sub.lastSeq, 12);
    client.close();
  });

  test("a gap (prev != last) re-subscribes with since=last, drops live frames until the replay, emits gap + recovered", async () => {
    const { client, sock, got } = await scriptedClient();
    const gaps: unknown[] = [];
    const recoveries: unknown[] = [];
    client.on("gap", (g) => gaps.push(g));
    client.on("recovered", (r) => recoveries.push(r));
    const p = client.subscribe("news");
    sock.push({ type: "subscribed", channel: "news", id: sock.lastSent("subscribe")["id"], seq: 0, recovered: true });
    await p;
    sock.push({ type: "message", channel: "news", data: 1, seq: 1, prev: 0 });
    sock.push({ type: "message", channel: "news", data: 4, seq: 4, prev: 3 }); // 2 and 3 missing
    assert.deepEqual(gaps, [{ channel: "news", lastSeq: 1, prev: 3, seq: 4, recovering: true }]);
    const resub = sock.lastSent("subscribe");
    assert.equal(resub["since"], 1);
    sock.push({ type: "message", channel: "news", data: 5, seq: 5, prev: 4 }); // dropped: will be replayed
    sock.push({ type: "subscribed", channel: "news", id: resub["id"], seq: 1, recovered: true });
    for (const n of [2, 3, 4, 5]) sock.push({ type: "message", channel: "news", data: n, seq: n, prev: n - 1 });
    assert.deepEqual(got.map((m) => m.data), [1, 2, 3, 4, 5]);
    assert.deepEqual(recoveries, [{ channel: "news", since: 1, seq: 1, recovered: true }]);
    client.close();
  });

  test("recovered:false is surfaced and the stream is accepted from there", async () => {
    const { client, sock, got } = await scriptedClient();
    const recoveries: Array<{ recovered: boolean }> = [];
    client.on("recovered", (r) => recoveries.push(r));
    const p = client.subscribe("news", { since: 100 });
    const req = sock.lastSent("subscribe");
    assert.equal(req["since"], 100);
    sock.push({ type: "subscribed", channel: "news", id: req["id"], seq: 100, recovered: false });
    await p;
    assert.equal(recoveries[0]?.recovered, false);
    sock.push({ type: "message", channel: "news", data: "a", seq: 500, prev: 499 });
    sock.push({ type: "message", channel: "news", data: "b", seq: 501, prev: 500 });
    assert.deepEqual(got.map((m) => m.data), ["a", "b"]);
    client.close();
  });

  test("plain server (no seq): every message is delivered; base64 payloads keep their encoding", async () => {
    const { client, sock, got } = await scriptedClient();
    const p = client.subscribe("plain");
    sock.push({ type: "subscribed", channel: "plain", id: sock.lastSent("subscribe")["id"] });
    const sub = await p;
    assert.equal(sub.lastSeq, undefined);
    sock.push({ type: "message", channel: "plain", data: { a: 1 } });
    sock.push({ type: "message", channel: "plain", data: { a: 1 } });
    sock.push({ type: "message", channel: "plain", data: "AP8=", encoding: "base64" });
    sock.push({ type: "message", channel: "other", data: "not subscribed" });
    sock.push({ type: "message", user: "u1", data: { direct: true } });
    assert.equal(got.length, 4);
    assert.equal(got[2]?.encoding, "base64");
    assert.deepEqual([...decodeBase64(got[2]?.data as string)], [0, 255]);
    assert.deepEqual(got[3], { user: "u1", data: { direct: true } });
    client.close();
  });

  test("error frames reject the matching promise with a typed HeraldError", async () => {
    const { client, sock } = await scriptedClient();
    const sub = client.subscribe("secret");
    sock.push({ type: "error", id: sock.lastSent("subscribe")["id"], code: "forbidden", message: "token does not allow secret" });
    await assert.rejects(sub, (err: unknown) => err instanceof HeraldError && err.code === "forbidden" && err.channel === "secret");
    assert.deepEqual(client.channels, []);
    const pub = client.publish("x", 1);
    sock.push({ type: "error", id: sock.lastSent("publish")["id"], code: "forbidden", message: "token does not allow publishing to x" });
    await assert.rejects(pub, (err: unknown) => err instanceof HeraldError && err.code === "forbidden" && err.channel === "x");
    client.close();
  });
});
