/**
 * The `cursor` of a presence page: where the next page starts (a join
 * number), bound to its channel and to this gateway process by an HMAC under
 * a key made at start. A forged cursor, one for another channel, or one from
 * another process (a restarted or different gateway) is refused as
 * `bad_request`; the client starts again with `cursor: null`.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

const KEY = randomBytes(32);
const MAC_BYTES = 12;
/** Longest cursor a client may send back (ours are about 30 characters). */
export const MAX_CURSOR_LENGTH = 128;

function mac(channel: string, seq: number): Buffer {
  return createHmac("sha256", KEY).update(`${channel}\n${seq}`).digest().subarray(0, MAC_BYTES);
}

export function encodeCursor(channel: string, seq: number): string {
  return `${seq.toString(36)}.${mac(channel, seq).toString("base64url")}`;
}

/** The join number a cursor stands for, or undefined when it is not one this process gave out for `channel`. */
export function decodeCursor(channel: string, cursor: string): number | undefined {
  if (cursor.length > MAX_CURSOR_LENGTH) return undefined;
  const dot = cursor.indexOf(".");
  if (dot <= 0) return undefined;
  const seq = parseInt(cursor.slice(0, dot), 36);
  if (!Number.isSafeInteger(seq) || seq < 0 || seq.toString(36) !== cursor.slice(0, dot)) return undefined;
  const given = Buffer.from(cursor.slice(dot + 1), "base64url");
  return given.length === MAC_BYTES && timingSafeEqual(given, mac(channel, seq)) ? seq : undefined;
}
