/**
 * A lean client of Herald's `GET /sse` event stream for the load generator,
 * on the same bare libuv TCP handle as the WebSocket client (raw-tcp.ts) and
 * the same shared receive buffer.
 *
 * - writes the request itself (`Authorization: Bearer`, the channels in the
 *   URL: the worker builds `o.path`), checks for `200`, and decodes the
 *   chunked transfer encoding uWS streams the response in;
 * - until the stream is ready (the `subscribed` event of every URL channel)
 *   and on probe streams it decodes every event (`id:`/`data:` lines,
 *   `: keepalive` comments skipped), parses the frame JSON and, for
 *   messages on probes, samples latency from the payload's `t` and gaps
 *   from its `seq`, exactly as the WebSocket client does;
 * - once ready, plain streams only count message events: occurrences of
 *   `data: {"type":"message"` in the decoded body, found with Buffer.indexOf
 *   (no string or JSON per event; a match split between two reads is found
 *   from the few bytes kept of the first).
 */
import { DONE, RawConn, now } from "./raw-conn.js";
import type { ConnEvents, ConnOptions, Counters, ProbeSink } from "./wsclient-types.js";

const MESSAGE = Buffer.from('data: {"type":"message"');

const HEAD = 0; // waiting for the response head
const BODY = 1;

// chunked transfer decoding
const CH_SIZE = 0;
const CH_DATA = 1;
const CH_CRLF = 2;

export class SseConn extends RawConn<SseConn> {
  private head = "";
  private chunked = false;
  private ch = CH_SIZE;
  private chunkLeft = 0;
  private sizeDone = false;
  private crlfLeft = 0;
  /** Decoded body not yet split into events (text mode). */
  private text = "";
  /** Counting mode (ready, not a probe): the end of the previous span, when a match could start in it. */
  private counting = false;
  private tail: Buffer | null = null;
  private subscribedN = 0;

  constructor(
    o: ConnOptions,
    c: Counters,
    sink: ProbeSink<SseConn>,
    events: ConnEvents<SseConn>,
  ) {
    super(o, c, sink, events, `GET ${o.path} HTTP/1.1\r\nHost: ${o.host}:${o.port}\r\nAccept: text/event-stream\r\n${o.headers}\r\n`);
  }

  protected onRead(n: number, buf: Buffer): void {
    this.c.reads++;
    this.c.bytes += n;
    let i = 0;
    if (this.state === HEAD) {
      this.head += buf.toString("latin1", 0, n);
      const end = this.head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.head.length > 8192) this.fail("bad_response");
        return;
      }
      this.httpStatus = Number(this.head.slice(9, 12));
      if (this.httpStatus !== 200) return this.fail(`http_${this.httpStatus}`);
      this.chunked = /\r\ntransfer-encoding:\s*chunked/i.test(this.head.slice(0, end));
      i = end + 4 - (this.head.length - n);
      this.head = "";
      this.state = BODY;
    }
    if (this.state !== BODY) return;
    if (!this.chunked) return this.feed(buf, i, n);
    while (i < n && this.state === BODY) {
      if (this.ch === CH_DATA) {
        const take = this.chunkLeft < n - i ? this.chunkLeft : n - i;
        this.feed(buf, i, i + take);
        i += take;
        this.chunkLeft -= take;
        if (this.chunkLeft === 0) {
          this.ch = CH_CRLF;
          this.crlfLeft = 2;
        }
      } else if (this.ch === CH_CRLF) {
        i++;
        if (--this.crlfLeft === 0) this.ch = CH_SIZE;
      } else {
        // "<hex>[;ext]\r\n"
        const b = buf[i++]!;
        if (b === 10) {
          this.sizeDone = false;
          if (this.chunkLeft === 0) {
            this.state = DONE; // the last chunk: the server ended the stream
            this.sock.end();
            return;
          }
          this.ch = CH_DATA;
        } else if (!this.sizeDone) {
          const d = b >= 48 && b <= 57 ? b - 48 : b >= 97 && b <= 102 ? b - 87 : b >= 65 && b <= 70 ? b - 55 : -1;
          if (d >= 0) this.chunkLeft = this.chunkLeft * 16 + d;
          else this.sizeDone = true; // \r or ;extension
        }
      }
    }
  }

  /** Decoded body bytes [s, e) of the shared buffer. */
  private feed(b: Buffer, s: number, e: number): void {
    if (s >= e) return;
    if (this.counting) return this.count(b, s, e);
    this.text += b.toString("utf8", s, e);
    let k: number;
    while ((k = this.text.indexOf("\n\n")) >= 0) {
      const ev = this.text.slice(0, k);
      this.text = this.text.slice(k + 2);
      this.event(ev);
      if (this.state === DONE) return;
    }
    // At an event boundary, a ready plain stream stops decoding.
    if (this.ready && !this.o.probe && this.text === "") this.counting = true;
  }

  private count(b: Buffer, s: number, e: number): void {
    const span = b.subarray(s, e);
    let found = 0;
    if (this.tail) {
      // a match that starts in the previous span's last bytes
      const joined = Buffer.concat([this.tail, span.subarray(0, MESSAGE.length - 1)]);
      for (let k = joined.indexOf(MESSAGE); k >= 0 && k < this.tail.length; k = joined.indexOf(MESSAGE, k + 1)) found++;
      this.tail = null;
    }
    for (let k = span.indexOf(MESSAGE); k >= 0; k = span.indexOf(MESSAGE, k + MESSAGE.length)) found++;
    // Every match starts a line: after a span that ends one, none can straddle.
    if (span[span.length - 1] !== 10) this.tail = Buffer.from(span.subarray(Math.max(0, span.length - (MESSAGE.length - 1))));
    if (this.paused) this.c.pausedMsgs += found;
    else this.c.msgs += found;
  }

  /** One event's lines: `id:` and comments skipped, `data:` lines joined (EventSource's rule). */
  private event(ev: string): void {
    let data: string | undefined;
    for (const line of ev.split("\n")) {
      if (line.startsWith("data:")) {
        const v = line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5);
        data = data === undefined ? v : `${data}\n${v}`;
      }
    }
    if (data !== undefined) this.frame(data);
  }

  private frame(text: string): void {
    if (text.startsWith('{"type":"message"')) return this.message(text);
    let m: { type?: string; code?: unknown };
    try {
      m = JSON.parse(text) as typeof m;
    } catch {
      return;
    }
    if (m.type === "welcome") {
      this.connected = true;
      this.events.onConnected(this);
      if (this.o.channels.length === 0) this.isReady();
    } else if (m.type === "subscribed") {
      if (++this.subscribedN === this.o.channels.length) this.isReady();
    } else if (m.type === "error" && !this.ready) {
      this.fail(`proto_${String(m.code ?? "error")}`);
    } else if (m.type === "close") {
      this.closeCode = typeof m.code === "number" ? m.code : 0;
      const k = String(this.closeCode);
      this.c.closes[k] = (this.c.closes[k] ?? 0) + 1;
      if (!this.ready) this.fail(`close_${k}`);
    }
  }

  private isReady(): void {
    this.ready = true;
    this.tReady = now();
    this.events.onReady(this);
  }
}
