#!/usr/bin/env node
/**
 * Gateway process entry. The process shell (runService in @herald/core:
 * config, logger, tracing, broker, signals, drain order, exit codes) runs
 * the gateway app; all behaviour lives in app.ts.
 */
import { StartRefused, runService, serviceApp } from "@herald/core";
import { brokerFor } from "@herald/broker";
import { buildGateway } from "./app.js";
import { readGatewayConfig } from "./config.js";
import { readFdLimit } from "./fd-limit.js";
import { GLIBC_TUNABLES_DEFAULT, mallocTunablesSet } from "./malloc-tunables.js";
import { SEMI_SPACE_FLAG, semiSpaceCapped } from "./heap-flags.js";

await runService({
  name: "herald-gateway",
  readConfig: readGatewayConfig,
  prepare({ config, env, logger }) {
    const fd = readFdLimit();
    if (fd) {
      logger.info({ soft: fd.soft, hard: fd.hard }, "open files limit");
      if (config.minOpenFiles !== undefined && fd.soft < config.minOpenFiles) {
        throw new StartRefused(
          `open files limit ${fd.soft} is below MIN_OPEN_FILES=${config.minOpenFiles}; raise it (ulimit -n / nofile) or lower MIN_OPEN_FILES`,
          { soft: fd.soft, hard: fd.hard, required: config.minOpenFiles },
        );
      }
    }
    if (!mallocTunablesSet(env)) {
      logger.warn(
        { recommended: `GLIBC_TUNABLES=${GLIBC_TUNABLES_DEFAULT}` },
        "GLIBC_TUNABLES has no malloc threshold: memory held by stalled sockets may stay resident after they close (npm run gateway and the images set it)",
      );
    }
    if (!semiSpaceCapped(process.execArgv, env["NODE_OPTIONS"])) {
      logger.warn(
        { recommended: `node ${SEMI_SPACE_FLAG}` },
        "V8's young generation is not capped: a connect storm leaves up to 32 MiB resident (npm run gateway and the images pass the flag)",
      );
    }
    if (config.origins.allowAll) logger.warn("ALLOWED_ORIGINS=* accepts WebSocket connections from any web page");
    if (config.natsServers.length === 0) logger.warn("NATS_URL is not set: using the in-process memory broker (single process only)");
  },
  createBroker: (config, logger) => brokerFor(config, logger),
  build: ({ config, broker, logger, tracing }) => [
    serviceApp("gateway", buildGateway({ config, broker, logger, tracing }), (bound) =>
      logger.info(
        { port: bound.port, metricsPort: bound.metricsPort, broker: broker.kind },
        `gateway listening on ws://${config.host ?? "0.0.0.0"}:${bound.port}/ws`,
      ),
    ),
  ],
});
