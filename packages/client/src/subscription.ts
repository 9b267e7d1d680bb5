/** A channel subscription: the public handle, and the state it owns, positions first. */
import type { HeraldError } from "./errors.js";
import type { GapInfo, HeraldMessage, PresenceEvent, RecoveryInfo } from "./types.js";

/** Gap recoveries in a row (without an in-order message) before the client accepts the loss. */
export const MAX_GAP_RECOVERIES = 3;

/** What a Subscription handle asks of the client that made it. */
export interface SubscriptionOwner {
  isActive(channel: string): boolean;
  unsubscribe(channel: string): Promise<void>;
}

/** Handle of one channel subscription (one per channel per client). */
export class Subscription<T = unknown> {
  /** @internal */
  constructor(
    readonly channel: string,
    private readonly client: SubscriptionOwner,
    private readonly state: SubState,
  ) {}

  /** The last stream position received (recovery-capable servers), e.g. to persist and pass as `since` later. */
  get lastSeq(): number | undefined {
    return this.state.lastSeq;
  }

  /** The history epoch `lastSeq` belongs to: persist it with `lastSeq` and pass both back (`since`, `epoch`). */
  get epoch(): string | undefined {
    return this.state.epoch;
  }

  /** True while the server has confirmed the subscription on the current connection. */
  get active(): boolean {
    return this.client.isActive(this.channel);
  }

  /** Adds a message handler; returns a function removing it. */
  onMessage(fn: (msg: HeraldMessage<T>) => void): () => void {
    const h = fn as (msg: HeraldMessage) => void;
    this.state.handlers.add(h);
    return () => this.state.handlers.delete(h);
  }

  /** Adds a handler for members joining the channel (presence namespaces with join_leave); returns a function removing it. */
  onJoin(fn: (e: PresenceEvent) => void): () => void {
    this.state.joins.add(fn);
    return () => this.state.joins.delete(fn);
  }

  /** Adds a handler for members leaving the channel; returns a function removing it. */
  onLeave(fn: (e: PresenceEvent) => void): () => void {
    this.state.leaves.add(fn);
    return () => this.state.leaves.delete(fn);
  }

  unsubscribe(): Promise<void> {
    return this.client.unsubscribe(this.channel);
  }
}

/** A promise's settle functions, kept until the answer comes. */
export interface Deferred {
  resolve: () => void;
  reject: (err: HeraldError) => void;
}

/** Resolves every one of `waiters` (taken out of their list by the caller), or rejects them with `err`. */
export function settleAll(waiters: Deferred[], err?: HeraldError): void {
  for (const w of waiters) err ? w.reject(err) : w.resolve();
}

/** Where a channel message stands against the positions seen so far. */
export interface Placement {
  /** Hand it to the application. */
  deliver: boolean;
  /** Subscribe again with `since` = the last position, to get what is missing. */
  recover: boolean;
  /** The message revealed a gap (`prev` after the last position seen). */
  gap?: GapInfo;
}
const DELIVER: Placement = Object.freeze({ deliver: true, recover: false });
const SKIP: Placement = Object.freeze({ deliver: false, recover: false });

/** @internal The client's state of one channel: handlers, waiters, retries, and the stream positions it resumes from. */
export class SubState {
  readonly handlers = new Set<(msg: HeraldMessage) => void>();
  readonly joins = new Set<(e: PresenceEvent) => void>();
  readonly leaves = new Set<(e: PresenceEvent) => void>();
  /** The last position delivered: the `since` of the next subscribe. */
  lastSeq: number | undefined;
  /** The server's history epoch of `lastSeq`, sent back with it. */
  epoch: string | undefined;
  /** Waiting for the answer to a gap-recovery subscribe: live messages are dropped (they will be replayed). */
  recovering = false;
  gapRecoveries = 0;
  /** Consecutive transient refusals (rate_limited, unavailable, timeout) of a subscribe. */
  retries = 0;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** subscribe() promises waiting for the first confirmation. */
  waiters: Deferred[] = [];
  everConfirmed = false;
  readonly handle: Subscription;

  constructor(
    readonly channel: string,
    owner: SubscriptionOwner,
    since?: number,
    epoch?: string,
  ) {
    this.lastSeq = typeof since === "number" && Number.isFinite(since) ? since : undefined;
    this.epoch = this.lastSeq !== undefined && typeof epoch === "string" ? epoch : undefined;
    this.handle = new Subscription(channel, owner, this);
  }

  /**
   * The server confirmed a subscribe sent with `since` (undefined: a fresh
   * one) and answered with `seq`/`recovered`. Returns the recovery to report
   * when the subscribe asked to resume and the server has positions.
   */
  confirm(since: number | undefined, seq: number | undefined, recovered: boolean | undefined, epoch?: string): RecoveryInfo | undefined {
    this.recovering = false;
    this.retries = 0;
    if (epoch !== undefined) this.epoch = epoch;
    if (since === undefined) {
      if (seq !== undefined && this.lastSeq === undefined) this.lastSeq = seq;
      return undefined;
    }
    const positions = seq !== undefined || recovered !== undefined;
    // History did not reach back (messages are lost for good), or a plain server
    // whose positions mean nothing: accept the stream from here on.
    if (recovered === false || !positions) this.lastSeq = undefined;
    if (!positions) return undefined;
    const info: RecoveryInfo = { channel: this.channel, since, seq, recovered: recovered !== false };
    if (epoch !== undefined) info.epoch = epoch;
    return info;
  }

  /**
   * Places a message at `seq` (previous on the channel: `prev`): duplicates
   * (seq <= last) and messages that a pending recovery will replay are
   * skipped; a gap (prev > last) asks for recovery while `canRecover` and
   * fewer than MAX_GAP_RECOVERIES in a row were tried, else the loss is
   * accepted and the message delivered.
   */
  place(seq: number, prev: number | undefined, canRecover: boolean): Placement {
    if (this.recovering) return SKIP;
    const last = this.lastSeq;
    if (last !== undefined && seq <= last) return SKIP;
    let gap: GapInfo | undefined;
    if (last !== undefined && prev !== undefined && prev > last) {
      const recovering = canRecover && this.gapRecoveries < MAX_GAP_RECOVERIES;
      gap = { channel: this.channel, lastSeq: last, prev, seq, recovering };
      if (recovering) {
        this.gapRecoveries++;
        this.recovering = true;
        return { deliver: false, recover: true, gap };
      }
    }
    this.lastSeq = seq;
    if (prev === undefined || last === undefined || prev === last) this.gapRecoveries = 0;
    return gap ? { deliver: true, recover: false, gap } : DELIVER;
  }

  resolveWaiters(): void {
    settleAll(this.waiters.splice(0));
  }

  rejectWaiters(err: HeraldError): void {
    settleAll(this.waiters.splice(0), err);
  }

  stopRetry(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }
}
