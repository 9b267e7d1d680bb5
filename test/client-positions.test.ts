/**
 * @herald/client stream positions, driven through a scripted socket:
 * duplicates are dropped, a gap re-subscribes with `since`, `recovered: false`
 * is surfaced, plain servers deliver everything; and the bookkeeping itself
 * (SubState: confirm and place) as a table.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { HeraldError, decodeBase64 } from "@herald/client";
import { MAX_GAP_RECOVERIES, SubState } from "../packages/client/src/subscription.js";
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

  test("epochs: the answer's epoch is kept and sent back with since; a persisted one is sent on the first subscribe", async () => {
    const { client, sock } = await scriptedClient();
    const recoveries: unknown[] = [];
    client.on("recovered", (r) => recoveries.push(r));
    const p = client.subscribe("news");
    assert.equal(sock.lastSent("subscribe")["epoch"], undefined, "no position, no epoch");
    sock.push({ type: "subscribed", channel: "news", id: sock.lastSent("subscribe")["id"], seq: 7, epoch: "life-1", recovered: true });
    const sub = await p;
    assert.deepEqual([sub.lastSeq, sub.epoch], [7, "life-1"]);
    sock.push({ type: "message", channel: "news", data: 1, seq: 9, prev: 8 }); // gap: resume from 7 in life-1
    const resub = sock.lastSent("subscribe");
    assert.deepEqual([resub["since"], resub["epoch"]], [7, "life-1"]);
    sock.push({ type: "subscribed", channel: "news", id: resub["id"], seq: 3, epoch: "life-2", recovered: false });
    assert.deepEqual(recoveries, [{ channel: "news", since: 7, seq: 3, epoch: "life-2", recovered: false }]);
    assert.equal(sub.epoch, "life-2", "the new life's epoch replaces the old one");
    const other = client.subscribe("other", { since: 40, epoch: "saved" });
    assert.deepEqual([sock.lastSent("subscribe")["since"], sock.lastSent("subscribe")["epoch"]], [40, "saved"]);
    sock.push({ type: "subscribed", channel: "other", id: sock.lastSent("subscribe")["id"], seq: 40, epoch: "saved", recovered: true });
    await other;
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

describe("SubState: a subscription owns its positions", () => {
  const owner = { isActive: () => false, unsubscribe: () => Promise.resolve() };
  const sub = (since?: number) => new SubState("news", owner, since);

  test("since from subscribe() is where it resumes; non-finite values are ignored", () => {
    assert.equal(sub(41).lastSeq, 41);
    assert.equal(sub(Number.NaN).lastSeq, undefined);
    assert.equal(sub().lastSeq, undefined);
    assert.equal(sub(7).handle.lastSeq, 7, "the public handle reads the same position");
  });

  test("confirm: a fresh subscribe takes the server's seq; a resume reports the recovery", () => {
    const fresh = sub();
    assert.equal(fresh.confirm(undefined, 10, true), undefined);
    assert.equal(fresh.lastSeq, 10);
    assert.equal(fresh.confirm(undefined, 99, true), undefined);
    assert.equal(fresh.lastSeq, 10, "a later fresh confirmation does not move a known position");

    const resumed = sub(5);
    resumed.recovering = true;
    resumed.retries = 4;
    assert.deepEqual(resumed.confirm(5, 5, true), { channel: "news", since: 5, seq: 5, recovered: true });
    assert.equal(resumed.lastSeq, 5);
    assert.equal(resumed.recovering, false);
    assert.equal(resumed.retries, 0);
  });

  test("confirm: recovered:false or a server without positions drops the position (the stream is accepted from there)", () => {
    const late = sub(5);
    assert.deepEqual(late.confirm(5, 100, false), { channel: "news", since: 5, seq: 100, recovered: false });
    assert.equal(late.lastSeq, undefined);
    const plain = sub(5);
    assert.equal(plain.confirm(5, undefined, undefined), undefined, "nothing to report without positions");
    assert.equal(plain.lastSeq, undefined);
  });

  test("place: in order delivers and advances; duplicates and old positions are skipped", () => {
    const s = sub(10);
    assert.deepEqual(s.place(11, 10, true), { deliver: true, recover: false });
    assert.deepEqual(s.place(11, 10, true), { deliver: false, recover: false });
    assert.deepEqual(s.place(3, 2, true), { deliver: false, recover: false });
    assert.equal(s.lastSeq, 11);
    const fresh = sub();
    assert.deepEqual(fresh.place(500, 499, true), { deliver: true, recover: false }, "no position yet: the first message sets it");
    assert.equal(fresh.lastSeq, 500);
  });

  test("place: a gap asks for recovery and skips live messages until the replay; after MAX_GAP_RECOVERIES in a row the loss is accepted", () => {
    const s = sub(1);
    for (let i = 0; i < MAX_GAP_RECOVERIES; i++) {
      const placed = s.place(10 + i, 5 + i, true);
      assert.deepEqual(placed, { deliver: false, recover: true, gap: { channel: "news", lastSeq: 1, prev: 5 + i, seq: 10 + i, recovering: true } });
      assert.deepEqual(s.place(11 + i, 10 + i, true), { deliver: false, recover: false }, "skipped: the recovery replays it");
      s.confirm(1, 1, true); // the replay did not close the gap
    }
    const accepted = s.place(20, 15, true);
    assert.equal(accepted.deliver, true);
    assert.equal(accepted.gap?.recovering, false);
    assert.equal(s.lastSeq, 20);
    assert.deepEqual(s.place(21, 20, true), { deliver: true, recover: false }, "in order again");
    assert.equal(s.gapRecoveries, 0, "an in-order message resets the count");
  });

  test("place: a connection that cannot recover (not the current one) reports the gap and delivers", () => {
    const s = sub(1);
    const placed = s.place(5, 4, false);
    assert.equal(placed.deliver, true);
    assert.equal(placed.gap?.recovering, false);
    assert.equal(s.recovering, false);
  });
});
