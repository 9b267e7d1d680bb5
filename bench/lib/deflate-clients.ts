/**
 * The compression scenario's own clients, in the coordinator:
 * - `WsCheckers`: a few `ws`-package clients with `perMessageDeflate: true`
 *   (a real inflating client) on the broadcast channel: every message is
 *   inflated and parsed, its `data.seq` checked for gaps, and the socket's
 *   `bytesRead` gives the bytes on the wire per message independently of
 *   the generator's lean clients (which count frames without inflating);
 * - `sendBomb`: one compression bomb over a plain TCP socket: the upgrade
 *   offers permessage-deflate, then ONE text frame with RSV1 whose payload
 *   is `inflated` bytes of 0x20 deflated in advance (about 1,000:1), masked
 *   with the zero key; it reports how the gateway ended the connection.
 */
import net from "node:net";
import { constants, deflateRawSync } from "node:zlib";
import WebSocket from "ws";
import { signHs256 } from "./jwt.js";
import type { Endpoint } from "./protocol.js";

export interface CheckerStats {
  clients: number;
  negotiated: number;
  msgs: number;
  gaps: number;
  /** Messages that did not parse as a frame carrying data.seq (0 = every one inflated intact). */
  bad: number;
  wireBytes: number;
  inflatedBytes: number;
}

interface Checker {
  ws: WebSocket;
  last: number;
  msgs: number;
  gaps: number;
  bad: number;
  inflated: number;
  readAtReset: number;
}

const bytesRead = (ws: WebSocket) => (ws as unknown as { _socket?: { bytesRead: number } })._socket?.bytesRead ?? 0;

export class WsCheckers {
  private constructor(private readonly list: Checker[]) {}

  /** `count` clients from 127.0.0.251…, each subscribed to `channel` (resolves once every subscribed reply came). */
  static async open(ep: Endpoint, secret: string, channel: string, count: number): Promise<WsCheckers> {
    const list = await Promise.all(
      Array.from({ length: count }, (_, k) =>
        new Promise<Checker>((resolve, reject) => {
          const token = signHs256(secret, { sub: `checker-${k}`, channels: [channel] });
          const ws = new WebSocket(`ws://${ep.host}:${ep.port}${ep.path}`, { headers: { authorization: `Bearer ${token}` }, perMessageDeflate: true, localAddress: `127.0.0.${251 + (k % 4)}` });
          const c: Checker = { ws, last: -1, msgs: 0, gaps: 0, bad: 0, inflated: 0, readAtReset: 0 };
          const timer = setTimeout(() => reject(new Error("ws checker: no subscribed reply in 10 s")), 10_000);
          ws.on("error", (err) => reject(err));
          ws.on("open", () => ws.send(JSON.stringify({ type: "subscribe", channel, id: 1 })));
          ws.on("message", (raw: Buffer) => {
            const text = raw.toString();
            if (text.startsWith('{"type":"subscribed"')) {
              clearTimeout(timer);
              return resolve(c);
            }
            if (!text.startsWith('{"type":"message"')) return;
            c.msgs++;
            c.inflated += raw.length;
            try {
              const seq = (JSON.parse(text) as { data?: { seq?: unknown } }).data?.seq;
              if (typeof seq !== "number") throw new Error("no seq");
              if (c.last >= 0 && seq > c.last + 1) c.gaps += seq - c.last - 1;
              c.last = seq;
            } catch {
              c.bad++;
            }
          });
        }),
      ),
    );
    return new WsCheckers(list);
  }

  reset(): void {
    for (const c of this.list) {
      c.msgs = c.gaps = c.bad = c.inflated = 0;
      c.last = -1;
      c.readAtReset = bytesRead(c.ws);
    }
  }

  /**
   * Waits (up to `timeoutMs`) until the checkers hold `expected` messages in
   * all: they inflate and parse in the coordinator's process and may trail
   * the generator's workers by a message when a phase ends.
   */
  async caughtUp(expected: number, timeoutMs = 3_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const have = () => this.list.reduce((a, c) => a + c.msgs, 0);
    while (have() < expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  stats(): CheckerStats {
    const sum = (f: (c: Checker) => number) => this.list.reduce((a, c) => a + f(c), 0);
    return {
      clients: this.list.length,
      negotiated: sum((c) => (c.ws.extensions.includes("permessage-deflate") ? 1 : 0)),
      msgs: sum((c) => c.msgs),
      gaps: sum((c) => c.gaps),
      bad: sum((c) => c.bad),
      wireBytes: sum((c) => bytesRead(c.ws) - c.readAtReset),
      inflatedBytes: sum((c) => c.inflated),
    };
  }

  close(): void {
    for (const c of this.list) c.ws.terminate();
  }
}

/** A bomb frame made once: `inflated` bytes of 0x20, deflated (sync flush, the 00 00 ff ff tail stripped as RFC 7692 says). */
export function bombFrame(inflated: number): { frame: Buffer; compressedBytes: number } {
  const z = deflateRawSync(Buffer.alloc(inflated, 0x20), { level: 9, finishFlush: constants.Z_SYNC_FLUSH });
  const payload = z.subarray(0, z.length - 4);
  const n = payload.length;
  // FIN + RSV1 (compressed) + text; masked with the zero key (the payload stays as is)
  const head = n < 126 ? Buffer.from([0xc1, 0x80 | n]) : n < 65536 ? Buffer.from([0xc1, 0x80 | 126, n >> 8, n & 255]) : Buffer.from([0xc1, 0x80 | 127, 0, 0, 0, 0, (n >>> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255]);
  return { frame: Buffer.concat([head, Buffer.alloc(4), payload]), compressedBytes: n };
}

export interface BombResult {
  /** The upgrade's answer accepted permessage-deflate. */
  negotiated: boolean;
  /** The close frame's code, 1006 when the connection went without one, 0 if still open at the timeout. */
  closeCode: number;
  /** Frame written → connection closed. */
  ms: number;
}

/** Connects to `ep` as user `sub`, sends `frame` once the upgrade is accepted, and waits (at most timeoutMs) for the gateway to end it. */
export function sendBomb(ep: Endpoint, token: string, frame: Buffer, localAddress: string, timeoutMs = 15_000): Promise<BombResult> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: ep.host, port: ep.port, localAddress });
    let head = "";
    let open = false;
    let negotiated = false;
    let closeCode = 1006;
    let sentAt = 0;
    let rest = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ negotiated, closeCode: 0, ms: performance.now() - sentAt });
    }, timeoutMs);
    sock.on("connect", () =>
      sock.write(
        `GET ${ep.path} HTTP/1.1\r\nHost: ${ep.host}:${ep.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
          `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover\r\nAuthorization: Bearer ${token}\r\n\r\n`,
      ),
    );
    sock.on("data", (d: Buffer) => {
      if (!open) {
        head += d.toString("latin1");
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        if (!head.startsWith("HTTP/1.1 101")) {
          clearTimeout(timer);
          sock.destroy();
          return reject(new Error(`bomb upgrade refused: ${head.slice(0, head.indexOf("\r\n"))}`));
        }
        negotiated = /\r\nsec-websocket-extensions:[^\r]*permessage-deflate/i.test(head.slice(0, end));
        open = true;
        rest = Buffer.from(d.subarray(end + 4 - (head.length - d.length)));
        sentAt = performance.now();
        sock.write(frame);
      } else rest = Buffer.concat([rest, d]);
      // walk the server's frames for a close (opcode 8); data frames are skipped unread
      while (rest.length >= 2) {
        const len7 = rest[1]! & 0x7f;
        const hl = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
        if (rest.length < hl) break;
        const len = len7 === 126 ? rest.readUInt16BE(2) : len7 === 127 ? Number(rest.readBigUInt64BE(2)) : len7;
        if (rest.length < hl + len) break;
        if ((rest[0]! & 0x0f) === 8) closeCode = len >= 2 ? rest.readUInt16BE(hl) : 1005;
        rest = rest.subarray(hl + len);
      }
    });
    sock.on("error", () => {});
    sock.on("close", () => {
      clearTimeout(timer);
      if (!open) return reject(new Error("bomb connection closed before the upgrade"));
      resolve({ negotiated, closeCode, ms: performance.now() - sentAt });
    });
  });
}
