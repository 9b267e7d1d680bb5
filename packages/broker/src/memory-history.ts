/**
 * The embedded broker's history: one bounded store per window (the same
 * windows, limits and drop rules as the JetStream streams), stamping
 * positions exactly like JetStream RePublish does, so recovery behaves the
 * same as in production.
 */
import { randomBytes } from "node:crypto";
import { Header, type HistoryWindow, type HistoryWindows, type Subjects } from "@herald/core";
import type { BrokerHistory, StoredMessage } from "./broker.js";

interface Stored extends StoredMessage {
  readonly subject: string;
  readonly at: number;
  /** Dropped from its subject by the count limit (still in `log` until the log is compacted). */
  gone: boolean;
}

/** A message's header lookup over a plain record. */
export function headerReader(headers: Readonly<Record<string, string>> | undefined) {
  return (name: string) => headers?.[name];
}

/** Like the JetStream stream's duplicate_window: a Herald-Id seen this recently is stored once. */
const DUPLICATE_WINDOW_MS = 120_000;

/**
 * One window's stream, dropping messages the two ways JetStream does: by age
 * across the stream (oldest positions first) and by count within a subject.
 * `reaches()` answers exactly what the JetStream history can answer (see
 * NatsHistory.reaches), so the same question gets the same answer on both
 * brokers.
 */
class MemoryStream {
  private seq = 0;
  /** Stored messages of each subject, oldest first; a subject with none is not kept. */
  private readonly bySubject = new Map<string, Stored[]>();
  /** Every stored message in position order (= time order), plus count-dropped ones not yet compacted away. */
  private log: Stored[] = [];
  private head = 0;
  private goneInLog = 0;
  /** Herald-Id -> when it was stored (insertion order = time order). */
  private readonly recentIds = new Map<string, number>();

  constructor(readonly window: HistoryWindow) {}

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
    if (list.length > this.window.maxPerChannel) {
      list.shift()!.gone = true;
      this.goneInLog++;
      this.compact();
    }
    return stamped;
  }

  /** Drops messages older than the window, oldest position first, as the stream's max_age does. */
  private expire(): void {
    const oldest = Date.now() - this.window.maxAgeSeconds * 1000;
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

  lastSeq(subject: string): number {
    this.expire();
    const list = this.bySubject.get(subject);
    return list && list.length > 0 ? list[list.length - 1]!.seq : 0;
  }

  /** The rule of NatsHistory.reaches, on this broker's own state. */
  reaches(subject: string, after: number): boolean {
    this.expire();
    const list = this.bySubject.get(subject) ?? [];
    if (after > 0 && list.some((m) => m.seq === after)) return true;
    return this.firstSeq() <= after + 1 && list.length < this.window.maxPerChannel;
  }

  read(subject: string, after: number, limit: number): StoredMessage[] {
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


export class MemoryHistory implements BrokerHistory {
  /** This broker's history lives as long as the process: a restart starts a new epoch (one for every window). */
  private readonly epoch = randomBytes(9).toString("base64url");
  private readonly streams = new Map<string, MemoryStream>();

  constructor(
    private readonly windows: HistoryWindows,
    private readonly subjects: Subjects,
  ) {
    for (const window of windows.list) this.streams.set(window.stream, new MemoryStream(window));
  }

  /** How often sweep() should run: often enough for the shortest window. */
  get sweepEveryMs(): number {
    const shortest = Math.min(...this.windows.list.map((w) => w.maxAgeSeconds));
    return Math.min(60_000, Math.max(1000, (shortest * 1000) / 4));
  }

  windowOf(subject: string): HistoryWindow | undefined {
    const channel = this.subjects.channelOf(subject);
    return channel === null ? undefined : this.windows.of(channel);
  }

  epochOf(_subject: string): string {
    return this.epoch;
  }

  /** The live copy of a stored message goes out on its own subject here. */
  liveSubject(subject: string): string {
    return subject;
  }

  /** The store capturing `subject`, served or not (see HistoryWindows.storing). */
  storeOf(subject: string): MemoryStream | undefined {
    const channel = this.subjects.channelOf(subject);
    const window = channel === null ? undefined : this.windows.storing(channel);
    return window && this.streams.get(window.stream);
  }

  async lastSeq(subject: string): Promise<number> {
    return this.servingStore(subject).lastSeq(subject);
  }

  async reaches(subject: string, after: number): Promise<boolean> {
    return this.servingStore(subject).reaches(subject, after);
  }

  async read(subject: string, after: number, limit: number): Promise<StoredMessage[]> {
    return this.servingStore(subject).read(subject, after, limit);
  }

  /** Drops expired messages even when nothing is read or written (frees the memory of idle channels). */
  sweep(): void {
    for (const stream of this.streams.values()) stream.sweep();
  }

  private servingStore(subject: string): MemoryStream {
    const window = this.windowOf(subject);
    const stream = window && this.streams.get(window.stream);
    if (!stream) throw new Error(`no history window keeps ${subject}`);
    return stream;
  }
}
