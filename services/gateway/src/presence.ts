/**
 * Presence on this gateway: every connection on a channel of a namespace
 * with `presence: true` is a member (PresenceRegistry), joined and left as
 * the fan-out puts it on and takes it off the channel; `presence` and
 * `presence_stats` frames are answered from it, and in `join_leave`
 * namespaces every join and leave is one frame to the channel's topic
 * (encoded once, copied by uWS). Above JOIN_LEAVE_MAX_MEMBERS members a
 * channel sends no join/leave frames (README "Presence"): counts come from
 * `presence_stats` then.
 *
 * This version keeps presence for the connections of one gateway; the
 * configuration refuses presence with NATS until members are shared
 * between gateways.
 */
import {
  channelProblem,
  joinFrame,
  leaveFrame,
  presenceFrame,
  presenceStatsFrame,
  type GatewayMetrics,
  type Namespaces,
  type ProtocolErrorCode,
  type RequestId,
} from "@herald/core";
import type { Connection, TopicSink } from "./connection.js";
import { decodeCursor, encodeCursor } from "./presence-cursor.js";
import { PRESENCE_PAGE_MAX, PresenceRegistry } from "./presence-registry.js";

/** Channels with more members than this send no join/leave frames. */
export const JOIN_LEAVE_MAX_MEMBERS = 1000;

export interface PresenceContext {
  namespaces: Namespaces;
  sink: TopicSink;
  metrics: GatewayMetrics;
  error(conn: Connection, code: ProtocolErrorCode, message: string, id: RequestId | undefined): void;
}

export class Presence {
  private readonly registry = new PresenceRegistry();
  private members = 0;

  constructor(private readonly ctx: PresenceContext) {}

  /** The fan-out put `conn` on `topic`. */
  joined(conn: Connection, topic: string): void {
    const channel = channelOfTopic(topic);
    const ns = channel === undefined ? undefined : this.ctx.namespaces.of(channel);
    if (!ns?.presence) return;
    const member = this.registry.join(channel!, conn.identity.sub, conn.id, conn.identity.info);
    if (!member) return;
    this.ctx.metrics.presenceMembers.set(++this.members);
    if (ns.joinLeave && this.registry.stats(channel!).clients <= JOIN_LEAVE_MAX_MEMBERS) {
      this.ctx.sink.publish(topic, Buffer.from(joinFrame(channel!, member)));
      this.ctx.metrics.joinLeaveFrames.inc({ type: "join" });
    }
  }

  /** The fan-out took `conn` off `topic`. */
  left(conn: Connection, topic: string): void {
    const channel = channelOfTopic(topic);
    const ns = channel === undefined ? undefined : this.ctx.namespaces.of(channel);
    if (!ns?.presence) return;
    const member = this.registry.leave(channel!, conn.id);
    if (!member) return;
    this.ctx.metrics.presenceMembers.set(--this.members);
    if (ns.joinLeave && this.registry.stats(channel!).clients < JOIN_LEAVE_MAX_MEMBERS) {
      this.ctx.sink.publish(topic, Buffer.from(leaveFrame(channel!, member)));
      this.ctx.metrics.joinLeaveFrames.inc({ type: "leave" });
    }
  }

  /** A `presence` (cursor given, null for the first page) or `presence_stats` (cursor undefined) frame. */
  request(conn: Connection, channel: string, id: RequestId | undefined, cursor: string | null | undefined): void {
    const problem = channelProblem(channel) ?? this.ctx.namespaces.problem(channel);
    if (problem) return this.ctx.error(conn, "invalid_channel", problem, id);
    if (!conn.identity.channels.matches(channel)) return this.ctx.error(conn, "forbidden", `token does not allow subscribing to ${channel}`, id);
    const ns = this.ctx.namespaces.of(channel)!;
    if (!ns.presence) {
      return this.ctx.error(conn, "forbidden", `presence is off for ${ns.name === "" ? "the default namespace" : `namespace "${ns.name}"`}`, id);
    }
    const { clients, users } = this.registry.stats(channel);
    if (cursor === undefined) return conn.send(presenceStatsFrame(channel, id, clients, users));
    const after = cursor === null ? 0 : decodeCursor(channel, cursor);
    if (after === undefined) return this.ctx.error(conn, "bad_request", "cursor is not one this gateway gave for this channel (forged, or from before a restart): start again with cursor null", id);
    const page = this.registry.page(channel, after, PRESENCE_PAGE_MAX);
    const last = page.members[page.members.length - 1];
    conn.send(presenceFrame(channel, id, clients, users, page.members, page.more && last ? encodeCursor(channel, last.seq) : null));
  }
}

function channelOfTopic(topic: string): string | undefined {
  return topic.startsWith("c:") ? topic.slice(2) : undefined;
}
