import type { Logger } from "@herald/core";
import type { Broker } from "./broker.js";
import { MemoryBroker } from "./memory-broker.js";
import { NatsBroker } from "./nats-broker.js";

export * from "./broker.js";
export { MemoryBroker } from "./memory-broker.js";
export { NatsBroker, NATS_DEFAULTS, type NatsBrokerOptions } from "./nats-broker.js";

/** NATS when servers are given, otherwise the in-process memory broker. */
export function createBroker(opts: { servers: string[]; name: string; logger: Logger }): Broker {
  if (opts.servers.length === 0) return new MemoryBroker();
  return new NatsBroker(opts);
}
