/**
 * In-process broker for the all-in-one `npm start` and for a single gateway
 * without NATS. Delivery is asynchronous (next microtask) like a real broker,
 * so publishers never re-enter subscriber code synchronously.
 */
import { BrokerUnavailableError } from "@herald/core";
import type { Broker, BrokerMessage, BrokerStatus, BrokerSubscription, MessageHandler } from "./broker.js";

export class MemoryBroker implements Broker {
  readonly kind = "memory" as const;
  private readonly subjects = new Map<string, Set<MessageHandler>>();
  private readonly listeners = new Set<(status: BrokerStatus) => void>();
  private open = true;

  get connected(): boolean {
    return this.open;
  }

  onStatus(listener: (status: BrokerStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  subscribe(subject: string, handler: MessageHandler): BrokerSubscription {
    let handlers = this.subjects.get(subject);
    if (!handlers) this.subjects.set(subject, (handlers = new Set()));
    // Wrap so the same handler function can be subscribed twice independently.
    const entry: MessageHandler = (msg) => handler(msg);
    handlers.add(entry);
    return {
      ready: Promise.resolve(),
      unsubscribe: () => {
        const set = this.subjects.get(subject);
        if (!set) return;
        set.delete(entry);
        if (set.size === 0) this.subjects.delete(subject);
      },
    };
  }

  async publish(subject: string, data: Uint8Array, headers?: Readonly<Record<string, string>>): Promise<void> {
    if (!this.open) throw new BrokerUnavailableError("memory broker is closed");
    const handlers = this.subjects.get(subject);
    if (!handlers) return;
    const copy = new Uint8Array(data); // the publisher may reuse its buffer
    const msg: BrokerMessage = { subject, data: copy, header: (name) => headers?.[name] };
    queueMicrotask(() => {
      for (const handler of handlers) handler(msg);
    });
  }

  async drain(): Promise<void> {
    await this.close();
  }

  async close(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    this.subjects.clear();
    for (const l of this.listeners) l("closed");
  }
}
