/**
 * @herald/client unit tests: pure functions (backoff bounds, JWT reading) and
 * the client's position bookkeeping (duplicates, gaps), timers fed from token
 * times, the token provider timeout, the paced flush after a welcome, retries
 * of `rate_limited` refusals, and settling of promises on close() and on a
 * retired connection, driven frame by frame through a scripted socket (with
 * mocked timers where time matters). The scripted socket replays herald.v1 frames
 * exactly as DESIGN.md specifies them; behaviour against the real gateway is
 * covered by client-sdk.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test, type TestContext } from "node:test";
import {
  HeraldClient,
  HeraldError,
  backoffCeiling,
  backoffDelay,
  decodeBase64,
  decodeJwtPayload,
  drainDelay,
  tokenTimes,
  type HeraldMessage,
  type WebSocketLike,
} from "@herald/client";

describe("backoff (full jitter)", () => {
  test("delay is always within [0, min(maxMs, baseMs * 2^attempt)]", () => {
    const opts = { baseMs: 100, maxMs: 5_000 };
    let seed = 42;
    const rnd = () => {
      // deterministic LCG so a failure is reproducible
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let attempt = 0; attempt < 40; attempt++) {
      const ceiling = Math.min(5_000, 100 * 2 ** attempt);
      assert.equal(backoffCeiling(attempt, opts), ceiling);
      for (let i = 0; i < 200; i++) {
        const d = backoffDelay(attempt, opts, rnd);
        assert.ok(Number.isInteger(d), `integer delay, got ${d}`);
        assert.ok(d >= 0 && d <= ceiling, `attempt ${attempt}: ${d} not in [0, ${ceiling}]`);
      }
    }
  });

  test("random() extremes map to the ends of the range; it grows exponentially then caps", () => {
    const opts = { baseMs: 250, maxMs: 8_000 };
    assert.equal(backoffDelay(0, opts, () => 0), 0);
    assert.equal(backoffDelay(3, opts, () => 0), 0);
    const top = (a: number) => backoffDelay(a, opts, () => 0.999999999);
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6].map(top), [249, 499, 999, 1999, 3999, 7999, 7999]);
    // Out-of-range random sources cannot push a delay past the ceiling or below 0.
    assert.ok(backoffDelay(2, opts, () => 1) < 1000);
    assert.equal(backoffDelay(2, opts, () => -1), 0);
    assert.equal(backoffDelay(2, opts, () => NaN), 0);
  });

  test("huge or odd attempts stay finite and bounded; defaults are 500 ms .. 30 s", () => {
    assert.equal(backoffCeiling(10_000, { baseMs: 500, maxMs: 30_000 }), 30_000);
    assert.ok(backoffDelay(Number.POSITIVE_INFINITY, {}, () => 0.5) <= 500);
    assert.ok(backoffDelay(-3, {}, () => 0.5) <= 500);
    assert.equal(backoffCeiling(0), 500);
    assert.equal(backoffCeiling(100), 30_000);
    const samples = Array.from({ length: 1000 }, () => backoffDelay(1000, {}));
    assert.ok(samples.every((d) => d >= 0 && d <= 30_000));
    // Full jitter really spreads: not all the same value.
    assert.ok(new Set(samples).size > 100);
  });

  test("drain delay is uniform in [0, max)", () => {
    for (let i = 0; i < 500; i++) {
      const d = drainDelay(5_000);
      assert.ok(d >= 0 && d < 5_000);
    }
    assert.equal(drainDelay(5_000, () => 0), 0);
    assert.equal(drainDelay(0), 0);
  });
});

describe("JWT reading (no verification)", () => {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  test("reads exp and iat in ms", () => {
    const token = `${b64({ alg: "HS256" })}.${b64({ sub: "u", exp: 2_000_000_000, iat: 1_999_999_000 })}.sig`;
    assert.deepEqual(tokenTimes(token), { expiresAt: 2_000_000_000_000, issuedAt: 1_999_999_000_000 });
    assert.equal(decodeJwtPayload(token)?.["sub"], "u");
  });
  test("garbage gives undefined, never throws", () => {
    for (const t of ["", "abc", "a.b", "a.!!!.c", `${b64({})}.${b64([1])}.x`, `x.${b64({ exp: "soon" })}.y`]) {
      assert.equal(tokenTimes(t).expiresAt, undefined, t);
    }
  });
  test("decodeBase64 handles standard and url-safe alphabets", () => {
    assert.deepEqual([...decodeBase64("AP8=")], [0, 255]);
    assert.deepEqual([...decodeBase64("AP8")], [0, 255]);
    assert.deepEqual([...decodeBase64("-_8")], [251, 255]);
  });
});

describe("constructor checks", () => {
  test("missing url, token or WebSocket implementation are clear errors", () => {
    assert.throws(() => new HeraldClient({ url: "", token: "t", WebSocket: ScriptedSocket }), /needs a url/);
    assert.throws(() => new HeraldClient({ url: "ws://x", token: 5 as never, WebSocket: ScriptedSocket }), /needs a token/);
    const saved = (globalThis as { WebSocket?: unknown }).WebSocket;
    try {
      (globalThis as { WebSocket?: unknown }).WebSocket = undefined;
      assert.throws(
        () => new HeraldClient({ url: "ws://x", token: "t" }),
        (err: unknown) => err instanceof HeraldError && err.code === "invalid_argument" && /ws/.test(err.message),
      );
    } finally {
      (globalThis as { WebSocket?: unknown }).WebSocket = saved;
    }
  });
});

// ---- scripted socket --------------------------------------------------------

class ScriptedSocket implements WebSocketLike {
  static last: ScriptedSocket | undefined;
  /** Every socket created, oldest first (reset by tests that count them). */
  static all: ScriptedSocket[] = [];
  readyState = 0;
  protocol = "";
  binaryType = "blob";
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: unknown) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: Array<Record<string, unknown>> = [];
  /** Date.now() of every send (mockable). */
  sentAt: number[] = [];
  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    ScriptedSocket.last = this;
    ScriptedSocket.all.push(this);
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
    this.sentAt.push(Date.now());
  }
  close(code = 1000, reason = ""): void {
    this.readyState = 3;
    queueMicrotask(() => this.onclose?.({ code, reason }));
  }
  // server side
  open(): void {
    this.readyState = 1;
    this.protocol = "herald.v1";
    this.onopen?.({});
  }
  push(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  lastSent(type: string): Record<string, unknown> {
    const f = [...this.sent].reverse().find((x) => x["type"] === type);
    assert.ok(f, `client sent no ${type} frame (sent: ${JSON.stringify(this.sent)})`);
    return f;
  }
  sentOf(type: string): Array<Record<string, unknown>> {
    return this.sent.filter((x) => x["type"] === type);
  }
}

/** Lets pending promise callbacks and setImmediate callbacks run (works with mocked timers). */
async function flushAsync(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** Tracks whether a promise settled, without awaiting it (a rejection counts as handled). */
function track<T>(p: Promise<T>): { status: "pending" | "resolved" | "rejected"; error?: unknown } {
  const t: { status: "pending" | "resolved" | "rejected"; error?: unknown } = { status: "pending" };
  p.then(
    () => (t.status = "resolved"),
    (err: unknown) => {
      t.status = "rejected";
      t.error = err;
    },
  );
  return t;
}

/** Polls `cond` on real timers until it holds; fails after `timeoutMs`. */
async function until(cond: () => boolean, what: string, timeoutMs = 3_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** An unsigned JWT-shaped token (the client only reads exp/iat; it never verifies). */
function jwt(claims: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: "u1", ...claims })}.sig`;
}

/** Waits for the next socket the client creates (after its async token step), opens it and sends the welcome. */
async function nextSocket(count: number, welcome = true): Promise<ScriptedSocket> {
  for (let i = 0; i < 20 && ScriptedSocket.all.length < count; i++) await new Promise((r) => setImmediate(r));
  const sock = ScriptedSocket.all[count - 1];
  assert.ok(sock, `socket #${count} was not created (have ${ScriptedSocket.all.length})`);
  if (welcome) {
    sock.open();
    sock.push({ type: "welcome", sub: "u1", connection: `c${count}` });
  }
  return sock;
}

/** Mocks setTimeout/setInterval/Date for this test (setImmediate and microtasks stay real). */
function mockClock(t: TestContext, now = 1_700_000_000_000): void {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval", "Date"], now });
}

async function scriptedClient(): Promise<{ client: HeraldClient; sock: ScriptedSocket; got: HeraldMessage[] }> {
  const client = new HeraldClient({ url: "ws://scripted/ws", token: "t.e.st", WebSocket: ScriptedSocket, pingIntervalMs: 0 });
  ScriptedSocket.last = undefined;
  const connected = client.connect();
  // The socket is created after the (possibly async) token step.
  for (let i = 0; i < 10 && !ScriptedSocket.last; i++) await new Promise((r) => setImmediate(r));
  const sock = ScriptedSocket.last as unknown as ScriptedSocket;
  assert.deepEqual(sock.protocols, ["herald.v1", "bearer.t.e.st"]);
  sock.open();
  sock.push({ type: "welcome", sub: "u1", connection: "c1" });
  await connected;
  const got: HeraldMessage[] = [];
  client.on("message", (m) => got.push(m));
  return { client, sock, got };
}

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

describe("timers fed from token times", () => {
  test("a 30-day token is refreshed once due, not after ~1 ms (setTimeout caps delays at 2^31-1 ms)", async (t) => {
    mockClock(t);
    ScriptedSocket.all = [];
    let calls = 0;
    const provider = () => {
      calls++;
      const iat = Math.floor(Date.now() / 1000);
      return jwt({ iat, exp: iat + 30 * 86_400 });
    };
    const client = new HeraldClient({ url: "ws://scripted/ws", token: provider, WebSocket: ScriptedSocket, pingIntervalMs: 0 });
    const connected = client.connect();
    await nextSocket(1);
    await connected;
    assert.equal(calls, 1);
    // Past the 2^31-1 ms (~24.8 days) mark: an uncapped timer would have fired long ago.
    t.mock.timers.tick(2 ** 31 + 1_000);
    await flushAsync();
    assert.equal(calls, 1, "no refresh before the token is due");
    assert.equal(ScriptedSocket.all.length, 1, "no refresh connection before the token is due");
    // Due: exp - refreshLeadMs (30 s).
    t.mock.timers.tick(30 * 86_400_000 - 30_000 - (2 ** 31 + 1_000));
    await flushAsync();
    assert.equal(calls, 2, "refreshed once due");
    assert.equal(ScriptedSocket.all.length, 2, "the refresh connection is opened");
    client.close();
  });
});

describe("token provider timeout", () => {
  test("a provider that never answers fails the attempt with token_provider_failed and is retried with backoff", async () => {
    ScriptedSocket.all = [];
    let calls = 0;
    const provider = () => {
      calls++;
      return calls === 1 ? new Promise<string>(() => {}) : jwt({ exp: Math.floor(Date.now() / 1000) + 3600 });
    };
    const client = new HeraldClient({
      url: "ws://scripted/ws",
      token: provider,
      WebSocket: ScriptedSocket,
      pingIntervalMs: 0,
      tokenTimeoutMs: 50,
      backoff: { baseMs: 10, maxMs: 10 },
    });
    const errors: HeraldError[] = [];
    client.on("error", (e) => errors.push(e));
    const states: string[] = [];
    client.on("state", (s) => states.push(s.state));
    const connected = client.connect();
    await until(() => ScriptedSocket.all.length === 1, "a socket after the provider timed out");
    await nextSocket(1);
    await connected;
    assert.equal(calls, 2);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.code, "token_provider_failed");
    assert.match(errors[0]?.message ?? "", /did not answer within 50 ms/);
    assert.deepEqual(states, ["connecting", "reconnecting", "connected"]);
    client.close();
  });
});

describe("paced flush after a reconnect (gateway rate limit: 50/s, burst 100)", () => {
  /** Replays send times through the gateway's token bucket; returns how many frames it would refuse. */
  const refusedByGateway = (times: number[], perSecond = 50, burst = 100): number => {
    let tokens = burst;
    let last = times[0] ?? 0;
    let refused = 0;
    for (const at of times) {
      tokens = Math.min(burst, tokens + ((at - last) / 1000) * perSecond);
      last = at;
      if (tokens >= 1) tokens -= 1;
      else refused++;
    }
    return refused;
  };

  test("60 re-subscribes + 100 queued publishes: 40 at once, the rest at 25/s, in order, never over the gateway's bucket", async (t) => {
    mockClock(t);
    ScriptedSocket.all = [];
    const client = new HeraldClient({ url: "ws://scripted/ws", token: "t.e.st", WebSocket: ScriptedSocket, pingIntervalMs: 0, backoff: { baseMs: 10, maxMs: 10 } });
    const connected = client.connect();
    const sock1 = await nextSocket(1);
    await connected;
    // Lost: while reconnecting, 60 subscriptions and a full offline queue pile up.
    sock1.close(1006, "");
    await flushAsync();
    assert.equal(client.state, "reconnecting");
    const later: Array<Promise<unknown>> = [];
    for (let i = 0; i < 60; i++) later.push(client.subscribe(`ch.${i}`));
    for (let i = 0; i < 100; i++) later.push(client.publish("out", { n: i }));
    for (const p of later) p.catch(() => undefined); // rejected by close() at the end
    t.mock.timers.tick(10);
    const sock2 = await nextSocket(2);
    assert.equal(client.state, "connected");
    assert.equal(sock2.sent.length, 40, "at most flushPacing.burst frames right after the welcome");
    t.mock.timers.tick(1_000);
    assert.ok(Math.abs(sock2.sent.length - 65) <= 1, `about 25 more per second (sent ${sock2.sent.length})`);
    // A publish made during the flush waits behind the queue (order is kept).
    later.push(client.publish("out", { n: 100 }).catch(() => undefined));
    for (let i = 0; i < 10 && sock2.sent.length < 161; i++) t.mock.timers.tick(1_000);
    assert.equal(sock2.sent.length, 161);
    assert.deepEqual(sock2.sent.slice(0, 60).map((f) => f["channel"]), Array.from({ length: 60 }, (_, i) => `ch.${i}`));
    assert.deepEqual(sock2.sent.slice(60).map((f) => (f["data"] as { n: number }).n), Array.from({ length: 101 }, (_, i) => i));
    assert.equal(refusedByGateway(sock2.sentAt), 0, "the gateway's token bucket never runs dry");
    client.close();
  });

  test("the refresh connection's re-subscribes are paced too; flushPacing is configurable", async (t) => {
    mockClock(t);
    ScriptedSocket.all = [];
    const provider = () => {
      const iat = Math.floor(Date.now() / 1000);
      return jwt({ iat, exp: iat + 60 });
    };
    const client = new HeraldClient({ url: "ws://scripted/ws", token: provider, WebSocket: ScriptedSocket, pingIntervalMs: 0, flushPacing: { burst: 5, perSecond: 10 } });
    const connected = client.connect();
    const sock1 = await nextSocket(1);
    await connected;
    const subs = Array.from({ length: 12 }, (_, i) => client.subscribe(`ch.${i}`));
    for (const f of sock1.sentOf("subscribe")) sock1.push({ type: "subscribed", channel: f["channel"], id: f["id"] });
    await Promise.all(subs);
    t.mock.timers.tick(48_000); // exp - 20 % of the 60 s lifetime
    const sock2 = await nextSocket(2);
    assert.equal(sock2.sentOf("subscribe").length, 5);
    t.mock.timers.tick(500);
    assert.equal(sock2.sentOf("subscribe").length, 10);
    client.close();
  });
});

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
    mockClock(t);
    ScriptedSocket.all = [];
    const provider = () => {
      const iat = Math.floor(Date.now() / 1000);
      return jwt({ iat, exp: iat + 60 });
    };
    const client = new HeraldClient({ url: "ws://scripted/ws", token: provider, WebSocket: ScriptedSocket, pingIntervalMs: 0 });
    const connected = client.connect();
    const sock1 = await nextSocket(1);
    await connected;
    const subs = [client.subscribe("news"), client.subscribe("sports")];
    for (const f of sock1.sentOf("subscribe")) sock1.push({ type: "subscribed", channel: f["channel"], id: f["id"] });
    await Promise.all(subs);

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
