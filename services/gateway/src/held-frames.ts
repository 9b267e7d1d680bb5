/**
 * Positioned frames held back while a gap is read from the history: live
 * frames of a topic catching up, and live frames kept for one connection
 * while its recovery backlog is read.
 */

export interface PositionedFrame {
  seq: number;
  /** Position of the previous message on the channel: shows whether a frame follows on from another. */
  prev: number;
  frame: Buffer;
}

/** The frame with the lowest position after `last`. */
export function firstAfter(frames: readonly PositionedFrame[], last: number): PositionedFrame | undefined {
  let first: PositionedFrame | undefined;
  for (const f of frames) if (f.seq > last && (!first || f.seq < first.seq)) first = f;
  return first;
}

/** The frames after position `last`, oldest first: what is still to be sent once a gap is filled. */
export function inOrderAfter<F extends PositionedFrame>(frames: readonly F[], last: number): F[] {
  return frames.filter((f) => f.seq > last).sort((a, b) => a.seq - b.seq);
}

/**
 * Live frames collected for one connection while its recovery backlog is
 * read, so nothing published meanwhile is lost or sent out of order.
 */
export class RecoveryBuffer {
  frames: PositionedFrame[] = [];
  /** Bytes held in `frames`: a recovery that falls this far behind is a slow consumer. */
  bytes = 0;

  push(f: PositionedFrame): void {
    this.frames.push(f);
    this.bytes += f.frame.length;
  }

  /** The first held frame after position `last`. */
  firstAfter(last: number): PositionedFrame | undefined {
    return firstAfter(this.frames, last);
  }

  /** Forgets frames at or before `last` (already sent from the history). */
  dropThrough(last: number): void {
    if (!this.frames.some((f) => f.seq <= last)) return;
    this.frames = this.frames.filter((f) => f.seq > last);
    this.bytes = this.frames.reduce((n, f) => n + f.frame.length, 0);
  }
}

/**
 * The same message frame with another `prev`: messageFrame() puts
 * `"seq":N,"prev":P,` right after the channel's head.
 */
export function withPrev(head: Buffer, f: PositionedFrame, prev: number): Buffer {
  const old = Buffer.from(`"seq":${f.seq},"prev":${f.prev},`, "latin1");
  if (!f.frame.subarray(head.length, head.length + old.length).equals(old)) return f.frame;
  return Buffer.concat([head, Buffer.from(`"seq":${f.seq},"prev":${prev},`, "latin1"), f.frame.subarray(head.length + old.length)]);
}
