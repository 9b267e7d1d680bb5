/** Bounded polling: the only way the tests wait for something. */

/** What a truthy result of `T` can be (`false`, `0`, `""`, `null` and `undefined` removed). */
export type Truthy<T> = Exclude<T, false | 0 | "" | null | undefined>;

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
  /** Describes the condition in the timeout error. */
  message?: string;
}

/**
 * Calls `fn` until it returns a truthy value (which is returned) or the
 * timeout passes. Exceptions thrown by `fn` count as "not yet"; the last one
 * is reported when the wait times out.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitOptions = {}): Promise<Truthy<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  let lastValue: unknown;
  const maxAttempts = Math.ceil(timeoutMs / Math.max(1, intervalMs)) + 2;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    try {
      const v = await fn();
      if (v) return v as Truthy<T>;
      lastValue = v;
      lastErr = undefined;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, deadline - Date.now()))));
  }
  const what = opts.message ?? "condition";
  const detail = lastErr ? `; last error: ${(lastErr as Error).message ?? String(lastErr)}` : `; last value: ${String(lastValue)}`;
  throw new Error(`waitFor: ${what} not met within ${timeoutMs} ms${detail}`);
}

/** Rejects when `p` does not settle within `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what = "operation"): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
