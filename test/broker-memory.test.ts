/**
 * The in-process memory broker (the embedded default when NATS_URL is unset)
 * keeps history the way the JetStream stream does: positions stamped like
 * RePublish, a bounded window, paged reads, and a Herald-Id stored once.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MemoryBroker, type BrokerMessage } from "@herald/broker";
import { Header } from "@herald/core";
import { waitFor } from "./helpers/wait.js";

const history = { enabled: true, stream: "HERALD", maxAgeSeconds: 300, maxPerChannel: 3, replicas: 1 };
const bytes = (s: string) => new TextEncoder().encode(s);
const text = (m: { data: Uint8Array }) => new TextDecoder().decode(m.data);

function collect(broker: MemoryBroker, subject: string): BrokerMessage[] {
  const got: BrokerMessage[] = [];
  broker.subscribe(subject, (m) => got.push(m));
  return got;
}

/** Memory delivery happens on a microtask, like a real broker: let it run. */
const settle = () => new Promise((r) => setImmediate(r));

describe("memory broker history", () => {
  test("positions chain per subject; read pages after a position; reaches() tells whether the window still covers it", async () => {
    const broker = new MemoryBroker({ history });
    const got = collect(broker, "herald.ch.a");
    for (const n of [1, 2, 3, 4]) await broker.publish("herald.ch.a", bytes(`a${n}`));
    await broker.publish("herald.ch.b", bytes("b1"));
    await settle();
    assert.deepEqual(got.map(text), ["a1", "a2", "a3", "a4"]);
    const seqs = got.map((m) => Number(m.header(Header.Sequence)));
    const prevs = got.map((m) => Number(m.header(Header.LastSequence)));
    assert.deepEqual(prevs, [0, seqs[0], seqs[1], seqs[2]]);

    const h = broker.history!;
    assert.deepEqual((await h.read("herald.ch.a", 0, 2)).map(text), ["a2", "a3"], "the window keeps 3: a1 is gone; pages of 2");
    assert.deepEqual((await h.read("herald.ch.a", seqs[2]!, 10)).map(text), ["a4"]);
    assert.equal(await h.reaches("herald.ch.a", 0), false, "a1 has left the window: a client at 0 missed it");
    // As on JetStream: a2 is still stored, so nothing after it can have been dropped.
    assert.equal(await h.reaches("herald.ch.a", seqs[1]!), true);
    // a1 is gone and a is at its count limit: JetStream cannot tell whether
    // anything after a1 was dropped too, so neither does the memory broker.
    assert.equal(await h.reaches("herald.ch.a", seqs[0]!), false);
    // a1 was the stream's first message: once anything left the stream, a
    // subject with nothing stored cannot show that it never lost anything.
    assert.equal(await h.reaches("herald.ch.b", 0), false);
    assert.equal(await h.reaches("herald.ch.never", 0), false);
    assert.equal(await h.lastSeq("herald.ch.a"), seqs[3]);
    await broker.close();
  });

  test("a message whose Herald-Id was stored within the duplicate window is accepted but stored and delivered once", async () => {
    const broker = new MemoryBroker({ history });
    const got = collect(broker, "herald.ch.d");
    await broker.publish("herald.ch.d", bytes("first"), { [Header.Id]: "key-1" });
    await broker.publish("herald.ch.d", bytes("retry"), { [Header.Id]: "key-1" });
    await broker.publish("herald.ch.d", bytes("other"), { [Header.Id]: "key-2" });
    await settle();
    assert.deepEqual(got.map(text), ["first", "other"]);
    assert.deepEqual((await broker.history!.read("herald.ch.d", 0, 10)).map(text), ["first", "other"]);
    await broker.close();
  });

  test("subjects outside the history prefix carry no positions and are never deduplicated", async () => {
    const broker = new MemoryBroker({ history });
    const got = collect(broker, "herald.user.u1");
    await broker.publish("herald.user.u1", bytes("x"), { [Header.Id]: "same" });
    await broker.publish("herald.user.u1", bytes("y"), { [Header.Id]: "same" });
    await settle();
    assert.deepEqual(got.map(text), ["x", "y"]);
    assert.equal(got[0]!.header(Header.Sequence), undefined);
    await broker.close();
    await assert.rejects(broker.publish("herald.user.u1", bytes("z")), /closed/);
  });

  test("reaches() answers what JetStream can: fresh stream, drops by count elsewhere, drops by age", async () => {
    const broker = new MemoryBroker({ history });
    const h = broker.history!;
    assert.equal(await h.reaches("herald.ch.x", 0), true, "fresh stream: nothing was ever dropped");
    await broker.publish("herald.ch.x", bytes("x1"));
    for (const n of [1, 2, 3, 4]) await broker.publish("herald.ch.y", bytes(`y${n}`));
    // y1 (position 2) was dropped by count; the stream's first message (x1) is still stored.
    assert.equal(await h.reaches("herald.ch.x", 0), true);
    assert.equal(await h.reaches("herald.ch.z", 0), true, "nothing before the stream's first position is missing");
    await broker.close();

    const aged = new MemoryBroker({ history: { ...history, maxAgeSeconds: 1 } });
    await aged.publish("herald.ch.old", bytes("o1"));
    const o1 = await aged.history!.lastSeq("herald.ch.old");
    await waitFor(async () => (await aged.history!.lastSeq("herald.ch.old")) === 0, { timeoutMs: 5000, intervalMs: 50, message: "o1 expires" });
    assert.deepEqual(await aged.history!.read("herald.ch.old", 0, 10), []);
    assert.equal(await aged.history!.reaches("herald.ch.old", 0), false, "o1 expired: a client at 0 missed it");
    assert.equal(await aged.history!.reaches("herald.ch.new", 0), false, "after an expiry, no subject can show it lost nothing");
    await aged.publish("herald.ch.old", bytes("o2"));
    const [o2] = await aged.history!.read("herald.ch.old", 0, 10);
    assert.equal(o2!.header(Header.LastSequence), "0", "nothing stored before o2");
    assert.ok(o2!.seq > o1);
    await aged.close();
  });
});
