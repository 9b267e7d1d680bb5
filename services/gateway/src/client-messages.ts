/**
 * Handles one client frame of the `herald.v1` protocol on an open socket:
 * subscribe / unsubscribe with authorization against the `channels` claim,
 * publish against the `publish` claim, ping.
 */
import { randomUUID } from "node:crypto";
import {
  BrokerUnavailableError,
  FrameError,
  Header,
  ackFrame,
  channelMessageHead,
  channelProblem,
  errorFrame,
  newTraceparent,
  parseClientFrame,
  pongFrame,
  replyFrame,
  type ClientFrame,
  type GatewayMetrics,
  type Logger,
  type ProtocolErrorCode,
  type RequestId,
  type Subjects,
} from "@herald/core";
import type { Broker } from "@herald/broker";
import type { Fanout } from "./fanout.js";
import { channelTopic, type Session } from "./session.js";
import type { WebSocket } from "./uws.js";

export interface ClientMessageContext {
  broker: Broker;
  fanout: Fanout;
  subjects: Subjects;
  metrics: GatewayMetrics;
  logger: Logger;
  maxChannelsPerConnection: number;
}

export class ClientMessages {
  constructor(private readonly ctx: ClientMessageContext) {}

  handle(ws: WebSocket<Session>, text: string): void {
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(text);
    } catch (err) {
      this.ctx.metrics.clientMessages.inc({ type: "invalid" });
      const e = err as FrameError;
      this.error(ws, e.code ?? "bad_request", e.message, e.id);
      return;
    }
    this.ctx.metrics.clientMessages.inc({ type: frame.type });
    switch (frame.type) {
      case "subscribe":
        return this.subscribe(ws, frame.channel, frame.id);
      case "unsubscribe":
        return this.unsubscribe(ws, frame.channel, frame.id);
      case "publish":
        return this.publish(ws, frame.channel, frame.data, frame.id);
      case "ping":
        ws.send(pongFrame(frame.id), false);
        return;
    }
  }

  error(ws: WebSocket<Session>, code: ProtocolErrorCode, message: string, id: RequestId | undefined): void {
    this.ctx.metrics.errors.inc({ code });
    ws.send(errorFrame(code, message, id), false);
  }

  private subscribe(ws: WebSocket<Session>, channel: string, id: RequestId | undefined): void {
    const s = ws.getUserData();
    const problem = channelProblem(channel);
    if (problem) return this.error(ws, "invalid_channel", problem, id);
    if (!s.identity.channels.matches(channel)) {
      return this.error(ws, "forbidden", `token does not allow subscribing to ${channel}`, id);
    }
    if (s.channels.has(channel)) {
      ws.send(replyFrame("subscribed", channel, id), false);
      return;
    }
    if (s.channels.size >= this.ctx.maxChannelsPerConnection) {
      return this.error(ws, "forbidden", `at most ${this.ctx.maxChannelsPerConnection} channels per connection`, id);
    }
    const topic = channelTopic(channel);
    s.channels.add(channel);
    ws.subscribe(topic);
    const ready = this.ctx.fanout.acquire({
      topic,
      subject: this.ctx.subjects.channel(channel),
      head: channelMessageHead(channel),
    });
    void ready.then(() => {
      if (!s.closed && s.channels.has(channel)) ws.cork(() => ws.send(replyFrame("subscribed", channel, id), false));
    });
  }

  private unsubscribe(ws: WebSocket<Session>, channel: string, id: RequestId | undefined): void {
    const s = ws.getUserData();
    const problem = channelProblem(channel);
    if (problem) return this.error(ws, "invalid_channel", problem, id);
    if (s.channels.delete(channel)) {
      const topic = channelTopic(channel);
      ws.unsubscribe(topic);
      this.ctx.fanout.release(topic);
    }
    ws.send(replyFrame("unsubscribed", channel, id), false);
  }

  private publish(ws: WebSocket<Session>, channel: string, data: unknown, id: RequestId | undefined): void {
    const s = ws.getUserData();
    const problem = channelProblem(channel);
    if (problem) return this.error(ws, "invalid_channel", problem, id);
    if (!s.identity.publish.matches(channel)) {
      return this.error(ws, "forbidden", `token does not allow publishing to ${channel}`, id);
    }
    const payload = Buffer.from(JSON.stringify(data ?? null));
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
