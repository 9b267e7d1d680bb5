/**
 * Presence shared between gateways: every gateway holds the members of
 * every presence channel (its own and a copy of everybody else's), so counts
 * and pages are answered locally, and keeps the copy current with three
 * kinds of NATS messages (docs/gateway-internals.md "Presence across
 * gateways"):
 *
 * - changes (`<prefix>.pres.delta`): a gateway's own joins and leaves,
 *   batched every CHANGE_BATCH_MS, numbered per gateway so a receiver sees a
 *   lost batch;
 * - heartbeats (`<prefix>.pres.hello`): one per gateway every
 *   min(5 s, TTL / 3) with its last change number, the only periodic
 *   traffic (no lease per member); a gateway not heard from for
 *   PRESENCE_TTL_SECONDS is taken for dead and its members leave;
 * - snapshots (`<prefix>.pres.snap`, request/reply): a gateway's members at
 *   a change number, in parts; asked for at start, and of one gateway
 *   whenever its changes show a gap or come from a gateway not known yet.
 *
 * A gateway is authoritative for its own members only; a copy that cannot
 * be proven current is replaced by a snapshot, never patched by guesswork.
 */
import type { GatewayMetrics, Logger, Subjects } from "@herald/core";
import type { Broker, BrokerMessage, BrokerSubscription } from "@herald/broker";

/**
 * Joins and leaves are sent together at most this often. A change after a
 * quiet spell goes out at once (next timer tick), so a lone join reaches
 * the other gateways in a millisecond; under churn they share a batch.
 */
const CHANGE_BATCH_MS = 50;
/** Members per snapshot part (well under NATS' 1 MB max payload). */
const SNAPSHOT_PART = 2000;
/** How long a snapshot request waits for its parts. */
const SNAPSHOT_TIMEOUT_MS = 2000;

/** A member as the wire carries it: [channel, connection, sub, info?]. */
export type WireMember = [string, string, string, string?];

interface Changes {
  g: string;
  n: number;
  j?: WireMember[];
  /** [channel, connection] */
  l?: Array<[string, string]>;
}

interface SnapshotPart {
  g: string;
  n: number;
  last: boolean;
  m: WireMember[];
}

/** What the share does to the local copy (Presence owns the registry and the join/leave frames). */
export interface ShareTarget {
  /** A member of another gateway joined. */
  remoteJoin(origin: string, m: WireMember): void;
  remoteLeave(channel: string, connection: string): void;
  /** Every member of `origin` leaves (a dead gateway). */
  dropOrigin(origin: string): void;
  /** `origin`'s members become exactly `members` (a snapshot): only the differences join or leave. */
  replaceOrigin(origin: string, members: WireMember[]): void;
  /** This gateway's own members, for a snapshot. */
  ownMembers(): WireMember[];
}

interface Peer {
  lastSeen: number;
  /** Last change number applied; undefined until its snapshot arrived. */
  applied: number | undefined;
  /** Changes that arrived while its snapshot is awaited. */
  pending: Changes[] | undefined;
}

export interface PresenceShareOptions {
  broker: Broker;
  subjects: Subjects;
  logger: Logger;
  /** This gateway's id (the server API's). */
  self: string;
  ttlMs: number;
  target: ShareTarget;
  metrics: GatewayMetrics;
}

export class PresenceShare {
  private readonly peers = new Map<string, Peer>();
  private changeNo = 0;
  private joins: WireMember[] = [];
  private leaves: Array<[string, string]> = [];
  /** Batches not yet accepted by the broker, oldest first (sent again after a reconnect, in order). */
  private unsent: Changes[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly timers: NodeJS.Timeout[] = [];
  private subs: BrokerSubscription[] = [];
  private offStatus: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly o: PresenceShareOptions) {}

  start(): void {
    const { broker, subjects } = this.o;
    this.subs = [
      broker.subscribe(subjects.presenceDeltas(), (msg) => this.onChanges(msg)),
      broker.subscribe(subjects.presenceHeartbeats(), (msg) => this.onHeartbeat(msg)),
      broker.subscribe(subjects.presenceSnapshots(), (msg) => this.onSnapshotRequest(msg)),
    ];
    const beatMs = Math.min(5000, Math.max(200, this.o.ttlMs / 3));
    this.timers.push(setInterval(() => this.heartbeat(), beatMs), setInterval(() => this.sweep(), Math.min(1000, beatMs)));
    for (const t of this.timers) t.unref();
    this.offStatus = broker.onStatus((status) => {
      if (status !== "connected") return;
      // Back from an outage: our unsent changes first, then everybody's state again.
      this.flush();
      void this.sync(undefined);
    });
    if (broker.connected) void this.sync(undefined);
  }

  stop(): void {
    this.stopped = true;
    this.offStatus?.();
    clearTimeout(this.flushTimer);
    for (const t of this.timers) clearInterval(t);
    for (const s of this.subs.splice(0)) s.unsubscribe();
  }

  localJoin(m: WireMember): void {
    this.joins.push(m);
    this.soon();
  }

  localLeave(channel: string, connection: string): void {
    // A join still in this batch is taken back rather than followed by a
    // leave: receivers apply a batch's leaves before its joins.
    const pending = this.joins.findIndex((j) => j[0] === channel && j[1] === connection);
    if (pending >= 0) this.joins.splice(pending, 1);
    else this.leaves.push([channel, connection]);
    this.soon();
  }

  private lastFlushAt = -Infinity;

  private soon(): void {
    if (this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => this.flush(), Math.max(0, this.lastFlushAt + CHANGE_BATCH_MS - performance.now()));
      this.flushTimer.unref();
    }
  }

  private flush(): void {
    this.flushTimer = undefined;
    this.lastFlushAt = performance.now();
    if (this.joins.length > 0 || this.leaves.length > 0) {
      const batch: Changes = { g: this.o.self, n: ++this.changeNo };
      if (this.joins.length > 0) batch.j = this.joins;
      if (this.leaves.length > 0) batch.l = this.leaves;
      this.joins = [];
      this.leaves = [];
      this.unsent.push(batch);
    }
    void this.sendUnsent();
  }

  private sending = false;

  private async sendUnsent(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    try {
      while (this.unsent.length > 0 && !this.stopped) {
        await this.o.broker.publish(this.o.subjects.presenceDeltas(), Buffer.from(JSON.stringify(this.unsent[0])));
        this.unsent.shift();
        this.o.metrics.presenceMessages.inc({ kind: "changes" });
      }
    } catch {
      // Sent again when the broker is back (onStatus); receivers see the numbers in order.
    } finally {
      this.sending = false;
    }
  }

  private heartbeat(): void {
    // The change number lets a receiver notice a last batch it never got.
    void this.o.broker
      .publish(this.o.subjects.presenceHeartbeats(), Buffer.from(JSON.stringify({ g: this.o.self, n: this.changeNo - this.unsent.length })))
      .then(() => this.o.metrics.presenceMessages.inc({ kind: "heartbeat" }), () => {});
  }

  private onHeartbeat(msg: BrokerMessage): void {
    const hb = parse<{ g: string; n: number }>(msg.data);
    if (!hb || typeof hb.g !== "string" || hb.g === this.o.self || typeof hb.n !== "number") return;
    const peer = this.peer(hb.g);
    // Not known yet, or ahead of what was applied (its last batch was lost): read it anew, unless that is under way.
    if (peer.pending === undefined && (peer.applied === undefined || hb.n > peer.applied)) void this.sync(hb.g);
  }

  private onChanges(msg: BrokerMessage): void {
    const batch = parse<Changes>(msg.data);
    if (!batch || typeof batch.g !== "string" || batch.g === this.o.self || typeof batch.n !== "number") return;
    const peer = this.peer(batch.g);
    if (peer.pending) return void peer.pending.push(batch);
    if (peer.applied === undefined || batch.n !== peer.applied + 1) {
      if (peer.applied !== undefined && batch.n <= peer.applied) return; // seen already
      peer.pending = [batch];
      void this.sync(batch.g);
      return;
    }
    this.apply(batch);
    peer.applied = batch.n;
  }

  private apply(batch: Changes): void {
    for (const [channel, connection] of batch.l ?? []) this.o.target.remoteLeave(channel, connection);
    for (const m of batch.j ?? []) this.o.target.remoteJoin(batch.g, m);
  }

  private onSnapshotRequest(msg: BrokerMessage): void {
    const req = parse<{ from?: string }>(msg.data);
    if (req?.from !== undefined && req.from !== this.o.self) return;
    // The number of the last batch the broker took: the snapshot holds exactly the changes up to it.
    this.flush();
    const n = this.changeNo - this.unsent.length;
    // Joins not yet taken by the broker follow in their batch, after the snapshot.
    const later = new Set(this.unsent.flatMap((b) => (b.j ?? []).map((j) => `${j[0]}\n${j[1]}`)));
    const members = later.size === 0 ? this.o.target.ownMembers() : this.o.target.ownMembers().filter((m) => !later.has(`${m[0]}\n${m[1]}`));
    for (let i = 0; i === 0 || i < members.length; i += SNAPSHOT_PART) {
      const part: SnapshotPart = { g: this.o.self, n, last: i + SNAPSHOT_PART >= members.length, m: members.slice(i, i + SNAPSHOT_PART) };
      if (msg.respond?.(Buffer.from(JSON.stringify(part)))) this.o.metrics.presenceMessages.inc({ kind: "snapshot" });
    }
  }

  /** Reads the members of `from` (of every gateway when undefined) anew and replaces the copies. */
  private async sync(from: string | undefined): Promise<void> {
    if (this.stopped || !this.o.broker.connected) return;
    const waiting = new Set(from === undefined ? [...this.peers.keys()] : [from]);
    for (const g of waiting) this.peer(g).pending ??= [];
    const parts = new Map<string, SnapshotPart[]>();
    let answers: Uint8Array[];
    try {
      answers = await this.o.broker.gather(this.o.subjects.presenceSnapshots(), Buffer.from(JSON.stringify(from === undefined ? {} : { from })), {
        timeoutMs: SNAPSHOT_TIMEOUT_MS,
        done: (data) => {
          const p = parse<SnapshotPart>(data);
          if (p?.last) waiting.delete(p.g);
          return waiting.size === 0 && from !== undefined;
        },
      });
    } catch (err) {
      this.o.logger.debug({ err: (err as Error).message }, "presence snapshot failed; retried on the next heartbeat");
      for (const g of waiting) this.peer(g).pending = undefined;
      return;
    }
    for (const data of answers) {
      const p = parse<SnapshotPart>(data);
      if (!p || typeof p.g !== "string" || p.g === this.o.self || !Array.isArray(p.m)) continue;
      let list = parts.get(p.g);
      if (!list) parts.set(p.g, (list = []));
      list.push(p);
    }
    const synced = new Set<string>();
    for (const [g, list] of parts) {
      if (!list.some((p) => p.last)) continue; // incomplete: the next heartbeat asks again
      synced.add(g);
      const peer = this.peer(g);
      const n = list[0]!.n;
      // A snapshot older than what is applied (another read, asked later, landed first) would
      // take back newer changes: keep the newer state.
      if (peer.applied === undefined || n > peer.applied) {
        this.o.target.replaceOrigin(g, list.flatMap((p) => p.m));
        this.o.metrics.presenceResyncs.inc();
        peer.applied = n;
      }
      const pending = (peer.pending ?? []).filter((b) => b.n > peer.applied!).sort((a, b) => a.n - b.n);
      peer.pending = undefined;
      for (const b of pending) {
        if (b.n !== peer.applied + 1) break; // a gap again: the next heartbeat asks again
        this.apply(b);
        peer.applied = b.n;
      }
    }
    // Peers that did not answer in full are asked again on their next heartbeat.
    for (const g of [...waiting, ...parts.keys()]) if (!synced.has(g)) this.peer(g).pending = undefined;
  }

  private peer(g: string): Peer {
    let peer = this.peers.get(g);
    if (!peer) this.peers.set(g, (peer = { lastSeen: Date.now(), applied: undefined, pending: undefined }));
    peer.lastSeen = Date.now();
    return peer;
  }

  /** Gateways silent for longer than the TTL are gone: their members leave. */
  private sweep(): void {
    const oldest = Date.now() - this.o.ttlMs;
    for (const [g, peer] of this.peers) {
      if (peer.lastSeen >= oldest) continue;
      this.peers.delete(g);
      this.o.target.dropOrigin(g);
      this.o.logger.info({ gateway: g }, "presence: a gateway went silent; its members left");
    }
  }
}

function parse<T>(data: Uint8Array): T | undefined {
  try {
    return JSON.parse(Buffer.from(data).toString("utf8")) as T;
  } catch {
    return undefined;
  }
}
