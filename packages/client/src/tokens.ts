/**
 * Tokens: asking the provider (with a timeout, so a provider that never
 * answers cannot hang the client), when a token is due for refresh, and a
 * timer that can wait that long (setTimeout cannot wait past ~24.8 days).
 */
import { HeraldError } from "./errors.js";
import { tokenTimes } from "./jwt.js";
import type { TokenProvider } from "./types.js";

/** Longest delay setTimeout honours (2^31 - 1 ms, ~24.8 days); longer ones fire after ~1 ms. */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** Where the client's JWTs come from: a fixed string, or a provider asked when a new one is needed. */
export class TokenSource {
  private token: string | undefined;

  /** `onNewToken`: the provider returned a token other than the last one. */
  constructor(
    private readonly source: string | TokenProvider,
    private readonly timeoutMs: number,
    private readonly onNewToken: (expiresAt: number | undefined) => void,
  ) {
    if (typeof source === "string") this.token = source;
  }

  /** A fixed token: nothing can replace it when it expires. */
  get isStatic(): boolean {
    return typeof this.source === "string";
  }

  /** The token for the next connection: the last one while it has more than a second left, unless `force`. */
  async obtain(force: boolean): Promise<string> {
    const source = this.source;
    if (typeof source === "string") return source;
    if (!force && this.token !== undefined) {
      const { expiresAt } = tokenTimes(this.token);
      if (expiresAt === undefined || expiresAt - Date.now() > 1_000) return this.token;
    }
    const timeoutMs = this.timeoutMs;
    const timedOut = new HeraldError("token_provider_failed", `the token provider did not answer within ${timeoutMs} ms (tokenTimeoutMs)`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let value: unknown;
    try {
      const answer = Promise.resolve(source());
      // A provider that never settles must not hang the client: race it (a late answer is ignored).
      value = await (timeoutMs > 0
        ? Promise.race([answer, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(timedOut), Math.min(timeoutMs, MAX_TIMER_DELAY_MS))))])
        : answer);
    } catch (cause) {
      if (cause === timedOut) throw timedOut;
      throw new HeraldError("token_provider_failed", `the token provider failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
    if (typeof value !== "string" || value === "") {
      throw new HeraldError("token_provider_failed", "the token provider did not return a non-empty string");
    }
    const changed = value !== this.token;
    this.token = value;
    if (changed) this.onNewToken(tokenTimes(value).expiresAt);
    return value;
  }
}

/** When to refresh `token`: `leadMs` before `exp`, but at most 20 % of its lifetime (and at least 0.5 s); undefined without `exp`. */
export function refreshDueAt(token: string, leadMs: number, now = Date.now()): number | undefined {
  const { expiresAt, issuedAt } = tokenTimes(token);
  if (expiresAt === undefined) return undefined;
  const lifetime = expiresAt - (issuedAt ?? now);
  return expiresAt - Math.min(leadMs, Math.max(500, lifetime * 0.2));
}

/** True when `token` carries an `exp` that has passed. */
export function tokenExpired(token: string, now = Date.now()): boolean {
  const { expiresAt } = tokenTimes(token);
  return expiresAt !== undefined && expiresAt <= now;
}

/** One timer that may be set any time ahead: it waits in steps of at most MAX_TIMER_DELAY_MS and fires once actually due. */
export class LongTimer {
  private timer: ReturnType<typeof setTimeout> | undefined;

  /** Calls `fn` at `dueAt` (ms since the epoch), replacing what was set before. */
  at(dueAt: number, fn: () => void): void {
    this.cancel();
    const arm = (): void => {
      this.timer = setTimeout(
        () => {
          this.timer = undefined;
          if (Date.now() < dueAt) return arm();
          fn();
        },
        Math.min(MAX_TIMER_DELAY_MS, Math.max(0, dueAt - Date.now())),
      );
    };
    arm();
  }

  /** Calls `fn` after `delayMs`, replacing what was set before. */
  in(delayMs: number, fn: () => void): void {
    this.at(Date.now() + delayMs, fn);
  }

  cancel(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
