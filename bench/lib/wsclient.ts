/**
 * A lean WebSocket client for load generation, on a bare libuv TCP handle
 * (raw-tcp.ts: net.Socket's streams cost the generator more CPU per
 * connection than the server it measures spends).
 *
 * - does the HTTP/1.1 upgrade itself (one write, no Sec-WebSocket-Accept check);
 * - reads into ONE receive buffer shared by every socket of the process
 *   (net `onread`), so a read allocates nothing;
 * - counts frames by walking frame headers and skipping payloads; it decodes
 *   payloads only on probe sockets (latency, sequence gaps), during the
 *   handshake phase, and for control frames;
 * - speaks two client protocols: Herald's JSON frames and the NATS text
 *   protocol over WebSocket (for the nats-server websocket peer), where the
 *   NATS op lines are parsed but MSG payloads are skipped the same way;
 * - client frames are masked with the all-zero key (valid per RFC 6455 and
 *   free: the payload bytes stay as they are).
 */
import { constants as zlib, inflateRawSync } from "node:zlib";
import { DONE, RawConn, now } from "./raw-conn.js";
import type { ConnEvents, ConnOptions, Counters, ProbeSink } from "./wsclient-types.js";

export type { ConnEvents, ConnOptions, Counters, LoadConn, ProbeSink, Proto } from "./wsclient-types.js";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const CRLF2 = Buffer.from("\r\n\r\n");
/** The tail permessage-deflate strips from every message (RFC 7692 7.2.2). */
const DEFLATE_TAIL = Buffer.from([0, 0, 0xff, 0xff]);

export { now };

const HS = 0; // waiting for the 101
const OPEN = 1;

export class Conn extends RawConn<Conn> {
  /** Herald: `seq` of each channel's subscribed reply (-1 until it came, or when it had none). */
  subSeqs: number[];
  /** Herald: false once any subscribed reply said recovered:false. */
  recovered = true;
  private subscribedN = 0;

  private hs = "";
  private carry: Buffer | null = null;
  private remaining = 0;
  private opcode = 0;
  /** The current message is deflated (RSV1 on its first frame). */
  private deflated = false;
  private collecting = false;
  private parts: Buffer[] = [];
  // NATS stream parser
  private line = "";
  private skip = 0;
  private payloadLeft = 0;
  private pongs = 0;
  private probeCh = 0;

  constructor(
    o: ConnOptions,
    c: Counters,
    sink: ProbeSink,
    events: ConnEvents,
  ) {
    super(
      o,
      c,
      sink,
      events,
      `GET ${o.path} HTTP/1.1\r\nHost: ${o.host}:${o.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n${o.headers}\r\n`,
    );
    this.subSeqs = o.channels.map(() => -1);
  }

  sendText(s: string, opcode = 0x81): void {
    const p = Buffer.from(s);
    const n = p.length;
    let h: Buffer;
    if (n < 126) h = Buffer.from([opcode, 0x80 | n, 0, 0, 0, 0]);
    else if (n < 65536) h = Buffer.from([opcode, 0x80 | 126, n >> 8, n & 255, 0, 0, 0, 0]);
    else throw new Error("frame too large");
    this.sock.write(Buffer.concat([h, p]));
  }

  protected onRead(n: number, buf: Buffer): void {
    const c = this.c;
    c.reads++;
    c.bytes += n;
    let i = 0;
    if (this.state === HS) {
      this.hs += buf.toString("latin1", 0, n);
      const end = this.hs.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.hs.length > 8192) this.fail("bad_handshake");
        return;
      }
      const status = Number(this.hs.slice(9, 12));
      this.httpStatus = status;
      if (status !== 101) {
        this.fail(`http_${status}`);
        return;
      }
      if (this.o.deflate && /\r\nsec-websocket-extensions:[^\r]*permessage-deflate/i.test(this.hs.slice(0, end))) c.deflateNegotiated++;
      const consumed = end + 4 - (this.hs.length - n);
      this.hs = "";
      this.state = OPEN;
      if (this.o.proto === "nats") this.collecting = true;
      i = consumed;
      void CRLF2;
    }
    if (this.state !== OPEN) return;
    let b = buf;
    let e = n;
    if (this.carry) {
      b = Buffer.concat([this.carry, buf.subarray(i, n)]);
      i = 0;
      e = b.length;
      this.carry = null;
    }
    while (i < e) {
      if (this.remaining > 0) {
        const take = this.remaining < e - i ? this.remaining : e - i;
        if (this.collecting) this.payload(b, i, i + take);
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) this.frameEnd();
        continue;
      }
      const avail = e - i;
      if (avail < 2) {
        this.carry = Buffer.from(b.subarray(i, e));
        break;
      }
      const b0 = b[i]!;
      const b1 = b[i + 1]!;
      let len = b1 & 0x7f;
      let hl = 2;
      if (len === 126) {
        if (avail < 4) {
          this.carry = Buffer.from(b.subarray(i, e));
          break;
        }
        len = (b[i + 2]! << 8) | b[i + 3]!;
        hl = 4;
      } else if (len === 127) {
        if (avail < 10) {
          this.carry = Buffer.from(b.subarray(i, e));
          break;
        }
        len = b.readUInt32BE(i + 2) * 2 ** 32 + b.readUInt32BE(i + 6);
        hl = 10;
      }
      i += hl;
      const op = b0 & 0x0f;
      if (op !== 0) this.opcode = op;
      if (op !== 0 && op < 8) {
        this.deflated = (b0 & 0x40) !== 0;
        if (this.deflated) c.compressedFrames++;
      }
      this.remaining = len;
      if (op >= 8) {
        this.collecting = true;
      } else if (this.o.proto === "herald") {
        this.collecting = this.o.probe || this.o.track === true || !this.ready;
        if (!this.collecting && (b0 & 0x80) !== 0) {
          // a complete message frame on a plain socket: count it, skip the payload
          if (this.paused) c.pausedMsgs++;
          else c.msgs++;
        }
      } else {
        this.collecting = true; // NATS: op lines are parsed, MSG payloads skipped in payload()
      }
      if (len === 0) this.frameEnd();
    }
  }

  /** Payload bytes of the current frame (only called while collecting). */
  private payload(b: Buffer, s: number, e: number): void {
    if (this.opcode < 8 && this.o.proto === "nats") this.nats(b, s, e);
    else this.parts.push(Buffer.from(b.subarray(s, e)));
  }

  private frameEnd(): void {
    const op = this.opcode;
    if (op >= 8) {
      const p = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
      this.parts = [];
      if (op === 0x8) {
        this.closeCode = p.length >= 2 ? p.readUInt16BE(0) : 1005;
        const k = String(this.closeCode);
        this.c.closes[k] = (this.c.closes[k] ?? 0) + 1;
        this.state = DONE;
        this.sock.end();
      } else if (op === 0x9) {
        this.sendText(p.toString("latin1", 0, p.length), 0x8a);
      }
      this.collecting = false;
      return;
    }
    if (this.o.proto === "nats" || !this.collecting) return;
    let body = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    // The upgrade offered server_no_context_takeover: every message inflates on its own.
    if (this.deflated) {
      try {
        body = inflateRawSync(Buffer.concat([body, DEFLATE_TAIL]), { finishFlush: zlib.Z_SYNC_FLUSH });
      } catch {
        this.c.errors["inflate"] = (this.c.errors["inflate"] ?? 0) + 1;
        return;
      }
    }
    const text = body.toString();
    this.parts = [];
    this.herald(text);
  }

  private herald(text: string): void {
    // Message frames: {"type":"message","channel":...,"data":{"seq":..,"t":..}}
    if (text.startsWith('{"type":"message"')) return this.message(text);
    // join / leave frames (presence benchmark): counted, not parsed, like the messages of non-probes
    if (text.startsWith('{"type":"join"') || text.startsWith('{"type":"leave"')) {
      this.c.presenceEvents++;
      return;
    }
    let m: { type?: string; code?: string; id?: unknown; seq?: unknown; recovered?: unknown };
    try {
      m = JSON.parse(text) as typeof m;
    } catch {
      return;
    }
    if (m.type === "welcome") {
      this.connected = true;
      this.events.onConnected(this);
      this.o.channels.forEach((ch, k) => {
        const since = this.o.since?.[k];
        this.sendText(`{"type":"subscribe","channel":${JSON.stringify(ch)},"id":${k + 1}${since === undefined ? "" : `,"since":${since}`}}`);
      });
    } else if (m.type === "subscribed") {
      const k = typeof m.id === "number" ? m.id - 1 : 0;
      if (k >= 0 && k < this.subSeqs.length && typeof m.seq === "number") this.subSeqs[k] = m.seq;
      if (m.recovered === false) this.recovered = false;
      if (++this.subscribedN === this.o.channels.length) {
        this.ready = true;
        this.tReady = now();
        this.events.onReady(this);
      }
    } else if (m.type === "error" && !this.ready) {
      this.fail(`proto_${m.code ?? "error"}`);
    }
  }

  /** NATS protocol stream: op lines parsed, MSG payloads skipped (decoded on probes). */
  private nats(b: Buffer, s: number, e: number): void {
    while (s < e) {
      if (this.skip > 0) {
        const take = this.skip < e - s ? this.skip : e - s;
        if (this.payloadLeft > 0) {
          const t = this.payloadLeft < take ? this.payloadLeft : take;
          this.parts.push(Buffer.from(b.subarray(s, s + t)));
          this.payloadLeft -= t;
          if (this.payloadLeft === 0) this.natsProbe();
        }
        this.skip -= take;
        s += take;
        continue;
      }
      let nl = -1;
      for (let k = s; k < e; k++) {
        if (b[k] === 10) {
          nl = k;
          break;
        }
      }
      if (nl < 0) {
        this.line += b.toString("latin1", s, e);
        return;
      }
      const line = this.line + b.toString("latin1", s, nl > s && b[nl - 1] === 13 ? nl - 1 : nl);
      this.line = "";
      s = nl + 1;
      this.natsOp(line.endsWith("\r") ? line.slice(0, -1) : line);
    }
  }

  private natsOp(line: string): void {
    const c0 = line.charCodeAt(0);
    if (c0 === 77 /* M */) {
      const size = Number(line.slice(line.lastIndexOf(" ") + 1));
      this.skip = size + 2;
      if (this.paused) this.c.pausedMsgs++;
      else this.c.msgs++;
      if (this.o.probe && size > 0) {
        // "MSG <subject> <sid> [reply] <size>": sid k + 1 is channel k
        this.probeCh = Number(line.split(" ")[2]) - 1;
        this.payloadLeft = size;
        this.parts = [];
      }
    } else if (line.startsWith("PING")) {
      this.sendText("PONG\r\n", 0x82);
    } else if (line.startsWith("PONG")) {
      this.pongs++;
      if (this.pongs === 1) {
        this.connected = true;
        this.events.onConnected(this);
      } else if (this.pongs === 2) {
        this.ready = true;
        this.tReady = now();
        this.events.onReady(this);
      }
    } else if (line.startsWith("INFO")) {
      const auth = this.o.natsToken ? `,"auth_token":${JSON.stringify(this.o.natsToken)}` : "";
      this.sendText(
        `CONNECT {"verbose":false,"pedantic":false,"protocol":1,"headers":false,"no_responders":false,"name":"bench"${auth}}\r\nPING\r\n` +
          this.o.channels.map((ch, k) => `SUB ${ch} ${k + 1}\r\n`).join("") +
          "PING\r\n",
        0x82,
      );
    } else if (line.startsWith("-ERR")) {
      const k = `nats_${line.slice(5, 40)}`;
      this.c.errors[k] = (this.c.errors[k] ?? 0) + 1;
      if (!this.ready) this.fail("nats_err");
    }
  }

  private natsProbe(): void {
    const text = (this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts)).toString();
    this.parts = [];
    try {
      const d = JSON.parse(text) as { seq?: unknown; t?: unknown };
      const ch = this.probeCh >= 0 && this.probeCh < this.o.channels.length ? this.probeCh : 0;
      if (typeof d.seq === "number" && typeof d.t === "number") this.sink.sample(this, d.seq, d.t, ch);
    } catch {
      /* not ours */
    }
  }
}
