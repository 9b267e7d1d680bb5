/** A channel subscription: the public handle and the state the client keeps for it. */
import type { HeraldError } from "./errors.js";
import type { HeraldMessage } from "./types.js";

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

  unsubscribe(): Promise<void> {
    return this.client.unsubscribe(this.channel);
  }
}

/** A promise's settle functions, kept until the answer comes. */
export interface Deferred {
  resolve: () => void;
  reject: (err: HeraldError) => void;
}

/** @internal */
export interface SubState {
  channel: string;
  handlers: Set<(msg: HeraldMessage) => void>;
  lastSeq: number | undefined;
  /** Waiting for the answer to a gap-recovery subscribe: live messages are dropped (they will be replayed). */
  recovering: boolean;
  gapRecoveries: number;
  /** Consecutive transient refusals (rate_limited, unavailable, timeout) of a subscribe. */
  retries: number;
  /** subscribe() promises waiting for the first confirmation. */
  waiters: Deferred[];
  everConfirmed: boolean;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  handle: Subscription;
}
