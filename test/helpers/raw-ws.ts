/**
 * A WebSocket client on a bare TCP socket, for tests that must send what no
 * well-behaved client library sends: unmasked frames, a frame header
 * promising more bytes than ever arrive, a frame trickled byte by byte.
 * It parses just enough of what the server sends (text frames, close code).
 */
import { randomBytes } from "node:crypto";
import net from "node:net";

export interface RawSocket {
  socket: net.Socket;
  /** Text frames received, in order. */
  texts: string[];
  /** Close code of the server's close frame, when one arrived. */
  readonly closeCode: number | undefined;
  /** Resolves when the TCP connection has ended, with the server's close code (undefined: no close frame, i.e. 1006). */
  ended: Promise<number | undefined>;
  write(bytes: Buffer): void;
  destroy(): void;
}

export interface RawUpgradeOptions {
  token: string;
  localAddress?: string;
  timeoutMs?: number;
}

/** Upgrades on `/ws`; rejects when the answer is not a 101. */
export function rawUpgrade(port: number, opts: RawUpgradeOptions): Promise<RawSocket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error("raw upgrade timed out"));
    }, opts.timeoutMs ?? 5000);
    socket.setNoDelay(true);
    let buf = Buffer.alloc(0);
    let upgraded = false;
    let closeCode: number | undefined;
    const texts: string[] = [];
    let endedResolve!: (code: number | undefined) => void;
    const ended = new Promise<number | undefined>((r) => (endedResolve = r));
    socket.on("close", () => {
      clearTimeout(timer);
      if (!upgraded) reject(new Error(`connection closed before the upgrade: ${buf.toString("latin1").slice(0, 200)}`));
      endedResolve(closeCode);
    });
    socket.on("error", () => undefined);
    const parseFrames = () => {
      for (;;) {
        if (buf.length < 2) return;
        const op = buf[0]! & 0x0f;
        let len = buf[1]! & 0x7f;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) return;
          len = buf.readUInt16BE(2);
          off = 4;
        } else if (len === 127) {
          if (buf.length < 10) return;
          len = Number(buf.readBigUInt64BE(2));
          off = 10;
        }
        if (buf.length < off + len) return;
        const payload = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        if (op === 1) texts.push(payload.toString("utf8"));
        if (op === 8) closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      }
    };
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.subarray(0, end).toString("latin1");
        if (!head.startsWith("HTTP/1.1 101")) {
          socket.destroy();
          return reject(new Error(`upgrade refused: ${head.split("\r\n")[0]}`));
        }
        upgraded = true;
        clearTimeout(timer);
        buf = buf.subarray(end + 4);
        resolve({
          socket,
          texts,
          get closeCode() {
            return closeCode;
          },
          ended,
          write: (bytes) => {
            if (!socket.destroyed) socket.write(bytes);
          },
          destroy: () => socket.destroy(),
        });
      }
      parseFrames();
    });
    socket.write(
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
        `Authorization: Bearer ${opts.token}\r\n\r\n`,
    );
  });
}

export interface FrameOptions {
  /** Mask the payload as RFC 6455 requires of clients (default true). */
  mask?: boolean;
  /** Declared payload length (default: the payload's), to promise bytes that never come. */
  length?: number;
  fin?: boolean;
  opcode?: number;
}

/** Encodes one client frame (header, masking key, masked payload). */
export function clientFrame(payload: Buffer, opts: FrameOptions = {}): Buffer {
  const len = opts.length ?? payload.length;
  const b0 = ((opts.fin ?? true) ? 0x80 : 0) | (opts.opcode ?? 1);
  const maskBit = (opts.mask ?? true) ? 0x80 : 0;
  let header: Buffer;
  if (len < 126) {
    header = Buffer.from([b0, maskBit | len]);
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[0] = b0;
    header[1] = maskBit | 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = b0;
    header[1] = maskBit | 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  if (!maskBit) return Buffer.concat([header, payload]);
  const key = randomBytes(4);
  const masked = Buffer.from(payload);
  for (let i = 0; i < masked.length; i++) masked[i]! ^= key[i % 4]!;
  return Buffer.concat([header, key, masked]);
}
