/**
 * Creating the history streams when the NATS broker connects: before it
 * reports ready, retrying while a fresh cluster elects its JetStream leader.
 * On the first connection a server without JetStream (or one that stays
 * unavailable for `setupMs`) leaves Herald in core-NATS mode (no positions,
 * no recovery); once history is on (`required`) it retries for as long as it
 * takes, since the process's subscriptions and clients rely on it. A layout
 * conflict (HistoryLayoutError) is retried for as long as it lasts too.
 */
import type { HistoryConfig, HistoryWindows, Logger, Subjects } from "@herald/core";
import type { NatsConnection } from "nats";
import { HistoryLayoutError, NatsHistory } from "./nats-history.js";

export interface HistorySetup {
  history: HistoryConfig;
  windows: HistoryWindows;
  subjects: Subjects;
  logger: Logger;
  setupMs: number;
  required: boolean;
  /** True once the broker is closing or the connection is gone: stop trying. */
  stopped: () => boolean;
}

/** The history once its streams exist; undefined for core-NATS mode (or when stopped). */
export async function setUpHistory(nc: NatsConnection, o: HistorySetup): Promise<NatsHistory | undefined> {
  const { logger, required } = o;
  const deadline = Date.now() + o.setupMs;
  let delay = 250;
  while (!o.stopped()) {
    try {
      const jsm = await nc.jetstreamManager({ timeout: 5000 });
      return await NatsHistory.ensure(jsm, o.windows, o.subjects, logger, o.history.stream);
    } catch (err) {
      const message = (err as Error).message;
      // No responders (503 without a JetStream API error) means JetStream
      // is off on this server. A cluster still electing its meta leader
      // answers 503 too, but as an API error ("temporarily unavailable"):
      // that one is retried until setupMs.
      const e = err as { code?: string; api_error?: unknown };
      const disabled = (e.code === "503" && e.api_error === undefined) || /not enabled/i.test(message);
      if (err instanceof HistoryLayoutError) {
        // Not ready until an operator removes the stream in the way: falling back to no history would hide it.
        logger.error({ err: message, retryInMs: delay }, "history streams cannot be set up; not ready until this is fixed");
      } else if (!required && (disabled || Date.now() > deadline)) {
        logger.warn({ err: message }, "JetStream history unavailable: running without recovery (core NATS only)");
        return undefined;
      } else {
        logger[required ? "warn" : "info"]({ err: message, retryInMs: delay }, "history stream not ready yet; retrying");
      }
      await new Promise((r) => setTimeout(r, delay).unref());
      delay = Math.min(delay * 2, 2000);
    }
  }
  return undefined;
}
