/**
 * GET /sse (issue 13, first steps) against real gateway processes on real
 * NATS with JetStream history: 401 before any event, the welcome and
 * subscribe answers as events, channel messages with resume ids, keepalive
 * comments, resume with Last-Event-ID on another gateway (Node fetch and the
 * real `curl -N`), a malformed id, and the 4001 expiry as a final event.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { spawnChild } from "./helpers/children.js";
import { hsToken } from "./helpers/tokens.js";
import { TestStack } from "./helpers/stack.js";
import { SseReader, type SseEvent } from "./helpers/sse.js";
import type { NatsServer } from "./helpers/nats.js";
import { connect as tcpConnect } from "node:net";
import { scrape } from "./helpers/metrics.js";

const API_KEY = "sse-test-api-key-0123456789abcdef";
const isMessage = (channel: string) => (e: SseEvent) => e.frame?.type === "message" && e.frame.channel === channel;

async function publish(publisher: ServiceProcess, channel: string, body: unknown): Promise<void> {
  const res = await fetch(`${publisher.url}/v1/channels/${channel}/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 202, await res.text());
}

async function open(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
  const r = await SseReader.open(url, headers);
  if (!(r instanceof SseReader)) throw new Error(`GET ${url}: ${r.status} ${r.body}`);
  return r;
}

describe("SSE", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  let nats: NatsServer;
  let gw1: ServiceProcess;
  let gw2: ServiceProcess;
  let publisher: ServiceProcess;
  const stack = new TestStack();
  const readers: SseReader[] = [];
  let token: string;

  before(async () => {
    nats = await stack.nats({ jetstream: true });
    const common = { HISTORY_MAX_PER_CHANNEL: "100", HISTORY_STREAM: "SSE_TEST" };
    [gw1, gw2, publisher] = await Promise.all([
      stack.gateway(nats, { ...common, SSE_KEEPALIVE_MS: "300", JWT_CLOCK_TOLERANCE_SECONDS: "0" }),
      stack.gateway(nats, common),
      stack.publisher(nats, { ...common, PUBLISHER_API_KEY: API_KEY }),
    ]);
    token = await hsToken({ sub: "reader", channels: ["news", "sport"] });
  });
  after(async () => {
    for (const r of readers) r.close();
    await stack.close();
  });

  test("no token: 401 JSON before any event; a bad token too", async () => {
    const none = await SseReader.open(`${gw1.url}/sse?channel=news`);
    assert.ok(!(none instanceof SseReader));
    assert.equal(none.status, 401);
    assert.match(none.headers.get("content-type") ?? "", /application\/json/);
    assert.equal((JSON.parse(none.body) as { error: { code: string } }).error.code, "missing_token");
    const bad = await SseReader.open(`${gw1.url}/sse?channel=news&access_token=not.a.jwt`);
    assert.ok(!(bad instanceof SseReader));
    assert.equal(bad.status, 401);
    const many = Array.from({ length: 33 }, (_, i) => `channel=news${i}`).join("&");
    const tooMany = await SseReader.open(`${gw1.url}/sse?${many}&access_token=${token}`);
    assert.ok(!(tooMany instanceof SseReader));
    assert.equal(tooMany.status, 400);
  });

  test("welcome first, subscribed answers, messages with ids, keepalive comments", async () => {
    const r = await open(`${gw1.url}/sse?channel=news&channel=sport&access_token=${token}`);
    readers.push(r);
    assert.equal(r.headers.get("content-type"), "text/event-stream");
    assert.equal(r.headers.get("cache-control"), "no-cache");
    assert.equal(r.headers.get("x-accel-buffering"), "no");
    await r.next((e) => e.frame?.type === "subscribed" && e.frame.channel === "sport");
    const first = r.events.find((e) => e.frame);
    assert.equal(first?.frame?.type, "welcome");
    await publish(publisher, "news", { n: 1 });
    const msg = await r.next(isMessage("news"));
    assert.deepEqual(msg.frame?.data, { n: 1 });
    assert.ok(msg.id && msg.id.startsWith("1."), `resume id: ${msg.id}`);
    await r.next((e) => e.comments.includes("keepalive"));
    assert.ok(((await scrape(gw1.url)).get("herald_sse_connections") ?? 0) >= 1);
  });

  test("a channel the token may not read is refused as an error event, the others still flow", async () => {
    const r = await open(`${gw1.url}/sse?channel=secret&channel=news&access_token=${token}`);
    readers.push(r);
    const refused = await r.next((e) => e.frame?.type === "error");
    assert.equal((refused.frame as { code?: string }).code, "forbidden");
    await r.next((e) => e.frame?.type === "subscribed" && e.frame.channel === "news");
    r.close();
  });

  test("Last-Event-ID on another gateway gets exactly the missed messages of every channel", async () => {
    const a = await open(`${gw1.url}/sse?channel=news&channel=sport&access_token=${token}`);
    readers.push(a);
    await a.next((e) => e.frame?.type === "subscribed" && e.frame.channel === "sport");
    await publish(publisher, "news", { k: "n1" });
    await publish(publisher, "sport", { k: "s1" });
    const seen = await a.next((e) => isMessage("sport")(e) && (e.frame?.data as { k: string }).k === "s1");
    a.close();
    // Missed while away: two on news, one on sport.
    await publish(publisher, "news", { k: "n2" });
    await publish(publisher, "sport", { k: "s2" });
    await publish(publisher, "news", { k: "n3" });

    const b = await open(`${gw2.url}/sse?channel=news&channel=sport&access_token=${token}`, { "last-event-id": seen.id! });
    readers.push(b);
    await b.next((e) => isMessage("news")(e) && (e.frame?.data as { k: string }).k === "n3");
    await b.next((e) => isMessage("sport")(e) && (e.frame?.data as { k: string }).k === "s2");
    const got = b.events.filter((e) => e.frame?.type === "message").map((e) => (e.frame?.data as { k: string }).k);
    assert.deepEqual(got.filter((k) => k.startsWith("n")), ["n2", "n3"]);
    assert.deepEqual(got.filter((k) => k.startsWith("s")), ["s2"]);
    for (const s of b.events.filter((e) => e.frame?.type === "subscribed")) assert.equal(s.frame?.recovered, true);

    // The real curl -N, from b's last id, to gw1: only what came after.
    const last = b.events.filter((e) => e.id).at(-1)!;
    const lines: string[] = [];
    let resolveSubscribed!: () => void;
    let resolveMessage!: () => void;
    const subscribed = new Promise<void>((r) => (resolveSubscribed = r));
    const message = new Promise<void>((r) => (resolveMessage = r));
    const curl = spawnChild("curl", "curl", ["-N", "-s", "-H", `Last-Event-ID: ${last.id}`, `${gw1.url}/sse?channel=news&channel=sport&access_token=${token}`], {
      onLine: (line) => {
        lines.push(line);
        if (line.includes('"type":"subscribed","channel":"sport"')) resolveSubscribed();
        if (line.includes('"k":"n4"')) resolveMessage();
      },
    });
    try {
      await subscribed;
      await publish(publisher, "news", { k: "n4" });
      await message;
      const data = lines.filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)) as { type: string; data?: { k: string } });
      assert.deepEqual(data.filter((f) => f.type === "message").map((f) => f.data?.k), ["n4"]);
      assert.ok(lines.some((l) => l.startsWith("id: 1.")));
    } finally {
      await curl.stop(5000);
    }
  });

  test("a malformed or oversized Last-Event-ID: a bad_request error event, then a fresh start", async () => {
    for (const id of ["garbage", "1." + "A".repeat(5000), "1." + Buffer.from('{"e":[],"p":[[1,5]]}').toString("base64url")]) {
      const r = await open(`${gw1.url}/sse?channel=news&lastEventId=${encodeURIComponent(id)}&access_token=${token}`);
      readers.push(r);
      const err = await r.next((e) => e.frame?.type === "error");
      assert.equal((err.frame as { code?: string }).code, "bad_request");
      const sub = await r.next((e) => e.frame?.type === "subscribed" && e.frame.channel === "news");
      assert.equal(typeof sub.frame?.seq, "number");
      r.close();
    }
  });

  test("an expired token ends the stream with a close event 4001", async () => {
    const short = await hsToken({ sub: "brief", channels: ["news"] }, { expiresInSeconds: 1 });
    const r = await open(`${gw1.url}/sse?channel=news&access_token=${short}`);
    readers.push(r);
    const closed = await r.next((e) => e.frame?.type === "close", 10_000);
    assert.equal(closed.frame?.code, 4001);
    await r.end();
  });

  test("a reader that stops reading is shed like a slow WebSocket: a final close event 4009", async () => {
    const gw3 = await stack.gateway(nats, { HISTORY_STREAM: "SSE_TEST", SLOW_CONSUMER_BYTES: "16384" });
    const sock = tcpConnect(gw3.port, "127.0.0.1");
    await new Promise<void>((r) => sock.once("connect", () => r()));
    let text = "";
    let paused = false;
    let resolveOpen!: () => void;
    const opened = new Promise<void>((r) => (resolveOpen = r));
    let resolveClosed!: () => void;
    const closed = new Promise<void>((r) => (resolveClosed = r));
    sock.on("data", (b: Buffer) => {
      text += b.toString("latin1");
      if (!paused && text.includes('"type":"subscribed"')) {
        paused = true;
        resolveOpen();
        // Stop reading: the kernel buffers fill, then the gateway's.
        sock.pause();
      }
      if (text.includes('"type":"close"')) resolveClosed();
    });
    sock.write(`GET /sse?channel=news&access_token=${token} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    await opened;
    const big = "x".repeat(60_000);
    let shed = false;
    for (let i = 0; i < 400 && !shed; i++) {
      await Promise.all([0, 1, 2, 3].map((j) => publish(publisher, "news", { big, i, j })));
      if (i % 10 === 9) shed = ((await scrape(gw3.url)).get("herald_sse_connections") ?? 1) === 0;
    }
    assert.ok(shed, "the stream was shed");
    sock.resume();
    await closed;
    assert.match(text, /data: \{"type":"close","code":4009,"reason":"slow consumer"\}/);
    sock.destroy();
  });

  test("Origin as for /ws; a token's subs in the welcome; drain ends the stream with a close event 1001", async () => {
    const gw4 = await stack.gateway(nats, { HISTORY_STREAM: "SSE_TEST", ALLOWED_ORIGINS: "https://ok.example", DRAIN_SECONDS: "0" });
    const subbed = await hsToken({ sub: "subbed", channels: ["news"], subs: ["news"] });
    const refused = await SseReader.open(`${gw4.url}/sse?access_token=${subbed}`, { origin: "https://evil.example" });
    assert.ok(!(refused instanceof SseReader));
    assert.equal(refused.status, 403);
    const r = await open(`${gw4.url}/sse?access_token=${subbed}`, { origin: "https://ok.example" });
    readers.push(r);
    assert.equal(r.headers.get("access-control-allow-origin"), "https://ok.example");
    const welcome = await r.next((e) => e.frame?.type === "welcome");
    const subs = welcome.frame?.subs as Array<{ channel: string; seq?: number }>;
    assert.equal(subs[0]?.channel, "news");
    assert.equal(typeof subs[0]?.seq, "number");
    await publish(publisher, "news", { k: "to-subs" });
    await r.next((e) => isMessage("news")(e) && (e.frame?.data as { k?: string }).k === "to-subs");
    gw4.kill("SIGTERM");
    const closed = await r.next((e) => e.frame?.type === "close");
    assert.equal(closed.frame?.code, 1001);
  });
});
