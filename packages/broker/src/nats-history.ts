/**
 * JetStream-backed history: one stream captures every channel subject with a
 * bounded window (age and count per channel) and republishes each stored
 * message to `<prefix>.live.<channel>` with `Nats-Sequence` and
 * `Nats-Last-Sequence`, which is what lets clients detect gaps and resume.
 * Reads use Direct Get (any replica answers, no consumer state on the server).
 */
import { createHash } from "node:crypto";
import type { HistoryConfig, Logger, Subjects } from "@herald/core";
import type { JetStreamManager, StoredMsg, StreamConfig } from "nats";

/** nats.js implements Direct Get on its manager but leaves it off the exported types. */
type DirectQuery = { seq: number; next_by_subj?: string } | { seq: number } | { last_by_subj: string };
type DirectJetStreamManager = JetStreamManager & {
  direct: { getMessage(stream: string, query: DirectQuery): Promise<StoredMsg> };
};
import type { BrokerHistory, StoredMessage } from "./broker.js";

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

/** Creates the stream, or updates it when it exists; answers its creation time. Idempotent, so every service may call it. */
async function addOrUpdate(jsm: JetStreamManager, stream: StreamSpec): Promise<string> {
  try {
    return (await jsm.streams.add(stream)).created;
  } catch (err) {
    if (!/already in use/i.test((err as Error).message)) throw err;
    return (await jsm.streams.update(stream.name, stream)).created;
  }
}

export class NatsHistory implements BrokerHistory {
  constructor(
    private readonly jsm: DirectJetStreamManager,
    private readonly config: HistoryConfig,
    private readonly subjects: Subjects,
    private readonly stream: StreamSpec,
    private current: string,
  ) {}

  get epoch(): string {
    return this.current;
  }

  /**
   * Reads the stream's epoch again, creating the stream anew (same settings)
   * when someone deleted it: without it there is no live stream at all. The
   * broker calls it periodically and tells its listeners about a change.
   */
  async refresh(): Promise<string> {
    let created: string;
    try {
      created = (await this.jsm.streams.info(this.config.stream)).created;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      created = await addOrUpdate(this.jsm, this.stream);
    }
    this.current = streamEpoch(this.config.stream, created);
    return this.current;
  }

  /** Creates or updates the stream; idempotent, so every service may call it. */
  static async ensure(jsm: JetStreamManager, config: HistoryConfig, subjects: Subjects, logger: Logger): Promise<NatsHistory> {
    const stream: StreamSpec = {
      name: config.stream,
      subjects: [subjects.allChannels()],
      max_age: config.maxAgeSeconds * NANOS_PER_SECOND,
      max_msgs_per_subject: config.maxPerChannel,
      num_replicas: config.replicas,
      allow_direct: true,
      // JetStream refuses a duplicate window longer than max_age.
      duplicate_window: Math.min(DUPLICATE_WINDOW_SECONDS, config.maxAgeSeconds) * NANOS_PER_SECOND,
      republish: { src: subjects.allChannels(), dest: subjects.allLive() },
    };
    // add/update answer the stream's info: its creation time names the epoch.
    const created = await addOrUpdate(jsm, stream);
    const epoch = streamEpoch(config.stream, created);
    logger.info(
      { stream: config.stream, maxAgeSeconds: config.maxAgeSeconds, maxPerChannel: config.maxPerChannel, created, epoch },
      "history stream ready",
    );
    return new NatsHistory(jsm as DirectJetStreamManager, config, subjects, stream, epoch);
  }

  liveSubject(subject: string): string {
    return this.subjects.liveOf(subject);
  }

  async lastSeq(subject: string): Promise<number> {
    try {
      return (await this.jsm.direct.getMessage(this.config.stream, { last_by_subj: subject })).seq;
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
    const info = await this.jsm.streams.info(this.config.stream, { subjects_filter: subject });
    const count = info.state.subjects?.[subject] ?? 0;
    return info.state.first_seq <= after + 1 && count < this.config.maxPerChannel;
  }

  async read(subject: string, after: number, limit: number): Promise<StoredMessage[]> {
    const messages: StoredMessage[] = [];
    let next = after + 1;
    // One Direct Get per message: batched Direct Get needs nats-server 2.11.
    while (messages.length < limit) {
      let m: StoredMsg;
      try {
        m = await this.jsm.direct.getMessage(this.config.stream, { seq: next, next_by_subj: subject });
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
      return (await this.jsm.direct.getMessage(this.config.stream, { seq })).subject === subject;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}
