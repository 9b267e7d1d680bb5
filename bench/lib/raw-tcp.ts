/**
 * A TCP client socket on libuv's handle itself (Node's `tcp_wrap` binding),
 * without net.Socket's stream machinery, for the load generator only.
 *
 * Why: on this 2-core machine the generator shares the cores with the server
 * it measures. Per connection, net.Socket spent about 0.12 ms of user CPU on
 * connect + one write + one read (stream state, event emitters, nextTicks);
 * the bare handle about 0.03 ms (10k connections to a plain TCP server, same
 * run). Every CPU-millisecond the generator saves goes to the server under
 * test, so rates measure the server more and the generator less.
 *
 * The bindings are Node internals reached through `process.binding`, which
 * Node 20 still allows for these modules (process.binding's allow-list).
 * If they are missing or changed, this module throws at load: a silent
 * fallback would change every figure.
 */
import { getSystemErrorName } from "node:util";

interface WriteReq {
  handle: TcpHandle;
  oncomplete: (status: number) => void;
  async: boolean;
}
interface TcpHandle {
  bind(address: string, port: number): number;
  connect(req: unknown, address: string, port: number): number;
  setNoDelay(on: boolean): number;
  readStart(): number;
  readStop(): number;
  useUserBuffer(buf: Buffer): void;
  writeLatin1String(req: WriteReq, s: string): number;
  writeUtf8String(req: WriteReq, s: string): number;
  writeBuffer(req: WriteReq, b: Buffer): number;
  shutdown(req: unknown): number;
  close(cb?: () => void): void;
  onread: (ab?: ArrayBuffer) => void;
}
interface Bindings {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => { oncomplete: (status: number) => void };
  SOCKET: number;
  WriteWrap: new () => WriteReq;
  ShutdownWrap: new () => { handle: TcpHandle; oncomplete: (status: number) => void };
  state: Int32Array;
  kReadBytesOrError: number;
}

function load(): Bindings {
  const binding = (process as unknown as { binding(name: string): Record<string, unknown> }).binding;
  const tcp = binding("tcp_wrap") as { TCP?: Bindings["TCP"]; TCPConnectWrap?: Bindings["TCPConnectWrap"]; constants?: { SOCKET?: number } };
  const stream = binding("stream_wrap") as { WriteWrap?: Bindings["WriteWrap"]; ShutdownWrap?: Bindings["ShutdownWrap"]; streamBaseState?: Int32Array; kReadBytesOrError?: number };
  const ok =
    typeof tcp.TCP === "function" &&
    typeof tcp.TCPConnectWrap === "function" &&
    typeof tcp.constants?.SOCKET === "number" &&
    typeof stream.WriteWrap === "function" &&
    typeof stream.ShutdownWrap === "function" &&
    stream.streamBaseState instanceof Int32Array &&
    typeof stream.kReadBytesOrError === "number" &&
    typeof tcp.TCP.prototype.useUserBuffer === "function";
  if (!ok) throw new Error(`bench/lib/raw-tcp.ts: Node ${process.version} does not expose the tcp_wrap/stream_wrap bindings this generator uses`);
  return {
    TCP: tcp.TCP!,
    TCPConnectWrap: tcp.TCPConnectWrap!,
    SOCKET: tcp.constants!.SOCKET!,
    WriteWrap: stream.WriteWrap!,
    ShutdownWrap: stream.ShutdownWrap!,
    state: stream.streamBaseState!,
    kReadBytesOrError: stream.kReadBytesOrError!,
  };
}

const B = load();
const UV_EOF = -4095;
const noop = () => {};

export interface RawTcpHandlers {
  onConnect(): void;
  /** `n` bytes arrived at the start of the shared receive buffer. */
  onRead(n: number, buf: Buffer): void;
  /** The socket is gone: `error` is the errno name (ECONNRESET, ECONNREFUSED...), or undefined after an orderly end or our own close. */
  onClose(error: string | undefined): void;
}

export interface RawTcpOptions {
  host: string;
  port: number;
  localAddress?: string | undefined;
  /** Every read lands here (one buffer for all sockets of the process: a read allocates nothing). */
  buffer: Buffer;
}

export class RawTcp {
  private readonly h: TcpHandle;
  private closed = false;

  constructor(
    o: RawTcpOptions,
    private readonly on: RawTcpHandlers,
  ) {
    this.h = new B.TCP(B.SOCKET);
    let err = o.localAddress ? this.h.bind(o.localAddress, 0) : 0;
    if (err === 0) {
      const req = new B.TCPConnectWrap();
      req.oncomplete = (status) => this.connected(status, o.buffer);
      err = this.h.connect(req, o.host, o.port);
    }
    // A synchronous failure is reported like an asynchronous one: after the constructor returned.
    if (err !== 0) queueMicrotask(() => this.close(getSystemErrorName(err)));
  }

  private connected(status: number, buffer: Buffer): void {
    if (this.closed) return;
    if (status < 0) return this.close(getSystemErrorName(status));
    this.h.setNoDelay(true);
    this.h.useUserBuffer(buffer);
    this.h.onread = () => {
      const n = B.state[B.kReadBytesOrError]!;
      if (n > 0) this.on.onRead(n, buffer);
      else if (n < 0) this.close(n === UV_EOF ? undefined : getSystemErrorName(n));
    };
    this.h.readStart();
    this.on.onConnect();
  }

  write(data: string | Buffer, latin1 = false): void {
    if (this.closed) return;
    const req = new B.WriteWrap();
    req.handle = this.h;
    req.oncomplete = noop;
    req.async = false;
    const err = typeof data !== "string" ? this.h.writeBuffer(req, data) : latin1 ? this.h.writeLatin1String(req, data) : this.h.writeUtf8String(req, data);
    if (err !== 0) this.close(getSystemErrorName(err));
  }

  pause(): void {
    if (!this.closed) this.h.readStop();
  }

  resume(): void {
    if (!this.closed) this.h.readStart();
  }

  /** Sends FIN after what was written, then closes. */
  end(): void {
    if (this.closed) return;
    const req = new B.ShutdownWrap();
    req.handle = this.h;
    req.oncomplete = () => this.close(undefined);
    if (this.h.shutdown(req) !== 0) this.close(undefined);
  }

  close(error: string | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.h.onread = noop; // must stay a function (a native assertion checks it)
    this.h.close();
    this.on.onClose(error);
  }
}
