/**
 * @herald/client unit tests of the pure parts: backoff bounds, JWT reading
 * and the constructor's checks. The client driven frame by frame through a
 * scripted socket: client-positions, client-tokens, client-pacing,
 * client-settle and client-frames tests.
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
} from "@herald/client";
import { ScriptedSocket } from "./helpers/scripted-socket.js";

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
