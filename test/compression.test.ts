/**
 * COMPRESSION (issue 13): WebSocket permessage-deflate. Off (the default)
 * declines the extension; shared compresses broadcasts on the wire and the
 * client reads them back intact; a compression bomb (a small deflated frame
 * that inflates far past MAX_PAYLOAD_BYTES) is cut without the gateway's
 * RSS growing by more than 10 MB, and other clients go on receiving; one
 * that inflates above MAX_PAYLOAD_BYTES but under the hard cap gets 1009.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect as natsConnect, type NatsConnection } from "nats";
import WebSocket from "ws";
import { readGatewayConfig } from "../services/gateway/src/config.js";
import { GATEWAY_MAIN, missingBuild, type ServiceProcess } from "./helpers/procs.js";
import { rssBytes, settledRss } from "./helpers/rss.js";
import { TestStack } from "./helpers/stack.js";
import { hsToken } from "./helpers/tokens.js";

interface Deflating {
  ws: WebSocket;
  messages: string[];
  closed: Promise<number>;
  /** Bytes read from the TCP socket (compressed, as on the wire). */
  wireBytes(): number;
}

async function open(url: string, sub: string): Promise<Deflating> {
  const token = await hsToken({ sub, channels: ["news.>"] });
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: { threshold: 0 } });
  const messages: string[] = [];
  ws.on("message", (d) => messages.push(String(d)));
  ws.on("error", () => {});
  const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("unexpected-response", (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
  const socket = (ws as unknown as { _socket: { bytesRead: number } })._socket;
  return { ws, messages, closed, wireBytes: () => socket.bytesRead };
}

const waitMessages = async (c: Deflating, pred: (m: string) => boolean, n: number) => {
  const t0 = Date.now();
  while (c.messages.filter(pred).length < n) {
    if (Date.now() - t0 > 10_000) throw new Error(`only ${c.messages.filter(pred).length}/${n} messages`);
    await new Promise<void>((r) => setImmediate(r));
    await new Promise<void>((r) => c.ws.once("message", () => r()));
  }
};

test("COMPRESSION accepts off, shared, dedicated and names the variable otherwise", () => {
  assert.equal(readGatewayConfig({ JWT_SECRET: "x".repeat(32) }).compression, "off");
  assert.equal(readGatewayConfig({ JWT_SECRET: "x".repeat(32), COMPRESSION: "shared" }).compression, "shared");
  assert.throws(() => readGatewayConfig({ JWT_SECRET: "x".repeat(32), COMPRESSION: "gzip" }), /COMPRESSION.*must be one of off, shared, dedicated/);
});

describe("WebSocket compression", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  const stack = new TestStack();
  let off: ServiceProcess;
  let shared: ServiceProcess;
  let nc: NatsConnection;
  after(async () => {
    await nc?.close();
    await stack.close();
  });
  before(async () => {
    const nats = await stack.nats();
    const env = { MAX_CONNECTIONS_PER_IP: "0" };
    [off, shared] = await Promise.all([stack.gateway(nats, env), stack.gateway(nats, { ...env, COMPRESSION: "shared" })]);
    nc = await natsConnect({ servers: nats.url });
  });

  // 1 KB JSON, the shape of a typical app payload
  const payload = (i: number) => JSON.stringify({ i, items: Array.from({ length: 12 }, (_, k) => ({ id: `item-${k}`, price: 100 + k, currency: "EUR", stock: k * 3 })) });

  test("off declines the extension; shared negotiates it, sends broadcasts compressed, and the client reads them intact", async () => {
    const plain = await open(off.wsUrl, "plain");
    const packed = await open(shared.wsUrl, "packed");
    assert.equal(plain.ws.extensions, "");
    assert.match(packed.ws.extensions, /permessage-deflate/);
    for (const c of [plain, packed]) {
      c.ws.send(JSON.stringify({ type: "subscribe", channel: "news.z", id: 1 }));
      await waitMessages(c, (m) => m.includes('"subscribed"'), 1);
    }
    const before = [plain.wireBytes(), packed.wireBytes()];
    const N = 50;
    for (let i = 0; i < N; i++) nc.publish("herald.ch.news.z", new TextEncoder().encode(payload(i)));
    for (const c of [plain, packed]) await waitMessages(c, (m) => m.startsWith('{"type":"message"'), N);
    const bytes = [plain.wireBytes() - before[0]!, packed.wireBytes() - before[1]!];
    const got = packed.messages.filter((m) => m.startsWith('{"type":"message"')).map((m) => JSON.parse(m) as { data: unknown });
    assert.deepEqual(got.map((m) => m.data), Array.from({ length: N }, (_, i) => JSON.parse(payload(i))));
    assert.ok(bytes[1]! < bytes[0]! / 2, `compressed ${bytes[1]} B vs ${bytes[0]} B on the wire`);
    console.log(`# ${N} broadcasts of ${payload(0).length} B JSON: ${bytes[0]} B on the wire off, ${bytes[1]} B shared`);
    plain.ws.close();
    packed.ws.close();
  });

  // DESIGN.md asks for 1009 here. uWS inflates at most maxPayloadLength and, past it, drops the TCP
  // connection without a close frame (1006 at the client), as for a frame declared beyond the hard cap:
  // a departure documented in the README.
  test("a compression bomb is cut (1006), RSS grows < 10 MB, others keep receiving", async () => {
    const bystander = await open(shared.wsUrl, "bystander");
    bystander.ws.send(JSON.stringify({ type: "subscribe", channel: "news.b", id: 1 }));
    await waitMessages(bystander, (m) => m.includes('"subscribed"'), 1);
    const rss0 = await settledRss(shared.pid);
    const bomber = await open(shared.wsUrl, "bomber");
    // 64 MiB of one character: about 64 KB once deflated, 1,000 times MAX_PAYLOAD_BYTES (64 KiB) inflated.
    bomber.ws.send(Buffer.alloc(64 * 1024 * 1024, 0x20).toString());
    const code = await bomber.closed;
    const grown = rssBytes(shared.pid) - rss0;
    assert.equal(code, 1006);
    assert.ok(grown < 10 * 1024 * 1024, `RSS grew ${grown} bytes`);
    nc.publish("herald.ch.news.b", new TextEncoder().encode('{"after":"bomb"}'));
    await waitMessages(bystander, (m) => m.includes('"after":"bomb"'), 1);
    console.log(`# bomb: closed ${code}, gateway RSS +${(grown / 1024 / 1024).toFixed(1)} MiB`);
    bystander.ws.close();
  });

  test("a deflated frame that inflates above MAX_PAYLOAD_BYTES but under the hard cap is closed 1009", async () => {
    const c = await open(shared.wsUrl, "just-over");
    // 70,000 B inflated (MAX_PAYLOAD_BYTES 65,536; the hard cap 81,920), a few hundred on the wire.
    c.ws.send(JSON.stringify({ type: "publish", channel: "news.b", data: "x".repeat(70_000) }));
    assert.equal(await c.closed, 1009);
  });
});
