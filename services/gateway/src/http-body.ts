/**
 * Reads a request body on a uWS response with a hard size limit: refused
 * from Content-Length before anything is read, and while streaming, so an
 * oversized upload is never buffered. uWS hands out chunks whose memory it
 * reuses, so each one is copied before the next arrives.
 */
import type { HttpResponse } from "./uws.js";

export type BodyResult = { ok: true; body: Buffer } | { ok: false; tooLarge: true };

/**
 * Calls `done` once with the body, or with `tooLarge` (the rest is then
 * ignored), unless the client goes away first: `onAborted` must be
 * registered by the caller before this (uWS allows one handler per response).
 */
export function readBody(res: HttpResponse, declaredLength: string, limit: number, done: (result: BodyResult) => void): void {
  if (declaredLength !== "" && Number(declaredLength) > limit) {
    done({ ok: false, tooLarge: true });
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  res.onData((chunk, isLast) => {
    if (over) return;
    size += chunk.byteLength;
    if (size > limit) {
      over = true;
      chunks.length = 0;
      done({ ok: false, tooLarge: true });
      return;
    }
    // Buffer.from(typed array) copies; Buffer.from(ArrayBuffer) would be a view of uWS's memory.
    chunks.push(Buffer.from(new Uint8Array(chunk)));
    if (isLast) done({ ok: true, body: Buffer.concat(chunks, size) });
  });
}
