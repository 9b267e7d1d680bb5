/**
 * Correctness of positions (issue 8): a client that follows the README's
 * rule literally — `seq` ≤ last → duplicate; `prev` ≠ last → gap, resubscribe
 * with `since` = last; after `subscribed`, last = its `seq` — must settle
 * after a bounded number of resubscribes and get every message still in the
 * window exactly once, in order, then the live stream. Run against the
 * embedded memory broker and against nats-server with JetStream, with a small
 * window and channels interleaved (so positions are not contiguous per
 * channel). Also: the same resume question gets the same `recovered` answer
 * on both brokers.
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import { connect as natsConnect } from "nats";
import { startNats } from "./helpers/nats.js";
import { GATEWAY_MAIN, missingBuild, startGateway, uniqueName, waitFor, type Env, type ServiceProcess } from "./helpers/procs.js";
import { startTcpProxy } from "./helpers/tcp-proxy.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { connect, type Client, type Frame } from "./helpers/ws.js";

const CHANNELS = ["a", "b", "c", "d", "e", "u0", "u1", "u2"];
const WINDOW = 5;

/** A client that applies the README rule and nothing else, on one channel of its own socket. */
interface Follower {
  /** Messages accepted (in order). */
  got: Frame[];
  /** `subscribed` answers, in order. */
  answers: Frame[];
  resubscribes: number;
  readonly last: number | undefined;
}

async function subscribed(f: Follower): Promise<void> {
  await waitFor(() => f.answers.length > 0, { timeoutMs: 5000, intervalMs: 10, message: "subscribed" });
}

function follow(c: Client, channel: string, since?: number): Follower {
  let last: number | undefined;
  let waiting = true;
  let id = 1;
  const f: Follower = {
    got: [],
    answers: [],
    resubscribes: 0,
    get last() {
      return last;
    },
  };
  const subscribe = (from: number | undefined) => {
    waiting = true;
    c.send(from === undefined ? { type: "subscribe", channel, id: id++ } : { type: "subscribe", channel, id: id++, since: from });
  };
  c.ws.on("message", (data: Buffer) => {
    const frame = JSON.parse(data.toString("utf8")) as Frame;
    if (frame.type === "error" && frame.code === "unavailable") {
      // The broker was not connected: ask again shortly (what a client's retry does).
      setTimeout(() => subscribe(last), 100).unref();
      return;
    }
    if (frame.channel !== channel) return;
    if (frame.type === "subscribed") {
      waiting = false;
      last = frame.seq as number;
      f.answers.push(frame);
      return;
    }
    if (frame.type !== "message" || waiting) return; // sent again after the pending subscribe
    const seq = frame.seq as number;
    if (last !== undefined && seq <= last) return; // duplicate
    if (frame.prev !== last) {
      f.resubscribes++;
      if (f.resubscribes <= 50) subscribe(last); // the rule; bounded here so a loop fails the test instead of spinning
      return;
    }
    last = seq;
    f.got.push(frame);
  });
  subscribe(since);
  return f;
}

interface Harness {
  gw: ServiceProcess;
  /** Publishes through the gateway (client publish); resolves on the ack. */
  publish(channel: string, data: unknown): Promise<void>;
  reader(): Promise<Client>;
}

async function harness(t: TestContext, env: Env): Promise<Harness> {
  const gw = await startGateway({ JWT_SECRET: TEST_SECRET, RATE_LIMIT_BURST: "100000", HISTORY_MAX_PER_CHANNEL: String(WINDOW), ...env });
  t.after(() => gw.stop());
  const writer = await connect(gw.wsUrl, { token: await hsToken({ sub: "writer", publish: CHANNELS }) });
  t.after(() => writer.terminate());
  const token = await hsToken({ sub: "reader", channels: CHANNELS });
  let n = 0;
  return {
    gw,
    publish: async (channel, data) => {
      const reply = await writer.request({ type: "publish", channel, data, id: `p${++n}` });
      assert.equal(reply.type, "ack", JSON.stringify(reply));
    },
    reader: async () => {
      const c = await connect(gw.wsUrl, { token });
      t.after(() => c.terminate());
      return c;
    },
  };
}

/** Settled: the follower has `count` messages, and a ping round trip later nothing else arrived. */
async function settled(c: Client, f: Follower, count: number, what: string): Promise<void> {
  await waitFor(() => f.got.length >= count || f.resubscribes > 50, { timeoutMs: 10_000, intervalMs: 20, message: what });
  assert.equal((await c.request({ type: "ping", id: `ping-${Date.now()}` })).type, "pong");
}

const values = (f: Follower) => f.got.map((m) => (m.data as { n: number }).n);

function assertChain(f: Follower): void {
  // Every accepted frame followed on from the previous one (that is what the rule checks) and positions only grow.
  const seqs = f.got.map((m) => m.seq as number);
  assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y), "in order, no duplicates");
}

/** Stream positions are not contiguous per channel: `a` is interleaved with `b` and `c`. */
async function interleaved(h: Harness, from: number, to: number): Promise<void> {
  for (let n = from; n <= to; n++) {
    await h.publish("a", { n });
    await h.publish(n % 2 ? "b" : "c", { n });
  }
}

const BROKERS = ["memory", "nats"] as const;

async function brokerEnv(t: TestContext, kind: (typeof BROKERS)[number], name: string): Promise<Env> {
  if (kind === "memory") return {};
  const nats = await startNats({ jetstream: true });
  t.after(() => nats.stop());
  return { NATS_URL: nats.url, NATS_NAME: uniqueName(name), SUBJECT_PREFIX: name, HISTORY_STREAM: name.toUpperCase() };
}

describe("a client following the README rule literally settles", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  for (const kind of BROKERS) {
    test(`${kind}: resume from a position that left the window (recovered: false), then live`, async (t) => {
      const h = await harness(t, await brokerEnv(t, kind, `rule${kind}`));
      const first = follow(await h.reader(), "a");
      await subscribed(first);
      await interleaved(h, 1, 2);
      await waitFor(() => first.got.length === 2, { timeoutMs: 5000, message: "the first two messages" });
      const away = first.last!;

      await interleaved(h, 3, 14); // a keeps 10..14; 3..9 left the window
      const c = await h.reader();
      const f = follow(c, "a", away);
      await settled(c, f, WINDOW, "the messages still in the window");
      assert.equal(f.answers[0]?.recovered, false, "the first answer says messages were lost");
      assert.ok(f.resubscribes <= 2, `settles (${f.resubscribes} resubscribes)`);
      assert.deepEqual(values(f), [10, 11, 12, 13, 14], "every message still in the window, once, in order");

      await interleaved(h, 15, 17);
      await settled(c, f, WINDOW + 3, "the live messages");
      assert.deepEqual(values(f), [10, 11, 12, 13, 14, 15, 16, 17], "then the live stream");
      assert.ok(f.resubscribes <= 2, `still settled (${f.resubscribes} resubscribes)`);
      assertChain(f);
    });

    test(`${kind}: resume from a position beyond the newest stored one, and on a channel that never had messages`, async (t) => {
      const h = await harness(t, await brokerEnv(t, kind, `beyond${kind}`));
      await interleaved(h, 1, 3);
      const c = await h.reader();
      const f = follow(c, "a", 1_000_000); // e.g. a position from another life of the history
      await subscribed(f);
      assert.equal(f.answers[0]!.recovered, false);
      await interleaved(h, 4, 6);
      await settled(c, f, 3, "the live messages");
      assert.deepEqual(values(f), [4, 5, 6]);
      assert.ok(f.resubscribes <= 2, `settles (${f.resubscribes} resubscribes)`);

      const c2 = await h.reader();
      const g = follow(c2, "d", 1_000_000);
      await subscribed(g);
      for (let n = 1; n <= 3; n++) await h.publish("d", { n });
      await settled(c2, g, 3, "the live messages on d");
      assert.deepEqual(values(g), [1, 2, 3]);
      assert.ok(g.resubscribes <= 2, `settles (${g.resubscribes} resubscribes)`);
    });
  }

  test("nats: a gateway that missed messages which then left the window shows the gap; the resume settles", async (t) => {
    const nats = await startNats({ jetstream: true });
    t.after(() => nats.stop());
    const natsPort = Number(new URL(nats.url).port);
    const proxy = await startTcpProxy([natsPort]);
    t.after(() => proxy.close());
    const name = "missed";
    const h = await harness(t, {
      NATS_URL: `nats://127.0.0.1:${proxy.port}`,
      NATS_NAME: uniqueName(name),
      SUBJECT_PREFIX: name,
      HISTORY_STREAM: "MISSED",
    });
    const c = await h.reader();
    const f = follow(c, "a");
    await subscribed(f);
    await interleaved(h, 1, 2);
    await settled(c, f, 2, "the first two messages");

    // The gateway loses NATS; messages are published meanwhile, more than the window holds.
    proxy.setBackends([]);
    proxy.cutRandom(1_000);
    await waitFor(async () => (await fetch(`${h.gw.url}/readyz`)).status !== 200, { timeoutMs: 10_000, message: "gateway notices" });
    const nc = await natsConnect({ servers: nats.url, name: "missed-publisher" });
    t.after(() => nc.close());
    const js = nc.jetstream();
    for (let n = 3; n <= 14; n++) {
      await js.publish(`${name}.ch.a`, new TextEncoder().encode(JSON.stringify({ n })));
      await js.publish(`${name}.ch.${n % 2 ? "b" : "c"}`, new TextEncoder().encode(JSON.stringify({ n })));
    }
    proxy.setBackends([natsPort]);

    // The gateway catches up from the history: 3..9 are gone, so its first
    // frame must reveal the gap; the follower resumes, is told recovered:
    // false, and continues with what is left, then live.
    await settled(c, f, 2 + WINDOW, "the messages still in the window");
    assert.ok(f.resubscribes >= 1, "the gap was visible");
    assert.ok(f.resubscribes <= 2, `settles (${f.resubscribes} resubscribes)`);
    assert.equal(f.answers.at(-1)!.recovered, false);
    assert.deepEqual(values(f), [1, 2, 10, 11, 12, 13, 14]);
    await interleaved(h, 15, 16);
    await settled(c, f, 2 + WINDOW + 2, "the live messages");
    assert.deepEqual(values(f), [1, 2, 10, 11, 12, 13, 14, 15, 16]);
    assert.ok(f.resubscribes <= 2, `still settled (${f.resubscribes} resubscribes)`);
    assertChain(f);
  });
});

/** What `subscribe` with `since` answers, on a fresh socket. */
async function answer(h: Harness, channel: string, since: number): Promise<boolean> {
  const c = await h.reader();
  const reply = await c.request({ type: "subscribe", channel, id: 1, since });
  assert.equal(reply.type, "subscribed", JSON.stringify(reply));
  await c.close();
  return reply.recovered as boolean;
}

/** The same scenario, step by step, on one broker: the `recovered` answer of every question. */
async function sinceAnswers(t: TestContext, kind: (typeof BROKERS)[number]): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  const h = await harness(t, await brokerEnv(t, kind, `zero${kind}`));
  out["fresh stream, unused channel, since 0"] = await answer(h, "u0", 0);
  const seqs: number[] = [];
  const c = await h.reader();
  const watch = follow(c, "b");
  await subscribed(watch);
  for (let n = 1; n <= 2; n++) await h.publish("b", { n });
  await waitFor(() => watch.got.length === 2, { timeoutMs: 5000, message: "b1, b2" });
  seqs.push(...watch.got.map((m) => m.seq as number));
  out["nothing trimmed, used channel, since 0"] = await answer(h, "b", 0);
  out["nothing trimmed, unused channel, since 0"] = await answer(h, "u1", 0);

  // Past the window on b: b1 (the stream's first message) is trimmed.
  for (let n = 3; n <= WINDOW + 1; n++) await h.publish("b", { n });
  await waitFor(() => watch.got.length === WINDOW + 1, { timeoutMs: 5000, message: "the rest of b" });
  seqs.push(...watch.got.slice(2).map((m) => m.seq as number));
  out["trimmed, channel that was trimmed, since 0"] = await answer(h, "b", 0);
  out["trimmed, channel that was trimmed, since its trimmed first position"] = await answer(h, "b", seqs[0]!);
  out["trimmed, channel that was trimmed, since a position still stored"] = await answer(h, "b", seqs[1]!);
  out["trimmed elsewhere, unused channel, since 0"] = await answer(h, "u2", 0);
  out["trimmed elsewhere, channel with a message, since before it"] = await (async () => {
    await h.publish("e", { n: 1 });
    return answer(h, "e", 0);
  })();
  return out;
}

describe("since: the same question gets the same answer on both brokers", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  test("since 0 and old positions: fresh stream, unused channels, channels trimmed by count", async (t) => {
    const memory = await sinceAnswers(t, "memory");
    const nats = await sinceAnswers(t, "nats");
    assert.deepEqual(memory, nats, "identical answers");
    assert.deepEqual(memory, {
      "fresh stream, unused channel, since 0": true,
      "nothing trimmed, used channel, since 0": true,
      "nothing trimmed, unused channel, since 0": true,
      // Once anything left the stream, a channel with nothing (or not all)
      // stored cannot show that it never lost anything: JetStream keeps no
      // trace of a subject whose messages are gone.
      "trimmed, channel that was trimmed, since 0": false,
      "trimmed, channel that was trimmed, since its trimmed first position": false,
      "trimmed, channel that was trimmed, since a position still stored": true,
      "trimmed elsewhere, unused channel, since 0": false,
      "trimmed elsewhere, channel with a message, since before it": false,
    });
  });
});
