/**
 * The gateway's SSE transport dressed as a WebSocket (WebSocketLike), so the
 * client drives it exactly like one: server frames arrive as events of
 * `GET /sse` (read with fetch streaming, since EventSource can neither set
 * the Authorization header nor tell the HTTP status of a refusal), client
 * frames go out as batched `POST /sse/commands` naming the connection id of
 * the welcome.
 *
 * Close codes it reports (onclose), for the client's close policy:
 * - the stream's last event `{"type":"close","code":N,"reason":...}`: N;
 * - GET refused (not 200): 1006 after an error "Unexpected server response:
 *   NNN" (the text Node's `ws` uses, so a refused upgrade and a refused
 *   stream read alike), with the Herald error code of the JSON body if any;
 * - the stream ended without a close event, or a network failure: 1006;
 * - POST /sse/commands answered 401 (token refused): 4001, so a provider is
 *   asked for a new token; 404 (connection unknown or closed) or 403 (not
 *   this user's connection): 1006, after waiting briefly for the stream's own
 *   close event, which says more (a 1001 drain, a 4001); 403 with
 *   `forbidden_origin`: 4003 (policy, as the GET would be); 413: 1009 (frame
 *   too large, as the WebSocket would close); 400: 1002 (the gateway does not
 *   take what this client sends: reconnecting cannot fix it); 503 (broker
 *   unavailable, nothing was taken): the same batch is posted again, up to
 *   POST_RETRIES times, then 1006; any other status: 1006.
 */
import { CloseCodes, SUBPROTOCOL } from "./protocol.js";
import { SseParser } from "./sse-parser.js";
import type { WebSocketLike } from "./types.js";

/** The part of the WHATWG fetch the socket uses: browsers and Node 20's global both fit. */
export type FetchLike = (url: string, init: FetchInit) => Promise<FetchResponse>;

export interface FetchInit {
  method?: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
  cache?: "no-store";
}

export interface FetchResponse {
  readonly status: number;
  readonly body: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> } } | null;
  text(): Promise<string>;
}

export interface SseSocketOptions {
  /** `GET` endpoint of the stream, e.g. `https://rt.example.com/sse`. */
  url: string;
  /** `POST` endpoint of the commands, e.g. `https://rt.example.com/sse/commands`. */
  commandsUrl: string;
  token: string;
  fetch: FetchLike;
}

/** Per POST: the gateway takes at most 100 frames and 64 KiB + 1 KiB; half the bytes leaves room for the envelope. */
export const MAX_BATCH_FRAMES = 100;
export const MAX_BATCH_BYTES = 32 * 1024;
/** A 503 (broker unavailable) batch is posted again this often, 250 ms · 2^n apart. */
const POST_RETRIES = 3;
/** After a 404/403 the stream's own close event usually follows within this long. */
const CLOSE_EVENT_GRACE_MS = 1_000;

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

export class SseSocket implements WebSocketLike {
  readyState = CONNECTING;
  protocol = "";
  /** Unused (SSE carries text only); kept for WebSocketLike. */
  binaryType = "arraybuffer";
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onopen: ((ev: any) => void) | null = null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onmessage: ((ev: any) => void) | null = null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onclose: ((ev: any) => void) | null = null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  onerror: ((ev: any) => void) | null = null;

  /** Aborts the stream and a POST in flight alike. */
  private readonly abort = new AbortController();
  private readonly queue: string[] = [];
  /** From the welcome: commands name it. Frames sent before it wait. */
  private connection: string | undefined;
  private posting = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private done = false;
  /** Set by close(): the code and reason to report. */
  private closing: { code: number; reason: string } | undefined;

  constructor(private readonly opts: SseSocketOptions) {
    // Started after the caller has bound its handlers, as a WebSocket's events come.
    queueMicrotask(() => void this.stream());
  }

  /** Queues a frame; it goes out with the next POST (one in flight at a time, so the gateway sees them in order). */
  send(data: string): void {
    if (this.done || this.readyState >= CLOSING) return;
    this.queue.push(data);
    this.pump();
  }

  close(code: number = CloseCodes.Normal, reason = ""): void {
    if (this.done || this.readyState >= CLOSING) return;
    this.readyState = CLOSING;
    // What the aborted reads report on their way out is this close, not a failure.
    this.closing = { code, reason };
    this.abort.abort();
    // A WebSocket reports its own close asynchronously too.
    queueMicrotask(() => this.finish(code, reason));
  }

  private headers(extra: Record<string, string>): Record<string, string> {
    return { authorization: `Bearer ${this.opts.token}`, ...extra };
  }

  private async stream(): Promise<void> {
    if (this.done) return;
    let res: FetchResponse;
    try {
      res = await this.opts.fetch(this.opts.url, { headers: this.headers({ accept: "text/event-stream" }), signal: this.abort.signal, cache: "no-store" });
    } catch (err) {
      return this.finish(CloseCodes.Abnormal, "", `SSE stream to ${this.opts.url} failed: ${errorMessage(err)}`);
    }
    if (this.done) return;
    if (res.status !== 200 || !res.body) {
      const code = await heraldErrorCode(res);
      return this.finish(CloseCodes.Abnormal, "", `Unexpected server response: ${res.status}${code ? ` (${code})` : ""}`, { status: res.status, refusal: code });
    }
    this.readyState = OPEN;
    this.protocol = SUBPROTOCOL;
    this.onopen?.({});
    const parser = new SseParser((data) => this.onEvent(data));
    const decoder = new TextDecoder();
    try {
      const reader = res.body.getReader();
      while (!this.done) {
        const { done, value } = await reader.read();
        if (done) break;
        if (value) parser.push(decoder.decode(value, { stream: true }));
      }
    } catch (err) {
      return this.finish(CloseCodes.Abnormal, "", `SSE stream lost: ${errorMessage(err)}`);
    }
    this.finish(CloseCodes.Abnormal, "", "the SSE stream ended without a close event");
  }

  private onEvent(data: string): void {
    if (this.done) return;
    // Message frames (nearly all of them) start with this fixed head; only the others are looked into.
    if (!data.startsWith('{"type":"message"')) {
      const frame = parseObject(data);
      if (frame?.["type"] === "close") {
        const code = typeof frame["code"] === "number" ? frame["code"] : CloseCodes.Abnormal;
        return this.finish(code, typeof frame["reason"] === "string" ? frame["reason"] : "");
      }
      if (frame?.["type"] === "welcome" && this.connection === undefined && typeof frame["connection"] === "string") {
        this.connection = frame["connection"];
        queueMicrotask(() => this.pump());
      }
    }
    this.onmessage?.({ data });
  }

  /** Posts the next batch unless one is in flight. */
  private pump(): void {
    if (this.posting || this.done || this.connection === undefined || this.queue.length === 0) return;
    this.posting = true;
    void this.post(takeBatch(this.queue), 0);
  }

  private async post(batch: string[], retry: number): Promise<void> {
    const body = `{"connection":${JSON.stringify(this.connection)},"frames":[${batch.join(",")}]}`;
    let status: number;
    let answer: string;
    try {
      const res = await this.opts.fetch(this.opts.commandsUrl, {
        method: "POST",
        headers: this.headers({ "content-type": "application/json" }),
        body,
        signal: this.abort.signal,
      });
      status = res.status;
      // Read to the end (also so the HTTP connection is free for the next POST).
      answer = await res.text().catch(() => "");
    } catch (err) {
      return this.finish(CloseCodes.Abnormal, "", `POST ${this.opts.commandsUrl} failed: ${errorMessage(err)}`);
    }
    if (this.done) return;
    if (status >= 200 && status < 300) {
      this.posting = false;
      return this.pump();
    }
    const why = `POST ${this.opts.commandsUrl} answered ${status}`;
    if (status === 503 && retry < POST_RETRIES) {
      this.timer = setTimeout(() => void this.post(batch, retry + 1), 250 * 2 ** retry);
      return;
    }
    if (status === 403 && errorCodeOf(answer) === "forbidden_origin") return this.finish(CloseCodes.Forbidden, "origin not allowed (HTTP 403)", why);
    if (status === 404 || status === 403) {
      this.timer = setTimeout(() => this.finish(CloseCodes.Abnormal, "", why), CLOSE_EVENT_GRACE_MS);
      return;
    }
    const code = status === 401 ? CloseCodes.TokenExpired : status === 413 ? CloseCodes.TooLarge : status === 400 ? CloseCodes.ProtocolError : CloseCodes.Abnormal;
    this.finish(code, why.slice(0, 120), why);
  }

  /** The one way out: every event after this is dropped, the stream and any POST are aborted. */
  private finish(code: number, reason: string, errorText?: string, refused?: { status: number; refusal: string | undefined }): void {
    if (this.done) return;
    if (this.closing) {
      ({ code, reason } = this.closing);
      errorText = undefined;
    }
    this.done = true;
    this.readyState = CLOSED;
    this.queue.length = 0;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.abort.abort();
    if (errorText !== undefined) this.onerror?.({ message: errorText, ...refused });
    this.onclose?.({ code, reason, wasClean: code !== CloseCodes.Abnormal });
  }
}

/** Takes the frames of the next POST off `queue`: up to MAX_BATCH_FRAMES and MAX_BATCH_BYTES, and always at least one. */
export function takeBatch(queue: string[]): string[] {
  let bytes = 0;
  let n = 0;
  while (n < queue.length && n < MAX_BATCH_FRAMES) {
    const size = utf8Length(queue[n]!);
    // A frame larger than a batch goes alone: the gateway then judges it as it would on a WebSocket.
    if (n > 0 && bytes + size > MAX_BATCH_BYTES) break;
    bytes += size;
    n++;
  }
  return queue.splice(0, n);
}

/** UTF-8 size of `s` without encoding it. */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      n += 1;
    } else if (c >= 0xd800 && c <= 0xdbff) {
      // A surrogate pair: 4 bytes for its 2 units.
      n += 2;
      i++;
    } else {
      n += 2;
    }
  }
  return n;
}

/** The `error.code` of a Herald refusal body (`{"error":{"code":...}}`); undefined for anything else (a proxy's page). */
async function heraldErrorCode(res: FetchResponse): Promise<string | undefined> {
  try {
    return errorCodeOf(await res.text());
  } catch {
    return undefined;
  }
}

function errorCodeOf(body: string): string | undefined {
  const code = (parseObject(body)?.["error"] as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function errorMessage(err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string } } | undefined;
  return [e?.message ?? String(err), e?.cause?.message].filter(Boolean).join(": ");
}
