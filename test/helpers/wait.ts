/** Bounded waits: polling a condition, an event, a promise with a deadline. */
import type { EventEmitter } from "node:events";

/** What a truthy result of `T` can be (`false`, `0`, `""`, `null` and `undefined` removed). */
export type Truthy<T> = Exclude<T, false | 0 | "" | null | undefined>;

export interface WaitOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
  /** Describes the condition in the timeout error. */
  message?: string;
  /** Fail at once, with its log tail, when this process is no longer alive. */
  proc?: { readonly alive: boolean; name: string; logs: string[] };
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
    if (opts.proc && !opts.proc.alive) {
      const { name, logs } = opts.proc;
      throw new Error(`waitFor: ${name} exited while waiting for ${opts.message ?? "a condition"}\n${logs.slice(-20).join("\n")}`);
    }
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

/**
 * Resolves with the arguments of the next `event` on `emitter` (for which
 * `filter` holds, when given); rejects on an "error" event or after `timeoutMs`.
 */
export function waitForEvent<A extends unknown[] = unknown[]>(
  emitter: EventEmitter,
  event: string,
  opts: { timeoutMs?: number; filter?: (...args: A) => boolean } = {},
): Promise<A> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  let cleanup = () => {};
  const p = new Promise<A>((resolve, reject) => {
    const onEvent = (...args: unknown[]) => {
      if (opts.filter && !opts.filter(...(args as A))) return;
      cleanup();
      resolve(args as A);
    };
    const onError = (err: unknown) => {
      cleanup();
      reject(err instanceof Error ? err : new Error(String(err)));
    };
    emitter.on(event, onEvent);
    if (event !== "error") emitter.once("error", onError);
    cleanup = () => {
      emitter.off(event, onEvent);
      emitter.off("error", onError);
    };
  });
  return withTimeout(p, timeoutMs, `event "${event}"`).finally(() => cleanup());
}
