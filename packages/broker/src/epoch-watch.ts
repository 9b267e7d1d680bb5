/**
 * Tells listeners when the history's epoch changes while the process runs:
 * the JetStream stream deleted and created anew (by an operator, or by this
 * watch itself when it finds the stream gone), or a NATS server without
 * persistence restarted. Positions of the old life mean nothing in the new
 * one, so the gateway must drop what it holds about them.
 */
import type { Logger } from "@herald/core";

export class EpochWatch {
  private readonly listeners = new Set<(epoch: string) => void>();
  private last: string | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private checking = false;

  constructor(private readonly logger: Logger) {}

  on(listener: (epoch: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The epoch as just read; listeners hear of it when it differs from the one before. */
  note(epoch: string): void {
    const before = this.last;
    this.last = epoch;
    if (before === undefined || before === epoch) return;
    this.logger.warn({ before, epoch }, "history epoch changed (the stream was recreated): positions start over");
    for (const listener of this.listeners) {
      try {
        listener(epoch);
      } catch (err) {
        this.logger.error({ err }, "an epoch listener failed");
      }
    }
  }

  /** Reads the epoch every `everyMs` with `read` (one read at a time; failures are logged and retried next time). */
  start(read: () => Promise<string> | undefined, everyMs: number): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.checking) return;
      const pending = read();
      if (!pending) return;
      this.checking = true;
      pending
        .then((epoch) => this.note(epoch))
        .catch((err: unknown) => this.logger.debug({ err: (err as Error).message }, "history epoch check failed; retrying"))
        .finally(() => (this.checking = false));
    }, everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
