/**
 * The last positioned frames a channel stream delivered, oldest first, each
 * following on from the one before. A client resuming from one of them is
 * sent the rest from here, with no history read: after a gateway is lost,
 * thousands of its clients resume on the others at once, a few messages
 * behind, and would otherwise each cost several history requests.
 *
 * The answer must be the one the history would give: at most the channel's
 * newest HISTORY_MAX_PER_CHANNEL frames are kept, and a `since` counts only
 * while its frame is younger than HISTORY_MAX_AGE_SECONDS.
 */
import type { PositionedFrame } from "./held-frames.js";

/** At most this many frames, and at most MAX_BYTES of them, per stream. */
const MAX_FRAMES = 16;
const MAX_BYTES = 32 * 1024;
/** Margin under the history's age limit within which a frame still counts as stored. */
const AGE_MARGIN_MS = 1000;

/** A frame with when it arrived (epoch ms; 0 when unknown: read from the history). */
export interface ArrivedFrame extends PositionedFrame {
  at: number;
}

export class RecentFrames {
  private frames: ArrivedFrame[] = [];
  private bytes = 0;
  private readonly maxFrames: number;

  constructor(
    maxPerChannel: number,
    private readonly maxAgeMs: number,
  ) {
    this.maxFrames = Math.min(MAX_FRAMES, maxPerChannel);
  }

  /**
   * Keeps a delivered frame (a new chain when it does not follow on). A frame
   * of unknown age (`at` 0) is sent to resumes but never vouches for a `since`.
   */
  remember(delivered: PositionedFrame, at: number): void {
    // A copy outside Node's Buffer pool: a small frame kept for a while
    // would otherwise keep the whole 8 KiB slab it was cut from alive.
    const frame = Buffer.allocUnsafeSlow(delivered.frame.length);
    delivered.frame.copy(frame);
    const f = { seq: delivered.seq, prev: delivered.prev, frame, at };
    const frames = this.frames;
    if (frames.length === 0 || frames[frames.length - 1]!.seq !== f.prev) {
      this.frames = [f];
      this.bytes = frame.length;
      return;
    }
    frames.push(f);
    this.bytes += frame.length;
    while (frames.length > 1 && (frames.length > this.maxFrames || this.bytes > MAX_BYTES)) {
      this.bytes -= frames.shift()!.frame.length;
    }
  }

  /**
   * Every frame after `since` when `since` is itself one of the frames, of
   * known age and younger than the history's age limit, and they run up to
   * `lastSeq` (the stream's position); otherwise undefined: the history answers.
   */
  after(since: number, lastSeq: number): PositionedFrame[] | undefined {
    const frames = this.frames;
    if (frames.length === 0 || frames[frames.length - 1]!.seq !== lastSeq) return undefined;
    const at = frames.findIndex((f) => f.seq === since);
    if (at < 0) return undefined;
    const arrived = frames[at]!.at;
    if (arrived === 0 || Date.now() - arrived > this.maxAgeMs - AGE_MARGIN_MS) return undefined;
    return frames.slice(at + 1);
  }
}
