/**
 * The broker seam, in the manner of socket.io's adapter: the gateway and the
 * publisher only see this interface. NATS is the production implementation;
 * the memory broker is the embedded default when NATS_URL is unset.
 */
import type { HistoryWindow } from "@herald/core";

export interface BrokerMessage {
  readonly subject: string;
  readonly data: Uint8Array;
  /** Value of a message header, or undefined. */
  header(name: string): string | undefined;
  /** Answers a request (a message sent by gather()); false when the message asked for no answer. */
  respond?(data: Uint8Array): boolean;
}

export interface GatherOptions {
  /** How long to wait for answers at most. */
  timeoutMs: number;
  /** Told of each answer as it arrives; true stops the wait early (every expected answer is in). */
  done?: (answer: Uint8Array) => boolean;
}

/**
 * Receives a subscription's messages: a function, or an object with
 * `receive` — a long-lived owner (a gateway's topic stream, one per
 * subscribed channel or user) then needs no closure per subscription.
 */
export type MessageHandler = ((msg: BrokerMessage) => void) | MessageReceiver;

export interface MessageReceiver {
  receive(msg: BrokerMessage): void;
}

/** Hands `msg` to a handler of either form. */
export function handOver(handler: MessageHandler, msg: BrokerMessage): void {
  if (typeof handler === "function") handler(msg);
  else handler.receive(msg);
}

export interface BrokerSubscription {
  /**
   * Resolves once the broker server has registered the interest, so a
   * message published after it is guaranteed to be delivered. Never rejects;
   * while disconnected it resolves at once (the subscription is replayed on
   * reconnect).
   */
  readonly ready: Promise<void>;
  unsubscribe(): void;
}

/** A message read back from the history window. */
export interface StoredMessage {
  readonly seq: number;
  readonly data: Uint8Array;
  header(name: string): string | undefined;
}

/**
 * The history windows used for recovery: one per stream (see
 * HistoryWindows in @herald/core), each channel subject kept by at most one.
 * Live messages of subjects with history arrive on `liveSubject(subject)`
 * carrying the `Nats-Sequence` and `Nats-Last-Sequence` headers (JetStream
 * RePublish), so a client can spot a gap and resume from its last position.
 * Positions count within one window's stream.
 */
export interface BrokerHistory {
  /** The window serving `subject` (a channel subject), or undefined when its channel has no history. */
  windowOf(subject: string): HistoryWindow | undefined;
  /**
   * Names this life of `subject`'s window: the same on every gateway and
   * publisher of a deployment, and different once the history is lost and
   * started again (the JetStream stream deleted and created anew, the
   * embedded broker restarted). A position is only meaningful within its
   * epoch. Only for subjects with a window.
   */
  epochOf(subject: string): string;
  liveSubject(subject: string): string;
  /** Position of the newest stored message on `subject`, 0 when there is none. */
  lastSeq(subject: string): Promise<number>;
  /**
   * True when the window provably still reaches back to position `after` on
   * `subject`, so nothing after it has been dropped: the message at `after`
   * is still stored, or nothing after `after` has left the stream by age
   * (the stream's first position is at most `after` + 1) and the subject is
   * below its count limit. False when that cannot be shown — the honest
   * answer, since a stream keeps no trace of a subject whose messages are
   * gone. Both brokers answer by this rule, so a resume gets the same
   * `recovered` on either.
   */
  reaches(subject: string, after: number): Promise<boolean>;
  /**
   * Up to `limit` stored messages on `subject` after position `after`, oldest
   * first. Callers page through a backlog with it, so no recovery is ever
   * read, held or sent all at once.
   */
  read(subject: string, after: number, limit: number): Promise<StoredMessage[]>;
}

/** A window's history started a new life while the process runs (see BrokerHistory.epochOf). */
export interface EpochChange {
  /** The window's stream. */
  stream: string;
  epoch: string;
}

/**
 * A small replicated key-value bucket (JetStream KV; memory in the embedded
 * broker): the server API's blocks and revocations. Keys are
 * `[A-Za-z0-9_=.-]`; one value per key (no history).
 */
export interface BrokerKeyValue {
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  /**
   * Every entry now, then every change (value undefined: deleted or
   * expired), to `onEntry`. Resolves once the entries there now have been
   * delivered, with a function that stops the watch. `onEnd` is told when the
   * watch ends without being stopped (the connection it ran on is gone).
   */
  watch(onEntry: (key: string, value: Uint8Array | undefined) => void, onEnd?: () => void): Promise<() => void>;
}

export type BrokerStatus = "connected" | "disconnected" | "closed";

export interface Broker {
  readonly kind: "memory" | "nats";
  /** True while messages can be published and received. */
  readonly connected: boolean;
  /** Present when message history (recovery) is available. */
  readonly history: BrokerHistory | undefined;
  /** Called on every status change; returns a function that removes the listener. */
  onStatus(listener: (status: BrokerStatus) => void): () => void;
  /** Called when a window's epoch changes while the process runs (see BrokerHistory.epochOf); returns a function that removes the listener. */
  onEpochChange(listener: (change: EpochChange) => void): () => void;
  /**
   * Subscribes to one concrete subject. Subscriptions survive reconnects: the
   * implementation re-establishes them when the connection comes back.
   */
  subscribe(subject: string, handler: MessageHandler): BrokerSubscription;
  /**
   * Publishes and resolves once the broker has accepted the message; rejects
   * with BrokerUnavailableError when disconnected, so callers never drop
   * messages silently.
   */
  publish(subject: string, data: Uint8Array, headers?: Readonly<Record<string, string>>): Promise<void>;
  /**
   * Publishes a request to every subscriber of `subject` and gathers their
   * answers (BrokerMessage.respond) until `timeoutMs` or `done`; rejects with
   * BrokerUnavailableError when disconnected.
   */
  gather(subject: string, data: Uint8Array, opts: GatherOptions): Promise<Uint8Array[]>;
  /**
   * The bucket `bucket`, created when missing, whose entries lapse after
   * `maxAgeSeconds`; rejects with BrokerUnavailableError while disconnected
   * or when the broker has no storage for it (NATS without JetStream).
   */
  keyValue(bucket: string, opts: { maxAgeSeconds: number }): Promise<BrokerKeyValue>;
  /** Stops delivery after in-flight messages are handled, then closes. */
  drain(): Promise<void>;
  close(): Promise<void>;
}
