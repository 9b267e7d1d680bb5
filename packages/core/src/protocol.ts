/**
 * The `herald.v1` client protocol (DESIGN.md "Client protocol"): parsing of
 * client frames and encoding of server frames.
 */
import { ProtocolError, type ProtocolErrorCode } from "./errors.js";

export const SUBPROTOCOL = "herald.v1";

export type RequestId = string | number;

export type ClientFrame =
  | { type: "subscribe"; channel: string; id?: RequestId; since?: number; /** The history epoch `since` belongs to. */ epoch?: string }
  | { type: "unsubscribe"; channel: string; id?: RequestId }
  | { type: "publish"; channel: string; id?: RequestId; /** The frame's `data`, as JSON text. */ payload: string }
  | { type: "ping"; id?: RequestId }
  | { type: "history"; channel: string; id?: RequestId; /** Messages after this position (0 = the oldest kept). */ since: number; limit: number }
  | { type: "presence"; channel: string; id?: RequestId; /** From a previous page; null (or absent) for the first. */ cursor: string | null }
  | { type: "presence_stats"; channel: string; id?: RequestId };

export type ClientFrameType = ClientFrame["type"];

const MAX_ID_LENGTH = 64;

function validId(id: unknown): id is RequestId {
  return (typeof id === "number" && Number.isFinite(id)) || (typeof id === "string" && id.length <= MAX_ID_LENGTH);
}

/**
 * Parses one text frame. Throws ProtocolError("bad_request") with the frame's
 * id (when it had one) for anything that is not a well-formed request.
 */
export function parseClientFrame(text: string): ClientFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new FrameError("bad_request", "frame is not valid JSON", undefined);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FrameError("bad_request", "frame must be a JSON object", undefined);
  }
  const frame = value as Record<string, unknown>;
  const id = frame["id"];
  if (id !== undefined && !validId(id)) {
    throw new FrameError("bad_request", `id must be a number or a string of at most ${MAX_ID_LENGTH} characters`, undefined);
  }
  const type = frame["type"];
  switch (type) {
    case "subscribe": {
      const channel = frame["channel"];
      if (typeof channel !== "string") throw new FrameError("bad_request", "channel must be a string", id);
      const since = frame["since"];
      if (since !== undefined && !(Number.isSafeInteger(since) && (since as number) >= 0)) {
        throw new FrameError("bad_request", "since must be a non-negative integer position", id);
      }
      const epoch = frame["epoch"];
      if (epoch !== undefined && !(typeof epoch === "string" && epoch.length > 0 && epoch.length <= MAX_EPOCH_LENGTH)) {
        throw new FrameError("bad_request", `epoch must be a string of 1 to ${MAX_EPOCH_LENGTH} characters, as a subscribed reply gave it`, id);
      }
      const out: ClientFrame = { type, channel };
      if (id !== undefined) out.id = id;
      if (since !== undefined) out.since = since as number;
      if (epoch !== undefined) out.epoch = epoch as string;
      return out;
    }
    case "unsubscribe": {
      const channel = frame["channel"];
      if (typeof channel !== "string") throw new FrameError("bad_request", "channel must be a string", id);
      return id === undefined ? { type, channel } : { type, channel, id };
    }
    case "publish": {
      const channel = frame["channel"];
      if (typeof channel !== "string") throw new FrameError("bad_request", "channel must be a string", id);
      if (!("data" in frame)) throw new FrameError("bad_request", "publish needs data", id);
      // JSON.parse copes with any nesting depth, JSON.stringify recurses and
      // throws RangeError on a few thousand levels: catch it here, as a bad
      // frame, instead of letting it escape a socket handler.
      let payload: string;
      try {
        payload = JSON.stringify(frame["data"] ?? null);
      } catch {
        throw new FrameError("bad_request", "data is nested too deeply", id);
      }
      return id === undefined ? { type, channel, payload } : { type, channel, payload, id };
    }
    case "ping":
      return id === undefined ? { type } : { type, id };
    case "history": {
      const channel = frame["channel"];
      if (typeof channel !== "string") throw new FrameError("bad_request", "channel must be a string", id);
      const since = frame["since"] ?? 0;
      if (!(Number.isSafeInteger(since) && (since as number) >= 0)) throw new FrameError("bad_request", "since must be a non-negative integer position", id);
      const limit = frame["limit"] ?? HISTORY_DEFAULT_LIMIT;
      if (!(Number.isInteger(limit) && (limit as number) >= 1 && (limit as number) <= HISTORY_MAX_LIMIT)) {
        throw new FrameError("bad_request", `limit must be an integer from 1 to ${HISTORY_MAX_LIMIT}`, id);
      }
      const out: ClientFrame = { type, channel, since: since as number, limit: limit as number };
      if (id !== undefined) out.id = id;
      return out;
    }
    case "presence": {
      const channel = frame["channel"];
      if (typeof channel !== "string") throw new FrameError("bad_request", "channel must be a string", id);
      const cursor = frame["cursor"] ?? null;
      if (cursor !== null && typeof cursor !== "string") throw new FrameError("bad_request", "cursor must be a string from a previous page, or null", id);
      return id === undefined ? { type, channel, cursor } : { type, channel, cursor, id };
    }
    case "presence_stats": {
      const channel = frame["channel"];
      if (typeof channel !== "string") throw new FrameError("bad_request", "channel must be a string", id);
      return id === undefined ? { type, channel } : { type, channel, id };
    }
    default:
      throw new FrameError("bad_request", `unknown frame type ${typeof type === "string" ? JSON.stringify(type.slice(0, 40)) : typeof type}`, id);
  }
}

/**
 * True when `text` holds a character U+0000-U+001F other than JSON's
 * whitespace (tab, LF, CR). No JSON text can contain one unescaped, and it is
 * what an unmasked client frame turns into: uWebSockets.js always reads a
 * masking key, so the frame's first four bytes are taken as the key and the
 * rest XORed with them, and ASCII XOR ASCII lands in that range. The native
 * parser cannot tell us the MASK bit was clear; this is the trace it leaves.
 */
export function hasRawControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return true;
  }
  return false;
}

/** Frames up to this size have their id read back when they are refused unparsed. */
const PEEK_ID_MAX_BYTES = 4096;

/**
 * The request id of a frame that is refused before it is handled (rate
 * limited), so the client can tell which request failed and retry it.
 * Large or malformed frames get none: refusing must stay cheap.
 */
export function peekRequestId(frame: ArrayBuffer | Uint8Array): RequestId | undefined {
  if (frame.byteLength > PEEK_ID_MAX_BYTES) return undefined;
  try {
    const id = (JSON.parse((frame instanceof Uint8Array ? Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength) : Buffer.from(frame)).toString("utf8")) as { id?: unknown } | null)?.id;
    return validId(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

/** A ProtocolError that remembers the id of the frame it answers. */
export class FrameError extends ProtocolError {
  constructor(
    code: ProtocolErrorCode,
    message: string,
    readonly id: RequestId | undefined,
  ) {
    super(code, message);
  }
}

// ---- server frames -------------------------------------------------------

/** A server-side subscription (the token's `subs`) as the welcome lists it: with history its position (`seq`, `epoch`), else the channel alone. */
export interface WelcomeSub {
  channel: string;
  seq?: number;
  epoch?: string;
}

/** `subs`, when it lists any, are the server-side subscriptions the connection holds; without any the frame is exactly as before subs existed. */
export function welcomeFrame(sub: string, connection: string, subs?: readonly WelcomeSub[]): string {
  return JSON.stringify(subs === undefined || subs.length === 0 ? { type: "welcome", sub, connection } : { type: "welcome", sub, connection, subs });
}

/** `server`: the server API did it (a server-side subscribe or unsubscribe), not a client request. */
export function replyFrame(type: "subscribed" | "unsubscribed", channel: string, id: RequestId | undefined, server = false): string {
  if (server) return JSON.stringify({ type, channel, server: true });
  return JSON.stringify(id === undefined ? { type, channel } : { type, channel, id });
}

/** Messages one `history` answer holds at most, and when the request names no `limit`. */
export const HISTORY_MAX_LIMIT = 1000;
export const HISTORY_DEFAULT_LIMIT = 100;

/**
 * A `history` answer: `entries` are `{"seq":N,"prev":P,"data":...}` objects
 * built like message frames (historyEntry), `next` the `since` of the next
 * page, or null when this page reached the newest stored message.
 */
export function historyFrame(channel: string, id: RequestId | undefined, epoch: string, entries: readonly Buffer[], next: number | null): Buffer {
  const head = `{"type":"history","channel":${JSON.stringify(channel)},${id === undefined ? "" : `"id":${JSON.stringify(id)},`}"epoch":${JSON.stringify(epoch)},"messages":[`;
  const parts: Buffer[] = [Buffer.from(head)];
  entries.forEach((e, i) => {
    if (i > 0) parts.push(COMMA);
    parts.push(e);
  });
  parts.push(Buffer.from(`],"next":${next === null ? "null" : next}}`, "latin1"));
  return Buffer.concat(parts);
}

/** One stored message of a `history` answer: the payload encoded as in a message frame. */
export function historyEntry(seq: number, prev: number, payload: Uint8Array): Buffer {
  return messageFrame(OPEN_BRACE, payload, seq, prev);
}

/** Longest `epoch` a client may send back (the server's are 12 to 16 characters). */
export const MAX_EPOCH_LENGTH = 64;

/**
 * `subscribed` for a channel with history: `seq` is the position the stream
 * continues from, `epoch` the life of the history it belongs to; `recovered`
 * is false when the requested position was older than the history window or
 * from another epoch (the client missed messages it cannot get back).
 */
export function subscribedWithPosition(channel: string, id: RequestId | undefined, seq: number, epoch: string, recovered: boolean, server = false): string {
  if (server) return JSON.stringify({ type: "subscribed", channel, server: true, seq, epoch, recovered });
  return JSON.stringify(
    id === undefined ? { type: "subscribed", channel, seq, epoch, recovered } : { type: "subscribed", channel, id, seq, epoch, recovered },
  );
}

export function ackFrame(id: RequestId | undefined): string {
  return JSON.stringify(id === undefined ? { type: "ack" } : { type: "ack", id });
}

export function pongFrame(id: RequestId | undefined): string {
  return JSON.stringify(id === undefined ? { type: "pong" } : { type: "pong", id });
}

export function errorFrame(code: ProtocolErrorCode, message: string, id: RequestId | undefined): string {
  return JSON.stringify(id === undefined ? { type: "error", code, message } : { type: "error", id, code, message });
}

// ---- message frames: built once per broker message ----------------------

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const DATA = Buffer.from('"data":');
const SUFFIX = Buffer.from("}");
const BASE64_OPEN = Buffer.from('"data":"');
const BASE64_CLOSE = Buffer.from('","encoding":"base64"}');
const OPEN_BRACE = Buffer.from("{");
const COMMA = Buffer.from(",");

/**
 * The fixed head of a message frame for one destination, e.g.
 * `{"type":"message","channel":"news.eu",`. Computed once per subscription
 * and reused for every message on it.
 */
export function channelMessageHead(channel: string): Buffer {
  return Buffer.from(`{"type":"message","channel":${JSON.stringify(channel)},`);
}

/** Head for messages sent to one user (`<prefix>.user.<sub>`). */
export function userMessageHead(sub: string): Buffer {
  return Buffer.from(`{"type":"message","user":${JSON.stringify(sub)},`);
}

/**
 * Builds the complete frame: the payload is embedded as-is when it is valid
 * UTF-8 JSON (no re-serialisation; a leading UTF-8 BOM is dropped), otherwise
 * it is sent base64-encoded with `"encoding":"base64"`, so binary payloads
 * survive and every frame stays valid JSON. With a position,
 * `"seq":N,"prev":P,` goes before the data.
 */
export function messageFrame(head: Buffer, payload: Uint8Array, seq?: number, prev?: number): Buffer {
  const parts: Uint8Array[] = [head];
  if (seq !== undefined) parts.push(Buffer.from(`"seq":${seq},"prev":${prev ?? 0},`, "latin1"));
  const json = embeddableJson(payload);
  if (json) {
    parts.push(DATA, json, SUFFIX);
  } else {
    const b64 = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString("base64");
    parts.push(BASE64_OPEN, Buffer.from(b64, "latin1"), BASE64_CLOSE);
  }
  return Buffer.concat(parts);
}

/**
 * The bytes to embed when `payload` is one UTF-8 JSON value, else undefined.
 * The check must run on exactly the bytes that are embedded: a decoder that
 * skips a BOM would approve `\ufeff{...}`, which no JSON parser accepts, so
 * the BOM is cut off first and the decoder told to keep any other one.
 */
function embeddableJson(payload: Uint8Array): Uint8Array | undefined {
  const body = hasBom(payload) ? payload.subarray(3) : payload;
  if (body.length === 0) return undefined;
  try {
    JSON.parse(utf8.decode(body));
    return body;
  } catch {
    return undefined;
  }
}

function hasBom(b: Uint8Array): boolean {
  return b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf;
}
