/**
 * Tells listeners when the history's epoch changes while the process runs:
 * the JetStream stream deleted and created anew (by an operator, or by this
 * watch itself when it finds the stream gone), or a NATS server without
 * persistence restarted. Positions of the old life mean nothing in the new
 * one, so the gateway must drop what it holds about them.
 */
import type { Logger } from "@herald/core";
import type { EpochChange } from "./broker.js";

export class EpochWatch {
  private readonly listeners = new Set<(change: EpochChange) => void>();
  /** The last epoch read of each window's stream. */
  private readonly last = new Map<string, string>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private checking = false;

  constructor(private readonly logger: Logger) {}

  on(listener: (change: EpochChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A stream's epoch as just read; listeners hear of it when it differs from the one before. */
  note(change: EpochChange): void {
    const before = this.last.get(change.stream);
    this.last.set(change.stream, change.epoch);
    if (before === undefined || before === change.epoch) return;
    this.logger.warn({ stream: change.stream, before, epoch: change.epoch }, "history epoch changed (the stream was recreated): positions start over");
    for (const listener of this.listeners) {
      try {
        listener(change);
      } catch (err) {
        this.logger.error({ err }, "an epoch listener failed");
      }
    }
  }

  /** Reads the epochs every `everyMs` with `read` (one read at a time; failures are logged and retried next time). */
  start(read: () => Promise<EpochChange[]> | undefined, everyMs: number): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.checking) return;
      const pending = read();
      if (!pending) return;
      this.checking = true;
      pending
        .then((epochs) => {
          for (const change of epochs) this.note(change);
        })
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
