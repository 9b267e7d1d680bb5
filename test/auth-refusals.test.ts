/**
 * Why a token was refused, at the gateway upgrade: every 401 names its
 * reason in the JSON body (`error.code` as before, `error.reason` finer) and
 * answers with an RFC 6750 challenge, `WWW-Authenticate: Bearer
 * realm="herald", error="invalid_token", error_description="..."` (only the
 * realm when no token was sent). The token never appears in the answer.
 * Tokens are built here with jose; the gateways are built in this process
 * (buildGateway on the memory broker), their logs captured.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { CompactSign, SignJWT, exportJWK, generateKeyPair } from "jose";
import { captureLogger, startGatewayInProcess, type InProcessGateway } from "./helpers/in-process.js";
import { waitFor } from "./helpers/wait.js";
import { TEST_SECRET, hsToken, noneToken, nowSeconds, rsKeys, rsToken, tamper, type Claims, type RsKeys } from "./helpers/tokens.js";
import { closeAll, connect, expectRejected, type Client } from "./helpers/ws.js";

const ISSUER = "https://auth.herald.test/";
const AUDIENCE = "herald-gateway";
const claims = (extra: Record<string, unknown> = {}): Claims => ({ sub: "user-1", channels: ["news"], iss: ISSUER, aud: AUDIENCE, ...extra });
const CHALLENGE = 'Bearer realm="herald"';

interface Refusal {
  code: string;
  reason: string;
  message: string;
  challenge: string;
}

describe("token refusals say why (gateway)", () => {
  const hsLogs = captureLogger("gateway", "debug");
  let hs: InProcessGateway; // HS256 with iss/aud
  let rs: InProcessGateway; // JWT_PUBLIC_KEY (RSA), default algorithms RS256,ES256,EdDSA
  let jw: InProcessGateway; // JWT_JWKS_URL
  let keys: RsKeys;
  let jwksKeys: RsKeys;
  let jwks: Server;
  let jwksBroken = true;
  const clients: Client[] = [];

  before(async () => {
    keys = await rsKeys();
    jwksKeys = await rsKeys();
    const jwk = { ...(await exportJWK(jwksKeys.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
    jwks = createServer((_req, res) => {
      if (jwksBroken) {
        res.writeHead(500).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    const jwksPort = (jwks.address() as AddressInfo).port;
    [hs, rs, jw] = await Promise.all([
      startGatewayInProcess({ JWT_SECRET: TEST_SECRET, JWT_ISSUER: ISSUER, JWT_AUDIENCE: AUDIENCE }, { logger: hsLogs.logger }),
      startGatewayInProcess({ JWT_PUBLIC_KEY: keys.publicPem }),
      startGatewayInProcess({ JWT_JWKS_URL: `http://127.0.0.1:${jwksPort}/jwks.json`, JWT_ALGORITHMS: "RS256", JWT_JWKS_TIMEOUT_MS: "1000" }),
    ]);
  });

  after(async () => {
    await closeAll(clients);
    await Promise.all([hs?.close(), rs?.close(), jw?.close()]);
    await new Promise((resolve) => jwks?.close(resolve));
  });

  /** Expects a 401 with `code` and `reason`, the RFC 6750 challenge, and no trace of the token. */
  async function refused(gw: InProcessGateway, token: string | undefined, code: string, reason: string): Promise<Refusal> {
    const r = await expectRejected(gw.wsUrl, token === undefined ? {} : { token });
    assert.equal(r.status, 401, `expected 401, got ${r.status} ${r.body}`);
    const body = JSON.parse(r.body) as { error?: { code?: string; reason?: string; message?: string } };
    assert.equal(body.error?.code, code, r.body);
    assert.equal(body.error?.reason, reason, r.body);
    const message = body.error?.message ?? "";
    assert.ok(message.length > 0 && message.length <= 200, `a short message: ${message}`);
    const challenge = String(r.headers["www-authenticate"] ?? "");
    if (reason === "missing") {
      assert.equal(challenge, CHALLENGE);
    } else {
      assert.equal(challenge, `${CHALLENGE}, error="invalid_token", error_description="${message}"`);
    }
    assert.match(challenge, /^[\x20-\x7e]+$/, "the challenge is printable ASCII");
    if (token !== undefined) {
      const answer = `${JSON.stringify(r.headers)}\n${r.body}`;
      assert.ok(!answer.includes(token), "the answer contains the token");
      for (const part of token.split(".")) {
        if (part.length >= 8) assert.ok(!answer.includes(part), `the answer contains a part of the token: ${part.slice(0, 12)}...`);
      }
    }
    return { code, reason, message, challenge };
  }

  test("missing: no token -> realm only, reason missing", async () => {
    await refused(hs, undefined, "missing_token", "missing");
  });

  test("malformed: garbage, not three parts, bad JSON header, claims that are not JSON", async () => {
    await refused(hs, "not-a-jwt", "invalid_token", "malformed");
    await refused(hs, "garbage.garbage.garbage", "invalid_token", "malformed");
    await refused(hs, "a.b.c", "invalid_token", "malformed");
    const notJson = await new CompactSign(new TextEncoder().encode("this is not json"))
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(TEST_SECRET));
    const r = await refused(hs, notJson, "invalid_token", "malformed");
    assert.match(r.message, /JSON/);
  });

  test("bad_signature: tampered signature, wrong secret, RS token from another key", async () => {
    const r = await refused(hs, tamper(await hsToken(claims())), "invalid_token", "bad_signature");
    assert.equal(r.message, "token signature does not verify");
    await refused(hs, await hsToken(claims(), { secret: TEST_SECRET + "x" }), "invalid_token", "bad_signature");
    const other = await rsKeys();
    await refused(rs, await rsToken(other.privateKey, { sub: "u" }), "invalid_token", "bad_signature");
  });

  test("algorithm_not_allowed: alg none, HS token at an RS-only gateway, RS token at an HS-only one, ES256 against an RSA key", async () => {
    const none = await refused(hs, noneToken(claims()), "invalid_token", "algorithm_not_allowed");
    assert.match(none.message, /'none'/);
    await refused(rs, noneToken({ sub: "u" }), "invalid_token", "algorithm_not_allowed");
    // HS256 "signed" with the RSA public key PEM: the key-confusion forgery.
    await refused(rs, await hsToken({ sub: "u" }, { secret: new TextEncoder().encode(keys.publicPem) }), "invalid_token", "algorithm_not_allowed");
    await refused(hs, await rsToken(keys.privateKey, claims()), "invalid_token", "algorithm_not_allowed");
    // ES256 is in the default list, but the configured key is RSA.
    const ec = await generateKeyPair("ES256");
    const es = await new SignJWT({ sub: "u", exp: nowSeconds() + 600 }).setProtectedHeader({ alg: "ES256" }).sign(ec.privateKey);
    await refused(rs, es, "invalid_token", "algorithm_not_allowed");
  });

  test("expired: code expired_token", async () => {
    await refused(hs, await hsToken(claims({ exp: nowSeconds() - 120 })), "expired_token", "expired");
  });

  test("not_yet_valid: nbf in the future", async () => {
    await refused(hs, await hsToken(claims({ nbf: nowSeconds() + 3600 })), "invalid_token", "not_yet_valid");
  });

  test("missing_claim: no sub, no exp, no iss where one is required", async () => {
    const { sub: _sub, ...noSub } = claims();
    const r = await refused(hs, await hsToken(noSub), "invalid_token", "missing_claim");
    assert.match(r.message, /'sub'/);
    const e = await refused(hs, await hsToken(claims(), { noExp: true }), "invalid_token", "missing_claim");
    assert.match(e.message, /'exp'/);
    const { iss: _iss, ...noIss } = claims();
    await refused(hs, await hsToken(noIss), "invalid_token", "missing_claim");
  });

  test("invalid_claim: sub of the wrong type or too long, channels/publish not string arrays, exp not a number", async () => {
    await refused(hs, await hsToken(claims({ sub: 42 })), "invalid_token", "invalid_claim");
    await refused(hs, await hsToken(claims({ sub: "x".repeat(257) })), "invalid_token", "invalid_claim");
    const c = await refused(hs, await hsToken(claims({ channels: "news" })), "invalid_token", "invalid_claim");
    assert.equal(c.message, "token claim 'channels' must be an array of strings");
    await refused(hs, await hsToken(claims({ channels: ["news", 7] })), "invalid_token", "invalid_claim");
    await refused(hs, await hsToken(claims({ publish: { news: true } })), "invalid_token", "invalid_claim");
    await refused(hs, await hsToken(claims({ exp: "tomorrow" })), "invalid_token", "invalid_claim");
  });

  test("invalid_claim: a pattern NATS would refuse makes the token invalid instead of widening the grant", async () => {
    const r = await refused(hs, await hsToken(claims({ channels: ["news", "a.>.b"] })), "invalid_token", "invalid_claim");
    assert.equal(r.message, "token claim 'channels' has an invalid pattern 'a.>.b': '>' must be the last token");
    for (const bad of ["a*", "a.b*", ">a", "a..b", "a.", ".a", "*.", "a b", "news.\u00e9", "x".repeat(201), Array(17).fill("a").join(".")]) {
      const t = await refused(hs, await hsToken(claims({ channels: [bad] })), "invalid_token", "invalid_claim");
      assert.match(t.message, /^token claim 'channels' has an invalid pattern '/, bad);
    }
    // Empty entries were skipped before; now they refuse the token too.
    const empty = await refused(hs, await hsToken(claims({ channels: ["news", ""] })), "invalid_token", "invalid_claim");
    assert.equal(empty.message, "token claim 'channels' has an empty pattern");
    // The same rules for publish, where user: grants are not channel patterns.
    await refused(hs, await hsToken(claims({ publish: ["chat.>.x"] })), "invalid_token", "invalid_claim");
    await refused(hs, await hsToken(claims({ publish: ["user:"] })), "invalid_token", "invalid_claim");
    await refused(hs, await hsToken(claims({ channels: ["user:alice"] })), "invalid_token", "invalid_claim");
  });

  test("valid patterns and user: grants still connect, and grant exactly what they say", async () => {
    const token = await hsToken(claims({ channels: ["news.>", "chat.*", "plain"], publish: ["chat.*", "user:alice", "user:*"] }));
    const c = await connect(hs.wsUrl, { token });
    clients.push(c);
    assert.equal((await c.request({ type: "subscribe", channel: "news.eu.fr", id: 1 })).type, "subscribed");
    assert.equal((await c.request({ type: "subscribe", channel: "chat.42", id: 2 })).type, "subscribed");
    const refusedSub = await c.request({ type: "subscribe", channel: "chat.42.x", id: 3 });
    assert.equal(refusedSub["code"], "forbidden");
    const refusedNews = await c.request({ type: "subscribe", channel: "news", id: 4 });
    assert.equal(refusedNews["code"], "forbidden", "'news.>' needs at least one more token");
    await c.close();
  });

  test("wrong_issuer and wrong_audience", async () => {
    await refused(hs, await hsToken(claims({ iss: "https://evil.test/" })), "invalid_token", "wrong_issuer");
    await refused(hs, await hsToken(claims({ aud: "another-service" })), "invalid_token", "wrong_audience");
  });

  test("key_unavailable: JWKS fetch fails; no JWKS key matches the kid", async () => {
    const signed = (kid: string) => rsToken(jwksKeys.privateKey, { sub: "jwks-user" }, { kid });
    const down = await refused(jw, await signed("k1"), "invalid_token", "key_unavailable");
    assert.match(down.message, /could not be fetched/);
    jwksBroken = false;
    // Bounded retry: the next verification fetches the JWKS again.
    const ok = await waitFor(async () => connect(jw.wsUrl, { token: await signed("k1") }).catch(() => undefined), {
      timeoutMs: 10_000,
      intervalMs: 250,
      message: "a JWKS-signed token is accepted once the JWKS answers",
    });
    clients.push(ok);
    await ok.close();
    await refused(jw, await signed("k2"), "invalid_token", "key_unavailable");
  });

  test("refusals are logged at debug level with their reason, never with the token", async () => {
    await waitFor(() => hsLogs.lines.some((l) => l.includes('"refusal":"bad_signature"')), {
      timeoutMs: 3000,
      message: "a debug line naming the refusal reason",
    });
    assert.ok(!hsLogs.lines.join("\n").includes(TEST_SECRET));
  });
});
