/**
 * In-process broker for the all-in-one `npm start` and for a single gateway
 * without NATS. Delivery is asynchronous (next microtask) like a real broker,
 * so publishers never re-enter subscriber code synchronously. With history on,
 * it keeps bounded windows (memory-history.ts) and stamps positions exactly
 * like JetStream RePublish does, so recovery behaves the same as in production.
 */
import { BrokerUnavailableError, HistoryWindows, Subjects, type HistoryConfig } from "@herald/core";
import { randomBytes } from "node:crypto";
import {
  handOver,
  type Broker,
  type BrokerMessage,
  type BrokerKeyValue,
  type BrokerStatus,
  type BrokerSubscription,
  type EpochChange,
  type GatherOptions,
  type MessageHandler,
} from "./broker.js";
import { headerReader, MemoryHistory } from "./memory-history.js";
import { MemoryKeyValue } from "./memory-kv.js";

export interface MemoryBrokerOptions {
  /** History settings; no history when omitted (or off). */
  history?: HistoryConfig;
  /** Which windows keep which channels (namespaces); HistoryWindows.single(history) when omitted. */
  windows?: HistoryWindows;
  /** Subjects of the deployment (SUBJECT_PREFIX); default prefix "herald". */
  subjects?: Subjects;
}

export class MemoryBroker implements Broker {
  readonly kind = "memory" as const;
  readonly history: MemoryHistory | undefined;
  private readonly subjects = new Map<string, Set<(msg: BrokerMessage) => void>>();
  private readonly listeners = new Set<(status: BrokerStatus) => void>();
  private open = true;
  /** Key-value buckets: they live as long as the broker (a restart of the embedded broker forgets them). */
  private readonly buckets = new Map<string, MemoryKeyValue>();
  private readonly sweeper: NodeJS.Timeout | undefined;

  constructor(options: MemoryBrokerOptions = {}) {
    const windows = options.history?.enabled ? (options.windows ?? HistoryWindows.single(options.history)) : undefined;
    const history = windows?.enabled ? new MemoryHistory(windows, options.subjects ?? new Subjects("herald")) : undefined;
    this.history = history;
    if (history) {
      this.sweeper = setInterval(() => history.sweep(), history.sweepEveryMs);
      this.sweeper.unref();
    }
  }

  get connected(): boolean {
    return this.open;
  }

  /** The embedded history lives exactly as long as this broker: its epoch never changes under it. */
  onEpochChange(_listener: (change: EpochChange) => void): () => void {
    return () => {};
  }

  onStatus(listener: (status: BrokerStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  subscribe(subject: string, handler: MessageHandler): BrokerSubscription {
    let handlers = this.subjects.get(subject);
    if (!handlers) this.subjects.set(subject, (handlers = new Set()));
    // Wrap so the same handler function can be subscribed twice independently.
    const entry = (msg: BrokerMessage) => handOver(handler, msg);
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

  async keyValue(bucket: string, opts: { maxAgeSeconds: number }): Promise<BrokerKeyValue> {
    if (!this.open) throw new BrokerUnavailableError("memory broker is closed");
    let kv = this.buckets.get(bucket);
    if (!kv) this.buckets.set(bucket, (kv = new MemoryKeyValue(opts.maxAgeSeconds * 1000)));
    return kv;
  }

  async gather(subject: string, data: Uint8Array, opts: GatherOptions): Promise<Uint8Array[]> {
    if (!this.open) throw new BrokerUnavailableError("memory broker is closed");
    const inbox = `_INBOX.${randomBytes(9).toString("base64url")}`;
    const answers: Uint8Array[] = [];
    let finish: () => void = () => {};
    const finished = new Promise<void>((resolve) => (finish = resolve));
    const sub = this.subscribe(inbox, (msg) => {
      answers.push(msg.data);
      if (opts.done?.(msg.data)) finish();
    });
    // unref: a gather left waiting does not keep an embedded process alive.
    const timer = setTimeout(finish, opts.timeoutMs).unref();
    try {
      await this.publish(subject, data, undefined, inbox);
      await finished;
    } finally {
      clearTimeout(timer);
      sub.unsubscribe();
    }
    return answers;
  }

  /** `reply`: where answers to this message go (gather's inbox). */
  async publish(subject: string, data: Uint8Array, headers?: Readonly<Record<string, string>>, reply?: string): Promise<void> {
    if (!this.open) throw new BrokerUnavailableError("memory broker is closed");
    const copy = new Uint8Array(data); // the publisher may reuse its buffer
    const stored = this.history?.storeOf(subject);
    if (stored?.isDuplicate(headers)) return; // accepted, stored once already (as JetStream does)
    const stamped = stored ? stored.append(subject, copy, headers) : headers;
    const handlers = this.subjects.get(subject);
    if (!handlers) return;
    const msg: BrokerMessage = {
      subject,
      data: copy,
      header: headerReader(stamped),
      respond: (answer) => {
        if (reply === undefined || !this.open) return false;
        void this.publish(reply, answer);
        return true;
      },
    };
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
    clearInterval(this.sweeper);
    this.subjects.clear();
    for (const l of this.listeners) l("closed");
  }
}
