/**
 * The herald.v1 client protocol (DESIGN.md "Client protocol" and "Channels"):
 * authorisation of subscribe/publish by token claims, channel validation,
 * malformed input, per-connection limits, oversized frames and rate limits.
 * Misbehaving clients are answered or closed; nobody else is affected and the
 * gateway keeps serving. The gateway is built in this process (buildGateway)
 * on the memory broker: none of this needs a process or NATS.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MemoryBroker, type BrokerSubscription, type MessageHandler } from "@herald/broker";
import { startGatewayInProcess, type InProcessGateway } from "./helpers/in-process.js";
import { scrape } from "./helpers/metrics.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { withTimeout } from "./helpers/wait.js";
import { closeAll, connect, type Client, type Frame } from "./helpers/ws.js";

/** The memory broker, remembering every subject the gateway subscribed to. */
class RecordingBroker extends MemoryBroker {
  readonly subscribed: string[] = [];
  override subscribe(subject: string, handler: MessageHandler): BrokerSubscription {
    this.subscribed.push(subject);
    return super.subscribe(subject, handler);
  }
}

const MAX_PAYLOAD = 4096;
const MAX_CHANNELS = 5;
const RATE = 10;
const BURST = 20;

describe("gateway client protocol (in-process, memory broker)", () => {
  const broker = new RecordingBroker();
  let gw: InProcessGateway;
  const clients: Client[] = [];

  before(async () => {
    gw = await startGatewayInProcess(
      {
        JWT_SECRET: TEST_SECRET,
        MAX_PAYLOAD_BYTES: String(MAX_PAYLOAD),
        MAX_CHANNELS_PER_CONNECTION: String(MAX_CHANNELS),
        RATE_LIMIT_PER_SECOND: String(RATE),
        RATE_LIMIT_BURST: String(BURST),
      },
      { broker },
    );
  });

  after(async () => {
    await closeAll(clients);
    await gw?.close();
    await broker.close();
  });

  async function client(claims: { sub?: string; channels?: string[]; publish?: string[] }): Promise<Client> {
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "proto-user", ...claims }) });
    clients.push(c);
    return c;
  }

  const isError = (f: Frame) => f.type === "error";

  test("subscribe / unsubscribe / ping replies echo the id", async () => {
    const c = await client({ channels: ["news", "chat.*"] });
    assert.deepEqual(await c.request({ type: "subscribe", channel: "news", id: 1 }), { type: "subscribed", channel: "news", id: 1 });
    assert.deepEqual(await c.request({ type: "subscribe", channel: "chat.7", id: "s-2" }), {
      type: "subscribed",
      channel: "chat.7",
      id: "s-2",
    });
    assert.deepEqual(await c.request({ type: "unsubscribe", channel: "news", id: 3 }), { type: "unsubscribed", channel: "news", id: 3 });
    assert.deepEqual(await c.request({ type: "ping", id: 4 }), { type: "pong", id: 4 });
    c.send({ type: "ping" });
    assert.deepEqual(await c.next((f) => f.type === "pong"), { type: "pong" }, "no id in, no id out");
  });

  test("subscribing to a channel the token does not cover -> error forbidden", async () => {
    const c = await client({ channels: ["news", "chat.*", "public.>"] });
    for (const channel of ["secret", "news.eu", "chat", "chat.1.2", "public"]) {
      const reply = await c.request({ type: "subscribe", channel, id: channel });
      assert.equal(reply.type, "error", `subscribe ${channel}: ${JSON.stringify(reply)}`);
      assert.equal(reply["code"], "forbidden", `subscribe ${channel}: ${JSON.stringify(reply)}`);
    }
    assert.equal((await c.request({ type: "subscribe", channel: "public.a.b.c", id: 9 })).type, "subscribed", "'>' covers deeper channels");
    const none = await client({ sub: "no-claims" });
    const r = await none.request({ type: "subscribe", channel: "news", id: 1 });
    assert.equal(r["code"], "forbidden", "a token without a channels claim may subscribe to nothing");
    assert.ok(c.isOpen && none.isOpen, "a forbidden request does not close the connection");
  });

  test("wildcards, empty tokens, too long and too many tokens -> invalid_channel (even for a '>' token)", async () => {
    // The token allows everything, so only channel validation can refuse these.
    const c = await client({ channels: [">"], publish: [">"] });
    const bad = [
      "news.*",
      "news.>",
      "*",
      ">",
      "a..b",
      ".a",
      "a.",
      "",
      "a b",
      "a/b",
      "ünï",
      "x".repeat(201),
      Array.from({ length: 17 }, () => "a").join("."),
    ];
    for (const channel of bad) {
      const reply = await c.request({ type: "subscribe", channel, id: 1 });
      assert.equal(reply.type, "error", `subscribe ${JSON.stringify(channel).slice(0, 40)}: ${JSON.stringify(reply).slice(0, 200)}`);
      assert.equal(reply["code"], "invalid_channel", `subscribe ${JSON.stringify(channel).slice(0, 40)}`);
    }
    const pub = await c.request({ type: "publish", channel: "news.*", data: { x: 1 }, id: 2 });
    assert.equal(pub["code"], "invalid_channel", "publishing to a wildcard is refused too");
    // Boundaries that are valid.
    for (const channel of ["x".repeat(200), Array.from({ length: 16 }, () => "a").join("."), "A-z_0.9"]) {
      const reply = await c.request({ type: "subscribe", channel, id: 3 });
      assert.equal(reply.type, "subscribed", `subscribe ${channel.slice(0, 40)}: ${JSON.stringify(reply).slice(0, 200)}`);
    }
    // Nothing with a wildcard reached the broker.
    assert.ok(broker.subscribed.length >= 3, "the valid channels were subscribed");
    for (const subject of broker.subscribed) assert.ok(!/[*>]/.test(subject), `gateway subscribed to a wildcard subject: ${subject}`);
  });

  test("invalid JSON and malformed frames -> bad_request; the connection stays open", async () => {
    const c = await client({ channels: ["news"] });
    c.sendRaw("{this is not json");
    const e1 = await c.next(isError);
    assert.equal(e1["code"], "bad_request");
    for (const raw of ['"just a string"', "[1,2]", '{"type":"nope","id":5}', '{"type":"subscribe","id":6}', '{"id":7}']) {
      c.sendRaw(raw);
      const e = await c.next(isError);
      assert.equal(e["code"], "bad_request", `frame ${raw}: ${JSON.stringify(e)}`);
    }
    // The id of a well-formed-but-invalid request is echoed.
    assert.deepEqual(
      { ...(await c.request({ type: "bogus", id: 8 })), message: undefined },
      { type: "error", id: 8, code: "bad_request", message: undefined },
    );
    assert.ok(c.isOpen);
    assert.deepEqual(await c.request({ type: "ping", id: 42 }), { type: "pong", id: 42 });
  });

  test("publish needs a publish claim covering the channel; an allowed publish is acked and delivered", async () => {
    const reader = await client({ sub: "reader", channels: ["chat.*", "readonly"] });
    assert.equal((await reader.request({ type: "subscribe", channel: "chat.42", id: 1 })).type, "subscribed");

    const noPublish = await client({ sub: "viewer", channels: ["chat.*"] });
    const r1 = await noPublish.request({ type: "publish", channel: "chat.42", data: { x: 1 }, id: 10 });
    assert.equal(r1.type, "error");
    assert.equal(r1["code"], "forbidden", "subscribe rights do not imply publish rights");

    const writer = await client({ sub: "writer", channels: [], publish: ["chat.*"] });
    const r2 = await writer.request({ type: "publish", channel: "readonly", data: { x: 2 }, id: 11 });
    assert.equal(r2["code"], "forbidden", "publish outside the publish claim");
    const r3 = await writer.request({ type: "publish", channel: "chat.42", data: { text: "hi", n: [1, 2] }, id: 12 });
    assert.deepEqual(r3, { type: "ack", id: 12 });

    const m = await reader.next((f) => f.type === "message");
    assert.deepEqual(m, { type: "message", channel: "chat.42", data: { text: "hi", n: [1, 2] } }, "the first delivered message is the allowed one");
    assert.equal(reader.all((f) => f.type === "message").length, 1, "refused publishes were never delivered");
  });

  test("data nested too deeply to re-encode -> bad_request; the connection and the gateway survive", async (t) => {
    // JSON.parse accepts any depth, JSON.stringify throws RangeError on a few
    // thousand levels: 40 KB of brackets, under the default MAX_PAYLOAD_BYTES
    // (this suite's own gateway has a 4 KiB limit, so it gets one of its own).
    const depth = 20_000;
    const deep = "[".repeat(depth) + "]".repeat(depth);
    const roomy = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET });
    t.after(() => roomy.close());
    const writer = await connect(roomy.wsUrl, { token: await hsToken({ sub: "deep-writer", channels: [], publish: [">"] }) });
    clients.push(writer);
    writer.sendRaw(`{"type":"publish","channel":"deep","id":1,"data":${deep}}`);
    const e1 = await writer.next(isError);
    assert.deepEqual([e1["code"], e1["id"]], ["bad_request", 1]);
    writer.sendRaw(`{"type":${deep},"id":2}`);
    const e2 = await writer.next(isError);
    assert.deepEqual([e2["code"], e2["id"]], ["bad_request", 2]);
    assert.ok(writer.isOpen);
    assert.deepEqual(await writer.request({ type: "publish", channel: "deep", data: { fine: true }, id: 3 }), { type: "ack", id: 3 });
    assert.equal(roomy.gateway.connections, 1, "the gateway still holds the connection");
  });

  test(`more than MAX_CHANNELS_PER_CONNECTION (${MAX_CHANNELS}) subscriptions -> error, existing ones intact`, async () => {
    const c = await client({ channels: ["many.*"] });
    for (let i = 0; i < MAX_CHANNELS; i++) {
      assert.equal((await c.request({ type: "subscribe", channel: `many.${i}`, id: i })).type, "subscribed");
    }
    const over = await c.request({ type: "subscribe", channel: "many.over", id: "over" });
    assert.equal(over.type, "error", JSON.stringify(over));
    assert.ok(typeof over["code"] === "string", JSON.stringify(over));
    console.log(`# max-channels error code: ${String(over["code"])}`);
    assert.ok(c.isOpen);
    // Unsubscribing frees a slot.
    await c.request({ type: "unsubscribe", channel: "many.0", id: "u" });
    assert.equal((await c.request({ type: "subscribe", channel: "many.over", id: "again" })).type, "subscribed");
  });

  test(`an oversized frame (> MAX_PAYLOAD_BYTES=${MAX_PAYLOAD}) closes that socket with 1009; others keep receiving`, async () => {
    const bystander = await client({ sub: "bystander", channels: ["big.room"] });
    assert.equal((await bystander.request({ type: "subscribe", channel: "big.room", id: 1 })).type, "subscribed");
    const writer = await client({ sub: "big-writer", publish: ["big.room"] });

    // Just over the limit: a clean 1009. Far over it (beyond the frame cap,
    // MAX_PAYLOAD_BYTES + 1/4): refused at the frame header, the TCP connection
    // dropped (1006), so an unfinished frame can never pin more than the cap.
    const sizes = { "just over": MAX_PAYLOAD + 512, "4x over": MAX_PAYLOAD * 4, "64x over": MAX_PAYLOAD * 64 };
    const codes: Record<string, number> = {};
    for (const [label, size] of Object.entries(sizes)) {
      const offender = await client({ sub: "offender", channels: ["big.room"], publish: ["big.room"] });
      offender.send({ type: "publish", channel: "big.room", data: { pad: "x".repeat(size) }, id: 1 });
      const closed = await withTimeout(offender.closed, 5000, `offender (${label}) close`);
      codes[label] = closed.code;
    }
    assert.deepEqual(codes, { "just over": 1009, "4x over": 1006, "64x over": 1006 }, "close codes by frame size");

    assert.deepEqual(await writer.request({ type: "publish", channel: "big.room", data: { after: true }, id: 2 }), { type: "ack", id: 2 });
    const m = await bystander.next((f) => f.type === "message");
    assert.deepEqual(m["data"], { after: true }, "the oversized publishes were not delivered; later ones are");
    // A frame just under the limit is fine.
    const near = await writer.request({ type: "publish", channel: "big.room", data: { pad: "y".repeat(MAX_PAYLOAD - 200) }, id: 3 });
    assert.deepEqual(near, { type: "ack", id: 3 });
    assert.equal(((await bystander.next((f) => f.type === "message"))["data"] as { pad: string }).pad.length, MAX_PAYLOAD - 200);
  });

  test(`rate limit (${RATE}/s, burst ${BURST}): excess -> rate_limited errors, sustained abuse -> close 4008`, async () => {
    const polite = await client({ sub: "polite" });
    const abuser = await client({ sub: "abuser" });
    for (let i = 0; i < BURST * 5; i++) abuser.send({ type: "ping", id: i });
    const err = await abuser.next((f) => f.type === "error" && f["code"] === "rate_limited", 5000);
    assert.equal(err["code"], "rate_limited");
    assert.equal(typeof err["id"], "number", "the refused request's id is echoed, so the client knows what to retry");
    assert.equal(abuser.all((f) => f.type === "pong" && f["id"] === err["id"]).length, 0, "the refused ping was not served");
    const closed = await withTimeout(abuser.closed, 10_000, "abuser close");
    assert.equal(closed.code, 4008, `close code ${closed.code} ${closed.reason}`);
    const pongs = abuser.all((f) => f.type === "pong").length;
    assert.ok(pongs >= BURST / 2 && pongs <= BURST + RATE * 3, `within-burst requests were served (${pongs} pongs)`);
    // Another connection is not limited by the abuser's budget.
    assert.deepEqual(await polite.request({ type: "ping", id: "ok" }), { type: "pong", id: "ok" });
  });

  test("a client staying within the rate limit is never limited", async () => {
    const c = await client({ sub: "steady" });
    // BURST requests at once are allowed by definition of a burst.
    for (let i = 0; i < BURST; i++) c.send({ type: "ping", id: i });
    for (let i = 0; i < BURST; i++) assert.deepEqual(await c.next((f) => f["id"] === i), { type: "pong", id: i });
    assert.equal(c.all(isError).length, 0);
  });

  test("after all of this the same gateway serves new connections", async () => {
    assert.ok(gw.gateway.ready);
    const c = await client({ sub: "late", channels: ["news"] });
    assert.equal(c.welcome?.["sub"], "late");
    assert.deepEqual(await c.request({ type: "subscribe", channel: "news", id: 1 }), { type: "subscribed", channel: "news", id: 1 });
    const m = await scrape(gw.url);
    assert.ok((m.get("herald_disconnects_total", { code: "1009" }) ?? 0) >= 1, "1009 close counted");
    assert.ok((m.get("herald_disconnects_total", { code: "4008" }) ?? 0) >= 1, "4008 close counted");
    for (const code of ["bad_request", "forbidden", "invalid_channel", "rate_limited"]) {
      assert.ok((m.get("herald_errors_total", { code }) ?? 0) >= 1, `herald_errors_total{code=${code}} counted`);
    }
  });
});
