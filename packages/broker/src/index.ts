import { Subjects, type HistoryConfig, type HistoryWindows, type Logger, type NatsSection } from "@herald/core";
import type { Broker } from "./broker.js";
import { MemoryBroker } from "./memory-broker.js";
import { NatsBroker } from "./nats-broker.js";

export * from "./broker.js";
export { MemoryBroker, type MemoryBrokerOptions } from "./memory-broker.js";
export { NatsBroker, NATS_DEFAULTS, type NatsBrokerOptions } from "./nats-broker.js";

export { NatsHistory } from "./nats-history.js";
export { HISTORY_PAGE, HistoryCursor, type HistoryMessage } from "./history-cursor.js";
export { HISTORY_PAGE_BYTES, readHistoryPage, type HistoryPage } from "./history-page.js";

export interface CreateBrokerOptions {
  servers: string[];
  name: string;
  logger: Logger;
  /** History (recovery) settings; off when omitted. */
  history?: HistoryConfig;
  /** Which streams keep which channels (namespaces); HistoryWindows.single(history) when omitted. */
  windows?: HistoryWindows;
  subjects?: Subjects;
}

/** NATS when servers are given, otherwise the in-process memory broker. */
export function createBroker(opts: CreateBrokerOptions): Broker {
  if (opts.servers.length === 0) {
    return new MemoryBroker({ history: opts.history, windows: opts.windows, subjects: opts.subjects });
  }
  return new NatsBroker(opts);
}

/**
 * The broker a service's NATS section describes (NATS_URL, NATS_NAME,
 * SUBJECT_PREFIX, HISTORY*); `name` overrides the connection name.
 */
export function brokerFor(nats: NatsSection, logger: Logger, name = nats.natsName): Broker {
  return createBroker({ servers: nats.natsServers, name, logger, history: nats.history, windows: nats.windows, subjects: new Subjects(nats.subjectPrefix) });
}
