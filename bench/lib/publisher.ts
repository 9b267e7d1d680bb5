/**
 * Publishes timestamped, sequenced messages at a fixed rate through NATS or
 * the Herald publisher HTTP API. Payload: {"seq":N,"t":<epoch ms, fractional>,"pad":"..."}
 * padded to exactly `size` bytes. Messages go out in small batches on a 5 ms
 * tick (what a busy producer looks like), with a sequence per channel.
 */
import http from "node:http";
import { connect, type NatsConnection } from "nats";
import { now } from "./wsclient.js";

export type PublishVia = { kind: "nats"; url: string; token?: string; subjectPrefix: string } | { kind: "http"; url: string; apiKey: string };

export interface PublishResult {
  published: number;
  failed: number;
  perChannel: Map<string, number>;
  seconds: number;
}

export function payloadFor(seq: number, size: number): string {
  const head = `{"seq":${seq},"t":${now().toFixed(3)},"pad":"`;
  const padLen = Math.max(0, size - head.length - 2);
  return head + "x".repeat(padLen) + '"}';
}

export class Publisher {
  private nc: NatsConnection | undefined;
  private readonly seqs = new Map<string, number>();
  private agent: http.Agent | undefined;
  /** Messages handed to NATS / HTTP so far (progress display). */
  sent = 0;

  private constructor(private readonly via: PublishVia) {}

  static async open(via: PublishVia): Promise<Publisher> {
    const p = new Publisher(via);
    if (via.kind === "nats") {
      p.nc = await connect({ servers: via.url, name: "herald-bench-publisher", ...(via.token ? { token: via.token } : {}) });
    } else {
      p.agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    }
    return p;
  }

  private nextSeq(channel: string): number {
    const s = (this.seqs.get(channel) ?? 0) + 1;
    this.seqs.set(channel, s);
    return s;
  }

  /** Messages published so far per channel (the last `data.seq` of each). */
  counts(): Record<string, number> {
    return Object.fromEntries(this.seqs);
  }

  /** Publishes `rate` msg/s for `seconds` (or until `until()` says so), round-robin over `channels`. */
  /** `payload` makes the body (default payloadFor: `"pad":"xxx…"`); it must carry `seq` and `t` for the probes. */
  async run(opts: { rate: number; size: number; seconds: number; channels: string[]; onTick?: () => void; until?: () => boolean; payload?: (seq: number, size: number) => string }): Promise<PublishResult> {
    const { rate, size, seconds, channels } = opts;
    const perChannel = new Map<string, number>();
    let published = 0;
    let failed = 0;
    let pending = 0;
    const t0 = now();
    const total = Math.round(rate * seconds);
    let ch = 0;
    const enc = new TextEncoder();
    const make = opts.payload ?? payloadFor;
    while (published + failed + pending < total && !opts.until?.()) {
      const due = Math.min(total, Math.floor(((now() - t0) / 1000) * rate) + 1);
      while (published + failed + pending < due) {
        const channel = channels[ch++ % channels.length]!;
        const body = make(this.nextSeq(channel), size);
        perChannel.set(channel, (perChannel.get(channel) ?? 0) + 1);
        this.sent++;
        if (this.via.kind === "nats") {
          this.nc!.publish(`${this.via.subjectPrefix}.ch.${channel}`, enc.encode(body));
          published++;
        } else {
          pending++;
          this.post(channel, body).then(
            (ok) => {
              pending--;
              if (ok) published++;
              else failed++;
            },
            () => {
              pending--;
              failed++;
            },
          );
        }
      }
      opts.onTick?.();
      await new Promise((r) => setTimeout(r, 5));
    }
    if (this.nc) await this.nc.flush();
    const end = Date.now() + 10_000;
    while (pending > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    return { published, failed, perChannel, seconds: (now() - t0) / 1000 };
  }

  private post(channel: string, body: string): Promise<boolean> {
    const via = this.via as Extract<PublishVia, { kind: "http" }>;
    const u = new URL(`/v1/channels/${encodeURIComponent(channel)}/messages`, via.url);
    return new Promise((resolve, reject) => {
      const req = http.request(
        u,
        {
          method: "POST",
          agent: this.agent,
          headers: { authorization: `Bearer ${via.apiKey}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode === 202 || res.statusCode === 200));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  async close(): Promise<void> {
    await this.nc?.close().catch(() => {});
    this.agent?.destroy();
  }
}
