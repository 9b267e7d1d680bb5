/**
 * What a connection is sent before its welcome, held back. The welcome of a
 * token with `subs` waits until the gateway has subscribed them
 * (server-subs.ts), so that it can report their positions, and the welcome
 * still comes first. Meanwhile every frame sent to the connection (replies,
 * recovery pages) and every frame published to a topic it has joined is
 * kept here, in the order it would have reached the socket; the welcome
 * writes them after itself and only then puts the socket on those topics in
 * uWS. The channel streams and their recoveries run exactly as for any
 * connection: nothing of theirs knows about the wait.
 */

/**
 * The topics that connections waiting for their welcome have joined. The
 * gateway's sink hands them a copy of every frame it publishes there and
 * counts them among the topic's subscribers, as uWS would count a socket on it.
 */
export class HeldTopics {
  private readonly byTopic = new Map<string, Set<HeldFrames>>();

  /** Waiting connections on `topic`. */
  count(topic: string): number {
    return this.byTopic.size === 0 ? 0 : (this.byTopic.get(topic)?.size ?? 0);
  }

  /** A frame the sink publishes to `topic`: kept for each waiting connection on it. */
  publish(topic: string, frame: Buffer): void {
    if (this.byTopic.size === 0) return;
    const held = this.byTopic.get(topic);
    if (held) for (const h of held) h.push(frame);
  }

  add(topic: string, held: HeldFrames): void {
    let set = this.byTopic.get(topic);
    if (!set) this.byTopic.set(topic, (set = new Set()));
    set.add(held);
  }

  delete(topic: string, held: HeldFrames): void {
    const set = this.byTopic.get(topic);
    if (!set?.delete(held)) return;
    if (set.size === 0) this.byTopic.delete(topic);
  }
}

/** One connection's frames and topics until its welcome. */
export class HeldFrames {
  readonly frames: Array<Buffer | string> = [];
  /** Bytes in `frames`: they count towards the connection's send buffer (SLOW_CONSUMER_BYTES). */
  bytes = 0;
  /** Topics joined meanwhile, in the order joined. */
  readonly topics = new Set<string>();

  constructor(private readonly registry: HeldTopics) {}

  push(frame: Buffer | string): void {
    this.frames.push(frame);
    this.bytes += typeof frame === "string" ? Buffer.byteLength(frame) : frame.length;
  }

  join(topic: string): void {
    this.topics.add(topic);
    this.registry.add(topic, this);
  }

  /** Frames of the topic already kept stay: they had reached the socket too. */
  leave(topic: string): void {
    if (this.topics.delete(topic)) this.registry.delete(topic, this);
  }

  /** The wait is over (welcomed or closed): the registry forgets this connection. */
  end(): void {
    for (const topic of this.topics) this.registry.delete(topic, this);
  }
}
