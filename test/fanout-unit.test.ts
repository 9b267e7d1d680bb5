/**
 * The fan-out without sockets: Fanout and its channel streams write through
 * a TopicSink, so a recording sink and in-memory connections show what each
 * connection is sent, in which order, with the real embedded broker (and its
 * history) behind it.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import {
  HISTORY_DEFAULTS,
  Subjects,
  channelMessageHead,
  createGatewayMetrics,
  createLogger,
  newRegistry,
  trace,
  userMessageHead,
  type Identity,
} from "@herald/core";
import type { Connection, TopicSink } from "../services/gateway/src/connection.js";
import { Fanout, type Destination, type JoinedPosition } from "../services/gateway/src/fanout.js";
import { HistoryCursor } from "@herald/broker";
import { RateLimiter } from "../services/gateway/src/rate-limiter.js";
import { waitFor } from "./helpers/wait.js";

/** Topic membership like uWS pub/sub: a frame published to a topic reaches every connection on it. */
class RecordingSink implements TopicSink {
  readonly members = new Map<string, Set<MemoryConnection>>();
  publishes = 0;
  publish(topic: string, frame: Buffer): void {
    this.publishes++;
    for (const c of this.members.get(topic) ?? []) c.send(frame);
  }
  subscribers(topic: string): number {
    return this.members.get(topic)?.size ?? 0;
  }
}

class MemoryConnection implements Connection {
  readonly topics = new Set<string>();
  readonly identity: Identity;
  readonly ip = "127.0.0.1";
  readonly userTopic: string;
  readonly limiter = new RateLimiter(100, 100);
  closed = false;
  closedWith: number | undefined;
  /** Every frame sent, parsed. */
  readonly frames: Record<string, unknown>[] = [];
  constructor(
    readonly id: string,
    private readonly sink: RecordingSink,
  ) {
    this.identity = { sub: id } as Identity;
    this.userTopic = `u:${id}`;
  }
  send(frame: Buffer | string): void {
    if (!this.closed) this.frames.push(JSON.parse(frame.toString()) as Record<string, unknown>);
  }
  batch(fn: () => void): void {
    fn();
  }
  bufferedAmount(): number {
    return 0;
  }
  subscribe(topic: string): void {
    let set = this.sink.members.get(topic);
    if (!set) this.sink.members.set(topic, (set = new Set()));
    set.add(this);
  }
  unsubscribe(topic: string): void {
    this.sink.members.get(topic)?.delete(this);
  }
  close(code: number): void {
    this.closed = true;
    this.closedWith = code;
    for (const set of this.sink.members.values()) set.delete(this);
  }
  /** Positions of the message frames received, in order. */
  seqs(): number[] {
    return this.frames.filter((f) => f.type === "message").map((f) => f.seq as number);
  }
}

const subjects = new Subjects("herald");
const logger = createLogger("fanout-unit", "silent");

let broker: MemoryBroker;
let sink: RecordingSink;
let fanout: Fanout;

function setUp(history: boolean, maxPerChannel: number = HISTORY_DEFAULTS.maxPerChannel): void {
  broker = new MemoryBroker(history ? { history: { ...HISTORY_DEFAULTS, maxPerChannel }, subjects } : {});
  sink = new RecordingSink();
  fanout = new Fanout({
    broker,
    sink,
    metrics: createGatewayMetrics(newRegistry()),
    tracing: { enabled: false, tracer: trace.getTracer("fanout-unit"), shutdown: async () => {} },
    logger,
    writeDelayMs: 0,
    onWritten: () => {},
    slowConsumerBytes: 1024 * 1024,
  });
}

function channel(name: string): Destination {
  const subject = subjects.channel(name);
  const head = channelMessageHead;
  return broker.history
    ? { topic: `c:${name}`, subject: broker.history.liveSubject(subject), head, name, historySubject: subject }
    : { topic: `c:${name}`, subject, head, name };
}

const publish = (name: string, n: number) => broker.publish(subjects.channel(name), Buffer.from(JSON.stringify({ n })));

/** Joins and records what `subscribed` would have said. */
async function join(conn: MemoryConnection, dest: Destination, since?: number): Promise<JoinedPosition | undefined> {
  let told: JoinedPosition | undefined;
  await fanout.join(conn, dest, { since, onJoined: (p) => (told = p) });
  return told;
}

afterEach(async () => {
  fanout.stop();
  await broker.close();
});

describe("fan-out without history", () => {
  beforeEach(() => setUp(false));

  test("one broker subscription per topic, held while any connection is on it", async () => {
    const a = new MemoryConnection("a", sink);
    const b = new MemoryConnection("b", sink);
    assert.equal(await join(a, channel("news")), undefined);
    await join(b, channel("news"));
    assert.equal(fanout.subscriptions, 1);
    await publish("news", 1);
    await waitFor(() => a.frames.length === 1 && b.frames.length === 1);
    assert.equal(sink.publishes, 1, "one frame written for both connections");
    fanout.leaveAll(a);
    assert.equal(fanout.subscriptions, 1);
    assert.equal(fanout.leave(b, "c:news"), true);
    assert.equal(fanout.leave(b, "c:news"), false, "a second leave is a no-op");
    assert.equal(fanout.subscriptions, 0);
  });

  test("a user topic and channels are left together by leaveAll", async () => {
    const a = new MemoryConnection("a", sink);
    fanout.joinNow(a, { topic: a.userTopic, subject: subjects.user("a"), head: userMessageHead, name: "a" });
    await join(a, channel("x"));
    await join(a, channel("y"));
    assert.deepEqual([...a.topics].sort(), ["c:x", "c:y", "u:a"]);
    fanout.leaveAll(a);
    assert.equal(a.topics.size, 0);
    assert.equal(fanout.subscriptions, 0);
  });

  test("a connection that left before the broker was ready is not put on the topic", async () => {
    const a = new MemoryConnection("a", sink);
    const joined = join(a, channel("news"));
    fanout.leave(a, "c:news");
    assert.equal(await joined, undefined);
    assert.equal(sink.subscribers("c:news"), 0);
  });
});

describe("fan-out with history: recovery through the channel stream", () => {
  beforeEach(() => setUp(true));

  test("a resume gets the backlog after `since` with a continuous prev chain, then live frames", async () => {
    for (let n = 1; n <= 5; n++) await publish("r", n);
    const a = new MemoryConnection("a", sink);
    assert.deepEqual(await join(a, channel("r"), 2), { seq: 2, recovered: true });
    assert.deepEqual(a.seqs(), [3, 4, 5]);
    assert.deepEqual(
      a.frames.map((f) => f.prev),
      [2, 3, 4],
    );
    await publish("r", 6);
    await waitFor(() => a.seqs().length === 4);
    assert.deepEqual(a.frames.at(-1), { type: "message", channel: "r", seq: 6, prev: 5, data: { n: 6 } });
  });

  test("a position the history never reached is recovered: false from the newest position", async () => {
    for (let n = 1; n <= 3; n++) await publish("reset", n);
    const a = new MemoryConnection("a", sink);
    assert.deepEqual(await join(a, channel("reset"), 99), { seq: 3, recovered: false });
    assert.deepEqual(a.seqs(), []);
  });

  test("messages published while many connections recover reach each once, in order", async () => {
    for (let n = 1; n <= 250; n++) await publish("busy", n);
    const conns = Array.from({ length: 40 }, (_, i) => new MemoryConnection(`c${i}`, sink));
    const joins = conns.map((c, i) => join(c, channel("busy"), i * 5));
    for (let n = 251; n <= 300; n++) await publish("busy", n);
    await Promise.all(joins);
    await waitFor(() => conns.every((c) => c.seqs().at(-1) === 300));
    conns.forEach((c, i) => {
      const expected = Array.from({ length: 300 - i * 5 }, (_, k) => i * 5 + 1 + k);
      assert.deepEqual(c.seqs(), expected, `connection ${i}: no gap, no duplicate, in order`);
    });
  });

  test("the fast path: a connection joining at the stream's position reads no history", async () => {
    for (let n = 1; n <= 3; n++) await publish("fast", n);
    const a = new MemoryConnection("a", sink);
    await join(a, channel("fast"));
    await publish("fast", 4);
    await waitFor(() => a.seqs().length === 1);
    const history = broker.history!;
    const read = history.read.bind(history);
    let reads = 0;
    history.read = (...args) => {
      reads++;
      return read(...args);
    };
    const b = new MemoryConnection("b", sink);
    assert.deepEqual(await join(b, channel("fast"), 4), { seq: 4, recovered: true });
    assert.equal(reads, 0);
  });

  test("a resume a few messages behind is served from the stream's recent frames: no history request", async () => {
    const a = new MemoryConnection("a", sink);
    await join(a, channel("recent"));
    for (let n = 1; n <= 6; n++) await publish("recent", n);
    await waitFor(() => a.seqs().length === 6);
    const history = broker.history!;
    let requests = 0;
    for (const method of ["read", "lastSeq", "reaches"] as const) {
      const original = history[method].bind(history) as (...args: unknown[]) => unknown;
      (history as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
        requests++;
        return original(...args);
      };
    }
    const b = new MemoryConnection("b", sink);
    assert.deepEqual(await join(b, channel("recent"), 3), { seq: 3, recovered: true });
    assert.deepEqual(b.seqs(), [4, 5, 6]);
    assert.deepEqual(b.frames.map((f) => f.prev), [3, 4, 5]);
    assert.equal(requests, 0);
    await publish("recent", 7);
    await waitFor(() => b.seqs().length === 4);
    assert.deepEqual(b.seqs(), [4, 5, 6, 7], "then live, without a duplicate");
    // Further back than the recent frames reach: the history answers.
    for (let n = 8; n <= 40; n++) await publish("recent", n);
    await waitFor(() => a.seqs().length === 40);
    const c = new MemoryConnection("c", sink);
    assert.deepEqual(await join(c, channel("recent"), 2), { seq: 2, recovered: true });
    assert.deepEqual(c.seqs(), Array.from({ length: 38 }, (_, k) => k + 3));
    assert.ok(requests > 0, "read from the history");
  });

  test("a connection that leaves mid-recovery is sent nothing more and its stream is released", async () => {
    for (let n = 1; n <= 3; n++) await publish("gone", n);
    const a = new MemoryConnection("a", sink);
    const joined = join(a, channel("gone"), 0);
    fanout.leave(a, "c:gone");
    await joined;
    assert.deepEqual(a.frames, []);
    assert.equal(fanout.subscriptions, 0);
  });
});

describe("the history pager", () => {
  beforeEach(() => setUp(true, 3));

  test("pages after a moving position; a first page across a gap in the window shows the gap in prev", async () => {
    for (let n = 1; n <= 10; n++) await publish("w", n);
    const history = broker.history!;
    const cursor = new HistoryCursor(history, subjects.channel("w"), 2, 10);
    const page = await cursor.read();
    assert.deepEqual(
      page.map((m) => [m.seq, m.prev]),
      [
        [8, 7],
        [9, 8],
        [10, 9],
      ],
      "positions 3-7 left the window: the first message does not claim to follow on from 2",
    );
    assert.equal(cursor.position, 10);
    assert.deepEqual(await cursor.read(), []);
  });

  test("a trusted start skips the window check; the budget bounds the reads", async () => {
    for (let n = 1; n <= 10; n++) await publish("t", n);
    const cursor = new HistoryCursor(broker.history!, subjects.channel("t"), 2, 1, 2);
    assert.deepEqual(
      (await cursor.read()).map((m) => [m.seq, m.prev]),
      [
        [8, 2],
        [9, 8],
        [10, 9],
      ],
    );
    const pages: number[][] = [];
    for await (const p of cursor.pages(() => true)) pages.push(p.map((m) => m.seq));
    assert.deepEqual(pages, [], "budget of one page spent");
  });
});
