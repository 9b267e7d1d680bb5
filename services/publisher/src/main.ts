#!/usr/bin/env node
/**
 * `npm run publisher`: the publisher as its own process, configured by
 * environment only. Exit codes: 0 after a graceful stop, 1 on a fatal
 * error, 2 on a configuration error.
 */
import { createBroker, type Broker } from "@herald/broker";
import { ConfigError, Subjects, createLogger, processEnv, startTracing, type Logger, type Tracing } from "@herald/core";
import { buildPublisher, type ListenResult, type Publisher } from "./app.js";
import { readPublisherConfig, type PublisherConfig } from "./config.js";

/** Extra time beyond DRAIN_SECONDS for broker drain and telemetry flush before a forced exit. */
const SHUTDOWN_SLACK_MS = 10_000;

function loadConfig(): { config: PublisherConfig; env: ReturnType<typeof processEnv> } {
  const env = processEnv();
  try {
    const config = readPublisherConfig(env);
    requireBroker(config);
    return { config, env };
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`config error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/**
 * A publisher process of its own with the in-process memory broker would
 * answer 202 for messages that no gateway (each in another process) can ever
 * see. Only the all-in-one `npm start`, which shares one memory broker
 * between gateway and publisher in a single process, may run without NATS;
 * it builds the publisher itself and never runs this file.
 */
function requireBroker(config: PublisherConfig): void {
  if (config.natsServers.length > 0) return;
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

async function main(): Promise<void> {
  const { config, env } = loadConfig();
  const logger = createLogger("publisher", config.logLevel);

  process.on("uncaughtException", (err) => {
    logger.fatal({ err }, "uncaught exception");
    process.exit(1);
  });
  process.on("unhandledRejection", (err) => {
    logger.fatal({ err }, "unhandled promise rejection");
    process.exit(1);
  });

  const tracing = await startTracing(env, "herald-publisher");
  const broker = createBroker({
    servers: config.natsServers,
    name: config.natsName,
    logger,
    history: config.history,
    subjects: new Subjects(config.subjectPrefix),
  });
  const publisher = buildPublisher({ config, broker, logger, tracing });

  let ports: ListenResult;
  try {
    ports = await publisher.listen();
  } catch (err) {
    logger.fatal({ err: (err as Error).message, host: config.host, port: config.port }, "cannot listen");
    await stopQuietly(publisher, broker, tracing);
    process.exit(1);
  }
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
  );

  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal, drainSeconds: config.drainSeconds }, "shutting down");
    setTimeout(() => {
      logger.error("shutdown took too long: exiting");
      process.exit(1);
    }, config.drainSeconds * 1000 + SHUTDOWN_SLACK_MS).unref();
    void graceful(publisher, broker, tracing, logger).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, "error during shutdown");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

/** Readiness 503, stop accepting, wait for in-flight requests, drain NATS, flush traces. */
async function graceful(publisher: Publisher, broker: Broker, tracing: Tracing, logger: Logger): Promise<void> {
  publisher.startDraining();
  await publisher.close();
  logger.info("HTTP server closed; draining broker");
  await broker.drain();
  await tracing.shutdown();
  logger.info("bye");
}

async function stopQuietly(publisher: Publisher, broker: Broker, tracing: Tracing): Promise<void> {
  await publisher.close().catch(() => {});
  await broker.close().catch(() => {});
  await tracing.shutdown().catch(() => {});
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
