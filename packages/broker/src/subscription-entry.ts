/**
 * One broker subscription of the NATS broker (nats-broker.ts): its subject,
 * handler and state, kept across reconnects. Apart from nats-broker.ts so
 * that file stays the NATS connection's life cycle; it imports nothing
 * from nats.
 */
import type { BrokerSubscription, MessageHandler } from "./broker.js";

/** What a subscription asks of its broker (one object per broker, shared by all its subscriptions). */
export interface SubscriptionOwner {
  confirmSoon(): Promise<void>;
  release(entry: Entry): void;
}

/**
 * One subject's interest, kept across reconnects (attach sends it again).
 * One small object per subscription: a connect storm makes one per
 * connection, so it carries no closures of its own.
 */
export class Entry implements BrokerSubscription {
  /** The nats.js subscription while connected (only its unsubscribe is used here). */
  sub: { unsubscribe(): void } | undefined = undefined;
  active = true;
  private confirmed: Promise<void> | undefined = undefined;

  constructor(
    readonly subject: string,
    readonly handler: MessageHandler,
    private readonly owner: SubscriptionOwner,
  ) {}

  /**
   * Asked for only by a caller that must know (a channel's `subscribed`
   * reply); a user subject taken at connect never waits for it.
   */
  get ready(): Promise<void> {
    return (this.confirmed ??= this.owner.confirmSoon());
  }

  unsubscribe(): void {
    this.owner.release(this);
  }
}
