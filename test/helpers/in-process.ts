/**
 * The gateway and the publisher built in the test process (`buildGateway`,
 * `buildPublisher`), on port 0, with the memory broker unless a broker is
 * given: no child process, no NATS. Configuration goes through the real
 * readers (readGatewayConfig / readPublisherConfig) from a small env object,
 * as the processes read theirs.
 */
import { Writable } from "node:stream";
import { MemoryBroker, type Broker } from "@herald/broker";
import { REDACT_PATHS, createLogger, type Logger } from "@herald/core";
import { buildGateway, readGatewayConfig, type Gateway } from "@herald/gateway";
import { buildPublisher, readPublisherConfig, type Publisher } from "@herald/publisher";
import { pino } from "pino";

export type Env = Record<string, string | undefined>;

export interface InProcessOptions {
  /** The broker to use (not closed by close()); a fresh MemoryBroker, closed by close(), when omitted. */
  broker?: Broker;
  /** Default: silent (HERALD_TEST_LOG_LEVEL=debug shows the logs on stdout). */
  logger?: Logger;
}

export interface InProcessGateway {
  gateway: Gateway;
  broker: Broker;
  port: number;
  /** http://127.0.0.1:<port> */
  url: string;
  /** ws://127.0.0.1:<port>/ws */
  wsUrl: string;
  /** Closes sockets and listeners, then the broker when it was created here. */
  close(): Promise<void>;
}

export interface InProcessPublisher {
  publisher: Publisher;
  broker: Broker;
  port: number;
  metricsPort: number | undefined;
  url: string;
  close(): Promise<void>;
}

/** A logger made by captureLogger() and the JSON lines it wrote. */
export interface CapturedLogs {
  logger: Logger;
  /** Every line as written (after redaction). */
  lines: string[];
}

function defaultLogger(service: string): Logger {
  return createLogger(service, (process.env["HERALD_TEST_LOG_LEVEL"] as "debug" | undefined) ?? "silent");
}

/** A logger with the services' redaction rules whose lines are kept in memory. */
export function captureLogger(service: string, level: "info" | "debug" = "info"): CapturedLogs {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line) lines.push(line);
      done();
    },
  });
  const logger = pino({ name: service, level, base: { service }, redact: { paths: REDACT_PATHS, censor: "[redacted]" } }, sink);
  return { logger, lines };
}

export async function startGatewayInProcess(env: Env, opts: InProcessOptions = {}): Promise<InProcessGateway> {
  const config = readGatewayConfig({ GATEWAY_HOST: "127.0.0.1", GATEWAY_PORT: "0", ...env });
  const broker = opts.broker ?? new MemoryBroker();
  const gateway = buildGateway({ config, broker, logger: opts.logger ?? defaultLogger("gateway") });
  const { port } = await gateway.listen();
  return {
    gateway,
    broker,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    async close() {
      gateway.close();
      if (!opts.broker) await broker.close();
    },
  };
}

export async function startPublisherInProcess(env: Env, opts: InProcessOptions = {}): Promise<InProcessPublisher> {
  const config = readPublisherConfig({ PUBLISHER_HOST: "127.0.0.1", PUBLISHER_PORT: "0", ...env });
  const broker = opts.broker ?? new MemoryBroker();
  const publisher = buildPublisher({ config, broker, logger: opts.logger ?? defaultLogger("publisher") });
  const { port, metricsPort } = await publisher.listen();
  return {
    publisher,
    broker,
    port,
    metricsPort,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await publisher.close();
      if (!opts.broker) await broker.close();
    },
  };
}
