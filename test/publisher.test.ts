/**
 * The publisher as a real process (`node services/publisher/dist/main.js`)
 * against a real NATS: NATS_URL when set, otherwise a spawned nats-server.
 *
 * Covers the HTTP contract (202/400/401/403/404/405/413/415/503), the NATS
 * message (exact body bytes plus Herald-Id, Herald-Published-At and
 * traceparent headers), the user-route authorization rule, metrics, logs
 * free of credentials, graceful SIGTERM and config errors (exit 2).
 *
 * Self-contained on purpose (its own small process/port/wait helpers), so it
 * does not depend on test/helpers. Every wait is an event or bounded polling.
 *
 * Run: npm run build && node --import tsx --test test/publisher.test.ts
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { request, type IncomingHttpHeaders } from "node:http";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { SignJWT } from "jose";
import { connect, type Msg, type NatsConnection } from "nats";
import { freePort } from "./helpers/ports.js";
import { waitFor, withTimeout } from "./helpers/wait.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PUBLISHER_MAIN = path.join(REPO, "services/publisher/dist/main.js");
const SECRET = "publisher-test-secret-" + "x".repeat(32); // HS256 needs >= 32 bytes
const OTHER_SECRET = "some-other-secret-" + "y".repeat(32);
const API_KEY = "publisher-test-api-key-" + Math.random().toString(36).slice(2);
const MAX_BODY = 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

const skip = existsSync(PUBLISHER_MAIN) ? undefined : "services/publisher/dist/main.js is missing (run npm run build)";

// ---- minimal helpers ----------------------------------------------------------


interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A spawned child process with its output and an exit promise. */
class Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  stdout = "";
  stderr = "";

  constructor(cmd: string, args: string[], env: Record<string, string>) {
    this.child = spawn(cmd, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout?.on("data", (b: Buffer) => (this.stdout += b.toString("utf8")));
    this.child.stderr?.on("data", (b: Buffer) => (this.stderr += b.toString("utf8")));
    this.exited = new Promise((resolve) => this.child.once("exit", (code, signal) => resolve({ code, signal })));
    this.child.once("error", () => {}); // surfaced through `alive` / exited
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends `signal` and waits for the exit; SIGKILL when it takes longer than `graceMs`. */
  async stop(signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): Promise<Exit> {
    if (this.alive) this.child.kill(signal);
    try {
      return await withTimeout(this.exited, graceMs, `exit after ${signal}`);
    } catch (err) {
      if (this.alive) this.child.kill("SIGKILL");
      await withTimeout(this.exited, 5000, "exit after SIGKILL");
      throw err;
    }
  }
}

async function httpStatus(url: string): Promise<number | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return undefined;
  }
}

interface Nats {
  url: string;
  proc?: Proc;
}

/** NATS_URL when set, otherwise a nats-server on free loopback ports (ready when /varz answers). */
async function startNats(): Promise<Nats> {
  const external = process.env["NATS_URL"];
  if (external) return { url: external };
  const [port, monitor] = [await freePort(), await freePort()];
  const proc = new Proc("nats-server", ["-a", "127.0.0.1", "-p", String(port), "-m", String(monitor)], {
    PATH: `${process.env["PATH"] ?? ""}:/usr/sbin:/usr/local/bin`,
  });
  try {
    await waitFor(async () => {
      if (!proc.alive) throw new Error(`nats-server exited: ${proc.stderr.slice(-500)}`);
      return (await httpStatus(`http://127.0.0.1:${monitor}/varz`)) === 200;
    }, { message: "nats-server /varz" });
  } catch (err) {
    await proc.stop("SIGKILL").catch(() => {});
    throw err;
  }
  return { url: `nats://127.0.0.1:${port}`, proc };
}

interface Publisher {
  url: string;
  port: number;
  proc: Proc;
}

async function startPublisher(env: Record<string, string>, waitPath: "readyz" | "healthz" = "readyz"): Promise<Publisher> {
  const port = await freePort();
  const proc = new Proc(process.execPath, [PUBLISHER_MAIN], {
    PATH: process.env["PATH"] ?? "",
    PUBLISHER_HOST: "127.0.0.1",
    PUBLISHER_PORT: String(port),
    LOG_LEVEL: "info",
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => {
      if (!proc.alive) throw new Error(`publisher exited: ${proc.stderr.slice(-500)}`);
      return (await httpStatus(`${url}/${waitPath}`)) === 200;
    }, { message: `publisher /${waitPath}` });
  } catch (err) {
    await proc.stop("SIGKILL").catch(() => {});
    throw new Error(`${(err as Error).message}\n--- publisher output ---\n${proc.stdout.slice(-2000)}${proc.stderr.slice(-2000)}`);
  }
  return { url, port, proc };
}

/** Messages of one NATS subscription, taken in order with a bounded wait. */
class Inbox {
  private readonly queue: Msg[] = [];
  private waiter: ((m: Msg) => void) | undefined;

  constructor(nc: NatsConnection, subject: string) {
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        if (this.waiter) {
          const w = this.waiter;
          this.waiter = undefined;
          w(msg);
        } else this.queue.push(msg);
      },
    });
  }

  next(timeoutMs = 5000): Promise<Msg> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return withTimeout(new Promise<Msg>((resolve) => (this.waiter = resolve)), timeoutMs, "a NATS message").finally(
      () => (this.waiter = undefined),
    );
  }

  get pending(): number {
    return this.queue.length;
  }
}

async function mint(claims: { sub?: string; publish?: unknown; exp?: number }, secret = SECRET): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: "user-1", exp: now + 600, ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt()
    .sign(new TextEncoder().encode(secret));
}

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: { id?: string; error?: { code?: string; reason?: string; message?: string }; status?: string } | undefined;
}

async function call(
  url: string,
  init: { method?: string; body?: string | Uint8Array; auth?: string; contentType?: string | null; headers?: Record<string, string> },
): Promise<Reply> {
  const headers: Record<string, string> = { ...init.headers };
  if (init.auth !== undefined) headers["authorization"] = init.auth;
  // A string body would get `text/plain` from fetch; null means "send no Content-Type" (bytes body).
  if (init.contentType !== null) headers["content-type"] = init.contentType ?? "application/json";
  const body = init.contentType === null && typeof init.body === "string" ? new TextEncoder().encode(init.body) : init.body;
  const res = await fetch(url, { method: init.method ?? "POST", headers, body, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  let json: Reply["json"];
  try {
    json = JSON.parse(text) as Reply["json"];
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/**
 * A 401 with `error.reason`, the RFC 6750 challenge (realm only without a
 * credential, else error="invalid_token" and the message as error_description)
 * and no trace of the credential in the answer.
 */
function assertRefused(reply: Reply, reason: string, credential?: string): void {
  assertError(reply, 401, "unauthorized");
  assert.equal(reply.json?.error?.reason, reason, reply.text);
  const challenge = reply.headers.get("www-authenticate") ?? "";
  if (reason === "missing") assert.equal(challenge, 'Bearer realm="herald"');
  else assert.equal(challenge, `Bearer realm="herald", error="invalid_token", error_description="${reply.json?.error?.message}"`);
  assert.match(challenge, /^[\x20-\x7e]+$/);
  if (credential !== undefined) {
    const answer = `${JSON.stringify([...reply.headers])}\n${reply.text}`;
    for (const part of [credential, ...credential.split(".")]) {
      if (part.length >= 8) assert.ok(!answer.includes(part), "the answer contains the credential");
    }
  }
}

function assertError(reply: Reply, status: number, code: string): void {
  assert.equal(reply.status, status, `expected ${status} ${code}, got ${reply.status} ${reply.text}`);
  assert.equal(reply.json?.error?.code, code, reply.text);
  assert.equal(typeof reply.json?.error?.message, "string");
}

/**
 * POSTs with node:http so the upload can be held open: writes `chunks` one by
 * one and never ends the request, so an answer proves the server stopped
 * reading early instead of waiting for the whole body.
 */
function postHeldOpen(
  port: number,
  path: string,
  headers: Record<string, string>,
  chunks: Buffer[],
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return withTimeout(
    new Promise((resolve, reject) => {
      let answered = false;
      const req = request({ host: "127.0.0.1", port, path, method: "POST", headers }, (res) => {
        answered = true;
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
          req.destroy();
        });
        res.on("error", reject);
      });
      req.on("error", (err) => {
        if (!answered) reject(err);
      });
      const writeNext = (i: number): void => {
        const chunk = chunks[i];
        if (answered || chunk === undefined) return; // deliberately no req.end()
        req.write(chunk, () => writeNext(i + 1));
      };
      req.flushHeaders();
      writeNext(0);
    }),
    5000,
    "an answer to the held-open upload",
  );
}

// ---- tests ----------------------------------------------------------------------

describe("publisher (real process, real NATS)", { skip }, () => {
  let nats: Nats;
  let pub: Publisher;
  let nc: NatsConnection | undefined;
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
    nats = await startNats();
    pub = await startPublisher({
      NATS_URL: nats.url,
      JWT_SECRET: SECRET,
      PUBLISHER_API_KEY: API_KEY,
      MAX_BODY_BYTES: String(MAX_BODY),
      DRAIN_SECONDS: "2",
    });
    nc = await connect({ servers: nats.url, name: "publisher-test" });
    news = new Inbox(nc, "herald.ch.news");
    chat = new Inbox(nc, "herald.ch.chat.42");
    alice = new Inbox(nc, "herald.user.alice");
    bob = new Inbox(nc, "herald.user.bob");
    await nc.flush();
  });

  after(async () => {
    await nc?.close().catch(() => {});
    if (pub?.proc.alive) await pub.proc.stop("SIGKILL").catch(() => {});
    if (nats?.proc?.alive) await nats.proc.stop("SIGKILL").catch(() => {});
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

  test("POST with a JWT: 202 {id}, NATS gets the exact body bytes and the three headers", async () => {
    const token = await mint({ publish: ["news", "chat.*"] });
    secrets.push(token);
    const body = ' {"hello" : "wörld", "n": [1, 2, 3]}\n'; // odd spacing: must arrive byte for byte
    const before = Date.now();
    const reply = await call(channelUrl("news"), { body, auth: `Bearer ${token}` });
    const afterPost = Date.now();
    assert.equal(reply.status, 202, reply.text);
    const id = reply.json?.id;
    assert.ok(id && UUID.test(id), `id should be a UUID: ${reply.text}`);

    const msg = await news.next();
    assert.equal(msg.subject, "herald.ch.news");
    assert.deepEqual(Buffer.from(msg.data), Buffer.from(body, "utf8"));
    assert.equal(msg.headers?.get("Herald-Id"), id);
    const publishedAt = Number(msg.headers?.get("Herald-Published-At"));
    assert.ok(Number.isInteger(publishedAt) && publishedAt >= before && publishedAt <= afterPost, `Herald-Published-At ${publishedAt}`);
    assert.match(msg.headers?.get("traceparent") ?? "", TRACEPARENT);
  });

  test("Idempotency-Key becomes the message id (Herald-Id); a malformed key is 400", async () => {
    const key = `order-42:${Date.now()}`;
    const reply = await call(channelUrl("news"), { body: '{"once":true}', auth: `Bearer ${API_KEY}`, headers: { "idempotency-key": key } });
    assert.equal(reply.status, 202, reply.text);
    assert.equal(reply.json?.id, key);
    assert.equal((await news.next()).headers?.get("Herald-Id"), key);
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
    assert.equal(msg.headers?.get("Herald-Id"), reply.json?.id);
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
    assert.equal(msg.headers?.get("traceparent"), traceparent);
    assert.equal(msg.headers?.get("tracestate"), "vendor=abc");
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
    assert.equal(msg.headers?.get("Herald-Id"), user.json?.id);
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
    const lines = pub.proc.stdout.split("\n").filter(Boolean);
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(entries.some((e) => e["route"] === "channel" && e["status"] === 202 && e["sub"] === "user-1"));
    for (const secret of secrets) assert.ok(!pub.proc.stdout.includes(secret) && !pub.proc.stderr.includes(secret), "credential in logs");
    assert.ok(!pub.proc.stdout.includes(SECRET));
  });

  test("503 with Retry-After when NATS is down; /readyz turns 503", async (t) => {
    if (!nats.proc) {
      t.skip("NATS_URL points at an external server that this test cannot stop");
      return;
    }
    await nc?.close();
    nc = undefined;
    await nats.proc.stop("SIGTERM");
    await waitFor(async () => (await httpStatus(`${pub.url}/readyz`)) === 503, { message: "/readyz = 503 after NATS stopped" });
    const readyz = await call(`${pub.url}/readyz`, { method: "GET" });
    assert.equal(readyz.status, 503);
    const reply = await call(channelUrl("news"), { body: "{}", auth: `Bearer ${API_KEY}` });
    assertError(reply, 503, "unavailable");
    assert.equal(reply.headers.get("retry-after"), "1");
    assert.equal((await call(`${pub.url}/healthz`, { method: "GET" })).status, 200, "still alive");
    assert.match(await (await fetch(`${pub.url}/metrics`)).text(), /^herald_broker_connected 0$/m);
  });

  test("SIGTERM: graceful exit 0", async () => {
    const exit = await pub.proc.stop("SIGTERM", 15_000);
    assert.deepEqual(exit, { code: 0, signal: null }, pub.proc.stderr);
  });
});

// The standalone publisher always needs NATS (a memory broker in its own
// process would reach no gateway); the memory broker is covered by the
// all-in-one tests (test/newcomer-start.test.ts).
describe("publisher with an API key only, METRICS_PORT", { skip }, () => {
  let nats: Nats;
  let pub: Publisher;
  let metricsPort: number;

  before(async () => {
    nats = await startNats();
    metricsPort = await freePort();
    pub = await startPublisher({ NATS_URL: nats.url, PUBLISHER_API_KEY: API_KEY, METRICS_PORT: String(metricsPort) });
  });

  after(async () => {
    if (pub?.proc.alive) await pub.proc.stop("SIGKILL").catch(() => {});
    await nats?.proc?.stop().catch(() => {});
  });

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

describe("publisher configuration errors", { skip }, () => {
  async function runWith(env: Record<string, string>): Promise<{ exit: Exit; stderr: string }> {
    const proc = new Proc(process.execPath, [PUBLISHER_MAIN], { PATH: process.env["PATH"] ?? "", PUBLISHER_PORT: "0", ...env });
    try {
      const exit = await withTimeout(proc.exited, 10_000, "publisher exit on a config error");
      return { exit, stderr: proc.stderr };
    } finally {
      if (proc.alive) await proc.stop("SIGKILL").catch(() => {});
    }
  }

  test("no auth configured: exit 2 naming PUBLISHER_API_KEY", async () => {
    const { exit, stderr } = await runWith({});
    assert.equal(exit.code, 2);
    assert.match(stderr, /^config error: PUBLISHER_API_KEY: /);
  });

  test("no NATS_URL: exit 2 naming NATS_URL, saying only npm start runs without a broker", async () => {
    const { exit, stderr } = await runWith({ PUBLISHER_API_KEY: API_KEY });
    assert.equal(exit.code, 2, stderr);
    assert.match(stderr, /^config error: NATS_URL: not set: the publisher needs NATS/);
    assert.match(stderr, /npm start/);
    assert.equal(stderr.trim().split("\n").length, 1, `one line, no stack trace: ${stderr}`);
  });

  test("short API key, bad port, bad prefix: exit 2 naming the variable (and never the key)", async () => {
    const short = await runWith({ PUBLISHER_API_KEY: "too-short" });
    assert.equal(short.exit.code, 2);
    assert.match(short.stderr, /^config error: PUBLISHER_API_KEY: /);
    assert.ok(!short.stderr.includes("too-short"));

    const port = await runWith({ PUBLISHER_API_KEY: API_KEY, PUBLISHER_PORT: "80a" });
    assert.match(port.stderr, /^config error: PUBLISHER_PORT: /);
    const prefix = await runWith({ PUBLISHER_API_KEY: API_KEY, SUBJECT_PREFIX: "a.*" });
    assert.match(prefix.stderr, /^config error: SUBJECT_PREFIX: /);
    const body = await runWith({ PUBLISHER_API_KEY: API_KEY, MAX_BODY_BYTES: "0" });
    assert.match(body.stderr, /^config error: MAX_BODY_BYTES: /);
    const jwt = await runWith({ JWT_SECRET: "short" });
    assert.match(jwt.stderr, /^config error: JWT_SECRET: /);
  });
});
