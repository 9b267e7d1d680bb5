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
 * Members of the other gateways come from PresenceShare (presence-share.ts),
 * which keeps a copy of every gateway's members here; this class applies
 * both kinds of change the same way.
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
import { PRESENCE_PAGE_MAX, PresenceRegistry, type Member } from "./presence-registry.js";
import { PresenceShare, type PresenceShareOptions, type ShareTarget, type WireMember } from "./presence-share.js";

export const BAD_CURSOR = "cursor is not one this gateway gave for this channel (forged, or from before a restart): start again with cursor null";

/** Channels with more members than this send no join/leave frames. */
export const JOIN_LEAVE_MAX_MEMBERS = 1000;

export interface PresenceContext {
  /** This gateway's id: the origin of its own members. */
  self: string;
  namespaces: Namespaces;
  sink: TopicSink;
  metrics: GatewayMetrics;
  error(conn: Connection, code: ProtocolErrorCode, message: string, id: RequestId | undefined): void;
}

export class Presence implements ShareTarget {
  private readonly registry = new PresenceRegistry();
  /** Where this gateway's own changes go, when presence is shared between gateways. */
  private share: PresenceShare | undefined;

  constructor(private readonly ctx: PresenceContext) {}

  /**
   * Presence for a gateway, shared with the other gateways through `share`
   * when some namespace has presence (no traffic otherwise).
   */
  static start(ctx: PresenceContext & { share: Omit<PresenceShareOptions, "self" | "target" | "metrics"> }): Presence {
    const presence = new Presence(ctx);
    if (ctx.namespaces.list.some((ns) => ns.presence)) {
      const share = new PresenceShare({ ...ctx.share, self: ctx.self, target: presence, metrics: ctx.metrics });
      presence.share = share;
      share.start();
    }
    return presence;
  }

  stop(): void {
    this.share?.stop();
  }

  /** The fan-out put `conn` on `topic`. */
  joined(conn: Connection, topic: string): void {
    const channel = channelOfTopic(topic);
    if (channel === undefined || !this.ctx.namespaces.of(channel)?.presence) return;
    const { sub, info } = conn.identity;
    if (this.add(channel, sub, conn.id, info, this.ctx.self)) this.share?.localJoin(info === undefined ? [channel, conn.id, sub] : [channel, conn.id, sub, info]);
  }

  /** The fan-out took `conn` off `topic`. */
  left(conn: Connection, topic: string): void {
    const channel = channelOfTopic(topic);
    if (channel === undefined || !this.ctx.namespaces.of(channel)?.presence) return;
    if (this.remove(channel, conn.id)) this.share?.localLeave(channel, conn.id);
  }

  remoteJoin(origin: string, [channel, connection, sub, info]: WireMember): void {
    if (this.ctx.namespaces.of(channel)?.presence) this.add(channel, sub, connection, info, origin);
  }

  remoteLeave(channel: string, connection: string): void {
    this.remove(channel, connection);
  }

  dropOrigin(origin: string): void {
    for (const [channel, m] of this.registry.membersOf(origin)) this.remove(channel, m.connection);
  }

  replaceOrigin(origin: string, members: WireMember[]): void {
    const wanted = new Set(members.map(([channel, connection]) => `${channel}\n${connection}`));
    for (const [channel, m] of this.registry.membersOf(origin)) if (!wanted.has(`${channel}\n${m.connection}`)) this.remove(channel, m.connection);
    // Members there already are left alone (add refuses a second copy): no leave and join for them.
    for (const m of members) this.remoteJoin(origin, m);
  }

  ownMembers(): WireMember[] {
    return this.registry.membersOf(this.ctx.self).map(([channel, m]) => (m.info === undefined ? [channel, m.connection, m.sub] : [channel, m.connection, m.sub, m.info]));
  }

  private add(channel: string, sub: string, connection: string, info: string | undefined, origin: string): Member | undefined {
    const member = this.registry.join(channel, sub, connection, info, origin);
    if (!member) return undefined;
    this.ctx.metrics.presenceMembers.set(this.registry.size);
    this.frame(channel, "join", member, this.registry.stats(channel).clients <= JOIN_LEAVE_MAX_MEMBERS);
    return member;
  }

  private remove(channel: string, connection: string): Member | undefined {
    const member = this.registry.leave(channel, connection);
    if (!member) return undefined;
    this.ctx.metrics.presenceMembers.set(this.registry.size);
    this.frame(channel, "leave", member, this.registry.stats(channel).clients < JOIN_LEAVE_MAX_MEMBERS);
    return member;
  }

  /** A join or leave frame to the channel's subscribers here, in join_leave namespaces and below the member bound. */
  private frame(channel: string, type: "join" | "leave", member: Member, small: boolean): void {
    if (!small || !this.ctx.namespaces.of(channel)?.joinLeave) return;
    this.ctx.sink.publish(`c:${channel}`, Buffer.from(type === "join" ? joinFrame(channel, member) : leaveFrame(channel, member)));
    this.ctx.metrics.joinLeaveFrames.inc({ type });
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
    const page = this.page(channel, cursor);
    if (!page) return this.ctx.error(conn, "bad_request", BAD_CURSOR, id);
    conn.send(presenceFrame(channel, id, clients, users, page.members, page.cursor));
  }

  /** The counts of `channel` (a channel of a presence namespace), for the server API. */
  stats(channel: string): { clients: number; users: number } {
    return this.registry.stats(channel);
  }

  /** A page of `channel`'s members after `cursor` (null: the first), with the next page's cursor; undefined for a cursor this process did not give. */
  page(channel: string, cursor: string | null): { members: Member[]; cursor: string | null } | undefined {
    const after = cursor === null ? 0 : decodeCursor(channel, cursor);
    if (after === undefined) return undefined;
    const page = this.registry.page(channel, after, PRESENCE_PAGE_MAX);
    const last = page.members[page.members.length - 1];
    return { members: page.members, cursor: page.more && last ? encodeCursor(channel, last.seq) : null };
  }
}

function channelOfTopic(topic: string): string | undefined {
  return topic.startsWith("c:") ? topic.slice(2) : undefined;
}
