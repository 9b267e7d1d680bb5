/**
 * JetStream-backed history: a stream per window (one catch-all stream, or
 * one per namespace with history; see HistoryWindows) captures its channel
 * subjects with a bounded window (age and count per channel) and
 * republishes each stored message to `<prefix>.live.<channel>` with
 * `Nats-Sequence` and `Nats-Last-Sequence`, which is what lets clients
 * detect gaps and resume. Reads use Direct Get (any replica answers, no
 * consumer state on the server).
 *
 * Herald never deletes a stream. Streams a configuration no longer names are
 * listed in the log, with what to do about them; a window made smaller is
 * logged too, since JetStream drops what falls outside it at once.
 */
import { createHash } from "node:crypto";
import type { HistoryWindow, HistoryWindows, Logger, Subjects } from "@herald/core";
import type { JetStreamManager, StoredMsg, StreamConfig } from "nats";

/** nats.js implements Direct Get on its manager but leaves it off the exported types. */
type DirectQuery = { seq: number; next_by_subj?: string } | { seq: number } | { last_by_subj: string };
type DirectJetStreamManager = JetStreamManager & {
  direct: { getMessage(stream: string, query: DirectQuery): Promise<StoredMsg> };
};
import type { BrokerHistory, EpochChange, StoredMessage } from "./broker.js";

const NANOS_PER_SECOND = 1_000_000_000;
/** How long a Herald-Id (Idempotency-Key) is remembered for deduplication. */
const DUPLICATE_WINDOW_SECONDS = 120;

class Stored implements StoredMessage {
  constructor(private readonly m: StoredMsg) {}
  get seq(): number {
    return this.m.seq;
  }
  get data(): Uint8Array {
    return this.m.data;
  }
  header(name: string): string | undefined {
    const v = this.m.header?.get(name);
    return v ? v : undefined;
  }
}

function isNotFound(err: unknown): boolean {
  return (err as { code?: string | number }).code == 404 || /not found/i.test((err as Error).message ?? "");
}

/**
 * The epoch of a stream's life: JetStream stamps a stream with its creation
 * time (nanoseconds) when it is created, and keeps it through updates, so
 * every service reading the stream derives the same short name, and a
 * deleted and recreated stream gets another.
 */
export function streamEpoch(stream: string, created: string): string {
  return createHash("sha256").update(`${stream}\n${created}`).digest("base64url").slice(0, 12);
}

type StreamSpec = Partial<StreamConfig> & { name: string };

/**
 * The configured streams cannot be created beside streams already there (an
 * earlier layout). Retrying cannot help and running without history would
 * hide it, so the broker keeps reporting it until an operator acts.
 */
export class HistoryLayoutError extends Error {
  override readonly name = "HistoryLayoutError";
}

/** Why an add failed when it names an overlap, with the stream in the way (JetStream's own message names neither). */
async function explainOverlap(jsm: JetStreamManager, spec: StreamSpec, err: unknown): Promise<Error> {
  if (!/overlap/i.test((err as Error).message)) return err as Error;
  const inTheWay = new Set<string>();
  for (const subject of spec.subjects ?? []) {
    for await (const name of jsm.streams.names(subject)) if (name !== spec.name) inTheWay.add(name);
  }
  const others = [...inTheWay].join(", ") || "another stream";
  return new HistoryLayoutError(
    `history stream ${spec.name} cannot be created: its subjects (${(spec.subjects ?? []).join(", ")}) overlap stream ${others}, ` +
      `left by another history layout (namespaces or HISTORY_STREAM changed?). Herald never deletes history on its own: ` +
      `remove ${others} (nats stream rm) once its messages are no longer needed, or go back to the configuration that made it`,
    { cause: err },
  );
}

/** Creates the stream, or updates it when it exists; answers its creation time. Idempotent, so every service may call it. */
async function addOrUpdate(jsm: JetStreamManager, spec: StreamSpec, logger: Logger): Promise<string> {
  try {
    return (await jsm.streams.add(spec)).created;
  } catch (err) {
    if (!/already in use/i.test((err as Error).message)) throw await explainOverlap(jsm, spec, err);
  }
  const before = (await jsm.streams.info(spec.name)).config;
  const shrunk = [
    before.max_age > 0 && spec.max_age! < before.max_age && `age ${before.max_age / NANOS_PER_SECOND} s → ${spec.max_age! / NANOS_PER_SECOND} s`,
    before.max_msgs_per_subject > 0 && spec.max_msgs_per_subject! < before.max_msgs_per_subject && `per channel ${before.max_msgs_per_subject} → ${spec.max_msgs_per_subject}`,
  ].filter(Boolean);
  if (shrunk.length > 0) {
    logger.warn({ stream: spec.name, shrunk }, "history window made smaller by the configuration: JetStream drops the messages outside it now");
  }
  return (await jsm.streams.update(spec.name, spec)).created;
}

/** One window's stream. */
class NatsStream {
  constructor(
    private readonly jsm: DirectJetStreamManager,
    readonly window: HistoryWindow,
    private readonly spec: StreamSpec,
    private current: string,
  ) {}

  get epoch(): string {
    return this.current;
  }

  static async ensure(jsm: JetStreamManager, window: HistoryWindow, replicas: number, subjects: Subjects, logger: Logger): Promise<NatsStream> {
    const spec: StreamSpec = {
      name: window.stream,
      subjects: window.namespace === null ? [subjects.allChannels()] : subjects.namespaceChannels(window.namespace),
      max_age: window.maxAgeSeconds * NANOS_PER_SECOND,
      max_msgs_per_subject: window.maxPerChannel,
      num_replicas: replicas,
      allow_direct: true,
      // JetStream refuses a duplicate window longer than max_age.
      duplicate_window: Math.min(DUPLICATE_WINDOW_SECONDS, window.maxAgeSeconds) * NANOS_PER_SECOND,
      // The same mapping for every window: a namespace stream's source may be
      // wider than its subjects (only what it stores is republished).
      republish: { src: subjects.allChannels(), dest: subjects.allLive() },
    };
    // add/update answer the stream's info: its creation time names the epoch.
    const created = await addOrUpdate(jsm, spec, logger);
    const epoch = streamEpoch(window.stream, created);
    logger.info(
      { stream: window.stream, namespace: window.namespace, maxAgeSeconds: window.maxAgeSeconds, maxPerChannel: window.maxPerChannel, created, epoch },
      "history stream ready",
    );
    return new NatsStream(jsm as DirectJetStreamManager, window, spec, epoch);
  }

  /** Reads the epoch again, creating the stream anew (same settings) when someone deleted it: without it there is no live stream at all. */
  async refresh(logger: Logger): Promise<string> {
    let created: string;
    try {
      created = (await this.jsm.streams.info(this.window.stream)).created;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      created = await addOrUpdate(this.jsm, this.spec, logger);
    }
    this.current = streamEpoch(this.window.stream, created);
    return this.current;
  }

  async lastSeq(subject: string): Promise<number> {
    try {
      return (await this.jsm.direct.getMessage(this.window.stream, { last_by_subj: subject })).seq;
    } catch (err) {
      if (isNotFound(err)) return 0;
      throw err;
    }
  }

  /**
   * Both ways JetStream drops messages are first-in first-out: by age across
   * the stream (lowest sequences first) and by count within one subject. So
   * the window still reaches back to `after` when the message at `after` is
   * still stored, or when nothing at or after `after` has been dropped by
   * age (the stream's first sequence is not past it) and the subject is
   * below its count limit (so no count drop ever hit a message the age
   * limit kept).
   */
  async reaches(subject: string, after: number): Promise<boolean> {
    if (after > 0 && (await this.holds(subject, after))) return true;
    const info = await this.jsm.streams.info(this.window.stream, { subjects_filter: subject });
    const count = info.state.subjects?.[subject] ?? 0;
    return info.state.first_seq <= after + 1 && count < this.window.maxPerChannel;
  }

  async read(subject: string, after: number, limit: number): Promise<StoredMessage[]> {
    const messages: StoredMessage[] = [];
    let next = after + 1;
    // One Direct Get per message: batched Direct Get needs nats-server 2.11.
    while (messages.length < limit) {
      let m: StoredMsg;
      try {
        m = await this.jsm.direct.getMessage(this.window.stream, { seq: next, next_by_subj: subject });
      } catch (err) {
        if (isNotFound(err)) break;
        throw err;
      }
      messages.push(new Stored(m));
      next = m.seq + 1;
    }
    return messages;
  }

  /** True while the message at `seq` on `subject` is still in the window. */
  private async holds(subject: string, seq: number): Promise<boolean> {
    try {
      return (await this.jsm.direct.getMessage(this.window.stream, { seq })).subject === subject;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}

export class NatsHistory implements BrokerHistory {
  private constructor(
    private readonly windows: HistoryWindows,
    private readonly subjects: Subjects,
    private readonly logger: Logger,
    private readonly streams: ReadonlyMap<string, NatsStream>,
  ) {}

  /** Creates or updates every window's stream; idempotent, so every service may call it. */
  static async ensure(jsm: JetStreamManager, windows: HistoryWindows, subjects: Subjects, logger: Logger, baseStream: string): Promise<NatsHistory> {
    const streams = new Map<string, NatsStream>();
    for (const window of windows.list) streams.set(window.stream, await NatsStream.ensure(jsm, window, windows.replicas, subjects, logger));
    await reportLeftovers(jsm, streams, baseStream, logger);
    return new NatsHistory(windows, subjects, logger, streams);
  }

  windowOf(subject: string): HistoryWindow | undefined {
    const channel = this.subjects.channelOf(subject);
    return channel === null ? undefined : this.windows.of(channel);
  }

  /** True when a stream captures `subject` (served or not): its publishes get a JetStream acknowledgement. */
  stores(subject: string): boolean {
    const channel = this.subjects.channelOf(subject);
    return channel !== null && this.windows.storing(channel) !== undefined;
  }

  epochOf(subject: string): string {
    return this.streamOf(subject).epoch;
  }

  /** Every window's epoch, read again (streams found deleted are created anew). */
  async refresh(): Promise<EpochChange[]> {
    const epochs: EpochChange[] = [];
    for (const stream of this.streams.values()) epochs.push({ stream: stream.window.stream, epoch: await stream.refresh(this.logger) });
    return epochs;
  }

  /** The epochs as they were last read. */
  get epochs(): EpochChange[] {
    return [...this.streams.values()].map((s) => ({ stream: s.window.stream, epoch: s.epoch }));
  }

  liveSubject(subject: string): string {
    return this.subjects.liveOf(subject);
  }

  lastSeq(subject: string): Promise<number> {
    return this.streamOf(subject).lastSeq(subject);
  }

  reaches(subject: string, after: number): Promise<boolean> {
    return this.streamOf(subject).reaches(subject, after);
  }

  read(subject: string, after: number, limit: number): Promise<StoredMessage[]> {
    return this.streamOf(subject).read(subject, after, limit);
  }

  private streamOf(subject: string): NatsStream {
    const window = this.windowOf(subject);
    const stream = window && this.streams.get(window.stream);
    if (!stream) throw new Error(`no history window keeps ${subject}`);
    return stream;
  }
}

/** Streams of an earlier layout (`<base>` or `<base>_<namespace>`) that this configuration no longer uses: kept, and named in the log. */
async function reportLeftovers(jsm: JetStreamManager, inUse: ReadonlyMap<string, NatsStream>, base: string, logger: Logger): Promise<void> {
  const leftovers: string[] = [];
  for await (const name of jsm.streams.names()) {
    if ((name === base || name.startsWith(`${base}_`)) && !inUse.has(name)) leftovers.push(name);
  }
  if (leftovers.length > 0) {
    logger.warn(
      { streams: leftovers },
      "history streams of an earlier configuration are still there, unused: Herald keeps them (it never deletes history); remove them with `nats stream rm` when their messages are no longer needed",
    );
  }
}
