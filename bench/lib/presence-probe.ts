/**
 * One measuring connection of the presence benchmark: a plain WebSocket
 * (the `ws` package) speaking Herald's JSON frames, with replies matched by
 * `id` and join/leave frames handed to a listener. Latencies are taken in the
 * coordinator's process, so send and receipt share one clock.
 */
import WebSocket from "ws";
import type { Endpoint } from "./protocol.js";
import { now } from "./wsclient.js";

export type Frame = Record<string, unknown> & { type: string };

export class PresenceProbe {
  private nextId = 1;
  private readonly waiting = new Map<number, (f: Frame) => void>();
  /** join / leave frames, with their receipt time (ms, fractional). */
  onEvent: ((f: Frame, at: number) => void) | undefined;

  private constructor(
    private readonly ws: WebSocket,
    /** The connection id from this connection's welcome. */
    readonly connection: string,
  ) {
    ws.on("message", (data) => {
      const at = now();
      const f = JSON.parse(String(data)) as Frame;
      if (f.type === "join" || f.type === "leave") this.onEvent?.(f, at);
      const id = typeof f["id"] === "number" ? f["id"] : undefined;
      const done = id === undefined ? undefined : this.waiting.get(id);
      if (done) {
        this.waiting.delete(id!);
        done(f);
      }
    });
  }

  static open(ep: Endpoint, token: string, localAddress = "127.0.0.1"): Promise<PresenceProbe> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://${ep.host}:${ep.port}${ep.path}`, { headers: { authorization: `Bearer ${token}` }, localAddress });
      const fail = (err: Error) => reject(err);
      ws.once("error", fail);
      ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
      ws.once("message", (data) => {
        const f = JSON.parse(String(data)) as Frame;
        if (f.type !== "welcome") return reject(new Error(`expected welcome, got ${String(data).slice(0, 200)}`));
        ws.off("error", fail);
        resolve(new PresenceProbe(ws, String(f["connection"])));
      });
    });
  }

  /** Sends a frame with a fresh id and resolves with the reply carrying it (error frames included), and the round trip in ms. */
  request(frame: Record<string, unknown>, timeoutMs = 30_000): Promise<{ reply: Frame; ms: number }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`no reply to ${JSON.stringify(frame).slice(0, 120)} within ${timeoutMs} ms`));
      }, timeoutMs);
      const t0 = now();
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        resolve({ reply, ms: now() - t0 });
      });
      this.ws.send(JSON.stringify({ ...frame, id }));
    });
  }

  /** The reply, or an Error naming the frame when the reply is an error frame. */
  async ok(frame: Record<string, unknown>): Promise<{ reply: Frame; ms: number }> {
    const r = await this.request(frame);
    if (r.reply.type === "error") throw new Error(`${JSON.stringify(frame)} -> ${JSON.stringify(r.reply)}`);
    return r;
  }

  close(): void {
    this.ws.terminate();
  }
}
