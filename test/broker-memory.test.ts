/**
 * The in-process memory broker (the embedded default when NATS_URL is unset)
 * keeps history the way the JetStream stream does: positions stamped like
 * RePublish, a bounded window, paged reads, and a Herald-Id stored once.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MemoryBroker, type BrokerMessage } from "@herald/broker";
import { Header } from "@herald/core";

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
    const broker = new MemoryBroker({ history, historyPrefix: "herald.ch." });
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
    assert.equal(await h.reaches("herald.ch.a", seqs[0]!), true, "a client that saw a1 missed nothing that was dropped");
    assert.equal(await h.reaches("herald.ch.a", seqs[1]!), true);
    assert.equal(await h.reaches("herald.ch.b", 0), true, "nothing dropped on b");
    assert.equal(await h.lastSeq("herald.ch.a"), seqs[3]);
    await broker.close();
  });

  test("a message whose Herald-Id was stored within the duplicate window is accepted but stored and delivered once", async () => {
    const broker = new MemoryBroker({ history, historyPrefix: "herald.ch." });
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
    const broker = new MemoryBroker({ history, historyPrefix: "herald.ch." });
    const got = collect(broker, "herald.user.u1");
    await broker.publish("herald.user.u1", bytes("x"), { [Header.Id]: "same" });
    await broker.publish("herald.user.u1", bytes("y"), { [Header.Id]: "same" });
    await settle();
    assert.deepEqual(got.map(text), ["x", "y"]);
    assert.equal(got[0]!.header(Header.Sequence), undefined);
    await broker.close();
    await assert.rejects(broker.publish("herald.user.u1", bytes("z")), /closed/);
  });
});
