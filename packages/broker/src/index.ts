import { Subjects, type HistoryConfig, type Logger, type NatsSection } from "@herald/core";
import type { Broker } from "./broker.js";
import { MemoryBroker } from "./memory-broker.js";
import { NatsBroker } from "./nats-broker.js";

export * from "./broker.js";
export { MemoryBroker } from "./memory-broker.js";
export { NatsBroker, NATS_DEFAULTS, type NatsBrokerOptions } from "./nats-broker.js";

export { NatsHistory } from "./nats-history.js";

export interface CreateBrokerOptions {
  servers: string[];
  name: string;
  logger: Logger;
  /** History (recovery) settings; off when omitted. */
  history?: HistoryConfig;
  subjects?: Subjects;
}

/** NATS when servers are given, otherwise the in-process memory broker. */
export function createBroker(opts: CreateBrokerOptions): Broker {
  if (opts.servers.length === 0) {
    return new MemoryBroker(
      opts.history && opts.subjects ? { history: opts.history, historyPrefix: opts.subjects.channelPrefix } : {},
    );
  }
  return new NatsBroker(opts);
}

/**
 * The broker a service's NATS section describes (NATS_URL, NATS_NAME,
 * SUBJECT_PREFIX, HISTORY*); `name` overrides the connection name.
 */
export function brokerFor(nats: NatsSection, logger: Logger, name = nats.natsName): Broker {
  return createBroker({ servers: nats.natsServers, name, logger, history: nats.history, subjects: new Subjects(nats.subjectPrefix) });
}
