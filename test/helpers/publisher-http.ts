/**
 * HTTP helpers of the publisher tests (test/publisher-*.test.ts): token
 * minting, requests with a parsed answer, the error and 401-challenge
 * assertions, an upload held open, and a queue of published messages (from
 * the memory broker in-process, or from NATS against a process).
 */
import assert from "node:assert/strict";
import { request, type IncomingHttpHeaders } from "node:http";
import type { Broker } from "@herald/broker";
import { SignJWT } from "jose";
import type { NatsConnection } from "nats";
import { httpStatus } from "./http.js";
import { waitFor, withTimeout } from "./wait.js";

export const SECRET = "publisher-test-secret-" + "x".repeat(32); // HS256 needs >= 32 bytes
export const OTHER_SECRET = "some-other-secret-" + "y".repeat(32);
export const API_KEY = "publisher-test-api-key-" + Math.random().toString(36).slice(2);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** A published message, from either source. */
export interface Published {
  subject: string;
  data: Uint8Array;
  header(name: string): string | undefined;
}

/** Messages of one subject, taken in order with a bounded wait. */
export class Inbox {
  private readonly queue: Published[] = [];
  private waiter: ((m: Published) => void) | undefined;

  /** From the broker the publisher was built with. */
  static broker(broker: Broker, subject: string): Inbox {
    const inbox = new Inbox();
    broker.subscribe(subject, (m) => inbox.push(m));
    return inbox;
  }

  /** From NATS (call nc.flush() before publishing). */
  static nats(nc: NatsConnection, subject: string): Inbox {
    const inbox = new Inbox();
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (!err) inbox.push({ subject: msg.subject, data: msg.data, header: (name) => msg.headers?.get(name) || undefined });
      },
    });
    return inbox;
  }

  private push(m: Published): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(m);
    } else this.queue.push(m);
  }

  next(timeoutMs = 5000): Promise<Published> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return withTimeout(new Promise<Published>((resolve) => (this.waiter = resolve)), timeoutMs, "a published message").finally(
      () => (this.waiter = undefined),
    );
  }

  get pending(): number {
    return this.queue.length;
  }
}

export async function mint(claims: { sub?: string; publish?: unknown; exp?: number }, secret = SECRET): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: "user-1", exp: now + 600, ...claims })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt()
    .sign(new TextEncoder().encode(secret));
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: { id?: string; error?: { code?: string; reason?: string; message?: string }; status?: string } | undefined;
}

export async function call(
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
 * POSTs `body` (odd spacing welcome: it must arrive byte for byte) with
 * `auth` to `url` and checks the answer is 202 {id: UUID} and the next message
 * of `inbox` is on `subject` with exactly those bytes, Herald-Id = the id,
 * Herald-Published-At within the request and a traceparent.
 */
export async function assertPublishedAsIs(url: string, auth: string, body: string, inbox: Inbox, subject: string): Promise<void> {
  const before = Date.now();
  const reply = await call(url, { body, auth });
  const afterPost = Date.now();
  assert.equal(reply.status, 202, reply.text);
  const id = reply.json?.id;
  assert.ok(id && UUID.test(id), `id should be a UUID: ${reply.text}`);
  const msg = await inbox.next();
  assert.equal(msg.subject, subject);
  assert.deepEqual(Buffer.from(msg.data), Buffer.from(body, "utf8"));
  assert.equal(msg.header("Herald-Id"), id);
  const publishedAt = Number(msg.header("Herald-Published-At"));
  assert.ok(Number.isInteger(publishedAt) && publishedAt >= before && publishedAt <= afterPost, `Herald-Published-At ${publishedAt}`);
  assert.match(msg.header("traceparent") ?? "", TRACEPARENT);
}

/**
 * With the broker gone: /readyz turns 503, a publish to `channelUrl` is
 * 503 unavailable with Retry-After: 1, /healthz stays 200 and the broker
 * gauge reads 0.
 */
export async function assertUnavailableWithoutBroker(baseUrl: string, channelUrl: string, apiKey: string): Promise<void> {
  await waitFor(async () => (await httpStatus(`${baseUrl}/readyz`)) === 503, { message: "/readyz = 503 without the broker" });
  const reply = await call(channelUrl, { body: "{}", auth: `Bearer ${apiKey}` });
  assertError(reply, 503, "unavailable");
  assert.equal(reply.headers.get("retry-after"), "1");
  assert.equal((await call(`${baseUrl}/healthz`, { method: "GET" })).status, 200, "still alive");
  assert.match(await (await fetch(`${baseUrl}/metrics`)).text(), /^herald_broker_connected 0$/m);
}

/**
 * A 401 with `error.reason`, the RFC 6750 challenge (realm only without a
 * credential, else error="invalid_token" and the message as error_description)
 * and no trace of the credential in the answer.
 */
export function assertRefused(reply: Reply, reason: string, credential?: string): void {
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

export function assertError(reply: Reply, status: number, code: string): void {
  assert.equal(reply.status, status, `expected ${status} ${code}, got ${reply.status} ${reply.text}`);
  assert.equal(reply.json?.error?.code, code, reply.text);
  assert.equal(typeof reply.json?.error?.message, "string");
}

/**
 * POSTs with node:http so the upload can be held open: writes `chunks` one by
 * one and never ends the request, so an answer proves the server stopped
 * reading early instead of waiting for the whole body.
 */
export function postHeldOpen(
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
