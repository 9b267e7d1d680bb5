/**
 * The gateway's side of the server API: answers the publisher's control
 * requests (`<prefix>.ctl.<kind>`) about the connections this process
 * holds, and announces itself on `<prefix>.gw.hello` so the publisher knows
 * how many answers to wait for. Every request is validated
 * (parseControlRequest) before anything is done: any NATS client that may
 * publish there could send one (restrict it with NATS permissions, README).
 */
import { createRequire } from "node:module";
import { hostname } from "node:os";
import { randomBytes } from "node:crypto";
import {
  CONTROL_KINDS,
  MAX_CHANNELS_LISTED,
  encodeControl,
  parseControlRequest,
  type ChannelClients,
  type ControlAnswer,
  type ControlRequest,
  type GatewayMetrics,
  type Logger,
  type Namespaces,
  type Subjects,
} from "@herald/core";
import type { Broker, BrokerMessage, BrokerSubscription } from "@herald/broker";
import type { Connection, TopicSink } from "./connection.js";
import type { ConnectionsByUser } from "./connections-by-user.js";
import { BAD_CURSOR, type Presence } from "./presence.js";

/** How often a gateway says hello; the publisher forgets one it has not heard from for three of these. */
export const HELLO_EVERY_MS = 5000;

const VERSION: string = (createRequire(import.meta.url)("../package.json") as { version: string }).version;

export interface ControlContext {
  /** This gateway's id (newGatewayId). */
  id: string;
  broker: Broker;
  subjects: Subjects;
  namespaces: Namespaces;
  metrics: GatewayMetrics;
  logger: Logger;
  sink: TopicSink;
  users: ConnectionsByUser;
  /** Every open connection. */
  connections: () => number;
  /** Topics with a stream on this gateway. */
  topics: () => Iterable<string>;
  serverSubscribe: (conn: Connection, channel: string) => boolean;
  presence: Pick<Presence, "stats" | "page">;
  serverUnsubscribe: (conn: Connection, channel: string) => boolean;
}

/** A gateway process's name in answers and heartbeats: the host (the pod's name in Kubernetes) and a random suffix. */
export function newGatewayId(): string {
  return `${hostname()}-${randomBytes(3).toString("hex")}`;
}

export class ControlResponder {
  readonly id: string;
  private readonly started = Date.now();
  private subs: BrokerSubscription[] = [];
  private hello: NodeJS.Timeout | undefined;
  private offStatus: (() => void) | undefined;

  constructor(private readonly ctx: ControlContext) {
    this.id = ctx.id;
  }

  start(): void {
    // One subject per kind rather than the `ctl.>` wildcard: the embedded broker matches subjects exactly.
    this.subs = CONTROL_KINDS.map((kind) => this.ctx.broker.subscribe(this.ctx.subjects.control(kind), (msg) => this.receive(msg)));
    this.ctx.metrics.brokerSubscriptions.inc(this.subs.length);
    const sayHello = () => void this.ctx.broker.publish(this.ctx.subjects.gatewayHello(), encodeControl({ gateway: this.id })).catch(() => {});
    // As soon as the broker is up (the publisher may be waiting for us), then periodically.
    this.offStatus = this.ctx.broker.onStatus((status) => status === "connected" && sayHello());
    if (this.ctx.broker.connected) sayHello();
    this.hello = setInterval(sayHello, HELLO_EVERY_MS);
    this.hello.unref();
  }

  /** Stops answering and tells the publisher not to wait for this gateway. */
  async stop(): Promise<void> {
    clearInterval(this.hello);
    this.offStatus?.();
    this.ctx.metrics.brokerSubscriptions.dec(this.subs.length);
    for (const sub of this.subs.splice(0)) sub.unsubscribe();
    await this.ctx.broker.publish(this.ctx.subjects.gatewayHello(), encodeControl({ gateway: this.id, bye: true })).catch(() => {});
  }

  private receive(msg: BrokerMessage): void {
    const kind = this.ctx.subjects.controlKindOf(msg.subject) ?? "";
    let answer: ControlAnswer;
    try {
      const request = parseControlRequest(kind, msg.data);
      if (typeof request === "string") {
        this.ctx.metrics.controlRequests.inc({ kind: "invalid", result: "bad_request" });
        answer = { gateway: this.id, error: request };
      } else if ((request.kind === "presence" || request.kind === "presence_stats") && request.to !== undefined && request.to !== this.id) {
        return; // asked of another gateway
      } else {
        answer = this.act(request);
        this.ctx.metrics.controlRequests.inc({ kind: request.kind, result: "ok" });
      }
    } catch (err) {
      this.ctx.logger.error({ err, kind }, "control request failed");
      answer = { gateway: this.id, error: "the request could not be handled" };
    }
    msg.respond?.(encodeControl(answer));
  }

  private act(request: ControlRequest): ControlAnswer {
    switch (request.kind) {
      case "disconnect": {
        const conns = [...this.ctx.users.of(request.sub)];
        for (const conn of conns) conn.close(request.code, request.reason);
        this.reached("disconnect", conns.length);
        if (conns.length > 0) this.ctx.logger.info({ sub: request.sub, code: request.code, connections: conns.length }, "disconnected by the server API");
        return { gateway: this.id, connections: conns.length };
      }
      case "subscribe":
      case "unsubscribe": {
        const problem = this.ctx.namespaces.problem(request.channel);
        if (problem) return { gateway: this.id, error: problem };
        const act = request.kind === "subscribe" ? this.ctx.serverSubscribe : this.ctx.serverUnsubscribe;
        let reached = 0;
        for (const conn of [...this.ctx.users.of(request.sub)]) if (!conn.closed && act(conn, request.channel)) reached++;
        this.reached(request.kind, reached);
        return { gateway: this.id, connections: reached };
      }
      case "channels": {
        const { channels, truncated } = this.channels(request.prefix);
        return { gateway: this.id, channels, truncated };
      }
      case "presence_stats":
        return { gateway: this.id, presence: this.ctx.presence.stats(request.channel) };
      case "presence": {
        const page = this.ctx.presence.page(request.channel, request.cursor);
        if (!page) return { gateway: this.id, error: BAD_CURSOR };
        const members = page.members.map((m) => ({ sub: m.sub, connection: m.connection, info: m.info === undefined ? {} : (JSON.parse(m.info) as unknown) }));
        return { gateway: this.id, presence: { ...this.ctx.presence.stats(request.channel), members, cursor: page.cursor } };
      }
      case "info":
        return {
          gateway: this.id,
          info: {
            id: this.id,
            connections: this.ctx.connections(),
            channels: this.channels("").count,
            uptime_seconds: Math.floor((Date.now() - this.started) / 1000),
            version: VERSION,
          },
        };
    }
  }

  /** The channels this gateway holds (starting with `prefix`) and their clients, at most MAX_CHANNELS_LISTED. */
  private channels(prefix: string): { channels: ChannelClients[]; truncated: boolean; count: number } {
    const channels: ChannelClients[] = [];
    let count = 0;
    for (const topic of this.ctx.topics()) {
      if (!topic.startsWith("c:") || !topic.startsWith(prefix, 2)) continue;
      const clients = this.ctx.sink.subscribers(topic);
      if (clients === 0) continue;
      count++;
      if (channels.length < MAX_CHANNELS_LISTED) channels.push({ channel: topic.slice(2), clients });
    }
    return { channels, truncated: count > channels.length, count };
  }

  private reached(kind: "disconnect" | "subscribe" | "unsubscribe", n: number): void {
    if (n > 0) this.ctx.metrics.controlConnections.inc({ kind }, n);
  }
}
