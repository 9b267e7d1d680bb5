/**
 * Who is in each presence channel: one member per connection (its `sub`,
 * connection id and `info`), with the counts kept as members come and go, so
 * `presence_stats` never walks the members. Members are kept in join order
 * and numbered as they join; a page starts after a member's number, so a
 * walk through the pages meets every member present from its start to its
 * end exactly once, a member that joins meanwhile at most once (at the end),
 * and never one twice (docs/protocol.md "Presence").
 */

export interface Member {
  /** Join number on this gateway: the page cursor's position. */
  readonly seq: number;
  readonly sub: string;
  readonly connection: string;
  /** The token's `info` claim as compact JSON, or undefined. */
  readonly info: string | undefined;
  /** The gateway holding the connection (this one's id for local members). */
  readonly origin: string;
}

/** Most members one page holds. */
export const PRESENCE_PAGE_MAX = 1000;

class ChannelPresence {
  /** Members in join order; left ones are null until compacted away. */
  private slots: (Member | null)[] = [];
  private readonly byConnection = new Map<string, number>();
  /** Connections per user, for the distinct-user count. */
  private readonly users = new Map<string, number>();
  private holes = 0;

  get clients(): number {
    return this.byConnection.size;
  }

  get distinctUsers(): number {
    return this.users.size;
  }

  add(member: Member): boolean {
    if (this.byConnection.has(member.connection)) return false;
    this.byConnection.set(member.connection, this.slots.length);
    this.slots.push(member);
    this.users.set(member.sub, (this.users.get(member.sub) ?? 0) + 1);
    return true;
  }

  get(connection: string): Member | undefined {
    const at = this.byConnection.get(connection);
    return at === undefined ? undefined : (this.slots[at] ?? undefined);
  }

  remove(connection: string): Member | undefined {
    const at = this.byConnection.get(connection);
    if (at === undefined) return undefined;
    const member = this.slots[at]!;
    this.slots[at] = null;
    this.byConnection.delete(connection);
    const n = this.users.get(member.sub)! - 1;
    if (n === 0) this.users.delete(member.sub);
    else this.users.set(member.sub, n);
    if (++this.holes > 64 && this.holes * 2 > this.slots.length) this.compact();
    return member;
  }

  /** Up to `limit` members that joined after join number `after`, oldest first, and whether more follow. */
  page(after: number, limit: number): { members: Member[]; more: boolean } {
    // Join numbers grow along the slots: binary search for the first one after `after`.
    let lo = 0;
    let hi = this.slots.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const seq = this.seqAt(mid);
      if (seq <= after) lo = mid + 1;
      else hi = mid;
    }
    const members: Member[] = [];
    let i = lo;
    for (; i < this.slots.length && members.length < limit; i++) {
      const m = this.slots[i];
      if (m) members.push(m);
    }
    while (i < this.slots.length && this.slots[i] === null) i++;
    return { members, more: i < this.slots.length };
  }

  /** The join number at slot `i`, looking past holes (a hole keeps its neighbours' order). */
  private seqAt(i: number): number {
    for (let j = i; j < this.slots.length; j++) {
      const m = this.slots[j];
      if (m) return m.seq;
    }
    return Number.POSITIVE_INFINITY;
  }

  private compact(): void {
    this.slots = this.slots.filter((m): m is Member => m !== null);
    this.holes = 0;
    this.slots.forEach((m, i) => this.byConnection.set(m!.connection, i));
  }
}

export class PresenceRegistry {
  private readonly channels = new Map<string, ChannelPresence>();
  /**
   * Each gateway's members: connection -> its channel, or its channels when
   * on several (a bare string for the common single channel: no Set per member).
   */
  private readonly byOrigin = new Map<string, Map<string, string | string[]>>();
  private nextSeq = 1;
  private total = 0;

  /** Members on every channel, of every gateway. */
  get size(): number {
    return this.total;
  }

  /** Adds the connection to `channel`; the member when it is new, undefined when it was there already. */
  join(channel: string, sub: string, connection: string, info: string | undefined, origin: string): Member | undefined {
    let presence = this.channels.get(channel);
    if (!presence) this.channels.set(channel, (presence = new ChannelPresence()));
    const member: Member = { seq: this.nextSeq++, sub, connection, info, origin };
    if (!presence.add(member)) return undefined;
    let conns = this.byOrigin.get(origin);
    if (!conns) this.byOrigin.set(origin, (conns = new Map()));
    const had = conns.get(connection);
    conns.set(connection, had === undefined ? channel : typeof had === "string" ? [had, channel] : [...had, channel]);
    this.total++;
    return member;
  }

  /** Removes the connection from `channel`; the member it was, or undefined. */
  leave(channel: string, connection: string): Member | undefined {
    const presence = this.channels.get(channel);
    const member = presence?.remove(connection);
    if (!member) return undefined;
    if (presence!.clients === 0) this.channels.delete(channel);
    const conns = this.byOrigin.get(member.origin)!;
    const had = conns.get(connection)!;
    const rest = typeof had === "string" ? [] : had.filter((c) => c !== channel);
    if (rest.length === 0) conns.delete(connection);
    else conns.set(connection, rest.length === 1 ? rest[0]! : rest);
    if (conns.size === 0) this.byOrigin.delete(member.origin);
    this.total--;
    return member;
  }

  /** Every member of gateway `origin`, as [channel, member]. */
  membersOf(origin: string): Array<[string, Member]> {
    const out: Array<[string, Member]> = [];
    for (const [connection, channels] of this.byOrigin.get(origin) ?? []) {
      for (const channel of typeof channels === "string" ? [channels] : channels) {
        const m = this.channels.get(channel)?.get(connection);
        if (m) out.push([channel, m]);
      }
    }
    return out;
  }

  /** Gateways with members here. */
  origins(): string[] {
    return [...this.byOrigin.keys()];
  }

  /** Removes every member of gateway `origin` (it died or is being synced again); the removed ones, as [channel, member]. */
  dropOrigin(origin: string): Array<[string, Member]> {
    const gone = this.membersOf(origin);
    for (const [channel, m] of gone) this.leave(channel, m.connection);
    return gone;
  }

  stats(channel: string): { clients: number; users: number } {
    const presence = this.channels.get(channel);
    return { clients: presence?.clients ?? 0, users: presence?.distinctUsers ?? 0 };
  }

  page(channel: string, after: number, limit: number): { members: Member[]; more: boolean } {
    return this.channels.get(channel)?.page(after, Math.min(limit, PRESENCE_PAGE_MAX)) ?? { members: [], more: false };
  }
}
