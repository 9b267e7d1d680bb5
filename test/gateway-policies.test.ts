/**
 * The gateway's pure request policies, without a socket: the origin policy
 * (ALLOWED_ORIGINS), trusted proxies and the client address
 * (TRUSTED_PROXIES, X-Forwarded-For), where the token is taken from, the
 * per-connection frame rate limiter and the keyed connection limiter.
 * Address normalization and the per-IP limiter keys are in ip-limit.test.ts.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigError } from "@herald/core";
import { TrustedProxies, addressText, forwardedFor } from "../services/gateway/src/client-ip.js";
import { KeyedLimiter } from "../services/gateway/src/ip-limiter.js";
import { OriginPolicy } from "../services/gateway/src/origin.js";
import { RateLimiter } from "../services/gateway/src/rate-limiter.js";
import { findToken } from "../services/gateway/src/token.js";
import { waitFor } from "./helpers/wait.js";

const configError = (variable: string, message: RegExp) => (err: unknown) =>
  err instanceof ConfigError && err.message.includes(variable) && message.test(err.message);

describe("OriginPolicy (ALLOWED_ORIGINS)", () => {
  test("no Origin header (a non-browser client) is always allowed; with an empty list every browser origin is refused", () => {
    const none = OriginPolicy.parse([], "ALLOWED_ORIGINS");
    assert.ok(none.allows(""));
    assert.ok(!none.allows("https://app.example.com"));
    assert.ok(!none.allows("null"));
  });

  test("exact origins compare case-insensitively, default ports folded, scheme and port significant", () => {
    const p = OriginPolicy.parse(["https://app.example.com", "http://localhost:5173", "https://b.example.com:443"], "ALLOWED_ORIGINS");
    assert.ok(p.allows("https://app.example.com"));
    assert.ok(p.allows("HTTPS://APP.EXAMPLE.COM"));
    assert.ok(p.allows("http://localhost:5173"));
    assert.ok(p.allows("https://b.example.com"), "https://b.example.com:443 is the origin https://b.example.com");
    assert.ok(!p.allows("http://app.example.com"), "another scheme");
    assert.ok(!p.allows("https://app.example.com:8443"), "another port");
    assert.ok(!p.allows("http://localhost:3000"));
    assert.ok(!p.allows("https://app.example.com.evil.test"));
  });

  test("https://*.example.com: any subdomain at any depth, never the bare domain or a look-alike", () => {
    const p = OriginPolicy.parse(["https://*.example.com", "http://*.dev.test:8080"], "ALLOWED_ORIGINS");
    assert.ok(p.allows("https://app.example.com"));
    assert.ok(p.allows("https://a.b.example.com"));
    assert.ok(p.allows("https://APP.Example.COM"));
    assert.ok(!p.allows("https://example.com"));
    assert.ok(!p.allows("https://evilexample.com"));
    assert.ok(!p.allows("https://app.example.com.evil.test"));
    assert.ok(!p.allows("http://app.example.com"), "the scheme is part of the pattern");
    assert.ok(!p.allows("https://app.example.com:8443"), "no port in the pattern: none in the origin");
    assert.ok(p.allows("http://x.dev.test:8080"));
    assert.ok(!p.allows("http://x.dev.test"));
    assert.ok(!p.allows("http://x_y.dev.test:8080"), "only host name characters");
  });

  test("* allows every origin", () => {
    const p = OriginPolicy.parse(["*"], "ALLOWED_ORIGINS");
    assert.ok(p.allowAll && p.allows("https://anything.test") && p.allows("null"));
  });

  test("entries that are not origins are config errors naming the variable", () => {
    for (const bad of ["app.example.com", "https://app.example.com/", "https://app.example.com/path", "file:///etc", "not a url"]) {
      assert.throws(() => OriginPolicy.parse([bad], "ALLOWED_ORIGINS"), configError("ALLOWED_ORIGINS", /origin/), bad);
    }
  });
});

describe("TrustedProxies and the client address", () => {
  const xff = (value: string) => () => value;

  test("without trusted proxies the peer is the client, and X-Forwarded-For is never read", () => {
    const none = TrustedProxies.parse([], "TRUSTED_PROXIES");
    assert.ok(none.empty && !none.trusts("127.0.0.1"));
    assert.equal(
      none.clientIp("203.0.113.9", () => assert.fail("read X-Forwarded-For of an untrusted peer")),
      "203.0.113.9",
    );
  });

  test("addresses and CIDRs of both families; mapped peers count as IPv4", () => {
    const p = TrustedProxies.parse(["10.0.0.0/8", "192.168.1.5", "fd00::/8", "::ffff:172.16.0.0/108"], "TRUSTED_PROXIES");
    for (const ip of ["10.1.2.3", "::ffff:10.1.2.3", "192.168.1.5", "fd12::1", "172.16.5.5"]) assert.ok(p.trusts(ip), ip);
    for (const ip of ["11.0.0.1", "192.168.1.6", "fe80::1", "172.32.0.1", "garbage", ""]) assert.ok(!p.trusts(ip), ip);
  });

  test("a trusted peer: X-Forwarded-For read from the right, skipping trusted hops", () => {
    const p = TrustedProxies.parse(["10.0.0.0/8"], "TRUSTED_PROXIES");
    assert.equal(p.clientIp("10.0.0.1", xff("203.0.113.7")), "203.0.113.7");
    assert.equal(p.clientIp("10.0.0.1", xff("198.51.100.1, 203.0.113.7, 10.0.0.2")), "203.0.113.7", "the client's own entries left of it are not believed");
    assert.equal(p.clientIp("10.0.0.1", xff("10.0.0.3, 10.0.0.2")), "10.0.0.3", "every hop trusted: the leftmost");
    assert.equal(p.clientIp("10.0.0.1", xff("")), "10.0.0.1", "no header: the peer");
    assert.equal(p.clientIp("10.0.0.1", xff("203.0.113.7, not-an-ip")), "10.0.0.1", "a malformed header is not believed at all");
    assert.equal(p.clientIp("::ffff:10.0.0.1", xff("::ffff:203.0.113.7")), "203.0.113.7", "normalized on the way");
    assert.equal(p.clientIp("203.0.113.50", xff("1.2.3.4")), "203.0.113.50", "an untrusted peer keeps its own address");
  });

  test("bad entries are config errors naming the variable", () => {
    for (const bad of ["10.0.0.0/33", "fd00::/129", "10.0.0.0/x", "nope", "/8", ""]) {
      assert.throws(() => TrustedProxies.parse([bad], "TRUSTED_PROXIES"), configError("TRUSTED_PROXIES", /IP address|prefix length/), bad);
    }
  });

  test("every X-Forwarded-For line, joined in order; other headers ignored", () => {
    const headers = [["x-forwarded-for", "198.51.100.1"], ["host", "h"], ["x-forwarded-for", "203.0.113.7, 10.0.0.2"]] as const;
    const req = { forEach: (cb: (k: string, v: string) => void) => headers.forEach(([k, v]) => cb(k, v)) };
    assert.equal(forwardedFor(req), "198.51.100.1, 203.0.113.7, 10.0.0.2");
    assert.equal(forwardedFor({ forEach: () => {} }), "");
  });

  test("uWS binary addresses as text", () => {
    const buf = (...b: number[]) => new Uint8Array(b).buffer;
    assert.equal(addressText(buf(203, 0, 113, 7)), "203.0.113.7");
    assert.equal(addressText(buf(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 5, 5, 5)), "10.5.5.5");
    assert.equal(addressText(buf(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)), "2001:db8::1");
    assert.equal(addressText(buf(1, 2, 3)), "unknown");
  });
});

describe("findToken", () => {
  test("Authorization: Bearer first, then the bearer.<jwt> subprotocol, then access_token", () => {
    assert.deepEqual(findToken("Bearer aaa", "herald.v1, bearer.bbb", "ccc"), { token: "aaa", protocol: "herald.v1" });
    assert.deepEqual(findToken("", "herald.v1, bearer.bbb", "ccc"), { token: "bbb", protocol: "herald.v1" });
    assert.deepEqual(findToken("", "", "ccc"), { token: "ccc", protocol: "" });
    assert.deepEqual(findToken("", "", ""), { token: "", protocol: "" }, "no token anywhere: empty");
  });

  test("the Bearer scheme is case-insensitive; anything else in Authorization is not a bearer token", () => {
    assert.equal(findToken("bearer x.y.z", "", "").token, "x.y.z");
    assert.equal(findToken("BEARER   x.y.z  ", "", "").token, "x.y.z");
    assert.equal(findToken("Basic dXNlcjpwdw==", "", "q").token, "q");
    assert.equal(findToken("Bearer", "", "q").token, "q");
    assert.equal(findToken("Bearer a b", "", "q").token, "q", "two words are not one token");
  });

  test("herald.v1 is answered only when offered; a bearer.<jwt> alone answers none", () => {
    assert.deepEqual(findToken("", "bearer.tok", ""), { token: "tok", protocol: "" });
    assert.deepEqual(findToken("", " bearer.tok ,herald.v1 ", ""), { token: "tok", protocol: "herald.v1" });
    assert.deepEqual(findToken("Bearer t", "other.v2", ""), { token: "t", protocol: "" });
  });
});

describe("RateLimiter (per-connection frames)", () => {
  test("a full burst passes; then refused; more refusals in a row than the burst: abusive", () => {
    const rl = new RateLimiter(0.001, 3); // practically no refill during the test
    assert.deepEqual([rl.take(), rl.take(), rl.take()], ["ok", "ok", "ok"]);
    assert.deepEqual([rl.take(), rl.take(), rl.take()], ["limited", "limited", "limited"]);
    assert.equal(rl.take(), "abusive");
    assert.equal(rl.take(), "abusive");
  });

  test("tokens come back at the configured rate, and an accepted frame resets the refusal count", async () => {
    const rl = new RateLimiter(50, 1);
    assert.equal(rl.take(), "ok");
    // One token per 20 ms: polling take() sees refusals, then an accepted frame.
    await waitFor(() => rl.take() === "ok", { timeoutMs: 2000, intervalMs: 5, message: "a refilled token" });
    // The refusal streak started over: the next refusal is "limited" again, not "abusive".
    const next = rl.take();
    assert.ok(next === "limited" || next === "ok", next);
  });
});

describe("KeyedLimiter (connections per user)", () => {
  test("at most max per key; release frees one; keys are independent; 0 is no limit", () => {
    const l = new KeyedLimiter(2);
    assert.ok(l.acquire("alice") && l.acquire("alice"));
    assert.ok(!l.acquire("alice"));
    assert.ok(l.acquire("bob"));
    l.release("alice");
    assert.ok(l.acquire("alice"));
    assert.ok(!l.acquire("alice"));
    l.release("nobody"); // releasing an unknown key is harmless
    const off = new KeyedLimiter(0);
    for (let i = 0; i < 1000; i++) assert.ok(off.acquire("alice"));
  });
});
