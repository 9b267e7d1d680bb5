/**
 * The WebSocket itself: opening it the way browsers allow (the token as a
 * subprotocol, since a browser cannot set headers), binding its events, and
 * letting go of it. Works with the browser's WebSocket, Node 22+'s global and
 * the `ws` package alike; knows nothing of herald.v1 state.
 */
import { reportListenerError } from "./emitter.js";
import { CloseCodes, SUBPROTOCOL } from "./protocol.js";
import type { WebSocketConstructor, WebSocketLike } from "./types.js";

export interface SocketEvents {
  /** A text frame (binary frames are decoded as UTF-8). */
  onText(text: string): void;
  onClose(code: number, reason: string): void;
  /** `httpStatus`: of a refused upgrade, when the runtime tells (Node `ws`; browsers never do). */
  onError(text: string, httpStatus: number | undefined): void;
}

const utf8 = new TextDecoder();

/** Opens a herald.v1 WebSocket carrying `token`; throws what the constructor throws (bad URL). */
export function openSocket(WS: WebSocketConstructor, url: string, token: string, events: SocketEvents): WebSocketLike {
  const ws = new WS(url, [SUBPROTOCOL, `bearer.${token}`]);
  try {
    ws.binaryType = "arraybuffer";
  } catch {
    /* read-only in some implementations */
  }
  ws.onerror = (ev: { message?: string; error?: { message?: string } }) => {
    const text = ev?.message ?? ev?.error?.message;
    if (typeof text !== "string") return;
    const status = /Unexpected server response: (\d{3})/.exec(text);
    events.onError(text, status ? Number(status[1]) : undefined);
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
