/**
 * The publisher's HTTP contract, built in this process (`buildPublisher`)
 * on the memory broker, port 0: 202/400/401/403/404/405/413/415/503, the
 * published message (exact body bytes plus Herald-Id, Herald-Published-At and
 * traceparent headers), the user-route authorization rule, metrics and logs
 * free of credentials. What needs the real process and NATS (the NATS
 * message, stdout, SIGTERM, config errors at startup) is in
 * publisher-process.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MemoryBroker } from "@herald/broker";
import { httpStatus } from "./helpers/http.js";
import { captureLogger, startPublisherInProcess, type InProcessPublisher } from "./helpers/in-process.js";
import { freePort } from "./helpers/ports.js";
import {
  API_KEY,
  Inbox,
  OTHER_SECRET,
  SECRET,
  assertError,
  assertPublishedAsIs,
  assertUnavailableWithoutBroker,
  assertRefused,
  call,
  mint,
  postHeldOpen,
} from "./helpers/publisher-http.js";

const MAX_BODY = 1024;

describe("publisher HTTP contract (in-process, memory broker)", () => {
  const broker = new MemoryBroker();
  const logs = captureLogger("publisher");
  let pub: InProcessPublisher;
  let news: Inbox;
  let chat: Inbox;
  let alice: Inbox;
  let bob: Inbox;
  const secrets: string[] = [API_KEY];

  const channelUrl = (channel: string) => `${pub.url}/v1/channels/${channel}/messages`;
  const userUrl = (sub: string) => `${pub.url}/v1/users/${encodeURIComponent(sub)}/messages`;

  /** Publishes a sentinel with the API key and checks it is the NEXT message on `news`: nothing rejected leaked through. */
  async function assertNothingLeakedToNews(): Promise<void> {
    const marker = `{"sentinel":${Date.now()}}`;
    const reply = await call(channelUrl("news"), { body: marker, auth: `Bearer ${API_KEY}` });
    assert.equal(reply.status, 202, reply.text);
    const msg = await news.next();
    assert.equal(Buffer.from(msg.data).toString("utf8"), marker, "a rejected request was published");
  }

  before(async () => {
    pub = await startPublisherInProcess(
      { JWT_SECRET: SECRET, PUBLISHER_API_KEY: API_KEY, MAX_BODY_BYTES: String(MAX_BODY), DRAIN_SECONDS: "2" },
      { broker, logger: logs.logger },
    );
    news = Inbox.broker(broker, "herald.ch.news");
    chat = Inbox.broker(broker, "herald.ch.chat.42");
    alice = Inbox.broker(broker, "herald.user.alice");
    bob = Inbox.broker(broker, "herald.user.bob");
  });

  after(async () => {
    await pub?.close();
    await broker.close();
  });

  test("healthz, readyz and metrics answer", async () => {
    const health = await call(`${pub.url}/healthz`, { method: "GET" });
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: "ok" });
    assert.equal((await call(`${pub.url}/readyz`, { method: "GET" })).status, 200);
    const metrics = await fetch(`${pub.url}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type") ?? "", /^text\/plain/);
    assert.match(await metrics.text(), /^herald_broker_connected 1$/m);
  });

  test("POST with a JWT: 202 {id}, the broker gets the exact body bytes and the three headers", async () => {
    const token = await mint({ publish: ["news", "chat.*"] });
    secrets.push(token);
    await assertPublishedAsIs(channelUrl("news"), `Bearer ${token}`, ' {"hello" : "wörld", "n": [1, 2, 3]}\n', news, "herald.ch.news");
  });

  test("Idempotency-Key becomes the message id (Herald-Id); a malformed key is 400", async () => {
    const key = `order-42:${Date.now()}`;
    const reply = await call(channelUrl("news"), { body: '{"once":true}', auth: `Bearer ${API_KEY}`, headers: { "idempotency-key": key } });
    assert.equal(reply.status, 202, reply.text);
    assert.equal(reply.json?.id, key);
    assert.equal((await news.next()).header("Herald-Id"), key);
    for (const bad of ["", "has space", "x".repeat(129), "naïve"]) {
      const r = await call(channelUrl("news"), { body: "{}", auth: `Bearer ${API_KEY}`, headers: { "idempotency-key": bad } });
      assertError(r, 400, "bad_request");
    }
    await assertNothingLeakedToNews();
  });

  test("wildcard publish claim covers chat.42; a bytes body without Content-Type is accepted", async () => {
    const token = await mint({ publish: ["news", "chat.*"] });
    const reply = await call(channelUrl("chat.42"), { body: "[1,2]", auth: `Bearer ${token}`, contentType: null });
    assert.equal(reply.status, 202, reply.text);
    const msg = await chat.next();
    assert.equal(Buffer.from(msg.data).toString("utf8"), "[1,2]");
    assert.equal(msg.header("Herald-Id"), reply.json?.id);
  });

  test("an incoming traceparent/tracestate is forwarded (tracing off)", async () => {
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const reply = await call(channelUrl("news"), {
      body: '"traced"',
      auth: `Bearer ${API_KEY}`,
      contentType: "application/json; charset=utf-8",
      headers: { traceparent, tracestate: "vendor=abc" },
    });
    assert.equal(reply.status, 202, reply.text);
    const msg = await news.next();
    assert.equal(msg.header("traceparent"), traceparent);
    assert.equal(msg.header("tracestate"), "vendor=abc");
  });

  test("API key: channel and user routes", async () => {
    const ch = await call(channelUrl("news"), { body: '{"k":1}', auth: `Bearer ${API_KEY}` });
    assert.equal(ch.status, 202, ch.text);
    assert.equal(Buffer.from((await news.next()).data).toString(), '{"k":1}');

    const user = await call(userUrl("alice"), { body: '{"dm":true}', auth: `Bearer ${API_KEY}` });
    assert.equal(user.status, 202, user.text);
    const msg = await alice.next();
    assert.equal(msg.subject, "herald.user.alice");
    assert.equal(Buffer.from(msg.data).toString(), '{"dm":true}');
    assert.equal(msg.header("Herald-Id"), user.json?.id);
  });

  test('user route with a JWT needs the literal "user:*" or "user:<sub>" publish entry', async () => {
    const channelsOnly = await mint({ publish: ["news", ">", "*"] });
    assertError(await call(userUrl("alice"), { body: "{}", auth: `Bearer ${channelsOnly}` }), 403, "forbidden");

    const onlyAlice = await mint({ publish: ["user:alice"] });
    const ok = await call(userUrl("alice"), { body: '{"to":"alice"}', auth: `Bearer ${onlyAlice}` });
    assert.equal(ok.status, 202, ok.text);
    assert.equal(Buffer.from((await alice.next()).data).toString(), '{"to":"alice"}');
    assertError(await call(userUrl("bob"), { body: "{}", auth: `Bearer ${onlyAlice}` }), 403, "forbidden");

    const anyUser = await mint({ publish: ["user:*"] });
    const toBob = await call(userUrl("bob"), { body: '{"to":"bob"}', auth: `Bearer ${anyUser}` });
    assert.equal(toBob.status, 202, toBob.text);
    assert.equal(Buffer.from((await bob.next()).data).toString(), '{"to":"bob"}');
    // "user:*" grants users, not channels.
    assertError(await call(channelUrl("news"), { body: "{}", auth: `Bearer ${anyUser}` }), 403, "forbidden");
    assert.equal(alice.pending + bob.pending, 0);
  });

  test("400: bad JSON, empty body, invalid channels, bad user id", async () => {
    const auth = `Bearer ${API_KEY}`;
    assertError(await call(channelUrl("news"), { body: "{not json", auth }), 400, "bad_request");
    assertError(await call(channelUrl("news"), { body: "", auth }), 400, "bad_request");
    assertError(await call(channelUrl("news..eu"), { body: "{}", auth }), 400, "invalid_channel");
    assertError(await call(channelUrl("news.%2A"), { body: "{}", auth }), 400, "invalid_channel");
    assertError(await call(channelUrl("news.%3E"), { body: "{}", auth }), 400, "invalid_channel");
    assertError(await call(channelUrl("a%20b"), { body: "{}", auth }), 400, "invalid_channel");
    assertError(await call(userUrl("x".repeat(257)), { body: "{}", auth }), 400, "bad_request");
    await assertNothingLeakedToNews();
  });

  test("401: missing, malformed, wrong, expired and foreign credentials", async () => {
    const url = channelUrl("news");
    const missing = await call(url, { body: "{}" });
    assertError(missing, 401, "unauthorized");
    assert.match(missing.headers.get("www-authenticate") ?? "", /^Bearer\b/);

    const expired = await mint({ publish: ["news"], exp: Math.floor(Date.now() / 1000) - 120 });
    const foreign = await mint({ publish: ["news"] }, OTHER_SECRET);
    for (const auth of [`Basic ${Buffer.from("a:b").toString("base64")}`, "Bearer", `Bearer ${API_KEY}x`, `Bearer ${expired}`, `Bearer ${foreign}`, "Bearer not.a.jwt"]) {
      const reply = await call(url, { body: "{}", auth });
      assertError(reply, 401, "unauthorized");
      assert.match(reply.headers.get("www-authenticate") ?? "", /^Bearer\b/);
    }
    await assertNothingLeakedToNews();
  });

  test("401 answers name the reason (error.reason, RFC 6750 error_description), never the credential", async () => {
    const url = channelUrl("news");
    assertRefused(await call(url, { body: "{}" }), "missing");
    assertRefused(await call(url, { body: "{}", auth: "Basic YTpi" }), "missing");
    assertRefused(await call(url, { body: "{}", auth: "Bearer" }), "missing");
    const cases: Array<[string, string]> = [
      [`${API_KEY}x`, "malformed"],
      ["not.a.jwt", "malformed"],
      [await mint({ publish: ["news"] }, OTHER_SECRET), "bad_signature"],
      [await mint({ publish: ["news"], exp: Math.floor(Date.now() / 1000) - 120 }), "expired"],
      [await mint({ publish: "news" }), "invalid_claim"],
    ];
    for (const [credential, reason] of cases) {
      secrets.push(credential);
      assertRefused(await call(url, { body: "{}", auth: `Bearer ${credential}` }), reason, credential);
    }
    await assertNothingLeakedToNews();
  });

  test("401 invalid_claim: publish patterns NATS would refuse; user: grants are checked, and keep working", async () => {
    for (const publish of [["news", "chat.>.x"], ["a*"], ["news", ""], ["user:"], ["news..eu"], [">.news"]]) {
      const token = await mint({ publish });
      const reply = await call(channelUrl("news"), { body: "{}", auth: `Bearer ${token}` });
      assertRefused(reply, "invalid_claim", token);
      assert.match(reply.json?.error?.message ?? "", /^token claim 'publish' has an (invalid pattern|empty pattern|invalid user grant)/);
    }
    const mixed = await mint({ publish: ["chat.*", "user:alice", "user:auth0|42"] });
    const toChat = await call(channelUrl("chat.42"), { body: '{"mixed":1}', auth: `Bearer ${mixed}` });
    assert.equal(toChat.status, 202, toChat.text);
    assert.equal(Buffer.from((await chat.next()).data).toString(), '{"mixed":1}');
    const toAlice = await call(userUrl("alice"), { body: '{"mixed":2}', auth: `Bearer ${mixed}` });
    assert.equal(toAlice.status, 202, toAlice.text);
    assert.equal(Buffer.from((await alice.next()).data).toString(), '{"mixed":2}');
    assertError(await call(userUrl("bob"), { body: "{}", auth: `Bearer ${mixed}` }), 403, "forbidden");
    await assertNothingLeakedToNews();
  });

  test("403: token whose publish claim does not cover the channel", async () => {
    const token = await mint({ publish: ["news", "chat.*"] });
    assertError(await call(channelUrl("sports"), { body: "{}", auth: `Bearer ${token}` }), 403, "forbidden");
    assertError(await call(channelUrl("chat.42.deep"), { body: "{}", auth: `Bearer ${token}` }), 403, "forbidden");
    const noClaim = await mint({});
    assertError(await call(channelUrl("news"), { body: "{}", auth: `Bearer ${noClaim}` }), 403, "forbidden");
  });

  test("404 unknown route, 405 wrong method with Allow", async () => {
    assertError(await call(`${pub.url}/v1/nothing`, { body: "{}", auth: `Bearer ${API_KEY}` }), 404, "not_found");
    assertError(await call(`${pub.url}/`, { method: "GET" }), 404, "not_found");
    const get = await call(channelUrl("news"), { method: "GET", auth: `Bearer ${API_KEY}` });
    assertError(get, 405, "method_not_allowed");
    assert.equal(get.headers.get("allow"), "POST");
    const postHealth = await call(`${pub.url}/healthz`, { body: "{}" });
    assertError(postHealth, 405, "method_not_allowed");
    assert.match(postHealth.headers.get("allow") ?? "", /GET/);
  });

  test("413: too large by Content-Length and by streamed bytes, answered without reading the rest", async () => {
    const headers = { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" };
    const declared = await postHeldOpen(
      pub.port,
      "/v1/channels/news/messages",
      { ...headers, "content-length": String(MAX_BODY * 100) },
      [Buffer.alloc(100, 0x20)],
    );
    assert.equal(declared.status, 413, declared.body);
    assert.equal(JSON.parse(declared.body).error.code, "too_large");

    // Chunked: 16 chunks of 256 bytes, the upload never ends.
    const streamed = await postHeldOpen(
      pub.port,
      "/v1/channels/news/messages",
      { ...headers, "transfer-encoding": "chunked" },
      Array.from({ length: 16 }, () => Buffer.alloc(256, 0x20)),
    );
    assert.equal(streamed.status, 413, streamed.body);
    assert.equal(JSON.parse(streamed.body).error.code, "too_large");

    // Exactly at the limit is fine.
    const atLimit = JSON.stringify("a".repeat(MAX_BODY - 2));
    assert.equal(Buffer.byteLength(atLimit), MAX_BODY);
    const ok = await call(channelUrl("news"), { body: atLimit, auth: `Bearer ${API_KEY}` });
    assert.equal(ok.status, 202, ok.text);
    assert.equal((await news.next()).data.length, MAX_BODY);
  });

  test("415: other content types", async () => {
    const auth = `Bearer ${API_KEY}`;
    assertError(await call(channelUrl("news"), { body: "{}", auth, contentType: "text/plain" }), 415, "unsupported_media_type");
    assertError(
      await call(channelUrl("news"), { body: "a=1", auth, contentType: "application/x-www-form-urlencoded" }),
      415,
      "unsupported_media_type",
    );
    await assertNothingLeakedToNews();
  });

  test("metrics count requests by route and status, and messages", async () => {
    const text = await (await fetch(`${pub.url}/metrics`)).text();
    assert.match(text, /^herald_publisher_requests_total\{route="channel",status="202"\} [1-9]\d*$/m);
    assert.match(text, /^herald_publisher_requests_total\{route="user",status="403"\} [1-9]\d*$/m);
    assert.match(text, /^herald_publisher_requests_total\{route="other",status="404"\} [1-9]\d*$/m);
    assert.match(text, /^herald_publisher_messages_total [1-9]\d*$/m);
    assert.match(text, /^herald_publisher_request_duration_seconds_count\{route="channel"\} [1-9]\d*$/m);
    assert.doesNotMatch(text, /route="healthz"|news|alice/, "no per-channel/user labels");
  });

  test("logs are JSON lines, carry route/status/sub and never a credential", () => {
    const entries = logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(entries.some((e) => e["route"] === "channel" && e["status"] === 202 && e["sub"] === "user-1"));
    const all = logs.lines.join("\n");
    for (const secret of secrets) assert.ok(!all.includes(secret), "credential in logs");
    assert.ok(!all.includes(SECRET));
  });

  test("503 with Retry-After when the broker is gone; /readyz turns 503, /healthz stays 200", async () => {
    await broker.close();
    await assertUnavailableWithoutBroker(pub.url, channelUrl("news"), API_KEY);
  });
});

describe("publisher with an API key only, METRICS_PORT (in-process)", () => {
  let pub: InProcessPublisher;
  let metricsPort: number;

  before(async () => {
    pub = await startPublisherInProcess({ PUBLISHER_API_KEY: API_KEY, METRICS_PORT: String(await freePort()) });
    metricsPort = pub.metricsPort ?? assert.fail("metricsPort of the listen result");
  });

  after(() => pub?.close());

  test("ops endpoints on both ports; the API only on the main port", async () => {
    const m = `http://127.0.0.1:${metricsPort}`;
    for (const base of [pub.url, m]) {
      assert.equal(await httpStatus(`${base}/healthz`), 200);
      assert.equal(await httpStatus(`${base}/readyz`), 200);
      assert.match(await (await fetch(`${base}/metrics`)).text(), /herald_publisher_messages_total/);
    }
    assertError(await call(`${m}/v1/channels/news/messages`, { body: "{}", auth: `Bearer ${API_KEY}` }), 404, "not_found");
    const ok = await call(`${pub.url}/v1/channels/news/messages`, { body: "{}", auth: `Bearer ${API_KEY}` });
    assert.equal(ok.status, 202, ok.text);
  });

  test("JWTs are refused when no JWT_* setting exists", async () => {
    const token = await mint({ publish: ["news"] });
    assertRefused(await call(`${pub.url}/v1/channels/news/messages`, { body: "{}", auth: `Bearer ${token}` }), "invalid_api_key", token);
  });
});
