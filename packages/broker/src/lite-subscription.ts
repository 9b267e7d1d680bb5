/**
 * A subscription registered with nats.js' protocol handler directly, for the
 * subjects the gateway holds one per connection (user subjects, personal
 * channels). nats.js' own SubscriptionImpl is an async iterator even in
 * callback mode: three deferred promises, an options copy and a closure,
 * about 1.1 KB of heap and a fifth of a connect storm's JavaScript per
 * subscription. This one is a sid, a subject and a counter.
 *
 * It is what nats.js 2.29's ProtocolHandler reads and calls on a
 * subscription (protocol.js: `subscribe` assigns `sid` and sends SUB;
 * `processMsg` counts `received` and calls `callback`; `sendSubscriptions`
 * replays `subject`/`queue`/`sid` after a reconnect; `unsubscribe` sends
 * UNSUB and cancels; `Subscriptions.close`/`cancel` and `handleError` call
 * `close`; `drain` calls `drain`). `liteSubscriber` checks that the protocol
 * handler has that shape and returns nothing otherwise, so another nats.js
 * falls back to `nc.subscribe` (test/nats-lite-subscription.test.ts says which
 * one is in use). This file imports nothing from nats: nats-broker.ts hands
 * it the connection.
 */

/** A delivered message or an error, as nats.js calls a subscription's callback. */
export type LiteCallback<M> = (err: Error | null, msg: M) => void;

/** The parts of nats.js' ProtocolHandler this file uses. */
interface ProtocolHandlerShape {
  subscribe(s: object): unknown;
  unsubscribe(s: object, max?: number): void;
  unsub(s: object, max?: number): void;
  flush(): Promise<unknown>;
  isClosed(): boolean;
  subscriptions: { add(s: unknown): unknown; get(sid: number): unknown; cancel(s: unknown): void; all(): unknown[] };
}

export class LiteSubscription<M> {
  /** Set by nats.js when it registers the subscription. */
  sid = 0;
  received = 0;
  /** Never auto-unsubscribed (nats.js reads `max` after every message). */
  max: number | undefined = undefined;
  readonly queue: string | undefined = undefined;
  private done = false;
  private drained: Promise<void> | undefined = undefined;

  constructor(
    private readonly protocol: ProtocolHandlerShape,
    readonly subject: string,
    readonly callback: LiteCallback<M>,
  ) {}

  /** Called by nats.js when the subscription is cancelled or the connection closes. */
  close(): void {
    this.done = true;
  }

  isClosed(): boolean {
    return this.done;
  }

  unsubscribe(): void {
    if (this.done || this.protocol.isClosed()) return;
    this.protocol.unsubscribe(this);
  }

  /** nats.js' `nc.drain()`: UNSUB, then cancelled once the server has read it. */
  drain(): Promise<void> {
    if (this.done || this.protocol.isClosed()) return Promise.resolve();
    if (!this.drained) {
      this.protocol.unsub(this);
      const cancel = () => this.protocol.subscriptions.cancel(this);
      this.drained = this.protocol.flush().then(cancel, cancel);
    }
    return this.drained;
  }
}

const isFunction = (v: unknown): boolean => typeof v === "function";

/**
 * A function that subscribes `subject` on `nc` with a LiteSubscription, or
 * undefined when nc's protocol handler is not the shape this file knows.
 */
export function liteSubscriber<M>(nc: unknown): ((subject: string, callback: LiteCallback<M>) => LiteSubscription<M>) | undefined {
  const protocol = (nc as { protocol?: Partial<ProtocolHandlerShape> } | undefined)?.protocol;
  const subs = protocol?.subscriptions;
  const known =
    protocol &&
    subs &&
    [protocol.subscribe, protocol.unsubscribe, protocol.unsub, protocol.flush, protocol.isClosed].every(isFunction) &&
    [subs.add, subs.get, subs.cancel, subs.all].every(isFunction);
  if (!known) return undefined;
  const handler = protocol as ProtocolHandlerShape;
  return (subject, callback) => {
    // nats.js checks this in nc.subscribe: a blank in a subject would split the SUB line.
    if (subject === "" || /\s/.test(subject)) throw new Error(`invalid subject: ${JSON.stringify(subject)}`);
    const sub = new LiteSubscription<M>(handler, subject, callback);
    handler.subscribe(sub);
    return sub;
  };
}
