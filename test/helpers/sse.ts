/** A test SSE reader on Node's fetch streaming: events parsed as they arrive, waited on by predicate. */
import { setTimeout as delay } from "node:timers/promises";

export interface SseEvent {
  id?: string;
  /** data lines joined with "\n" (EventSource's rule). */
  data?: string;
  /** The frame, when data is JSON. */
  frame?: Record<string, unknown>;
  comments: string[];
}

/** Parses complete SSE events out of `text`; returns them and the unfinished rest. */
export function parseEvents(text: string): { events: SseEvent[]; rest: string } {
  const events: SseEvent[] = [];
  const blocks = text.split("\n\n");
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    const ev: SseEvent = { comments: [] };
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) ev.comments.push(line.slice(1).trim());
      else if (line.startsWith("id: ")) ev.id = line.slice(4);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (data.length > 0) {
      ev.data = data.join("\n");
      try {
        ev.frame = JSON.parse(ev.data) as Record<string, unknown>;
      } catch {
        // not JSON: left as data
      }
    }
    events.push(ev);
  }
  return { events, rest };
}

export class SseReader {
  readonly events: SseEvent[] = [];
  ended = false;
  private readonly controller = new AbortController();
  private waiters: Array<() => void> = [];

  private constructor(readonly status: number, readonly headers: Headers) {}

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseReader | { status: number; body: string; headers: Headers }> {
    const controller = new AbortController();
    const res = await fetch(url, { headers: { accept: "text/event-stream", ...headers }, signal: controller.signal });
    if (res.status !== 200) return { status: res.status, body: await res.text(), headers: res.headers };
    const reader = new SseReader(res.status, res.headers);
    reader.controller.signal.addEventListener("abort", () => controller.abort());
    void reader.pump(res.body!);
    return reader;
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of body) {
        const parsed = parseEvents(buf + decoder.decode(chunk, { stream: true }));
        buf = parsed.rest;
        if (parsed.events.length > 0) {
          this.events.push(...parsed.events);
          this.wake();
        }
      }
    } catch {
      // aborted
    }
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits for the first event (from index `from`) that `pred` accepts. */
  async next(pred: (e: SseEvent) => boolean, timeoutMs = 10_000, from = 0): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.events.slice(from).find(pred);
      if (found) return found;
      if (this.ended) throw new Error(`stream ended without the event; got ${JSON.stringify(this.events)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no such event in ${timeoutMs} ms; got ${JSON.stringify(this.events)}`);
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), delay(left, undefined, { ref: false })]);
    }
  }

  /** Resolves when the server ended the stream. */
  async end(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("stream did not end");
      await Promise.race([new Promise<void>((r) => this.waiters.push(r)), delay(left, undefined, { ref: false })]);
    }
  }

  close(): void {
    this.controller.abort();
  }
}
