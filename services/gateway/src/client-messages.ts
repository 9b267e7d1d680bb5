/**
 * Handles one client frame of the `herald.v1` protocol on an open socket:
 * subscribe / unsubscribe with authorization against the `channels` claim,
 * publish against the `publish` claim, ping.
 */
import { randomUUID } from "node:crypto";
import pLimit from "p-limit";
import {
  BrokerUnavailableError,
  CloseCode,
  FrameError,
  Header,
  ackFrame,
  channelMessageHead,
  channelProblem,
  errorFrame,
  hasRawControlCharacter,
  messageFrame,
  newTraceparent,
  parseClientFrame,
  pongFrame,
  replyFrame,
  subscribedWithPosition,
  type ClientFrame,
  type GatewayMetrics,
  type Logger,
  type ProtocolErrorCode,
  type RequestId,
  type Subjects,
} from "@herald/core";
import type { Broker, BrokerHistory, StoredMessage } from "@herald/broker";
import { RecoveryBuffer, type Fanout, type PositionedFrame } from "./fanout.js";
import { channelTopic, type Session } from "./session.js";
import type { WebSocket } from "./uws.js";

export interface ClientMessageContext {
  broker: Broker;
  fanout: Fanout;
  subjects: Subjects;
  metrics: GatewayMetrics;
  logger: Logger;
  maxChannelsPerConnection: number;
  /** A recovering socket holding more unsent bytes than this is closed with 4009. */
  slowConsumerBytes: number;
  /** HISTORY_MAX_PER_CHANNEL: bounds how much one recovery may read. */
  historyMaxPerChannel: number;
}

/** Messages read from the history per round trip while recovering. */
const RECOVERY_PAGE = 100;
/** Rounds of "read the history, wait for the fan-out" before a recovering socket joins anyway. */
const SETTLE_ROUNDS = 4;
/**
 * Recoveries running at once in one process; more wait their turn. A burst
 * of resumes (a neighbour pod drained, NATS came back) then costs the
 * history a bounded number of requests in flight, not one per client.
 */
const RECOVERY_CONCURRENCY = 32;

/**
 * The same message frame with another `prev`: messageFrame() puts
 * `"seq":N,"prev":P,` right after the channel's head.
 */
function withPrev(head: Buffer, f: PositionedFrame, prev: number): Buffer {
  const old = Buffer.from(`"seq":${f.seq},"prev":${f.prev},`, "latin1");
  if (!f.frame.subarray(head.length, head.length + old.length).equals(old)) return f.frame;
  return Buffer.concat([head, Buffer.from(`"seq":${f.seq},"prev":${prev},`, "latin1"), f.frame.subarray(head.length + old.length)]);
}

export class ClientMessages {
  private readonly recoveries = pLimit(RECOVERY_CONCURRENCY);

  constructor(private readonly ctx: ClientMessageContext) {}

  handle(ws: WebSocket<Session>, text: string): void {
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(text);
    } catch (err) {
      this.ctx.metrics.clientMessages.inc({ type: "invalid" });
      if (hasRawControlCharacter(text)) {
        // Not JSON, and not a mistake a JSON encoder makes: an unmasked
        // frame read as masked (RFC 6455 §5.1: the server must close).
        this.ctx.metrics.errors.inc({ code: "protocol_error" });
        ws.end(CloseCode.ProtocolError, "frames must be masked JSON text");
        return;
      }
      const e = err as FrameError;
      this.error(ws, e.code ?? "bad_request", e.message, e.id);
      return;
    }
    this.ctx.metrics.clientMessages.inc({ type: frame.type });
    switch (frame.type) {
      case "subscribe":
        return this.subscribe(ws, frame.channel, frame.id, frame.since);
      case "unsubscribe":
        return this.unsubscribe(ws, frame.channel, frame.id);
      case "publish":
        return this.publish(ws, frame.channel, frame.payload, frame.id);
      case "ping":
        ws.send(pongFrame(frame.id), false);
        return;
    }
  }

  error(ws: WebSocket<Session>, code: ProtocolErrorCode, message: string, id: RequestId | undefined): void {
    this.ctx.metrics.errors.inc({ code });
    ws.send(errorFrame(code, message, id), false);
  }

  private subscribe(ws: WebSocket<Session>, channel: string, id: RequestId | undefined, since: number | undefined): void {
    const s = ws.getUserData();
    const problem = channelProblem(channel);
    if (problem) return this.error(ws, "invalid_channel", problem, id);
    if (!s.identity.channels.matches(channel)) {
      return this.error(ws, "forbidden", `token does not allow subscribing to ${channel}`, id);
    }
    if (!this.ctx.broker.connected) {
      // Until the broker is connected this process cannot promise delivery,
      // and on first start it does not yet know whether history is on: a
      // subscription taken now would run without positions for its lifetime.
      return this.error(ws, "unavailable", "broker not connected, subscribe again shortly", id);
    }
    if (s.channels.has(channel)) {
      // Already subscribed: a plain repeat is a no-op; a repeat with `since`
      // (the client saw a gap) restarts the subscription from that position.
      if (since === undefined || !this.ctx.broker.history) {
        ws.send(replyFrame("subscribed", channel, id), false);
        return;
      }
      this.leave(ws, s, channel);
    }
    if (s.channels.size >= this.ctx.maxChannelsPerConnection) {
      return this.error(ws, "forbidden", `at most ${this.ctx.maxChannelsPerConnection} channels per connection`, id);
    }
    const topic = channelTopic(channel);
    const subject = this.ctx.subjects.channel(channel);
    const head = channelMessageHead(channel);
    s.channels.add(channel);
    const history = this.ctx.broker.history;
    if (!history) {
      const ready = this.ctx.fanout.acquire({ topic, subject, head });
      // Join the topic only with the reply: nothing arrives before `subscribed`.
      void ready.then(() => {
        if (s.closed || !s.channels.has(channel)) return;
        ws.cork(() => {
          ws.send(replyFrame("subscribed", channel, id), false);
          ws.subscribe(topic);
        });
      });
      return;
    }
    this.recover(ws, s, { channel, topic, subject, head, id, since, history });
  }

  /**
   * Subscribe with positions. Live frames are collected while the backlog
   * after `since` is read from the history window; the socket gets
   * `subscribed`, then the backlog page by page, then the collected frames in
   * order without duplicates, and only then joins the uWS topic.
   */
  private recover(
    ws: WebSocket<Session>,
    s: Session,
    r: {
      channel: string;
      topic: string;
      subject: string;
      head: Buffer;
      id: RequestId | undefined;
      since: number | undefined;
      history: BrokerHistory;
    },
  ): void {
    const { channel, topic, head, id, history } = r;
    const ready = this.ctx.fanout.acquire({ topic, subject: history.liveSubject(r.subject), head, historySubject: r.subject });
    // Fast path: this process is already delivering the channel and knows its
    // position, and the client has nothing to catch up on. Joining the topic
    // now continues exactly from there, with no round trip to the history
    // (10k sockets subscribing to one channel cost one history read, not 10k).
    const position = this.ctx.fanout.position(topic);
    if (position !== undefined && (r.since === undefined || r.since === position)) {
      if (r.since !== undefined) this.ctx.metrics.recoveries.inc({ result: "recovered" });
      this.ctx.fanout.flushWrites();
      ws.send(subscribedWithPosition(channel, id, position, true), false);
      ws.subscribe(topic);
      return;
    }
    const buffer = new RecoveryBuffer();
    (s.recovering ??= new Map()).set(channel, buffer);
    const stillWanted = () => !s.closed && s.recovering?.get(channel) === buffer;
    const { slowConsumerBytes, metrics, fanout } = this.ctx;
    // The backlog on the socket, or the live frames held for it, past what a
    // slow consumer may hold: close it (it resumes from what it got) long
    // before uWS would drop frames or the held frames grow without bound.
    const tooSlow = () => {
      if (ws.getBufferedAmount() <= slowConsumerBytes && buffer.bytes <= slowConsumerBytes) return false;
      metrics.slowConsumerCloses.inc();
      metrics.drops.inc({ reason: "slow_consumer" });
      ws.end(CloseCode.SlowConsumer, "slow consumer");
      return true;
    };
    const run = async () => {
      if (!stillWanted()) return;
      // From here on every live frame of the topic is kept for this socket;
      // only now, with a recovery slot, so queued recoveries hold nothing.
      fanout.watch(topic, buffer);
      await ready;
      if (!stillWanted()) return;
      // Read the position only after the live subscription is registered and
      // watched, so every message after it is in the history or the buffer.
      const newest = await history.lastSeq(r.subject);
      let start = newest;
      let complete = true;
      // The first page, read before reaches(): when the window still reaches
      // `since` after the read, nothing the read skipped had been dropped.
      let firstPage: StoredMessage[] | undefined;
      if (r.since !== undefined && r.since > newest) {
        // A position this history never reached: it was reset (the embedded
        // broker restarted, the stream was recreated) or everything on the
        // channel has expired. Say so and continue from the current position.
        complete = false;
      } else if (r.since !== undefined) {
        start = r.since;
        firstPage = await history.read(r.subject, start, RECOVERY_PAGE);
        complete = await history.reaches(r.subject, start);
      }
      if (!stillWanted()) return;
      if (r.since !== undefined) metrics.recoveries.inc({ result: complete ? "recovered" : "window_exceeded" });
      ws.send(subscribedWithPosition(channel, id, start, complete), false);

      // `last` is what this socket has been given: `start`, then each message
      // sent. The first message after `subscribed` always carries prev =
      // `start` — with recovered: true it follows on from it, with
      // recovered: false `start` is where the client was told to continue —
      // so a client applying "prev ≠ last → resume" never resumes in a loop.
      let last = start;
      let needRead = r.since !== undefined;
      // The window holds at most historyMaxPerChannel messages; twice that
      // leaves room for what is published while reading.
      const maxPages = Math.ceil((2 * this.ctx.historyMaxPerChannel) / RECOVERY_PAGE) + 1;
      let pages = 0;
      for (let round = 0; round < SETTLE_ROUNDS; round++) {
        while (pages < maxPages) {
          // Read until the live stream continues from what was sent. A first
          // live frame whose `prev` is ahead means the stream skipped
          // messages (interest reached a clustered stream late): read those too.
          const live = buffer.firstAfter(last);
          if (live ? live.prev <= last : !needRead) break;
          let messages: StoredMessage[];
          // Whether nothing after `last` had been dropped when the page was
          // read: if something had, the page's first message gets a `prev`
          // that shows the client the gap instead of hiding it.
          let continuous = true;
          if (firstPage) {
            messages = firstPage;
            firstPage = undefined;
          } else {
            messages = await history.read(r.subject, last, RECOVERY_PAGE);
            if (messages.length > 0 && last !== start) continuous = await history.reaches(r.subject, last);
          }
          pages++;
          if (!stillWanted()) return;
          if (messages.length === 0) break; // nothing more stored: what is missing has left the window
          ws.cork(() => {
            for (const m of messages) {
              if (m.seq <= last) continue;
              const prev = continuous ? last : m.seq - 1;
              continuous = true;
              ws.send(messageFrame(head, m.data, m.seq, prev), false);
              last = m.seq;
            }
          });
          needRead = messages.length === RECOVERY_PAGE;
          buffer.dropThrough(last);
          if (tooSlow()) return;
        }
        // This process's delivery of the topic must have reached `last` before
        // the socket joins it, or frames it already has would come again.
        await fanout.settle(topic, last);
        if (!stillWanted()) return;
        const live = buffer.firstAfter(last);
        if (!live || live.prev <= last) break;
        needRead = true; // the live stream is ahead of the history read: fill the gap
      }
      buffer.dropThrough(last);
      if (tooSlow()) return;
      // Held frames and the join in one go: nothing can slip in between.
      ws.cork(() => {
        for (const f of [...buffer.frames].sort((a, b) => a.seq - b.seq)) {
          if (f.seq <= last) continue;
          // Nothing sent since a recovered: false (all of it expired while
          // reading): the first frame continues from the position given.
          const frame = !complete && last === start && f.prev !== start ? withPrev(head, f, start) : f.frame;
          ws.send(frame, false);
          last = f.seq;
        }
        fanout.flushWrites();
        ws.subscribe(topic);
      });
      fanout.unwatch(topic, buffer);
      s.recovering?.delete(channel);
    };
    this.recoveries(run).catch((err: unknown) => {
      this.ctx.logger.warn({ err, channel }, "recovery failed");
      if (!stillWanted()) return;
      this.leave(ws, s, channel);
      ws.cork(() => this.error(ws, "unavailable", "history unavailable, subscribe again", id));
    });
  }

  /** Drops one channel from a socket: topic, broker reference, any recovery. */
  private leave(ws: WebSocket<Session>, s: Session, channel: string): boolean {
    if (!s.channels.delete(channel)) return false;
    const topic = channelTopic(channel);
    const buffer = s.recovering?.get(channel);
    if (buffer) {
      this.ctx.fanout.unwatch(topic, buffer);
      s.recovering?.delete(channel);
    }
    ws.unsubscribe(topic);
    this.ctx.fanout.release(topic);
    return true;
  }

  private unsubscribe(ws: WebSocket<Session>, channel: string, id: RequestId | undefined): void {
    const s = ws.getUserData();
    const problem = channelProblem(channel);
    if (problem) return this.error(ws, "invalid_channel", problem, id);
    this.leave(ws, s, channel);
    ws.send(replyFrame("unsubscribed", channel, id), false);
  }

  private publish(ws: WebSocket<Session>, channel: string, json: string, id: RequestId | undefined): void {
    const s = ws.getUserData();
    const problem = channelProblem(channel);
    if (problem) return this.error(ws, "invalid_channel", problem, id);
    if (!s.identity.publish.matches(channel)) {
      return this.error(ws, "forbidden", `token does not allow publishing to ${channel}`, id);
    }
    const payload = Buffer.from(json);
    const headers = {
      [Header.Id]: randomUUID(),
      [Header.PublishedAt]: String(Date.now()),
      [Header.TraceParent]: newTraceparent(),
    };
    this.ctx.broker.publish(this.ctx.subjects.channel(channel), payload, headers).then(
      () => {
        if (!s.closed) ws.cork(() => ws.send(ackFrame(id), false));
      },
      (err: unknown) => {
        if (s.closed) return;
        const message = err instanceof BrokerUnavailableError ? "broker unavailable, try again" : "publish failed";
        if (!(err instanceof BrokerUnavailableError)) this.ctx.logger.error({ err }, "client publish failed");
        ws.cork(() => this.error(ws, "unavailable", message, id));
      },
    );
  }
}
