import type { HistoryConfig, Logger, Subjects } from "@herald/core";
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
