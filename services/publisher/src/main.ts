#!/usr/bin/env node
/**
 * `npm run publisher`: the publisher as its own process, configured by
 * environment only. The process shell (runService in @herald/core: config,
 * logger, tracing, broker, signals, drain order) runs the publisher app.
 * Exit codes: 0 after a graceful stop, 1 on a fatal error, 2 on a
 * configuration error.
 */
import { brokerFor } from "@herald/broker";
import { ConfigError, runService, serviceApp, type Env } from "@herald/core";
import { buildPublisher } from "./app.js";
import { readPublisherConfig, type PublisherConfig } from "./config.js";

/**
 * A publisher process of its own with the in-process memory broker would
 * answer 202 for messages that no gateway (each in another process) can ever
 * see. Only the all-in-one `npm start`, which shares one memory broker
 * between gateway and publisher in a single process, may run without NATS;
 * it builds the publisher itself and never runs this file.
 */
function readStandaloneConfig(env: Env): PublisherConfig {
  const config = readPublisherConfig(env);
  if (config.natsServers.length > 0) return config;
  throw new ConfigError(
    "NATS_URL",
    "not set: the publisher needs NATS to reach the gateways (e.g. NATS_URL=nats://127.0.0.1:4222); " +
      "running without a broker is only possible inside the all-in-one `npm start`",
  );
}

function displayUrl(host: string, port: number): string {
  const shown = host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host;
  return `http://${shown}:${port}`;
}

await runService({
  name: "herald-publisher",
  readConfig: readStandaloneConfig,
  createBroker: (config, logger) => brokerFor(config, logger),
  build: ({ config, broker, logger, tracing }) => [
    serviceApp("publisher", buildPublisher({ config, broker, logger, tracing }), (ports) =>
      logger.info(
        {
          url: displayUrl(config.host, ports.port),
          metricsUrl: ports.metricsPort !== undefined ? displayUrl(config.host, ports.metricsPort) : undefined,
          broker: broker.kind,
          apiKeyAuth: config.apiKey !== undefined,
          jwtAuth: config.auth !== undefined ? config.auth.algorithms : false,
          tracing: tracing.enabled,
          maxBodyBytes: config.maxBodyBytes,
        },
        "publisher listening",
      ),
    ),
  ],
});
