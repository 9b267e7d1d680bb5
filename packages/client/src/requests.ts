/**
 * The requests waiting for the server's answer, matched by id, and the one
 * rule for what becomes of them when their connection goes away (lost,
 * retired after a token refresh, or closed by close()).
 */
import type { Conn } from "./connection.js";
import { HeraldError, type HeraldErrorCode } from "./errors.js";
import type { MalformedFrameError } from "./frames.js";
import type { ClientFrame, ClientRequest, ErrorFrame, ServerFrame } from "./protocol.js";

export interface Pending {
  kind: ClientFrame["type"];
  conn: Conn;
  channel?: string;
  /** The `since` a subscribe asked for. */
  since?: number;
  /** A re-subscribe sent on the refresh connection (counted in its resubsPending). */
  resub?: boolean;
  /** 0: no timeout (keepalive pings have their own). */
  timeoutMs: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve: (frame: ServerFrame) => void;
  reject: (err: HeraldError) => void;
}

/** How a connection went away, for settling what was in flight on it. */
export interface Loss {
  /** Rejects what cannot be moved: publishes (outcome unknown) and pings with no successor. */
  error: HeraldError;
  /** The connection that takes over, if there is one: pings move there. */
  successor: Conn | undefined;
}

export class Requests {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  /** `onSettled`: a request of `conn` got its answer, timed out or failed to send. */
  constructor(
    private readonly timeoutMs: number,
    private readonly onSettled: (conn: Conn) => void = () => {},
  ) {}

  /** Sends `frame` with a fresh id on `conn`; resolves with the reply, rejects with an error frame, `timeout` or `disconnected`. */
  send(conn: Conn, frame: ClientRequest, timeoutMs = this.timeoutMs, extra: Partial<Pick<Pending, "since" | "resub">> = {}): Promise<ServerFrame> {
    const id = this.nextId++;
    let text: string;
    try {
      text = JSON.stringify({ ...frame, id });
    } catch (cause) {
      return Promise.reject(new HeraldError("invalid_argument", `data is not serialisable as JSON: ${(cause as Error).message}`, { cause }));
    }
    const ws = conn.ws;
    if (!ws || conn.ended) return Promise.reject(new HeraldError("disconnected", "not connected"));
    return new Promise<ServerFrame>((resolve, reject) => {
      const p: Pending = { kind: frame.type, conn, resolve, reject, timeoutMs, timer: undefined, ...extra };
      if ("channel" in frame) p.channel = frame.channel;
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          if (this.pending.get(id) !== p) return;
          this.pending.delete(id);
          this.onSettled(conn);
          reject(new HeraldError("timeout", `no answer to ${frame.type} within ${timeoutMs} ms`, p.channel === undefined ? {} : { channel: p.channel }));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      try {
        ws.send(text);
      } catch (cause) {
        this.remove(id, p);
        reject(new HeraldError("disconnected", "the connection is closing", { cause }));
      }
    });
  }

  /** The request a reply answers (by its id), removed from the table; undefined when nothing waits for it. */
  take(id: unknown): Pending | undefined {
    if (typeof id !== "number") return undefined;
    const p = this.pending.get(id);
    if (p) this.remove(id, p);
    return p;
  }

  /** Settles the request a reply or error frame answers; returns the error of an error frame that answers none (for an `error` event). */
  answer(frame: Extract<ServerFrame, { type: "unsubscribed" | "ack" | "pong" | "history" | "presence" | "presence_stats" }> | ErrorFrame): HeraldError | undefined {
    const p = this.take(frame.id);
    if (frame.type !== "error") return void p?.resolve(frame);
    const err = new HeraldError(frame.code as HeraldErrorCode, frame.message ?? frame.code, p?.channel === undefined ? {} : { channel: p.channel });
    if (!p) return err;
    p.reject(err);
    return undefined;
  }

  /** A malformed frame that names a waiting request's id rejects that request (instead of leaving it to its timeout); false when it names none. */
  refuse(err: MalformedFrameError): boolean {
    const p = this.take(err.requestId);
    p?.reject(err);
    return p !== undefined;
  }

  /** True when a `kind` request (for `channel`, when given) waits for its answer on `conn`. */
  has(conn: Conn, kind: Pending["kind"], channel?: string): boolean {
    for (const p of this.pending.values()) {
      if (p.conn === conn && p.kind === kind && (channel === undefined || p.channel === channel)) return true;
    }
    return false;
  }

  /**
   * THE settle-on-loss rule, for the requests in flight on `conn` (on every
   * connection when undefined): an unsubscribe resolves (the server drops a
   * connection's subscriptions with it); a ping moves to the successor, or
   * rejects with `loss.error`; a publish rejects with `loss.error` (it may or
   * may not have been applied, so it is not sent again) unless
   * `keepPublishes` (they still wait for their acks); a subscribe is dropped
   * here and its channel returned, for the caller to send again where needed.
   */
  settleLost(conn: Conn | undefined, loss: Loss, keepPublishes = false): string[] {
    const lostSubscribes: string[] = [];
    for (const [id, p] of [...this.pending]) {
      if ((conn !== undefined && p.conn !== conn) || (keepPublishes && p.kind === "publish")) continue;
      this.pending.delete(id);
      if (p.timer !== undefined) clearTimeout(p.timer);
      switch (p.kind) {
        case "unsubscribe":
          p.resolve({ type: "unsubscribed", channel: p.channel ?? "" });
          break;
        case "subscribe":
          if (p.channel !== undefined) lostSubscribes.push(p.channel);
          break;
        case "ping":
          if (loss.successor) this.send(loss.successor, { type: "ping" }, p.timeoutMs).then(p.resolve, p.reject);
          else p.reject(loss.error);
          break;
        case "publish":
          p.reject(loss.error);
          break;
      }
    }
    return lostSubscribes;
  }

  private remove(id: number, p: Pending): void {
    this.pending.delete(id);
    if (p.timer !== undefined) clearTimeout(p.timer);
    this.onSettled(p.conn);
  }
}
