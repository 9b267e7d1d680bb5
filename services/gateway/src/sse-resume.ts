/**
 * The SSE resume id (docs/protocol.md "SSE"): every channel message event's
 * `id:` holds the positions of all the stream's channels, so a reconnect
 * with `Last-Event-ID` (the browser sends it by itself) resumes every
 * channel gap-free, on any gateway.
 *
 * Format: `1.` + base64url(JSON `{"e":[epoch...],"p":[entry...]}`), one
 * entry per `channel` query parameter in URL order: `[seq, epochIndex]`, or
 * 0 for a channel without a position yet. Not signed: the id only ever asks
 * for history of channels in the URL, each subscribed through the same
 * checks as a subscribe frame, so a forged id can only ask for history the
 * token may read anyway.
 */
import { MAX_EPOCH_LENGTH } from "@herald/core";

/** Longest Last-Event-ID accepted; longer is refused as malformed (never parsed). */
export const MAX_RESUME_ID_LENGTH = 4096;
/**
 * Most `channel` parameters on one SSE stream: keeps every id under
 * MAX_RESUME_ID_LENGTH even at the worst: 32 × (a 16-digit seq and its own
 * 64-character epoch) is under 2,900 bytes of JSON, under 3,900 in base64url.
 */
export const MAX_SSE_CHANNELS = 32;

const PREFIX = "1.";

export interface ChannelPosition {
  seq: number;
  epoch: string;
}

/** Encodes the positions of `channels` (URL order). */
export function encodeResumeId(channels: readonly string[], positions: ReadonlyMap<string, ChannelPosition>): string {
  const epochs: string[] = [];
  const p = channels.map((channel) => {
    const at = positions.get(channel);
    if (!at) return 0;
    let i = epochs.indexOf(at.epoch);
    if (i < 0) i = epochs.push(at.epoch) - 1;
    return [at.seq, i];
  });
  return PREFIX + Buffer.from(JSON.stringify({ e: epochs, p })).toString("base64url");
}

/** The positions a Last-Event-ID asks for, or why it cannot be read. */
export function decodeResumeId(id: string, channels: readonly string[]): Map<string, ChannelPosition> | { problem: string } {
  if (id.length > MAX_RESUME_ID_LENGTH) return { problem: `Last-Event-ID longer than ${MAX_RESUME_ID_LENGTH} characters` };
  if (!id.startsWith(PREFIX) || !/^[A-Za-z0-9_-]+$/.test(id.slice(PREFIX.length))) return { problem: "Last-Event-ID is not a Herald resume id" };
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(id.slice(PREFIX.length), "base64url").toString("utf8"));
  } catch {
    return { problem: "Last-Event-ID is not a Herald resume id" };
  }
  const { e, p } = (value ?? {}) as { e?: unknown; p?: unknown };
  if (!Array.isArray(e) || !Array.isArray(p)) return { problem: "Last-Event-ID is not a Herald resume id" };
  if (p.length !== channels.length) return { problem: "Last-Event-ID was given for other channels than this URL's" };
  if (!e.every((x) => typeof x === "string" && x.length > 0 && x.length <= MAX_EPOCH_LENGTH)) return { problem: "Last-Event-ID holds a malformed epoch" };
  const out = new Map<string, ChannelPosition>();
  for (let i = 0; i < p.length; i++) {
    const entry: unknown = p[i];
    if (entry === 0) continue;
    if (!Array.isArray(entry) || entry.length !== 2) return { problem: "Last-Event-ID holds a malformed position" };
    const [seq, ei] = entry as unknown[];
    if (!Number.isSafeInteger(seq) || (seq as number) < 0 || !Number.isInteger(ei) || (ei as number) < 0 || (ei as number) >= e.length) {
      return { problem: "Last-Event-ID holds a malformed position" };
    }
    out.set(channels[i]!, { seq: seq as number, epoch: e[ei as number] as string });
  }
  return out;
}
