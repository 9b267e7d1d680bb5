/**
 * In-process broker for the all-in-one `npm start` and for a single gateway
 * without NATS. Delivery is asynchronous (next microtask) like a real broker,
 * so publishers never re-enter subscriber code synchronously. With history on,
 * it keeps a bounded window per subject and stamps positions exactly like
 * JetStream RePublish does, so recovery behaves the same as in production.
 */
import { BrokerUnavailableError, Header, type HistoryConfig } from "@herald/core";
import type {
  Broker,
  BrokerHistory,
  BrokerMessage,
  BrokerStatus,
  BrokerSubscription,
  MessageHandler,
  StoredMessage,
} from "./broker.js";

export interface MemoryBrokerOptions {
  /** History settings; subjects starting with `historyPrefix` are kept. */
  history?: HistoryConfig;
  historyPrefix?: string;
}

interface Stored extends StoredMessage {
  readonly at: number;
}

function headerReader(headers: Readonly<Record<string, string>> | undefined) {
  return (name: string) => headers?.[name];
}

/** Like the JetStream stream's duplicate_window: a Herald-Id seen this recently is stored once. */
const DUPLICATE_WINDOW_MS = 120_000;

class MemoryHistory implements BrokerHistory {
  private seq = 0;
  private readonly bySubject = new Map<string, Stored[]>();
  /** Highest position dropped from each subject's window (by age or count). */
  private readonly dropped = new Map<string, number>();
  /** The same for subjects the sweep has forgotten (empty windows): one bound for all of them. */
  private forgottenDropped = 0;
  /** Herald-Id -> when it was stored (insertion order = time order). */
  private readonly recentIds = new Map<string, number>();

  constructor(
    private readonly config: HistoryConfig,
    readonly prefix: string,
  ) {}

  liveSubject(subject: string): string {
    return subject;
  }

  covers(subject: string): boolean {
    return subject.startsWith(this.prefix);
  }

  /** True when a message with this Herald-Id was stored within the duplicate window. */
  isDuplicate(headers: Readonly<Record<string, string>> | undefined): boolean {
    const id = headers?.[Header.Id];
    if (id === undefined) return false;
    const now = Date.now();
    for (const [old, at] of this.recentIds) {
      if (at > now - DUPLICATE_WINDOW_MS) break;
      this.recentIds.delete(old);
    }
    if (this.recentIds.has(id)) return true;
    this.recentIds.set(id, now);
    return false;
  }

  /** Stores a message and returns the position headers to deliver with it. */
  append(subject: string, data: Uint8Array, headers: Readonly<Record<string, string>> | undefined): Record<string, string> {
    const list = this.trim(subject) ?? [];
    const last = list.length > 0 ? list[list.length - 1]!.seq : 0;
    const seq = ++this.seq;
    const stamped = { ...headers, [Header.Sequence]: String(seq), [Header.LastSequence]: String(last) };
    list.push({ seq, data, at: Date.now(), header: headerReader(stamped) });
    if (list.length > this.config.maxPerChannel) this.dropped.set(subject, list.shift()!.seq);
    this.bySubject.set(subject, list);
    return stamped;
  }

  /** Drops messages older than the window; returns what is left. */
  private trim(subject: string): Stored[] | undefined {
    const list = this.bySubject.get(subject);
    if (!list) return undefined;
    const oldest = Date.now() - this.config.maxAgeSeconds * 1000;
    while (list.length > 0 && list[0]!.at < oldest) this.dropped.set(subject, list.shift()!.seq);
    return list;
  }

  async lastSeq(subject: string): Promise<number> {
    const list = this.trim(subject);
    return list && list.length > 0 ? list[list.length - 1]!.seq : 0;
  }

  async reaches(subject: string, after: number): Promise<boolean> {
    this.trim(subject);
    return (this.dropped.get(subject) ?? this.forgottenDropped) <= after;
  }

  async read(subject: string, after: number, limit: number): Promise<StoredMessage[]> {
    const list = this.trim(subject) ?? [];
    const out: StoredMessage[] = [];
    for (const m of list) {
      if (m.seq <= after) continue;
      out.push(m);
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * Drops expired messages on every subject, and subjects left empty:
   * without it a channel written once and never again would be kept forever.
   */
  sweep(): void {
    for (const [subject, list] of this.bySubject) {
      if ((this.trim(subject) ?? list).length > 0) continue;
      this.bySubject.delete(subject);
      this.forgottenDropped = Math.max(this.forgottenDropped, this.dropped.get(subject) ?? 0);
      this.dropped.delete(subject);
    }
  }
}

export class MemoryBroker implements Broker {
  readonly kind = "memory" as const;
  readonly history: MemoryHistory | undefined;
  private readonly subjects = new Map<string, Set<MessageHandler>>();
  private readonly listeners = new Set<(status: BrokerStatus) => void>();
  private open = true;
  private readonly sweeper: NodeJS.Timeout | undefined;

  constructor(options: MemoryBrokerOptions = {}) {
    const history = options.history?.enabled && options.historyPrefix ? new MemoryHistory(options.history, options.historyPrefix) : undefined;
    this.history = history;
    if (history) {
      const everyMs = Math.min(60_000, Math.max(1000, (options.history!.maxAgeSeconds * 1000) / 4));
      this.sweeper = setInterval(() => history.sweep(), everyMs);
      this.sweeper.unref();
    }
  }

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
    const copy = new Uint8Array(data); // the publisher may reuse its buffer
    const stored = this.history?.covers(subject) ? this.history : undefined;
    if (stored?.isDuplicate(headers)) return; // accepted, stored once already (as JetStream does)
    const stamped = stored ? stored.append(subject, copy, headers) : headers;
    const handlers = this.subjects.get(subject);
    if (!handlers) return;
    const msg: BrokerMessage = { subject, data: copy, header: headerReader(stamped) };
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
