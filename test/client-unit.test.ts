/**
 * @herald/client unit tests: pure functions (backoff bounds, JWT reading) and
 * the client's position bookkeeping (duplicates, gaps) driven frame by frame
 * through a scripted socket. The scripted socket replays herald.v1 frames
 * exactly as DESIGN.md specifies them; behaviour against the real gateway is
 * covered by client-sdk.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
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
  readyState = 0;
  protocol = "";
  binaryType = "blob";
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: unknown) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: Array<Record<string, unknown>> = [];
  constructor(
    readonly url: string,
    readonly protocols?: string | string[],
  ) {
    ScriptedSocket.last = this;
  }
  send(data: string): void {
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
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
    sock.push({ type: "error", id: sock.lastSent("publish")["id"], code: "rate_limited", message: "slow down" });
    await assert.rejects(pub, (err: unknown) => err instanceof HeraldError && err.code === "rate_limited");
    client.close();
  });
});
