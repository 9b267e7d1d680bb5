/**
 * What the load generator's WebSocket client (wsclient.ts) and SSE client
 * (sse-client.ts) share: a bare libuv TCP handle (raw-tcp.ts) reading into
 * one receive buffer per process, the request written on connect, and the
 * lifecycle (a failure before ready is reported once; a close is counted).
 * Subclasses parse what arrives (onRead) and set `ready`.
 */
import { RawTcp } from "./raw-tcp.js";
import type { ConnEvents, ConnOptions, Counters, LoadConn, ProbeSink } from "./wsclient-types.js";

/** The receive buffer every socket of the process reads into: a read allocates nothing. */
const SHARED = Buffer.allocUnsafe(256 * 1024);

export const now = (): number => performance.timeOrigin + performance.now();

/** state: the subclasses' first state is 0 (waiting for the response head); DONE is shared. */
export const DONE = 2;

export abstract class RawConn<Self extends LoadConn> implements LoadConn {
  protected readonly sock: RawTcp;
  state = 0;
  /** Herald: welcome seen. NATS: first PONG after CONNECT (auth accepted). */
  connected = false;
  /** Every subscription confirmed. */
  ready = false;
  paused = false;
  /** Probes: last publisher seq per channel (gap/duplicate counting). */
  lastSeqs: number[];
  tConnect = 0;
  tReady = 0;
  httpStatus = 0;
  /** The server's close code (a close frame, or an SSE `close` event). */
  closeCode = 0;

  constructor(
    readonly o: ConnOptions,
    protected readonly c: Counters,
    protected readonly sink: ProbeSink<Self>,
    protected readonly events: ConnEvents<Self>,
    request: string,
  ) {
    this.tConnect = now();
    this.lastSeqs = o.channels.map(() => -1);
    this.sock = new RawTcp(
      { host: o.host, port: o.port, localAddress: o.localAddress, buffer: SHARED },
      {
        onConnect: () => this.sock.write(request, true),
        onRead: (n, buf) => this.onRead(n, buf),
        onClose: (error) => {
          if (error) this.c.errors[error] = (this.c.errors[error] ?? 0) + 1;
          if (this.state !== DONE) {
            if (!this.ready) this.fail(error ?? (this.httpStatus ? `http_${this.httpStatus}` : "closed"));
            this.state = DONE;
          }
          this.events.onClose(this.self());
        },
      },
    );
  }

  protected abstract onRead(n: number, buf: Buffer): void;

  /**
   * A Herald message frame (the text starts with `{"type":"message"`):
   * counted; on probes parsed for the latency sample and sequence check.
   */
  protected message(text: string): void {
    if (this.paused) this.c.pausedMsgs++;
    else this.c.msgs++;
    if (this.o.track) this.events.onTracked?.(this.self(), text);
    if (!this.o.probe) return;
    let m: { channel?: string; data?: { seq?: unknown; t?: unknown } };
    try {
      m = JSON.parse(text) as typeof m;
    } catch {
      return;
    }
    const seq = m.data?.seq;
    const t = m.data?.t;
    const ch = this.o.channels.length === 1 ? 0 : this.o.channels.indexOf(m.channel ?? "");
    if (typeof seq === "number" && typeof t === "number" && ch >= 0) this.sink.sample(this.self(), seq, t, ch);
  }

  private self(): Self {
    return this as unknown as Self;
  }

  protected fail(why: string): void {
    if (this.state === DONE) return;
    this.state = DONE;
    this.events.onFail(this.self(), why);
    this.sock.close(undefined);
  }

  pause(): void {
    this.paused = true;
    this.sock.pause();
  }

  destroy(): void {
    this.state = DONE;
    this.sock.close(undefined);
  }
}
