/**
 * The SSE adapter of Connection (GET /sse, sse-route.ts): every server frame
 * is one event, `data: <frame JSON>`; channel messages of the stream's URL
 * channels also carry `id: <resume id>` (sse-resume.ts). Closing writes a
 * last event `{"type":"close","code":N,"reason":"..."}` (SSE has no close
 * frame) and ends the response.
 */
import type { Identity } from "@herald/core";
import type { Connection } from "./connection.js";
import { HeldFrames, type HeldTopics } from "./pre-welcome.js";
import type { RateLimiter } from "./rate-limiter.js";
import { encodeResumeId, type ChannelPosition } from "./sse-resume.js";
import { TopicSet } from "./topic-set.js";
import type { HttpResponse } from "./uws.js";

/** Where an SSE connection's topic joins go: the hub that fans topic frames out to streams. */
export interface SseTopics {
  join(topic: string, conn: SseConnection): void;
  leave(topic: string, conn: SseConnection): void;
  /** `conn` has queued events: call its flush() once this turn of the event loop is done. */
  schedule(conn: SseConnection): void;
}

const KEEPALIVE = ": keepalive\n\n";

/**
 * `data:` lines of one frame, ending with the event's blank line. A frame is
 * one line unless a payload embedded as-is holds JSON whitespace newlines;
 * each line then gets its own `data:` and EventSource joins them with "\n".
 */
export function dataLines(frame: Buffer | string): Buffer {
  const text = typeof frame === "string" ? frame : frame.toString("utf8");
  return Buffer.from(`data: ${text.includes("\n") || text.includes("\r") ? text.replace(/\r\n|\r|\n/g, "\ndata: ") : text}\n\n`);
}

/** Channel and seq of a message frame, read from its fixed head (protocol.ts messageFrame) without parsing the payload. */
const MESSAGE_HEAD = /^\{"type":"message","channel":("(?:[^"\\]|\\.)*"),"seq":(\d+),/;
export function messagePosition(frame: Buffer | string): { channel: string; seq: number } | undefined {
  const head = typeof frame === "string" ? frame.slice(0, 512) : frame.subarray(0, 512).toString("latin1");
  const m = MESSAGE_HEAD.exec(head);
  if (!m) return undefined;
  // Channel names are ASCII (channelProblem), so the latin1 read is exact.
  return { channel: JSON.parse(m[1]!) as string, seq: Number(m[2]) };
}

export class SseConnection implements Connection {
  readonly topics = new TopicSet();
  closed = false;
  /** Not WebSocket frames: no frame deadline (SocketGuard), the stream only writes. */
  pinged = false;
  /** Bytes handed to uWS since it last reported the socket drained (write() returned false). */
  private backlog = 0;
  /**
   * Events written since the last flush. Writes are queued and flushed once
   * per event-loop turn (SseHub.schedule): the messages NATS hands over in
   * one read go out in one send() per stream, as uWS pub/sub does for
   * WebSockets, instead of a syscall per message per stream.
   */
  private pending: Array<Buffer | string> = [];
  private pendingBytes = 0;
  /** Made with the first position (history on): a stream without one has no Map. */
  private positions: Map<string, ChannelPosition> | undefined;
  private held: HeldFrames | undefined;

  constructor(
    readonly id: string,
    readonly identity: Identity,
    readonly ip: string,
    readonly userTopic: string,
    readonly limiter: RateLimiter,
    private readonly res: HttpResponse,
    private readonly hub: SseTopics,
    /** The URL's `channel` parameters, in order: the resume id lists their positions. */
    readonly channels: readonly string[],
    /** Called once when the stream is over (closed by us or aborted by the client). */
    private readonly onEnd: (conn: SseConnection, code: number) => void,
  ) {
    // uWS calls this once what it buffered is on its way; until then every
    // write adds to the backlog the slow-consumer checks read.
    res.onWritable(() => {
      this.backlog = 0;
      return true;
    });
  }

  get lastFrameAt(): number {
    return Date.now();
  }

  ping(): void {}

  /** The client went away (uWS onAborted): the response may not be touched after it. */
  aborted(): void {
    if (this.closed) return;
    this.closed = true;
    this.held?.end();
    this.held = undefined;
    this.pending = [];
    this.pendingBytes = 0;
    // What a WebSocket client would see: the connection went without a close frame.
    this.onEnd(this, 1006);
  }

  hold(topics: HeldTopics): void {
    this.held = new HeldFrames(topics);
  }

  welcome(frame: string): void {
    const held = this.held;
    this.held = undefined;
    if (!held) return this.send(frame);
    held.end();
    this.batch(() => {
      this.send(frame);
      for (const f of held.frames) this.send(f);
      for (const topic of held.topics) this.hub.join(topic, this);
    });
  }

  send(frame: Buffer | string): void {
    if (this.held) return this.held.push(frame);
    this.note(frame);
    const at = messagePosition(frame);
    this.event(at, dataLines(frame));
  }

  /**
   * One topic frame, its `data:` lines encoded once for every stream on the
   * topic (sse-hub.ts); only the id line is this stream's own.
   */
  deliver(at: { channel: string; seq: number } | undefined, data: Buffer, frame: Buffer): void {
    if (this.held) return this.held.push(frame);
    this.event(at, data);
  }

  /** Writes a comment line: proxies and browsers see traffic on a quiet stream. */
  keepalive(): void {
    this.write(KEEPALIVE);
  }

  /** Writes are queued until the turn ends anyway (flush), so a batch is one send() already. */
  batch(fn: () => void): void {
    fn();
  }

  bufferedAmount(): number {
    return this.backlog + this.pendingBytes + (this.held?.bytes ?? 0);
  }

  subscribe(topic: string): void {
    if (this.held) this.held.join(topic);
    else this.hub.join(topic, this);
  }

  unsubscribe(topic: string): void {
    if (this.held) this.held.leave(topic);
    else this.hub.leave(topic, this);
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    // Closed before its welcome (a token sub refused): nothing held is sent.
    this.held?.end();
    this.held = undefined;
    this.write(dataLines(JSON.stringify({ type: "close", code, reason })));
    this.flush();
    this.closed = true;
    this.res.cork(() => this.res.end());
    this.onEnd(this, code);
  }

  private event(at: { channel: string; seq: number } | undefined, data: Buffer): void {
    if (at && this.channels.includes(at.channel)) {
      const known = this.positions?.get(at.channel);
      if (known) {
        known.seq = at.seq;
        this.write(`id: ${encodeResumeId(this.channels, this.positions!)}\n`, data);
        return;
      }
    }
    this.write(data);
  }

  /** Positions come with `subscribed` replies (seq and epoch) and move with every message. */
  private note(frame: Buffer | string): void {
    const text = typeof frame === "string" ? frame : undefined;
    if (text === undefined || !text.startsWith('{"type":"subscribed"')) return;
    const reply = JSON.parse(text) as { channel?: string; seq?: number; epoch?: string };
    if (reply.channel !== undefined && reply.seq !== undefined && reply.epoch !== undefined && this.channels.includes(reply.channel)) {
      (this.positions ??= new Map()).set(reply.channel, { seq: reply.seq, epoch: reply.epoch });
    }
  }

  private write(...chunks: Array<Buffer | string>): void {
    if (this.closed) return;
    if (this.pending.length === 0) this.hub.schedule(this);
    for (const chunk of chunks) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
    }
  }

  /** Hands the queued events to uWS in one corked write (one send() unless it buffers). */
  flush(): void {
    if (this.closed || this.pending.length === 0) return;
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    // One write of the joined events: a call into uWS (and an HTTP chunk)
    // costs more than copying the turn's few events of this stream.
    const out = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks.map((c) => (typeof c === "string" ? Buffer.from(c) : c)));
    this.res.cork(() => {
      const ok = this.res.write(out);
      // Once uWS buffers, count everything until it drains (an upper bound:
      // part of it may have gone out).
      if (!ok || this.backlog > 0) this.backlog += out.length;
    });
  }
}
