/**
 * In-process broker for the all-in-one `npm start` and for a single gateway
 * without NATS. Delivery is asynchronous (next microtask) like a real broker,
 * so publishers never re-enter subscriber code synchronously. With history on,
 * it keeps a bounded window per subject and stamps positions exactly like
 * JetStream RePublish does, so recovery behaves the same as in production.
 */
import { randomBytes } from "node:crypto";
import { BrokerUnavailableError, Header, type HistoryConfig } from "@herald/core";
import {
  handOver,
  type Broker,
  type BrokerHistory,
  type BrokerMessage,
  type BrokerStatus,
  type BrokerSubscription,
  type MessageHandler,
  type StoredMessage,
} from "./broker.js";

export interface MemoryBrokerOptions {
  /** History settings; subjects starting with `historyPrefix` are kept. */
  history?: HistoryConfig;
  historyPrefix?: string;
}

interface Stored extends StoredMessage {
  readonly subject: string;
  readonly at: number;
  /** Dropped from its subject by the count limit (still in `log` until the log is compacted). */
  gone: boolean;
}

function headerReader(headers: Readonly<Record<string, string>> | undefined) {
  return (name: string) => headers?.[name];
}

/** Like the JetStream stream's duplicate_window: a Herald-Id seen this recently is stored once. */
const DUPLICATE_WINDOW_MS = 120_000;

/**
 * One stream for every subject, dropping messages the two ways JetStream
 * does: by age across the stream (oldest positions first) and by count
 * within a subject. `reaches()` answers exactly what the JetStream history
 * can answer (see NatsHistory.reaches), so the same question gets the same
 * answer on both brokers.
 */
class MemoryHistory implements BrokerHistory {
  private seq = 0;
  /** Stored messages of each subject, oldest first; a subject with none is not kept. */
  private readonly bySubject = new Map<string, Stored[]>();
  /** Every stored message in position order (= time order), plus count-dropped ones not yet compacted away. */
  private log: Stored[] = [];
  private head = 0;
  private goneInLog = 0;
  /** Herald-Id -> when it was stored (insertion order = time order). */
  private readonly recentIds = new Map<string, number>();
  /** This broker's history lives as long as the process: a restart starts a new epoch. */
  readonly epoch = randomBytes(9).toString("base64url");

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
    this.expire();
    let list = this.bySubject.get(subject);
    if (!list) this.bySubject.set(subject, (list = []));
    const last = list.length > 0 ? list[list.length - 1]!.seq : 0;
    const seq = ++this.seq;
    const stamped = { ...headers, [Header.Sequence]: String(seq), [Header.LastSequence]: String(last) };
    const stored: Stored = { seq, subject, data, at: Date.now(), gone: false, header: headerReader(stamped) };
    list.push(stored);
    this.log.push(stored);
    if (list.length > this.config.maxPerChannel) {
      list.shift()!.gone = true;
      this.goneInLog++;
      this.compact();
    }
    return stamped;
  }

  /** Drops messages older than the window, oldest position first, as the stream's max_age does. */
  private expire(): void {
    const oldest = Date.now() - this.config.maxAgeSeconds * 1000;
    while (this.head < this.log.length) {
      const m = this.log[this.head]!;
      if (!m.gone) {
        if (m.at >= oldest) break;
        // The oldest stored message overall is the oldest of its subject.
        const list = this.bySubject.get(m.subject)!;
        list.shift();
        if (list.length === 0) this.bySubject.delete(m.subject);
      } else {
        this.goneInLog--;
      }
      this.head++;
    }
    this.compact();
  }

  /** Keeps the log at most about twice the stored messages. */
  private compact(): void {
    const dead = this.head + this.goneInLog;
    if (dead < 1024 || dead * 2 < this.log.length) return;
    this.log = this.log.slice(this.head).filter((m) => !m.gone);
    this.head = 0;
    this.goneInLog = 0;
  }

  /** The stream's first position: its oldest stored message, or the next position when it holds none. */
  private firstSeq(): number {
    for (let i = this.head; i < this.log.length; i++) if (!this.log[i]!.gone) return this.log[i]!.seq;
    return this.seq + 1;
  }

  async lastSeq(subject: string): Promise<number> {
    this.expire();
    const list = this.bySubject.get(subject);
    return list && list.length > 0 ? list[list.length - 1]!.seq : 0;
  }

  /** The rule of NatsHistory.reaches, on this broker's own state. */
  async reaches(subject: string, after: number): Promise<boolean> {
    this.expire();
    const list = this.bySubject.get(subject) ?? [];
    if (after > 0 && list.some((m) => m.seq === after)) return true;
    return this.firstSeq() <= after + 1 && list.length < this.config.maxPerChannel;
  }

  async read(subject: string, after: number, limit: number): Promise<StoredMessage[]> {
    this.expire();
    const list = this.bySubject.get(subject) ?? [];
    const out: StoredMessage[] = [];
    for (const m of list) {
      if (m.seq <= after) continue;
      out.push(m);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Drops expired messages even when nothing is read or written (frees the memory of idle channels). */
  sweep(): void {
    this.expire();
  }
}

export class MemoryBroker implements Broker {
  readonly kind = "memory" as const;
  readonly history: MemoryHistory | undefined;
  private readonly subjects = new Map<string, Set<(msg: BrokerMessage) => void>>();
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

  /** The embedded history lives exactly as long as this broker: its epoch never changes under it. */
  onEpochChange(_listener: (epoch: string) => void): () => void {
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
