/**
 * The socket itself: opening it (a WebSocket the way browsers allow, with
 * the token as a subprotocol since a browser cannot set headers; or the SSE
 * stream of sse-socket.ts, which looks like one), binding its events, and
 * letting go of it. Works with the browser's WebSocket, Node 22+'s global and
 * the `ws` package alike; knows nothing of herald.v1 state.
 */
import { reportListenerError } from "./emitter.js";
import { CloseCodes, SUBPROTOCOL } from "./protocol.js";
import { SseSocket } from "./sse-socket.js";
import type { ResolvedTransports } from "./transport-options.js";
import type { TransportName, WebSocketConstructor, WebSocketLike } from "./types.js";

export interface SocketEvents {
  /** A text frame (binary frames are decoded as UTF-8). */
  onText(text: string): void;
  onClose(code: number, reason: string): void;
  /**
   * `httpStatus`: of a refused upgrade or stream, when the runtime tells (Node `ws`, SSE; browsers' WebSocket
   * never does). `refusal`: the Herald error code of a refused SSE stream.
   */
  onError(text: string, httpStatus: number | undefined, refusal: string | undefined): void;
}

/** Opens `transport` carrying `token`; throws what a WebSocket constructor throws (bad URL). */
export function openTransport(transport: TransportName, t: ResolvedTransports, url: string, token: string, events: SocketEvents): WebSocketLike {
  if (transport === "sse" && t.sse) return bindSocket(new SseSocket({ ...t.sse, token }), events);
  if (!t.WebSocket) throw new Error("no WebSocket implementation");
  return openSocket(t.WebSocket, url, token, events);
}

const utf8 = new TextDecoder();

/** Opens a herald.v1 WebSocket carrying `token`; throws what the constructor throws (bad URL). */
export function openSocket(WS: WebSocketConstructor, url: string, token: string, events: SocketEvents): WebSocketLike {
  return bindSocket(new WS(url, [SUBPROTOCOL, `bearer.${token}`]), events);
}

/** Routes the events of `ws` to `events`. */
export function bindSocket(ws: WebSocketLike, events: SocketEvents): WebSocketLike {
  try {
    ws.binaryType = "arraybuffer";
  } catch {
    /* read-only in some implementations */
  }
  ws.onerror = (ev: { message?: string; error?: { message?: string }; status?: unknown; refusal?: unknown }) => {
    const text = ev?.message ?? ev?.error?.message;
    if (typeof text !== "string") return;
    // SSE sockets name the status; Node `ws` only says it in the message.
    const status = typeof ev.status === "number" ? ev.status : Number(/Unexpected server response: (\d{3})/.exec(text)?.[1] ?? NaN);
    events.onError(text, Number.isNaN(status) ? undefined : status, typeof ev.refusal === "string" ? ev.refusal : undefined);
  };
  ws.onclose = (ev: { code?: number; reason?: string }) => events.onClose(ev?.code ?? CloseCodes.Abnormal, ev?.reason ?? "");
  ws.onmessage = (ev: { data: unknown }) => {
    const raw = ev.data;
    const text = typeof raw === "string" ? raw : raw instanceof ArrayBuffer || ArrayBuffer.isView(raw) ? utf8.decode(raw as ArrayBuffer) : undefined;
    if (text === undefined) return;
    // A bug in handling one frame must not escape into the WebSocket implementation's event loop.
    try {
      events.onText(text);
    } catch (err) {
      reportListenerError(err);
    }
  };
  return ws;
}

/** Stops every event of `ws` from reaching the client. */
export function unbindSocket(ws: WebSocketLike): void {
  // No-op handlers rather than null: the `ws` package throws on an
  // 'error' event nobody listens to (e.g. close() while connecting).
  const noop = () => {};
  ws.onopen = ws.onmessage = ws.onerror = ws.onclose = noop;
}

/** Closes `ws` without waiting for (or reporting) the close handshake. */
export function closeSocket(ws: WebSocketLike, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    /* already closing, or a code this implementation refuses */
  }
}
