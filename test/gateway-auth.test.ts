/**
 * Authentication and admission (DESIGN.md "Connecting"): every refusal is a
 * plain HTTP answer before any 101, tokens are accepted from the three
 * transports, and tokens never appear in the logs. The gateways are built in
 * this process (buildGateway on the memory broker), their debug logs captured.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { captureLogger, startGatewayInProcess, type InProcessGateway } from "./helpers/in-process.js";
import { waitFor } from "./helpers/wait.js";
import { scrape } from "./helpers/metrics.js";
import {
  TEST_SECRET,
  forgePayload,
  hsRsConfusionToken,
  hsToken,
  noneToken,
  nowSeconds,
  rsKeys,
  rsToken,
  tamper,
  type RsKeys,
} from "./helpers/tokens.js";
import { closeAll, connect, expectRejected, type Client } from "./helpers/ws.js";

const ISSUER = "https://auth.herald.test/";
const AUDIENCE = "herald-gateway";
const claims = (extra: Record<string, unknown> = {}) => ({ sub: "user-1", channels: ["news"], iss: ISSUER, aud: AUDIENCE, ...extra });

describe("gateway authentication and admission", () => {
  /** Both gateways log at debug level into memory. */
  const logs = { hs: captureLogger("gateway", "debug"), rs: captureLogger("gateway", "debug") };
  let hs: InProcessGateway; // HS256 gateway with iss/aud, origins, per-IP limit
  let rs: InProcessGateway; // RS256-only gateway (JWT_PUBLIC_KEY)
  let keys: RsKeys;
  const clients: Client[] = [];
  /** Every token handed to a gateway in this file, checked against the logs at the end. */
  const usedTokens: string[] = [];
  const remember = (t: string) => (usedTokens.push(t), t);

  before(async () => {
    keys = await rsKeys();
    [hs, rs] = await Promise.all([
      startGatewayInProcess(
        {
          JWT_SECRET: TEST_SECRET,
          JWT_ISSUER: ISSUER,
          JWT_AUDIENCE: AUDIENCE,
          ALLOWED_ORIGINS: "https://app.example.com,https://*.example.org",
          MAX_CONNECTIONS_PER_IP: "2",
          TRUSTED_PROXIES: "127.0.0.7",
        },
        { logger: logs.hs.logger },
      ),
      startGatewayInProcess({ JWT_PUBLIC_KEY: keys.publicPem }, { logger: logs.rs.logger }),
    ]);
  });

  after(async () => {
    await closeAll(clients);
    await Promise.all([hs?.close(), rs?.close()]);
  });

  async function rejected(gw: InProcessGateway, opts: Parameters<typeof expectRejected>[1], status: number) {
    if (opts?.token) remember(opts.token);
    const r = await expectRejected(gw.wsUrl, opts);
    assert.equal(r.status, status, `expected HTTP ${status}, got ${r.status} ${r.body.slice(0, 200)}`);
    return r;
  }

  describe("refusals are plain HTTP answers, never an upgrade", () => {
    test("no token -> 401", async () => {
      await rejected(hs, {}, 401);
      await rejected(hs, { headers: { Authorization: "Bearer " } }, 401);
      await rejected(hs, { headers: { Authorization: "Basic dXNlcjpwYXNz" } }, 401);
      await rejected(hs, { protocols: ["herald.v1"] }, 401);
    });

    test("malformed token -> 401", async () => {
      await rejected(hs, { token: "not-a-jwt" }, 401);
      await rejected(hs, { token: "a.b.c" }, 401);
    });

    test("bad signature -> 401 (tampered, wrong secret, forged payload)", async () => {
      const good = await hsToken(claims());
      await rejected(hs, { token: tamper(good) }, 401);
      await rejected(hs, { token: await hsToken(claims(), { secret: TEST_SECRET + "x" }) }, 401);
      await rejected(hs, { token: forgePayload(good, claims({ channels: [">"], exp: nowSeconds() + 3600 })) }, 401);
    });

    test("alg none -> 401", async () => {
      await rejected(hs, { token: noneToken(claims()) }, 401);
      await rejected(rs, { token: noneToken(claims()) }, 401);
    });

    test("HS256 token signed with the RS256 public key PEM (key confusion) -> 401", async () => {
      // Sanity: the RS gateway accepts a real RS256 token ...
      const real = await connect(rs.wsUrl, { token: remember(await rsToken(keys.privateKey, { sub: "rs-user" })) });
      clients.push(real);
      assert.equal(real.welcome?.["sub"], "rs-user");
      await real.close();
      // ... but not the forgery, nor an RS256 token from another key.
      await rejected(rs, { token: await hsRsConfusionToken(keys.publicPem, { sub: "rs-user" }) }, 401);
      const other = await rsKeys();
      await rejected(rs, { token: await rsToken(other.privateKey, { sub: "rs-user" }) }, 401);
      // An HS-only gateway refuses RS tokens as well.
      await rejected(hs, { token: await rsToken(keys.privateKey, claims()) }, 401);
    });

    test("expired token -> 401 (beyond the clock tolerance)", async () => {
      await rejected(hs, { token: await hsToken(claims({ exp: nowSeconds() - 120 })) }, 401);
    });

    test("missing exp -> 401; missing sub -> 401", async () => {
      await rejected(hs, { token: await hsToken(claims(), { noExp: true }) }, 401);
      const { sub: _sub, ...noSub } = claims();
      await rejected(hs, { token: await hsToken(noSub) }, 401);
    });

    test("wrong or missing iss / aud -> 401", async () => {
      await rejected(hs, { token: await hsToken(claims({ iss: "https://evil.test/" })) }, 401);
      await rejected(hs, { token: await hsToken(claims({ aud: "another-service" })) }, 401);
      const { iss: _iss, ...noIss } = claims();
      await rejected(hs, { token: await hsToken(noIss) }, 401);
      const { aud: _aud, ...noAud } = claims();
      await rejected(hs, { token: await hsToken(noAud) }, 401);
    });

    test("invalid tokens are refused on every transport", async () => {
      const bad = tamper(await hsToken(claims()));
      await rejected(hs, { token: bad, via: "protocol" }, 401);
      await rejected(hs, { token: bad, via: "query" }, 401);
    });

    test("disallowed Origin -> 403; allowed exact and wildcard origins pass", async () => {
      const token = remember(await hsToken(claims()));
      for (const origin of [
        "https://evil.example.com",
        "http://app.example.com", // scheme matters
        "https://app.example.com.evil.test",
        "https://example.org", // the wildcard needs a subdomain
        "https://a.example.org.evil.test",
        "null",
      ]) {
        const r = await expectRejected(hs.wsUrl, { token, origin });
        assert.equal(r.status, 403, `origin ${origin}: expected 403, got ${r.status}`);
      }
      for (const origin of ["https://app.example.com", "https://eu.example.org"]) {
        const c = await connect(hs.wsUrl, { token, origin, localAddress: "127.0.0.3" });
        clients.push(c);
        await c.close();
      }
    });

    test("per-IP connection limit -> 429 with Retry-After; other IPs unaffected; slots freed on close", async () => {
      const token = remember(await hsToken(claims()));
      const ip = "127.0.0.9";
      const c1 = await connect(hs.wsUrl, { token, localAddress: ip });
      const c2 = await connect(hs.wsUrl, { token, localAddress: ip });
      clients.push(c1, c2);
      const r = await rejected(hs, { token, localAddress: ip }, 429);
      const retry = r.headers["retry-after"];
      assert.ok(retry !== undefined, "429 carries Retry-After");
      assert.match(String(retry), /^\d+$/, "Retry-After is delay-seconds");
      // Another address is not affected.
      const other = await connect(hs.wsUrl, { token, localAddress: "127.0.0.10" });
      clients.push(other);
      // Closing one frees a slot.
      await c1.close();
      const c3 = await waitFor(() => connect(hs.wsUrl, { token, localAddress: ip }), {
        timeoutMs: 5000,
        intervalMs: 100,
        message: "a new connection from the IP after one of its sockets closed",
      });
      clients.push(c3);
      await Promise.all([c2.close(), c3.close(), other.close()]);
    });

    test("X-Forwarded-For is believed only from TRUSTED_PROXIES", async () => {
      const token = remember(await hsToken(claims()));
      // From the trusted proxy, three different forwarded clients are three IPs.
      const viaProxy: Client[] = [];
      for (const xff of ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) {
        viaProxy.push(await connect(hs.wsUrl, { token, localAddress: "127.0.0.7", headers: { "X-Forwarded-For": xff } }));
      }
      clients.push(...viaProxy);
      // Two sockets of the same forwarded client fill its quota.
      const same = await connect(hs.wsUrl, { token, localAddress: "127.0.0.7", headers: { "X-Forwarded-For": "198.51.100.1" } });
      clients.push(same);
      await rejected(hs, { token, localAddress: "127.0.0.7", headers: { "X-Forwarded-For": "198.51.100.1" } }, 429);
      // A proxy that appends its own X-Forwarded-For line (HAProxy's option
      // forwardfor) keeps the client's forged first line: the last hop counts.
      const appended = await connect(hs.wsUrl, {
        token,
        localAddress: "127.0.0.7",
        headers: { "X-Forwarded-For": ["198.51.100.1", "198.51.100.9"] },
      });
      clients.push(appended);
      // From an untrusted peer, a forged X-Forwarded-For does not escape the per-IP limit.
      const ip = "127.0.0.8";
      const u1 = await connect(hs.wsUrl, { token, localAddress: ip, headers: { "X-Forwarded-For": "203.0.113.1" } });
      const u2 = await connect(hs.wsUrl, { token, localAddress: ip, headers: { "X-Forwarded-For": "203.0.113.2" } });
      clients.push(u1, u2);
      await rejected(hs, { token, localAddress: ip, headers: { "X-Forwarded-For": "203.0.113.3" } }, 429);
      await closeAll([...viaProxy, same, appended, u1, u2]);
    });

    test("refusals are counted in herald_upgrades_total{result=rejected}", async () => {
      const m = await scrape(hs.url);
      for (const reason of ["missing_token", "invalid_token", "expired_token", "forbidden_origin", "ip_limit"]) {
        assert.ok((m.get("herald_upgrades_total", { result: "rejected", reason }) ?? 0) >= 1, `reason ${reason} counted`);
      }
      assert.ok((m.get("herald_upgrades_total", { result: "accepted" }) ?? 0) >= 1);
    });
  });

  describe("accepted token transports", () => {
    test("Authorization: Bearer header", async () => {
      const c = await connect(hs.wsUrl, { token: remember(await hsToken(claims({ sub: "via-header" }))), localAddress: "127.0.0.4" });
      clients.push(c);
      assert.equal(c.welcome?.["sub"], "via-header");
      assert.equal(typeof c.welcome?.["connection"], "string");
      assert.deepEqual(await c.request({ type: "ping", id: 1 }), { type: "pong", id: 1 });
      await c.close();
    });

    test("Sec-WebSocket-Protocol: herald.v1, bearer.<jwt>; the server answers herald.v1", async () => {
      const c = await connect(hs.wsUrl, {
        token: remember(await hsToken(claims({ sub: "via-protocol" }))),
        via: "protocol",
        localAddress: "127.0.0.4",
      });
      clients.push(c);
      assert.equal(c.protocol, "herald.v1");
      assert.equal(c.upgradeHeaders["sec-websocket-protocol"], "herald.v1", "the token is never echoed back");
      assert.equal(c.welcome?.["sub"], "via-protocol");
      await c.close();
    });

    test("access_token query parameter", async () => {
      const c = await connect(hs.wsUrl, {
        token: remember(await hsToken(claims({ sub: "via-query" }))),
        via: "query",
        localAddress: "127.0.0.4",
      });
      clients.push(c);
      assert.equal(c.welcome?.["sub"], "via-query");
      await c.close();
    });
  });

  test("no token (nor its signature) ever appears in the gateway logs (LOG_LEVEL=debug)", async () => {
    assert.ok(usedTokens.length > 10);
    // Make sure the gateways wrote something at all, so an empty log does not pass vacuously.
    await waitFor(() => logs.hs.lines.length > 0 && logs.rs.lines.length > 0, { timeoutMs: 3000, message: "gateways have logged something" });
    for (const [name, log] of [["hs", logs.hs], ["rs", logs.rs]] as const) {
      const text = log.lines.join("\n");
      for (const token of usedTokens) {
        const sig = token.split(".")[2] ?? "";
        assert.ok(!text.includes(token), `${name} gateway logged a whole token`);
        if (sig.length >= 16) assert.ok(!text.includes(sig), `${name} gateway logged a token signature`);
      }
      assert.ok(!/access_token=/.test(text), `${name} gateway logged a query string carrying access_token`);
      assert.ok(!/bearer\.[A-Za-z0-9_-]{10,}/i.test(text), `${name} gateway logged a bearer subprotocol`);
      assert.ok(!text.includes(TEST_SECRET), `${name} gateway logged the JWT secret`);
    }
  });
});
