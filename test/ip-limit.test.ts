/**
 * The per-IP connection limit counts clients, not spellings: an IPv4-mapped
 * IPv6 address (`::ffff:10.5.5.5`) is its IPv4 address, and IPv6 clients are
 * counted per /64 by default (IPV6_LIMIT_PREFIX). Pure functions first, then
 * through a real gateway behind a trusted proxy (X-Forwarded-For).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ConfigError } from "@herald/core";
import { TrustedProxies, limiterKey, normalizeIp } from "../services/gateway/src/client-ip.js";
import { GATEWAY_DEFAULTS, readGatewayConfig } from "../services/gateway/src/config.js";
import { IpLimiter } from "../services/gateway/src/ip-limiter.js";
import { GATEWAY_MAIN, missingBuild, startGateway, type ServiceProcess } from "./helpers/procs.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { closeAll, connect, expectRejected, type Client } from "./helpers/ws.js";

describe("client address normalization and limiter keys (pure)", () => {
  test("IPv4-mapped IPv6 is the IPv4 address, in every spelling", () => {
    for (const mapped of ["::ffff:10.5.5.5", "::FFFF:10.5.5.5", "::ffff:a05:505", "0:0:0:0:0:ffff:10.5.5.5", "0000:0000:0000:0000:0000:ffff:0a05:0505"]) {
      assert.equal(normalizeIp(mapped), "10.5.5.5", mapped);
    }
    assert.equal(normalizeIp("10.5.5.5"), "10.5.5.5");
  });

  test("IPv6 gets its canonical form; what is not an address stays as it is", () => {
    assert.equal(normalizeIp("2001:DB8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
    assert.equal(normalizeIp("2001:0db8:0001:0002:0000:0000:0000:0001"), "2001:db8:1:2::1");
    assert.equal(normalizeIp("fe80::1%eth0"), "fe80::1");
    assert.equal(normalizeIp("::1"), "::1");
    // IPv4-compatible (deprecated) and NAT64 addresses are not IPv4-mapped.
    assert.equal(normalizeIp("64:ff9b::a05:505"), "64:ff9b::a05:505");
    assert.equal(normalizeIp("unknown"), "unknown");
    assert.equal(normalizeIp("not:an:ip"), "not:an:ip");
  });

  test("limiter key: IPv4 itself, IPv6 its network of the configured prefix", () => {
    assert.equal(limiterKey("10.5.5.5", 64), "10.5.5.5");
    for (const ip of ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3", "2001:DB8:1:2:abcd:ef01:2345:6789"]) {
      assert.equal(limiterKey(ip, 64), "2001:db8:1:2::/64", ip);
    }
    assert.equal(limiterKey("2001:db8:1:3::1", 64), "2001:db8:1:3::/64");
    assert.equal(limiterKey("2001:db8:1:2::1", 128), "2001:db8:1:2::1");
    assert.equal(limiterKey("2001:db8:1:2::1", 48), "2001:db8:1::/48");
    assert.equal(limiterKey("2001:db8:1:2:8000::1", 65), "2001:db8:1:2:8000::/65");
    assert.equal(limiterKey("2001:db8:1:2:7fff::1", 65), "2001:db8:1:2::/65");
    assert.equal(limiterKey("::ffff:10.5.5.5", 64), "10.5.5.5", "a mapped address is never lumped into ::ffff:0:0/64");
  });

  test("IpLimiter shares one budget between the addresses of one key and releases by the same key", () => {
    const limiter = new IpLimiter(2, 64);
    assert.ok(limiter.acquire("2001:db8:1:2::1"));
    assert.ok(limiter.acquire("2001:db8:1:2::2"));
    assert.ok(!limiter.acquire("2001:db8:1:2:ffff::3"));
    assert.ok(limiter.acquire("2001:db8:1:3::1"), "another /64 has its own budget");
    limiter.release("2001:db8:1:2::1");
    assert.ok(limiter.acquire("2001:db8:1:2:ffff::3"), "a release frees a slot of the network");
    const perAddress = new IpLimiter(1, 128);
    assert.ok(perAddress.acquire("2001:db8:1:2::1"));
    assert.ok(perAddress.acquire("2001:db8:1:2::2"));
    assert.ok(!perAddress.acquire("2001:0db8:1:2:0::1"), "one address however it is written");
  });

  test("TrustedProxies: mapped peers and hops are IPv4; entries may be written mapped", () => {
    const proxies = TrustedProxies.parse(["127.0.0.1", "::ffff:10.0.0.0/104"], "TRUSTED_PROXIES");
    assert.ok(proxies.trusts("::ffff:127.0.0.1"));
    assert.ok(proxies.trusts("10.9.9.9"), "a mapped /104 entry is the IPv4 /8");
    assert.equal(proxies.clientIp("::ffff:127.0.0.1", () => "198.51.100.7, ::ffff:10.5.5.5"), "198.51.100.7", "a trusted mapped /104 hop is skipped");
    assert.equal(proxies.clientIp("::ffff:127.0.0.1", () => "::ffff:198.51.100.7"), "198.51.100.7");
    assert.equal(proxies.clientIp("127.0.0.1", () => "198.51.100.7, ::ffff:127.0.0.1"), "198.51.100.7", "a mapped trusted hop is skipped");
    assert.equal(proxies.clientIp("::ffff:203.0.113.5", () => "198.51.100.7"), "203.0.113.5", "an untrusted (mapped) peer is normalized, its header ignored");
    assert.equal(proxies.clientIp("127.0.0.1", () => "2001:DB8::1"), "2001:db8::1");
  });

  test("IPV6_LIMIT_PREFIX: default 64, 32 to 128, errors name the variable", () => {
    const base = { JWT_SECRET: TEST_SECRET };
    assert.equal(GATEWAY_DEFAULTS.ipv6LimitPrefix, 64);
    assert.equal(readGatewayConfig(base).ipv6LimitPrefix, 64);
    assert.equal(readGatewayConfig({ ...base, IPV6_LIMIT_PREFIX: "128" }).ipv6LimitPrefix, 128);
    assert.equal(readGatewayConfig({ ...base, IPV6_LIMIT_PREFIX: "48" }).ipv6LimitPrefix, 48);
    for (const bad of ["16", "129", "64.5", "/64", "x"]) {
      assert.throws(
        () => readGatewayConfig({ ...base, IPV6_LIMIT_PREFIX: bad }),
        (err: unknown) => err instanceof ConfigError && err.variable === "IPV6_LIMIT_PREFIX",
        bad,
      );
    }
  });
});

describe("per-IP limit through a trusted proxy (real gateway)", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  let by64: ServiceProcess;
  let by128: ServiceProcess;
  let token: string;
  const clients: Client[] = [];
  const env = { JWT_SECRET: TEST_SECRET, TRUSTED_PROXIES: "127.0.0.1", MAX_CONNECTIONS_PER_IP: "2" };

  before(async () => {
    token = await hsToken({ sub: "ip-user", channels: ["news"] });
    [by64, by128] = await Promise.all([startGateway(env), startGateway({ ...env, IPV6_LIMIT_PREFIX: "128" })]);
  });

  after(async () => {
    await closeAll(clients);
    await Promise.all([by64?.stop(), by128?.stop()]);
  });

  const via = async (gw: ServiceProcess, xff: string) => {
    const c = await connect(gw.wsUrl, { token, localAddress: "127.0.0.1", headers: { "X-Forwarded-For": xff } });
    clients.push(c);
    return c;
  };
  const limited = async (gw: ServiceProcess, xff: string) => {
    const r = await expectRejected(gw.wsUrl, { token, localAddress: "127.0.0.1", headers: { "X-Forwarded-For": xff } });
    assert.equal(r.status, 429, `${xff}: expected 429, got ${r.status} ${r.body}`);
    assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, "ip_limit");
  };

  test("10.5.5.5 and ::ffff:10.5.5.5 share one budget", async () => {
    await via(by64, "10.5.5.5");
    await via(by64, "::ffff:10.5.5.5");
    await limited(by64, "10.5.5.5");
    await limited(by64, "::ffff:10.5.5.5");
  });

  test("one IPv6 /64 shares one budget; another /64 has its own", async () => {
    await via(by64, "2001:db8:1:2::1");
    await via(by64, "2001:db8:1:2::2");
    await limited(by64, "2001:db8:1:2:ffff::3");
    await via(by64, "2001:db8:1:3::1");
  });

  test("IPV6_LIMIT_PREFIX=128: each IPv6 address apart (but still one budget per address)", async () => {
    for (const xff of ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"]) await via(by128, xff);
    await via(by128, "2001:db8:1:2::1");
    await limited(by128, "2001:0db8:0001:0002::1");
  });
});
