/**
 * POST /sse/commands (issue 13) against two real gateway processes on one
 * real NATS: frames posted to gateway B for a stream held by gateway A are
 * answered on the stream; the refusals (no token, another user's stream, an
 * unknown or closed connection, bad bodies, too large) are clear JSON
 * answers; the WebSocket's rate limit and frame size apply per frame; CORS
 * preflights for an allowed origin.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { hsToken } from "./helpers/tokens.js";
import { TestStack } from "./helpers/stack.js";
import { SseReader, type SseEvent } from "./helpers/sse.js";
import type { NatsServer } from "./helpers/nats.js";
import { scrape } from "./helpers/metrics.js";

const ORIGIN = "https://app.example.test";

async function open(url: string): Promise<SseReader> {
  const r = await SseReader.open(url);
  if (!(r instanceof SseReader)) throw new Error(`GET ${url}: ${r.status} ${r.body}`);
  return r;
}

async function post(gw: ServiceProcess, token: string | undefined, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${gw.url}/sse/commands`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text === "" ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

const code = (r: { body: Record<string, unknown> }) => (r.body["error"] as { code?: string } | undefined)?.code;
const frame = (type: string, more: (f: Record<string, unknown>) => boolean = () => true) => (e: SseEvent) => e.frame?.type === type && more(e.frame);

describe("POST /sse/commands", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  let nats: NatsServer;
  let gwA: ServiceProcess;
  let gwB: ServiceProcess;
  const stack = new TestStack();
  const readers: SseReader[] = [];
  let token: string;

  /** A stream on gateway A for `sub`, and its connection id from the welcome. */
  const stream = async (sub = "alice", query = ""): Promise<{ r: SseReader; id: string; token: string }> => {
    const t = sub === "alice" ? token : await hsToken({ sub, channels: ["room.*"], publish: ["room.*"] });
    const r = await open(`${gwA.url}/sse?access_token=${t}${query}`);
    readers.push(r);
    const welcome = await r.next(frame("welcome"));
    return { r, id: welcome.frame!["connection"] as string, token: t };
  };

  before(async () => {
    nats = await stack.nats();
    const common = { ALLOWED_ORIGINS: ORIGIN, RATE_LIMIT_PER_SECOND: "20", RATE_LIMIT_BURST: "20", MAX_PAYLOAD_BYTES: "4096" };
    [gwA, gwB] = await Promise.all([stack.gateway(nats, common), stack.gateway(nats, common)]);
    token = await hsToken({ sub: "alice", channels: ["room.*"], publish: ["room.*"] });
  });
  after(async () => {
    for (const r of readers) r.close();
    await stack.close();
  });

  test("frames posted to gateway B for a stream on gateway A are answered on the stream", async () => {
    const { r, id } = await stream();
    const res = await post(gwB, token, { connection: id, frames: [{ type: "subscribe", channel: "room.1", id: 1 }, { type: "ping", id: 3 }] });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.deepEqual(res.body, { accepted: 2 });
    await r.next(frame("subscribed", (f) => f["channel"] === "room.1" && f["id"] === 1));
    await r.next(frame("pong", (f) => f["id"] === 3));
    // A publish, once subscribed (as on a WebSocket, a subscribe is live when its answer comes).
    const pub = await post(gwB, token, { connection: id, frames: [{ type: "publish", channel: "room.1", data: { n: 1 }, id: 2 }] });
    assert.equal(pub.status, 202);
    await r.next(frame("ack", (f) => f["id"] === 2));
    const msg = await r.next(frame("message", (f) => f["channel"] === "room.1"));
    assert.deepEqual(msg.frame!["data"], { n: 1 });
    // The same gateway takes them too (no broker hop).
    const local = await post(gwA, token, { connection: id, frames: [{ type: "unsubscribe", channel: "room.1", id: 4 }] });
    assert.equal(local.status, 202);
    await r.next(frame("unsubscribed", (f) => f["id"] === 4));
    const metrics = await scrape(gwB.url);
    assert.ok((metrics.get("herald_sse_commands_total", { result: "accepted" }) ?? 0) >= 1, "accepted commands are counted");
  });

  test("a token for another user: 403; no token or a bad one: 401 before anything is done", async () => {
    const { r, id } = await stream();
    const mallory = await hsToken({ sub: "mallory", channels: ["room.*"], publish: ["room.*"] });
    for (const gw of [gwA, gwB]) {
      const other = await post(gw, mallory, { connection: id, frames: [{ type: "subscribe", channel: "room.2" }] });
      assert.equal(other.status, 403, JSON.stringify(other.body));
      assert.equal(code(other), "forbidden");
    }
    const none = await post(gwB, undefined, { connection: id, frames: [{ type: "ping" }] });
    assert.equal(none.status, 401);
    assert.equal(code(none), "missing_token");
    const bad = await post(gwB, "not.a.jwt", { connection: id, frames: [{ type: "ping" }] });
    assert.equal(bad.status, 401);
    const expired = await hsToken({ sub: "alice", exp: Math.floor(Date.now() / 1000) - 3600 });
    assert.equal((await post(gwB, expired, { connection: id, frames: [{ type: "ping" }] })).status, 401);
    // Nothing reached the stream: the next answer there is to our own ping.
    await post(gwB, token, { connection: id, frames: [{ type: "ping", id: 9 }] });
    await r.next(frame("pong", (f) => f["id"] === 9));
    assert.equal(r.events.filter((e) => e.frame?.type === "subscribed").length, 0);
  });

  test("an unknown or closed connection: 404 JSON, on the holder's gateway and on another", async () => {
    const { r, id } = await stream();
    const unknownHere = `${id.slice(0, 8)}AAAAAAAAAAAAAAAA`;
    const unknownRoute = "ZZZZZZZZAAAAAAAAAAAAAAAA";
    for (const [gw, conn] of [[gwA, unknownHere], [gwB, unknownHere], [gwB, unknownRoute]] as const) {
      const res = await post(gw, token, { connection: conn, frames: [{ type: "ping" }] });
      assert.equal(res.status, 404, `${conn} on ${gw.url}: ${JSON.stringify(res.body)}`);
      assert.equal(code(res), "unknown_connection");
    }
    r.close();
    await r.end();
    // The gateway hears of the abort when the socket closes.
    for (let i = 0; i < 100; i++) {
      const res = await post(gwB, token, { connection: id, frames: [{ type: "ping" }] });
      if (res.status === 404) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.fail("a closed stream's commands are not refused with 404");
  });

  test("bad bodies: 400; too large: 413; too many frames: 400", async () => {
    const { id } = await stream();
    for (const body of ["not json", "[]", JSON.stringify({ connection: id }), JSON.stringify({ connection: id, frames: [] }), JSON.stringify({ connection: "bad id!", frames: [{ type: "ping" }] }), JSON.stringify({ connection: id, frames: ["ping"] })]) {
      const res = await post(gwB, token, body);
      assert.equal(res.status, 400, `${body}: ${JSON.stringify(res.body)}`);
      assert.equal(code(res), "bad_request");
    }
    const many = await post(gwB, token, { connection: id, frames: Array.from({ length: 101 }, () => ({ type: "ping" })) });
    assert.equal(many.status, 400);
    const huge = await post(gwB, token, { connection: id, frames: [{ type: "publish", channel: "room.1", data: "x".repeat(200_000) }] });
    assert.equal(huge.status, 413);
    assert.equal(code(huge), "too_large");
  });

  test("per frame as on a WebSocket: a frame over MAX_PAYLOAD_BYTES closes the stream 1009; the rate limit answers rate_limited", async () => {
    const big = await stream();
    const res = await post(gwB, token, { connection: big.id, frames: [{ type: "publish", channel: "room.1", data: "x".repeat(5000) }] });
    assert.equal(res.status, 202);
    const close = await big.r.next(frame("close"));
    assert.equal(close.frame!["code"], 1009);
    await big.r.end();

    const fast = await stream("bob");
    const frames = Array.from({ length: 30 }, (_, i) => ({ type: "ping", id: 100 + i }));
    assert.equal((await post(gwB, fast.token, { connection: fast.id, frames })).status, 202);
    const limited = await fast.r.next(frame("error", (f) => f["code"] === "rate_limited"));
    assert.ok(typeof limited.frame!["id"] === "number", "the refused frame's id comes back");
  });

  test("CORS: an allowed origin's preflight and POST carry the headers; another origin is refused", async () => {
    const pre = await fetch(`${gwB.url}/sse/commands`, {
      method: "OPTIONS",
      headers: { origin: ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), ORIGIN);
    assert.match(pre.headers.get("access-control-allow-headers") ?? "", /Authorization/);
    const preSse = await fetch(`${gwB.url}/sse`, { method: "OPTIONS", headers: { origin: ORIGIN, "access-control-request-method": "GET" } });
    assert.equal(preSse.status, 204);
    const { id } = await stream();
    const ok = await post(gwB, token, { connection: id, frames: [{ type: "ping" }] }, { origin: ORIGIN });
    assert.equal(ok.status, 202);
    const evil = await post(gwB, token, { connection: id, frames: [{ type: "ping" }] }, { origin: "https://evil.example" });
    assert.equal(evil.status, 403);
    assert.equal(code(evil), "forbidden_origin");
    const preEvil = await fetch(`${gwB.url}/sse/commands`, { method: "OPTIONS", headers: { origin: "https://evil.example" } });
    assert.equal(preEvil.status, 403);
  });
});
