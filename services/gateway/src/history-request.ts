/**
 * A client's `history` request: one page of a channel's stored messages
 * after `since`, at most `limit` (≤ 1000) and about 1 MiB, each with the
 * `prev` the history pager gives it, plus the epoch they belong to and the
 * `since` of the next page (null once the newest stored message is in).
 * Read through HistoryCursor, the pager recovery uses, so `prev` follows one rule.
 */
import { channelProblem, historyEntry, historyFrame, type Namespaces, type ProtocolErrorCode, type RequestId, type Subjects } from "@herald/core";
import type { Broker } from "@herald/broker";
import type { Connection } from "./connection.js";
import { HISTORY_PAGE, HistoryCursor } from "./history-cursor.js";

/** Bytes of message entries one answer holds at most: the page ends early rather than build a huge frame. */
export const HISTORY_FRAME_BYTES = 1024 * 1024;

export interface HistoryRequestContext {
  broker: Broker;
  subjects: Subjects;
  namespaces: Namespaces;
  error(conn: Connection, code: ProtocolErrorCode, message: string, id: RequestId | undefined): void;
}

export interface HistoryRequest {
  channel: string;
  since: number;
  limit: number;
  id?: RequestId;
}

export class HistoryRequests {
  /** Connections with a request being read: one at a time each, since every message is a round trip to the history. */
  private readonly reading = new WeakSet<Connection>();

  constructor(private readonly ctx: HistoryRequestContext) {}

  handle(conn: Connection, req: HistoryRequest): void {
    const { broker, namespaces, error } = this.ctx;
    const { channel, id } = req;
    const problem = channelProblem(channel) ?? namespaces.problem(channel);
    if (problem) return error(conn, "invalid_channel", problem, id);
    if (!conn.identity.channels.matches(channel)) return error(conn, "forbidden", `token does not allow reading ${channel}`, id);
    if (!namespaces.of(channel)!.history) return error(conn, "forbidden", `history is off for the namespace of ${channel}`, id);
    const subject = this.ctx.subjects.channel(channel);
    const history = broker.history;
    if (!history?.windowOf(subject) || !broker.connected) return error(conn, "unavailable", "history unavailable, try again", id);
    if (this.reading.has(conn)) return error(conn, "rate_limited", "one history request at a time", id);
    this.reading.add(conn);
    const cursor = new HistoryCursor(history, subject, req.since, Math.ceil(req.limit / HISTORY_PAGE));
    const entries: Buffer[] = [];
    let bytes = 0;
    let last = req.since;
    let full = false;
    const read = async (): Promise<void> => {
      while (entries.length < req.limit && !full) {
        // Read no more than the answer can still take.
        const page = await cursor.read(Math.min(HISTORY_PAGE, req.limit - entries.length));
        for (const m of page) {
          const entry = historyEntry(m.seq, m.prev, m.data);
          if (entries.length > 0 && bytes + entry.length > HISTORY_FRAME_BYTES) {
            full = true;
            break;
          }
          entries.push(entry);
          bytes += entry.length;
          last = m.seq;
        }
        if (page.length === 0 || !cursor.lastPageFull) break;
      }
    };
    read().then(
      () => {
        this.reading.delete(conn);
        if (conn.closed) return;
        // More may be stored after the last entry when the page ended on a limit.
        const more = full || entries.length >= req.limit || cursor.lastPageFull;
        conn.send(historyFrame(channel, id, history.epochOf(subject), entries, more ? last : null));
      },
      () => {
        this.reading.delete(conn);
        if (!conn.closed) error(conn, "unavailable", "history unavailable, try again", id);
      },
    );
  }
}
