/**
 * Reconnect delays. Pure functions (the random source is a parameter) so the
 * bounds can be tested without timers.
 */

export interface BackoffOptions {
  /** Delay ceiling of the first retry, in ms (default 500). */
  baseMs: number;
  /** Upper bound of every delay, in ms (default 30 000). */
  maxMs: number;
}

export const DEFAULT_BACKOFF: Readonly<BackoffOptions> = { baseMs: 500, maxMs: 30_000 };

/**
 * Exponential backoff with "full jitter" (AWS architecture blog):
 * `delay = random(0, min(maxMs, baseMs * 2 ** attempt))`.
 * `attempt` counts from 0; `random` returns a number in [0, 1).
 */
export function backoffDelay(attempt: number, opts: Partial<BackoffOptions> = {}, random: () => number = Math.random): number {
  const baseMs = Math.max(0, opts.baseMs ?? DEFAULT_BACKOFF.baseMs);
  const maxMs = Math.max(0, opts.maxMs ?? DEFAULT_BACKOFF.maxMs);
  const n = Math.max(0, Math.floor(Number.isFinite(attempt) ? attempt : 0));
  // 2 ** 1100 is Infinity; min() keeps the ceiling finite.
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(n, 1000));
  return Math.floor(clamp01(random()) * ceiling);
}

/** The ceiling backoffDelay() draws from for `attempt`. */
export function backoffCeiling(attempt: number, opts: Partial<BackoffOptions> = {}): number {
  const baseMs = Math.max(0, opts.baseMs ?? DEFAULT_BACKOFF.baseMs);
  const maxMs = Math.max(0, opts.maxMs ?? DEFAULT_BACKOFF.maxMs);
  return Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(0, Math.floor(attempt)), 1000));
}

/**
 * Delay before reconnecting after the server closed with 1001 (draining):
 * uniform in [0, maxMs) so the clients of a draining pod do not all land on
 * the remaining pods at the same moment.
 */
export function drainDelay(maxMs: number, random: () => number = Math.random): number {
  return Math.floor(clamp01(random()) * Math.max(0, maxMs));
}

function clamp01(x: number): number {
  if (!Number.isFinite(x) || x < 0) return 0;
  return x >= 1 ? 1 - Number.EPSILON : x;
}
