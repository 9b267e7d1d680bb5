/**
 * The SSE transport of @herald/client apart from the gateway: the
 * text/event-stream parser, batching of commands, the transport options and
 * the choice of transport, and SseSocket against a scripted node:http server
 * on loopback (real HTTP, real fetch streaming). The client against real
 * gateways over SSE: client-sdk-sse.test.ts.
 */
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { after, describe, test } from "node:test";
import { HeraldClient, HeraldError, deriveSseUrl } from "@herald/client";
import { SseParser } from "../packages/client/src/sse-parser.js";
import { MAX_BATCH_BYTES, MAX_BATCH_FRAMES, SseSocket, takeBatch, utf8Length } from "../packages/client/src/sse-socket.js";
import { TransportChoice, transportFailed } from "../packages/client/src/transport-choice.js";
import { commandsUrlOf, resolveTransports } from "../packages/client/src/transport-options.js";
import { ScriptedSocket } from "./helpers/scripted-socket.js";
import { waitFor } from "./helpers/wait.js";

function parseAll(chunks: string[]): string[] {
  const out: string[] = [];
  const p = new SseParser((d) => out.push(d));
  for (const c of chunks) p.push(c);
  return out;
}

describe("SseParser", () => {
  const stream = ': hello\n\ndata: {"type":"welcome"}\n\nid: 3\ndata: a\ndata: b\n\ndata:no-space\n\ndata\n\n: keepalive\n\ndata:  two spaces\n\n';
  const expected = ['{"type":"welcome"}', "a\nb", "no-space", "", " two spaces"];

  test("events, multi-line data joined with \\n, comments and id lines skipped, one optional space", () => {
    // `data` alone is an empty data line: an event with empty data (EventSource's rule).
    assert.deepEqual(parseAll([stream]), expected);
  });

  test("chunks cut anywhere: every split point, and one character at a time", () => {
    for (let i = 0; i <= stream.length; i++) assert.deepEqual(parseAll([stream.slice(0, i), stream.slice(i)]), expected, `split at ${i}`);
    assert.deepEqual(parseAll([...stream]), expected);
  });

  test("CRLF and CR line ends, also with the CR and LF in different chunks", () => {
    for (const eol of ["\r\n", "\r"]) {
      const s = stream.replace(/\n/g, eol);
      assert.deepEqual(parseAll([s]), expected, JSON.stringify(eol));
      assert.deepEqual(parseAll([...s]), expected, `${JSON.stringify(eol)} one at a time`);
      for (let i = 0; i <= s.length; i++) assert.deepEqual(parseAll([s.slice(0, i), s.slice(i)]), expected);
    }
    // CR then LF in the next chunk is one line end, not two (which would dispatch early).
    assert.deepEqual(parseAll(["data: a\r", "\ndata: b\r", "\n\r", "\n"]), ["a\nb"]);
  });

  test("an event is dispatched only at its blank line; other fields are ignored", () => {
    assert.deepEqual(parseAll(["data: unfinished\n"]), []);
    assert.deepEqual(parseAll(["event: x\nretry: 5\nid: 1\n\n"]), [], "no data: nothing dispatched");
    assert.deepEqual(parseAll(["event: x\ndata: y\n\n"]), ["y"]);
  });
});

describe("commands batching", () => {
  test("at most MAX_BATCH_FRAMES frames and MAX_BATCH_BYTES bytes, in order, always at least one", () => {
    const q = Array.from({ length: 250 }, (_, i) => `{"type":"ping","id":${i}}`);
    const first = takeBatch(q);
    assert.equal(first.length, MAX_BATCH_FRAMES);
    assert.equal(first[0], '{"type":"ping","id":0}');
    assert.equal(q.length, 150);
    const big = "x".repeat(20_000);
    const q2 = [big, big, "small"];
    assert.deepEqual(takeBatch(q2), [big], "a second 20 KB frame would pass 32 KiB");
    const huge = "y".repeat(MAX_BATCH_BYTES * 3);
    assert.deepEqual(takeBatch([huge, "a"]), [huge], "a frame larger than a batch goes alone");
    assert.deepEqual(takeBatch([]), []);
  });

  test("utf8Length counts UTF-8 bytes", () => {
    for (const s of ["abc", "é", "€", "😀", "a😀é€", ""]) assert.equal(utf8Length(s), Buffer.byteLength(s), s);
  });
});

describe("transport options", () => {
  test("sseUrl derived from url: ws→http, wss→https, /ws → /sse, other paths get /sse; commands beside it", () => {
    assert.equal(deriveSseUrl("wss://rt.example.com/ws"), "https://rt.example.com/sse");
    assert.equal(deriveSseUrl("ws://127.0.0.1:8080/ws"), "http://127.0.0.1:8080/sse");
    assert.equal(deriveSseUrl("wss://example.com/herald/ws/"), "https://example.com/herald/sse");
    assert.equal(deriveSseUrl("wss://example.com/herald"), "https://example.com/herald/sse");
    assert.equal(deriveSseUrl("wss://example.com"), "https://example.com/sse");
    assert.equal(deriveSseUrl("wss://example.com/ws?tenant=a"), "https://example.com/sse?tenant=a");
    assert.equal(commandsUrlOf("https://example.com/sse"), "https://example.com/sse/commands");
    assert.equal(commandsUrlOf("https://example.com/x/sse?t=1"), "https://example.com/x/sse/commands?t=1");
  });

  test("defaults, order, validation; SSE alone needs no WebSocket implementation", () => {
    const r = resolveTransports({ url: "ws://h/ws", token: "t", WebSocket: ScriptedSocket });
    assert.deepEqual(r.transports, ["websocket", "sse"]);
    assert.equal(r.sse?.url, "http://h/sse");
    assert.equal(r.sse?.commandsUrl, "http://h/sse/commands");
    const own = resolveTransports({ url: "ws://h/ws", token: "t", transports: ["sse", "websocket"], WebSocket: ScriptedSocket, sseUrl: "https://other/events" });
    assert.deepEqual(own.transports, ["sse", "websocket"]);
    assert.equal(own.sse?.commandsUrl, "https://other/events/commands");
    for (const transports of [[], ["sse", "sse"], ["http"], "sse"]) {
      assert.throws(() => new HeraldClient({ url: "ws://h/ws", token: "t", WebSocket: ScriptedSocket, transports: transports as never }), /transports must be/);
    }
    assert.throws(() => new HeraldClient({ url: "ws://h/ws", token: "t", transports: ["sse"], sseUrl: "ftp://h/sse" }), /sseUrl must be http/);
    const saved = (globalThis as { WebSocket?: unknown }).WebSocket;
    try {
      (globalThis as { WebSocket?: unknown }).WebSocket = undefined;
      const c = new HeraldClient({ url: "ws://h/ws", token: "t", transports: ["sse"] });
      assert.equal(c.state, "idle");
      assert.throws(
        () => new HeraldClient({ url: "ws://h/ws", token: "t" }),
        (e: unknown) => e instanceof HeraldError && e.code === "invalid_argument" && /transports: \["sse"\]/.test(e.message),
      );
    } finally {
      (globalThis as { WebSocket?: unknown }).WebSocket = saved;
    }
  });
});

describe("TransportChoice", () => {
  const failed = { welcomed: false, httpStatus: undefined, refusal: undefined };
  const choice = () => new TransportChoice({ wsUrl: "ws://h/ws", transports: ["websocket", "sse"], WebSocket: undefined, sse: undefined });

  test("a transport failure moves on at once within a round; the round's end goes to the close policy and starts over", () => {
    const c = choice();
    assert.equal(c.current, "websocket");
    assert.equal(c.moveOn(failed, 1006), true);
    assert.equal(c.current, "sse");
    assert.equal(c.moveOn(failed, 1006), false, "all failed: backoff");
    assert.equal(c.current, "websocket", "the next round starts at the first");
  });

  test("the welcomed transport leads every later round", () => {
    const c = choice();
    c.moveOn(failed, 1006);
    c.welcomed("sse");
    assert.equal(c.current, "sse");
    assert.equal(c.moveOn({ ...failed, welcomed: true }, 1001), false, "a welcomed connection's close is the close policy's");
    assert.equal(c.current, "sse");
    assert.equal(c.moveOn(failed, 1006), true);
    assert.equal(c.current, "websocket");
    assert.equal(c.moveOn(failed, 1006), false);
    assert.equal(c.current, "sse");
  });

  test("what counts as a transport failure", () => {
    assert.equal(transportFailed(failed, 1006), true, "network, timeout, a refusal a browser hides");
    assert.equal(transportFailed({ ...failed, httpStatus: 403 }, 1006), true, "a refused upgrade (a proxy)");
    assert.equal(transportFailed({ ...failed, httpStatus: 401, refusal: "unauthorized" }, 1006), false, "Herald's own refusal of the stream");
    assert.equal(transportFailed(failed, 4003), false, "a close code the gateway chose");
    assert.equal(transportFailed({ ...failed, welcomed: true }, 1006), false);
  });
});

/** A scripted SSE gateway on loopback: the test decides every answer. */
class ScriptedSse {
  readonly streams: ServerResponse[] = [];
  readonly posts: Array<{ auth: string | undefined; body: { connection: string; frames: Array<Record<string, unknown>> } }> = [];
  getStatus = 200;
  getBody = "";
  /** Answers a POST; default 202 at once. */
  onPost: (res: ServerResponse, n: number) => void = (res) => res.writeHead(202, { "content-type": "application/json" }).end('{"accepted":1}');
  streamClosed = 0;
  private constructor(readonly server: Server, readonly url: string) {}

  static async start(): Promise<ScriptedSse> {
    let me: ScriptedSse | undefined;
    const server = createServer((req, res) => me!.handle(req, res));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    me = new ScriptedSse(server, `http://127.0.0.1:${(server.address() as { port: number }).port}/sse`);
    return me;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.method === "GET") {
      if (this.getStatus !== 200) return void res.writeHead(this.getStatus, { "content-type": "application/json" }).end(this.getBody);
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.flushHeaders();
      req.socket.once("close", () => this.streamClosed++);
      this.streams.push(res);
      return;
    }
    let text = "";
    req.on("data", (d: Buffer) => (text += d.toString()));
    req.on("end", () => {
      this.posts.push({ auth: req.headers.authorization, body: JSON.parse(text) });
      this.onPost(res, this.posts.length);
    });
  }

  event(res: ServerResponse, frame: unknown): void {
    res.write(`data: ${JSON.stringify(frame)}\n\n`);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** An SseSocket with every event recorded. */
function socket(srv: ScriptedSse, token = "tok") {
  const s = new SseSocket({ url: srv.url, commandsUrl: `${srv.url}/commands`, token, fetch: (u, i) => fetch(u, i) });
  const got = { opened: false, messages: [] as string[], errors: [] as Array<Record<string, unknown>>, close: undefined as { code: number; reason: string } | undefined };
  s.onopen = () => (got.opened = true);
  s.onmessage = (ev: { data: string }) => got.messages.push(ev.data);
  s.onerror = (ev: Record<string, unknown>) => got.errors.push(ev);
  s.onclose = (ev: { code: number; reason: string }) => (got.close = { code: ev.code, reason: ev.reason });
  return { s, got };
}

describe("SseSocket against a scripted server", () => {
  const servers: ScriptedSse[] = [];
  after(() => Promise.all(servers.map((s) => s.close())));
  const server = async () => {
    const s = await ScriptedSse.start();
    servers.push(s);
    return s;
  };

  test("opens on the 200, hands every event over, waits for the welcome, then posts frames one POST at a time, batched, in order", async () => {
    const srv = await server();
    const { s, got } = socket(srv);
    assert.equal(s.readyState, 0);
    s.send('{"type":"ping","id":1}'); // before the welcome: waits for the connection id
    await waitFor(() => got.opened && srv.streams.length === 1, { message: "stream open" });
    assert.equal(s.readyState, 1);
    assert.equal(s.protocol, "herald.v1");
    let release: (() => void) | undefined;
    srv.onPost = (res, n) => {
      const answer = () => res.writeHead(202).end('{"accepted":1}');
      if (n === 1) release = answer;
      else answer();
    };
    const stream = srv.streams[0]!;
    srv.event(stream, { type: "welcome", sub: "u", connection: "c-1" });
    await waitFor(() => srv.posts.length === 1, { message: "first POST" });
    assert.equal(srv.posts[0]!.auth, "Bearer tok");
    assert.deepEqual(srv.posts[0]!.body, { connection: "c-1", frames: [{ type: "ping", id: 1 }] });
    // While the first POST is unanswered, frames queue up, then go out together.
    for (let id = 2; id <= 5; id++) s.send(JSON.stringify({ type: "ping", id }));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(srv.posts.length, 1, "one POST in flight at a time");
    release!();
    await waitFor(() => srv.posts.length === 2, { message: "second POST" });
    assert.deepEqual(srv.posts[1]!.body.frames.map((f) => f["id"]), [2, 3, 4, 5]);
    // Events: multi-line data and comments across writes.
    stream.write(': keepalive\n\ndata: {"type":"pong",\ndata: "id":1}\n');
    stream.write("\n");
    await waitFor(() => got.messages.length === 2, { message: "pong" });
    assert.deepEqual(JSON.parse(got.messages[1]!), { type: "pong", id: 1 });
    // The close event ends it with its code; the stream is let go.
    srv.event(stream, { type: "close", code: 1001, reason: "draining" });
    await waitFor(() => got.close, { message: "close" });
    assert.deepEqual(got.close, { code: 1001, reason: "draining" });
    assert.equal(s.readyState, 3);
    assert.equal(got.messages.length, 2, "the close event is not a message");
    await waitFor(() => srv.streamClosed === 1, { message: "stream released" });
  });

  test("a refused GET: an error naming the status (and Herald's code), then 1006", async () => {
    const srv = await server();
    srv.getStatus = 401;
    srv.getBody = JSON.stringify({ error: { code: "token_expired", message: "expired" } });
    const { got } = socket(srv);
    await waitFor(() => got.close, { message: "close" });
    assert.equal(got.close?.code, 1006);
    assert.equal(got.errors[0]?.["message"], "Unexpected server response: 401 (token_expired)");
    assert.equal(got.errors[0]?.["status"], 401);
    assert.equal(got.errors[0]?.["refusal"], "token_expired");
    assert.equal(got.opened, false);

    const proxy = await server();
    proxy.getStatus = 403;
    proxy.getBody = "<html>Forbidden</html>";
    const p = socket(proxy);
    await waitFor(() => p.got.close, { message: "close" });
    assert.equal(p.got.errors[0]?.["status"], 403);
    assert.equal(p.got.errors[0]?.["refusal"], undefined, "not a Herald refusal");
  });

  test("the stream ending without a close event, or the server going away, is 1006", async () => {
    const srv = await server();
    const { got } = socket(srv);
    await waitFor(() => srv.streams.length === 1, { message: "stream" });
    srv.streams[0]!.end();
    await waitFor(() => got.close, { message: "close" });
    assert.equal(got.close?.code, 1006);

    const srv2 = await server();
    const b = socket(srv2);
    await waitFor(() => srv2.streams.length === 1, { message: "stream" });
    srv2.server.closeAllConnections();
    await waitFor(() => b.got.close, { message: "close" });
    assert.equal(b.got.close?.code, 1006);
  });

  for (const [status, code] of [
    [401, 4001],
    [413, 1009],
    [400, 1002],
    [500, 1006],
    [404, 1006],
  ] as const) {
    test(`POST answered ${status}: the stream is closed and reported as ${code}`, async () => {
      const srv = await server();
      srv.onPost = (res) => res.writeHead(status).end("{}");
      const { s, got } = socket(srv);
      await waitFor(() => srv.streams.length === 1, { message: "stream" });
      srv.event(srv.streams[0]!, { type: "welcome", sub: "u", connection: "c" });
      s.send('{"type":"ping","id":1}');
      await waitFor(() => got.close, { message: "close" });
      assert.equal(got.close?.code, code);
      assert.match(String(got.errors[0]?.["message"]), new RegExp(`answered ${status}`));
      await waitFor(() => srv.streamClosed === 1, { message: "stream aborted" });
    });
  }

  test("POST answered 403: forbidden_origin is 4003 (policy), forbidden (another user's connection) 1006", async () => {
    for (const [code, close] of [
      ["forbidden_origin", 4003],
      ["forbidden", 1006],
    ] as const) {
      const srv = await server();
      srv.onPost = (res) => res.writeHead(403, { "content-type": "application/json" }).end(JSON.stringify({ error: { code, message: "no" } }));
      const { s, got } = socket(srv);
      await waitFor(() => srv.streams.length === 1, { message: "stream" });
      srv.event(srv.streams[0]!, { type: "welcome", sub: "u", connection: "c" });
      s.send('{"type":"ping","id":1}');
      await waitFor(() => got.close, { message: "close" });
      assert.equal(got.close?.code, close, code);
    }
  });

  test("POST answered 404 while the stream's own close event follows: that close wins", async () => {
    const srv = await server();
    srv.onPost = (res) => {
      res.writeHead(404).end("{}");
      setTimeout(() => srv.event(srv.streams[0]!, { type: "close", code: 1001, reason: "draining" }), 50);
    };
    const { s, got } = socket(srv);
    await waitFor(() => srv.streams.length === 1, { message: "stream" });
    srv.event(srv.streams[0]!, { type: "welcome", sub: "u", connection: "c" });
    s.send('{"type":"ping","id":1}');
    await waitFor(() => got.close, { message: "close" });
    assert.deepEqual(got.close, { code: 1001, reason: "draining" });
  });

  test("POST answered 503: the same batch is posted again, then goes on", async () => {
    const srv = await server();
    srv.onPost = (res, n) => res.writeHead(n === 1 ? 503 : 202).end("{}");
    const { s, got } = socket(srv);
    await waitFor(() => srv.streams.length === 1, { message: "stream" });
    srv.event(srv.streams[0]!, { type: "welcome", sub: "u", connection: "c" });
    s.send('{"type":"ping","id":1}');
    await waitFor(() => srv.posts.length === 2, { message: "retried" });
    assert.deepEqual(srv.posts[1]!.body, srv.posts[0]!.body);
    s.send('{"type":"ping","id":2}');
    await waitFor(() => srv.posts.length === 3, { message: "next batch" });
    assert.equal(got.close, undefined);
    s.close(1000, "bye");
  });

  test("close() aborts the stream and reports the code asynchronously, like a WebSocket", async () => {
    const srv = await server();
    const { s, got } = socket(srv);
    await waitFor(() => got.opened, { message: "open" });
    s.close(4000, "timeout");
    assert.equal(s.readyState, 2);
    assert.equal(got.close, undefined);
    await waitFor(() => got.close, { message: "close" });
    assert.deepEqual(got.close, { code: 4000, reason: "timeout" });
    await waitFor(() => srv.streamClosed === 1, { message: "stream aborted" });
    s.send('{"type":"ping","id":1}');
    assert.equal(srv.posts.length, 0, "nothing is sent once closed");
  });

  test("a network failure of the GET is 1006 with the reason in the error", async () => {
    const srv = await server();
    const url = srv.url;
    await srv.close();
    servers.splice(servers.indexOf(srv), 1);
    const s = new SseSocket({ url, commandsUrl: `${url}/commands`, token: "t", fetch: (u, i) => fetch(u, i) });
    const got: { close?: number; error?: string } = {};
    s.onerror = (ev: { message: string }) => (got.error = ev.message);
    s.onclose = (ev: { code: number }) => (got.close = ev.code);
    await waitFor(() => got.close, { message: "close" });
    assert.equal(got.close, 1006);
    assert.match(got.error ?? "", /SSE stream to .* failed/);
  });
});
