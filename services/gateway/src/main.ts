#!/usr/bin/env node
/**
 * Gateway process entry: configuration from the environment, broker,
 * tracing, listen, and the SIGTERM drain. All behaviour lives in app.ts.
 */
import { ConfigError, Subjects, createLogger, processEnv, startTracing } from "@herald/core";
import { createBroker } from "@herald/broker";
import { buildGateway } from "./app.js";
import { readGatewayConfig, type GatewayConfig } from "./config.js";
import { readFdLimit } from "./fd-limit.js";
import { GLIBC_TUNABLES_DEFAULT, mallocTunablesSet } from "./malloc-tunables.js";

const env = processEnv();
let config: GatewayConfig;
try {
  config = readGatewayConfig(env);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`herald-gateway: config error: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const logger = createLogger("herald-gateway", config.logLevel);

const fd = readFdLimit();
if (fd) {
  logger.info({ soft: fd.soft, hard: fd.hard }, "open files limit");
  if (config.minOpenFiles !== undefined && fd.soft < config.minOpenFiles) {
    logger.fatal(
      { soft: fd.soft, hard: fd.hard, required: config.minOpenFiles },
      `open files limit ${fd.soft} is below MIN_OPEN_FILES=${config.minOpenFiles}; raise it (ulimit -n / nofile) or lower MIN_OPEN_FILES`,
    );
    process.exit(1);
  }
}
if (!mallocTunablesSet(env)) {
  logger.warn(
    { recommended: `GLIBC_TUNABLES=${GLIBC_TUNABLES_DEFAULT}` },
    "GLIBC_TUNABLES has no malloc threshold: memory held by stalled sockets may stay resident after they close (npm run gateway and the images set it)",
  );
}
if (config.origins.allowAll) logger.warn("ALLOWED_ORIGINS=* accepts WebSocket connections from any web page");
if (config.natsServers.length === 0) logger.warn("NATS_URL is not set: using the in-process memory broker (single process only)");

const tracing = await startTracing(env, "herald-gateway");
const broker = createBroker({
  servers: config.natsServers,
  name: config.natsName,
  logger,
  history: config.history,
  subjects: new Subjects(config.subjectPrefix),
});
const gateway = buildGateway({ config, broker, logger, tracing });

let bound: { port: number; metricsPort?: number };
try {
  bound = await gateway.listen();
} catch (err) {
  logger.fatal({ err }, "cannot listen");
  process.exit(1);
}
logger.info(
  { port: bound.port, metricsPort: bound.metricsPort, broker: broker.kind },
  `gateway listening on ws://${config.host ?? "0.0.0.0"}:${bound.port}/ws`,
);

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, "shutting down");
  // Hard deadline: a stuck broker drain must not keep the pod past its grace period.
  setTimeout(() => {
    logger.error("drain did not finish in time; exiting");
    process.exit(1);
  }, (config.drainSeconds + 10) * 1000).unref();
  gateway
    .drain()
    .then(() => tracing.shutdown())
    .then(
      () => {
        logger.info("drained; bye");
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "error while draining");
        process.exit(1);
      },
    );
};
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
process.on("uncaughtException", (err) => {
  logger.fatal({ err }, "uncaught exception");
  process.exit(1);
});
process.on("unhandledRejection", (err) => {
  logger.error({ err }, "unhandled rejection");
});
