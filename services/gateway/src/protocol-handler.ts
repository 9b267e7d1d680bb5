/**
 * Handles one client frame of the `herald.v1` protocol on an open
 * connection, whatever its transport: parses it, authorizes it against the
 * token's claims, joins or leaves through the fan-out, publishes, and
 * replies. Delivery and recovery belong to the fan-out's channel streams.
 */
import { randomUUID } from "node:crypto";
import {
  BrokerUnavailableError,
  CloseCode,
  FrameError,
  Header,
  ackFrame,
  peekRequestId,
  channelMessageHead,
  channelProblem,
  errorFrame,
  hasRawControlCharacter,
  newTraceparent,
  parseClientFrame,
  pongFrame,
  replyFrame,
  subscribedWithPosition,
  type ClientFrame,
  type GatewayMetrics,
  type Logger,
  type Namespaces,
  type ProtocolErrorCode,
  type RequestId,
  type Subjects,
} from "@herald/core";
import type { Broker } from "@herald/broker";
import { channelTopic, type Connection } from "./connection.js";
import type { Destination, Fanout } from "./fanout.js";
import { HistoryRequests } from "./history-request.js";
import type { Presence } from "./presence.js";

export interface ProtocolHandlerOptions {
  broker: Broker;
  fanout: Fanout;
  /** Answers `presence` and `presence_stats` frames. */
  presence: Pick<Presence, "request">;
  subjects: Subjects;
  metrics: GatewayMetrics;
  logger: Logger;
  namespaces: Namespaces;
  maxChannelsPerConnection: number;
}

/** Where a subscription continues from, on a channel with history. */
export interface JoinedAt {
  seq: number;
  /** The history's life `seq` belongs to. */
  epoch: string;
  /** False when messages after the requested `since` are lost (window passed, another epoch). */
  recovered: boolean;
}

/** How a join (ProtocolHandler.join) ended: its reply, for a client subscribe; the welcome's entry, for the token's subs. */
export interface JoinAnswer {
  /** `at` is undefined on a channel without positions. */
  joined(at: JoinedAt | undefined): void;
  refused(code: ProtocolErrorCode, message: string): void;
}

export class ProtocolHandler {
  private readonly histories: HistoryRequests;

  constructor(private readonly ctx: ProtocolHandlerOptions) {
    this.histories = new HistoryRequests({ ...ctx, error: (conn, code, message, id) => this.error(conn, code, message, id) });
  }

  /**
   * One inbound frame, as the transport got it: rate limited (refused with
   * `rate_limited`, a connection that keeps going is closed with 4008),
   * text only, then handled. Nothing one client sends may take the process down.
   */
  receive(conn: Connection, message: ArrayBuffer, isBinary: boolean): void {
    if (!this.admit(conn, () => (isBinary ? undefined : peekRequestId(message)))) return;
    if (isBinary) {
      this.error(conn, "bad_request", "binary frames are not supported; send JSON text", undefined);
      return;
    }
    // Buffer.from(ArrayBuffer) is a view; toString copies before the transport reuses the memory.
    this.dispatch(conn, Buffer.from(message).toString("utf8"));
  }

  /** One frame that came as text (an SSE stream's commands, sse-commands.ts): the same limits and handling. */
  receiveText(conn: Connection, text: string): void {
    if (this.admit(conn, () => peekRequestId(Buffer.from(text, "utf8")))) this.dispatch(conn, text);
  }

  /** The rate limit: false when the frame is refused (answered `rate_limited`, or the connection closed 4008). */
  private admit(conn: Connection, requestId: () => RequestId | undefined): boolean {
    const verdict = conn.limiter.take();
    if (verdict === "ok") return true;
    if (verdict === "abusive") {
      this.ctx.metrics.errors.inc({ code: "rate_limited" });
      conn.close(CloseCode.RateLimited, "rate limited");
    } else {
      // The id lets the client retry exactly the request that was refused.
      this.error(conn, "rate_limited", "too many messages, slow down", requestId());
    }
    return false;
  }

  private dispatch(conn: Connection, text: string): void {
    try {
      this.handle(conn, text);
    } catch (err) {
      this.ctx.logger.error({ err, connection: conn.id }, "client frame handler failed");
      this.error(conn, "bad_request", "the frame could not be handled", undefined);
    }
  }

  handle(conn: Connection, text: string): void {
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(text);
    } catch (err) {
      this.ctx.metrics.clientMessages.inc({ type: "invalid" });
      if (hasRawControlCharacter(text)) {
        // Not JSON, and not a mistake a JSON encoder makes: an unmasked
        // frame read as masked (RFC 6455 §5.1: the server must close).
        this.ctx.metrics.errors.inc({ code: "protocol_error" });
        conn.close(CloseCode.ProtocolError, "frames must be masked JSON text");
        return;
      }
      const e = err as FrameError;
      this.error(conn, e.code ?? "bad_request", e.message, e.id);
      return;
    }
    this.ctx.metrics.clientMessages.inc({ type: frame.type });
    switch (frame.type) {
      case "subscribe":
        return this.subscribe(conn, frame.channel, frame.id, frame.since, frame.epoch);
      case "unsubscribe":
        return this.unsubscribe(conn, frame.channel, frame.id);
      case "publish":
        return this.publish(conn, frame.channel, frame.payload, frame.id);
      case "ping":
        conn.send(pongFrame(frame.id));
        return;
      case "history":
        return this.histories.handle(conn, frame);
      case "presence":
        return this.ctx.presence.request(conn, frame.channel, frame.id, frame.cursor);
      case "presence_stats":
        return this.ctx.presence.request(conn, frame.channel, frame.id, undefined);
    }
  }

  error(conn: Connection, code: ProtocolErrorCode, message: string, id: RequestId | undefined): void {
    this.ctx.metrics.errors.inc({ code });
    conn.send(errorFrame(code, message, id));
  }

  /**
   * The server API subscribes `conn` to `channel` (a valid channel in a
   * namespace), whatever its token says: the client is told with
   * `"server": true`. False when the connection cannot take it (its channel
   * limit, the broker down; the connection is told why in an error frame).
   */
  serverSubscribe(conn: Connection, channel: string): boolean {
    if (conn.topics.has(channelTopic(channel))) return true;
    let refused = false;
    void this.join(conn, channel, undefined, undefined, {
      joined: (at) => conn.send(at ? subscribedWithPosition(channel, undefined, at.seq, at.epoch, at.recovered, true) : replyFrame("subscribed", channel, undefined, true)),
      refused: (code, message) => {
        refused = true;
        this.error(conn, code, `${message}: the server's subscribe to ${channel} was not taken`, undefined);
      },
    });
    // The refusals that matter here (broker down, channel limit) are told before join returns.
    return !refused;
  }

  /** The server API unsubscribes `conn` from `channel`; false when it was not subscribed. */
  serverUnsubscribe(conn: Connection, channel: string): boolean {
    const topic = channelTopic(channel);
    if (!conn.topics.has(topic)) return false;
    this.ctx.fanout.leave(conn, topic);
    conn.send(replyFrame("unsubscribed", channel, undefined, true));
    return true;
  }

  private subscribe(conn: Connection, channel: string, id: RequestId | undefined, since: number | undefined, epoch: string | undefined): void {
    const problem = channelProblem(channel) ?? this.ctx.namespaces.problem(channel);
    if (problem) return this.error(conn, "invalid_channel", problem, id);
    if (!conn.identity.channels.matches(channel)) {
      return this.error(conn, "forbidden", `token does not allow subscribing to ${channel}`, id);
    }
    void this.join(conn, channel, since, epoch, {
      joined: (at) => conn.send(at ? subscribedWithPosition(channel, id, at.seq, at.epoch, at.recovered) : replyFrame("subscribed", channel, id)),
      refused: (code, message) => this.error(conn, code, message, id),
    });
  }

  /**
   * Puts `conn` on `channel`, which it may subscribe to: the one path of a
   * client `subscribe` and of the token's `subs` (server-subs.ts). `answer`
   * hears once: `joined` before any frame of the channel reaches the
   * connection, or `refused`; neither when the connection left the channel
   * or closed first. Resolves when the join is over; never rejects.
   */
  join(conn: Connection, channel: string, since: number | undefined, epoch: string | undefined, answer: JoinAnswer): Promise<void> {
    const { broker, fanout } = this.ctx;
    if (!broker.connected) {
      // Until the broker is connected this process cannot promise delivery,
      // and on first start it does not yet know whether history is on: a
      // subscription taken now would run without positions for its lifetime.
      answer.refused("unavailable", "broker not connected, subscribe again shortly");
      return Promise.resolve();
    }
    const topic = channelTopic(channel);
    if (conn.topics.has(topic)) {
      // Already subscribed: a plain repeat is a no-op; a repeat with `since`
      // (the client saw a gap) restarts the subscription from that position.
      if (since === undefined || !broker.history?.windowOf(this.ctx.subjects.channel(channel))) {
        answer.joined(undefined);
        return Promise.resolve();
      }
      fanout.leave(conn, topic);
    }
    if (channelCount(conn) >= this.ctx.maxChannelsPerConnection) {
      answer.refused("forbidden", `at most ${this.ctx.maxChannelsPerConnection} channels per connection`);
      return Promise.resolve();
    }
    // A position from another life of the history (the stream was recreated,
    // the embedded broker restarted) says nothing about this one, even where
    // the numbers overlap: continue from the current position, recovered: false.
    const destination = this.destination(channel, topic);
    const currentEpoch = destination.historySubject === undefined ? undefined : broker.history?.epochOf(destination.historySubject);
    const otherEpoch = since !== undefined && epoch !== undefined && currentEpoch !== undefined && epoch !== currentEpoch;
    if (otherEpoch) this.ctx.metrics.recoveries.inc({ result: "epoch_changed" });
    return fanout
      .join(conn, destination, {
        since: otherEpoch ? undefined : since,
        onJoined: (position) =>
          answer.joined(position && currentEpoch !== undefined ? { seq: position.seq, epoch: currentEpoch, recovered: position.recovered && !otherEpoch } : undefined),
      })
      .catch(() => {
        // Nothing may reject from here: the process shell exits on an unhandled rejection.
        try {
          if (!conn.closed) conn.batch(() => answer.refused("unavailable", "history unavailable, subscribe again"));
        } catch (err) {
          this.ctx.logger.error({ err, connection: conn.id }, "could not report a failed recovery");
        }
      });
  }

  /** Where a channel's messages come from: its live subject, and when its namespace keeps history its stored one. */
  private destination(channel: string, topic: string): Destination {
    const subject = this.ctx.subjects.channel(channel);
    const history = this.ctx.broker.history;
    if (!history?.windowOf(subject)) return { topic, subject, head: channelMessageHead, name: channel };
    return { topic, subject: history.liveSubject(subject), head: channelMessageHead, name: channel, historySubject: subject };
  }

  private unsubscribe(conn: Connection, channel: string, id: RequestId | undefined): void {
    const problem = channelProblem(channel);
    if (problem) return this.error(conn, "invalid_channel", problem, id);
    this.ctx.fanout.leave(conn, channelTopic(channel));
    conn.send(replyFrame("unsubscribed", channel, id));
  }

  private publish(conn: Connection, channel: string, json: string, id: RequestId | undefined): void {
    const problem = channelProblem(channel) ?? this.ctx.namespaces.problem(channel);
    if (problem) return this.error(conn, "invalid_channel", problem, id);
    const namespace = this.ctx.namespaces.of(channel)!;
    if (!namespace.clientPublish) {
      return this.error(conn, "forbidden", `namespace "${namespace.name}" does not take publishes from clients (client_publish: false)`, id);
    }
    if (!conn.identity.publish.matches(channel)) {
      return this.error(conn, "forbidden", `token does not allow publishing to ${channel}`, id);
    }
    const payload = Buffer.from(json);
    const headers = {
      [Header.Id]: randomUUID(),
      [Header.PublishedAt]: String(Date.now()),
      [Header.TraceParent]: newTraceparent(),
    };
    this.ctx.broker.publish(this.ctx.subjects.channel(channel), payload, headers).then(
      () => {
        if (!conn.closed) conn.batch(() => conn.send(ackFrame(id)));
      },
      (err: unknown) => {
        if (conn.closed) return;
        const message = err instanceof BrokerUnavailableError ? "broker unavailable, try again" : "publish failed";
        if (!(err instanceof BrokerUnavailableError)) this.ctx.logger.error({ err }, "client publish failed");
        conn.batch(() => this.error(conn, "unavailable", message, id));
      },
    )
      .catch((err: unknown) => this.ctx.logger.error({ err, connection: conn.id }, "answering a client publish failed"));
  }
}

/** Channels a connection is on: its topics but its user topic. */
function channelCount(conn: Connection): number {
  return conn.topics.size - (conn.topics.has(conn.userTopic) ? 1 : 0);
}
