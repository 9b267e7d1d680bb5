/** Requests answered by one reply on the current connection: history pages, presence and pings. */
import type { Conn } from "./connection.js";
import { HeraldError, invalidChannel } from "./errors.js";
import type { HistoryFrame, PresenceFrame, PresenceStatsFrame } from "./protocol.js";
import type { Requests } from "./requests.js";
import type { HistoryPage, PresencePage, PresenceStats } from "./types.js";

export interface HistoryOptions {
  /** Messages after this position (default 0: the oldest still kept). */
  since?: number;
  /** At most this many (1-1000, default 100). */
  limit?: number;
}

export async function requestHistory(requests: Requests, conn: Conn | undefined, channel: string, options: HistoryOptions): Promise<HistoryPage> {
  const invalid = invalidChannel(channel);
  if (invalid) throw invalid;
  if (!conn) throw new HeraldError("disconnected", "not connected");
  // Unset fields are left to the server's defaults (since 0, limit 100).
  const reply = (await requests.send(conn, { type: "history", channel, ...options })) as HistoryFrame;
  return { channel, epoch: reply.epoch, messages: reply.messages, next: reply.next };
}

/** A page of who is on `channel` (null cursor: the first page). */
export async function requestPresence(requests: Requests, conn: Conn | undefined, channel: string, cursor: string | null): Promise<PresencePage> {
  const invalid = invalidChannel(channel);
  if (invalid) throw invalid;
  if (!conn) throw new HeraldError("disconnected", "not connected");
  const reply = (await requests.send(conn, { type: "presence", channel, cursor })) as PresenceFrame;
  return { channel, clients: reply.clients, users: reply.users, members: reply.members, cursor: reply.cursor };
}

/** How many clients and distinct users are on `channel`. */
export async function requestPresenceStats(requests: Requests, conn: Conn | undefined, channel: string): Promise<PresenceStats> {
  const invalid = invalidChannel(channel);
  if (invalid) throw invalid;
  if (!conn) throw new HeraldError("disconnected", "not connected");
  const reply = (await requests.send(conn, { type: "presence_stats", channel })) as PresenceStatsFrame;
  return { channel, clients: reply.clients, users: reply.users };
}

/** Round trip to the server in ms. */
export async function measurePing(requests: Requests, conn: Conn | undefined): Promise<number> {
  if (!conn) throw new HeraldError("disconnected", "not connected");
  const t0 = Date.now();
  await requests.send(conn, { type: "ping" });
  return Date.now() - t0;
}
