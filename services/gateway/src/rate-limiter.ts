/**
 * Per-connection token bucket for inbound client frames. Frames over the
 * rate are refused with a `rate_limited` error; a client that keeps going
 * (more refused frames in a row than the burst size) is closed with 4008.
 */
export class RateLimiter {
  private tokens: number;
  private last: number;
  private refusedInARow = 0;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
    this.last = performance.now();
  }

  /** "ok", "limited" (refuse this frame) or "abusive" (close the connection). */
  take(): "ok" | "limited" | "abusive" {
    const now = performance.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.refusedInARow = 0;
      return "ok";
    }
    this.refusedInARow++;
    return this.refusedInARow > this.burst ? "abusive" : "limited";
  }
}
