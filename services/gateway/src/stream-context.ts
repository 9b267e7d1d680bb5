/**
 * What a channel stream (channel-stream.ts) is given: the destination it
 * feeds, the options of one join, and what every stream of a gateway shares.
 */
import type { GatewayMetrics, Logger, Tracing } from "@herald/core";
import type { Broker } from "@herald/broker";
import type { TopicSink } from "./connection.js";
import type { TopicWriter } from "./topic-writer.js";

export interface Destination {
  /** Topic the connections join. */
  topic: string;
  /** Broker subject feeding it. */
  subject: string;
  /**
   * Builds the fixed head of every message frame from `name`. Called on the
   * first message only: most personal topics never carry one, and an idle
   * stream then keeps no Buffer (a small Buffer also pins an 8 KiB pool slab).
   */
  head: (name: string) => Buffer;
  /** The channel or user the frames name. */
  name: string;
  /**
   * For channels with history: the stored subject, whose positions
   * (Nats-Sequence / Nats-Last-Sequence) go into every frame.
   */
  historySubject?: string;
}

/** What a connection is told when it joins a topic with positions. */
export interface JoinedPosition {
  /** The position it continues from. */
  seq: number;
  /** False when messages after its `since` have left the history window (or the history was reset). */
  recovered: boolean;
}

export interface JoinOptions {
  /** The position the connection has seen (a resume); only channels with history use it. */
  since?: number;
  /**
   * Called once, before any frame of the topic reaches the connection: where
   * the `subscribed` reply goes. `undefined` for topics without positions.
   */
  onJoined?: (position: JoinedPosition | undefined) => void;
}

/** What every stream of one gateway shares. */
export interface StreamContext {
  broker: Broker;
  sink: TopicSink;
  writer: TopicWriter;
  metrics: GatewayMetrics;
  tracing: Tracing;
  logger: Logger;
  /** Runs a recovery when one of the process's recovery slots is free. */
  recoverySlot: <T>(run: () => Promise<T>) => Promise<T>;
  /** A recovering connection holding more unsent bytes than this is closed with 4009. */
  slowConsumerBytes: number;
}

/**
 * Rounds of "wait for the stream to reach a position" (a running catch-up,
 * then a new one) — for a recovering connection, rounds of "read the
 * history, wait for the stream" — before it joins anyway.
 */
export const SETTLE_ROUNDS = 4;
