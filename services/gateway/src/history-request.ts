/**
 * A client's `history` request: one page of a channel's stored messages
 * after `since`, at most `limit` (≤ 1000) and about 1 MiB, each with the
 * `prev` the history pager gives it, plus the epoch they belong to and the
 * `since` of the next page (null once the newest stored message is in).
 * Read with readHistoryPage (the server API's history route uses it too),
 * through the pager recovery uses, so `prev` follows one rule.
 */
import { channelProblem, historyFrame, type Namespaces, type ProtocolErrorCode, type RequestId, type Subjects } from "@herald/core";
import { readHistoryPage, type Broker } from "@herald/broker";
import type { Connection } from "./connection.js";

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
    readHistoryPage(history, subject, req.since, req.limit).then(
      (page) => {
        this.reading.delete(conn);
        if (!conn.closed) conn.send(historyFrame(channel, id, page.epoch, page.entries, page.next));
      },
      () => {
        this.reading.delete(conn);
        if (!conn.closed) error(conn, "unavailable", "history unavailable, try again", id);
      },
    );
  }
}
