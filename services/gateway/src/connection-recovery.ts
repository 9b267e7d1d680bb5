/**
 * The recovery of one connection joining a channel with positions, run by
 * its ChannelStream in a recovery slot. Live frames are held for it while
 * the backlog after `since` is read from the history window; it gets
 * `subscribed`, then the backlog page by page, then the held frames in order
 * without duplicates, and only then joins the topic.
 */
import { CloseCode, messageFrame } from "@herald/core";
import { SETTLE_ROUNDS, type JoinOptions, type StreamContext } from "./stream-context.js";
import type { Connection } from "./connection.js";
import { inOrderAfter, withPrev, type RecoveryBuffer } from "./held-frames.js";
import { HISTORY_PAGE, HistoryCursor, type HistoryMessage } from "@herald/broker";

/** What the stream lends one recovery of its state. */
export interface RecoveryHandle {
  topic: string;
  head: Buffer;
  /** The stored subject. */
  subject: string;
  /** Live frames held for this connection (once `hold()` is called). */
  buffer: RecoveryBuffer;
  /** False once the connection closed or left the topic: stop, touching nothing. */
  stillWanted: () => boolean;
  /** Starts keeping live frames in `buffer`. */
  hold: () => void;
  /** The stream's broker subscription is registered. */
  ready: Promise<void>;
  /** Resolves once the stream has delivered at least up to `last`. */
  settle: (last: number) => Promise<void>;
}

export async function recoverConnection(ctx: StreamContext, conn: Connection, opts: JoinOptions, r: RecoveryHandle): Promise<void> {
  const { buffer, stillWanted, head, subject } = r;
  const history = ctx.broker.history;
  const window = history?.windowOf(subject);
  if (!history || !window) throw new Error("recovery needs a channel with history");
  const { since } = opts;
  // The backlog on the connection, or the live frames held for it, past what
  // a slow consumer may hold: close it (it resumes from what it got) long
  // before the transport would drop frames or the held frames grow without bound.
  const tooSlow = () => {
    if (conn.bufferedAmount() <= ctx.slowConsumerBytes && buffer.bytes <= ctx.slowConsumerBytes) return false;
    ctx.metrics.slowConsumerCloses.inc();
    ctx.metrics.drops.inc({ reason: "slow_consumer" });
    conn.close(CloseCode.SlowConsumer, "slow consumer");
    return true;
  };

  if (!stillWanted()) return;
  r.hold();
  await r.ready;
  if (!stillWanted()) return;
  // Read the position only after the live subscription is registered and
  // held, so every message after it is in the history or the buffer.
  const newest = await history.lastSeq(subject);
  // A position this history never reached: it was reset (the embedded broker
  // restarted, the stream was recreated) or everything on the channel has
  // expired. Say so and continue from the current position.
  const reset = since !== undefined && since > newest;
  const start = since === undefined || reset ? newest : since;
  // The window holds at most maxPerChannel messages; twice that leaves room
  // for what is published while reading.
  const maxPages = Math.ceil((2 * window.maxPerChannel) / HISTORY_PAGE) + 1;
  const cursor = new HistoryCursor(history, subject, start, maxPages, start);
  let complete = !reset;
  let firstPage: HistoryMessage[] | undefined;
  if (since !== undefined && !reset) {
    // The first page, read before reaches(): when the window still reaches
    // `since` after the read, nothing the read skipped had been dropped.
    firstPage = await cursor.read();
    complete = await history.reaches(subject, start);
  }
  if (!stillWanted()) return;
  if (since !== undefined) ctx.metrics.recoveries.inc({ result: complete ? "recovered" : "window_exceeded" });
  opts.onJoined?.({ seq: start, recovered: complete });

  // `last` is what this connection has been given: `start`, then each
  // message sent. The first message after `subscribed` always carries prev =
  // `start` — with recovered: true it follows on from it, with recovered:
  // false `start` is where the client was told to continue — so a client
  // applying "prev ≠ last → resume" never resumes in a loop.
  let last = start;
  let needRead = since !== undefined;
  /** Sends one page; false when the connection is gone or was shed. */
  const sendPage = (page: HistoryMessage[]): boolean => {
    conn.batch(() => {
      for (const m of page) {
        conn.send(messageFrame(head, m.data, m.seq, m.prev));
        last = m.seq;
      }
    });
    needRead = cursor.lastPageFull;
    buffer.dropThrough(last);
    return !tooSlow();
  };
  if (firstPage && !sendPage(firstPage)) return;
  // Read until the live stream continues from what was sent. A first live
  // frame whose `prev` is ahead means the stream skipped messages (interest
  // reached a clustered stream late): read those too.
  const more = () => {
    const live = buffer.firstAfter(last);
    return live ? live.prev > last : needRead;
  };
  for (let round = 0; round < SETTLE_ROUNDS; round++) {
    for await (const page of cursor.pages(more)) {
      if (!stillWanted()) return;
      if (!sendPage(page)) return;
    }
    if (!stillWanted()) return;
    // The stream's delivery must have reached `last` before the connection
    // joins it, or frames it already has would come again.
    await r.settle(last);
    if (!stillWanted()) return;
    const live = buffer.firstAfter(last);
    if (!live || live.prev <= last) break;
    needRead = true; // the live stream is ahead of the history read: fill the gap
  }
  buffer.dropThrough(last);
  if (tooSlow()) return;
  // Held frames and the join in one go: nothing can slip in between.
  conn.batch(() => {
    for (const f of inOrderAfter(buffer.frames, last)) {
      if (f.seq <= last) continue;
      // Nothing sent since a recovered: false (all of it expired while
      // reading): the first frame continues from the position given.
      conn.send(!complete && last === start && f.prev !== start ? withPrev(head, f, start) : f.frame);
      last = f.seq;
    }
    ctx.writer.flush();
    conn.subscribe(r.topic);
  });
}
