/**
 * The process shell of every Herald service (issue 9 "one owner per
 * concern"): it reads the configuration, owns the logger, tracing, the
 * broker, listening, the signals and the drain order. Apps only build their
 * servers, listen and drain their own connections; they never drain the
 * broker. The shell drains it once, after every app has drained, so the
 * all-in-one `npm start` (two apps, one broker) stops in the same order as
 * each service alone.
 *
 * Process policy, the same for every service (README "Operations"):
 * - exit 2 on a configuration error: one line `config error: VAR: reason`
 *   on stderr;
 * - exit 1 on anything fatal: a failed start or listen, an uncaught
 *   exception, an unhandled promise rejection (each logged `fatal`), an
 *   error while draining, or a drain past DRAIN_SECONDS + 10 s;
 * - SIGTERM / SIGINT: apps drain (in parallel), then the broker, then the
 *   traces are flushed, exit 0;
 * - a second SIGTERM / SIGINT while draining exits at once with 128 + the
 *   signal number (143 / 130), as a shell reports a process it killed.
 *
 * The broker is injected (`createBroker`): this package never imports nats.
 */
import { constants } from "node:os";
import type { LogLevel } from "../config.js";
import { processEnv, type Env } from "../env.js";
import { ConfigError, HeraldError } from "../errors.js";
import { createLogger, type Logger } from "../logger.js";
import { startTracing, type Tracing } from "../tracing.js";

export const SHELL_POLICY = {
  /** Beyond DRAIN_SECONDS, for the broker drain and the trace flush, before a forced exit 1. */
  deadlineSlackSeconds: 10,
  /** How long the clean-up after a failed start may take before the exit. */
  abortCleanupMs: 2000,
} as const;

export const EXIT_CODES = { ok: 0, fatal: 1, config: 2 } as const;

/** 128 + the signal number (SIGINT 130, SIGTERM 143): the exit of a second signal. */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/** Thrown by `prepare` or `build` to refuse to start: logged `fatal` with its fields, exit 1. */
export class StartRefused extends HeraldError {
  constructor(
    message: string,
    readonly fields: Readonly<Record<string, unknown>> = {},
  ) {
    super("start_refused", message);
  }
}

/** What the shell needs of a broker. */
export interface ShellBroker {
  /** Called once, after every app has drained. */
  drain(): Promise<void>;
  /** After a failed start. */
  close(): Promise<void>;
}

/** What the shell needs of a configuration. */
export interface ShellConfig {
  readonly logLevel: LogLevel;
  /** The drain deadline is this + SHELL_POLICY.deadlineSlackSeconds. */
  readonly drainSeconds: number;
}

/** One app the shell runs. */
export interface ServiceApp {
  /** Shown in log lines about it. */
  readonly name: string;
  /** Binds its ports (and may log where); a rejection is a listen failure. */
  listen(): Promise<void>;
  /** Not ready, stop accepting, close its own connections. Never the broker. */
  drain(): Promise<void>;
  /** Immediate stop after a failed start (not the broker either). */
  close?(): unknown;
}

/**
 * A ServiceApp from an app object with listen/drain/close (buildGateway,
 * buildPublisher); `listening` sees what listen() resolved with (the bound
 * ports), e.g. to log where it listens.
 */
export function serviceApp<Bound>(
  name: string,
  app: { listen(): Promise<Bound>; drain(): Promise<void>; close?(): unknown },
  listening: (bound: Bound) => void = () => {},
): ServiceApp {
  return {
    name,
    listen: async () => listening(await app.listen()),
    drain: () => app.drain(),
    close: () => app.close?.(),
  };
}

export interface ServiceContext<C, B> {
  readonly config: C;
  readonly env: Env;
  readonly logger: Logger;
  readonly tracing: Tracing;
  readonly broker: B;
}

export interface ServiceSpec<C extends ShellConfig, B extends ShellBroker> {
  /** Logger and tracing service name, e.g. "herald-gateway". */
  name: string;
  /** Default: processEnv(). */
  env?: Env;
  /** Throws ConfigError (exit 2) for a bad setting. */
  readConfig(env: Env): C;
  /** Checks and warnings before anything starts; may throw StartRefused. */
  prepare?(ctx: { readonly config: C; readonly env: Env; readonly logger: Logger }): void;
  createBroker(config: C, logger: Logger): B;
  /** The apps, listened to in this order and drained together. */
  build(ctx: ServiceContext<C, B>): readonly ServiceApp[] | Promise<readonly ServiceApp[]>;
  /** After every app listens (banners, waiting for the broker); signals are handled meanwhile. */
  started?(ctx: ServiceContext<C, B>): void | Promise<void>;
  /** Reports a listen failure; default: a fatal log line. */
  listenFailed?(app: ServiceApp, err: unknown, logger: Logger): void;
}

function exit(code: number): never {
  process.exit(code);
}

/** Runs the service until a signal (then exits) or a fatal error (exit 1); config error: exit 2. */
export async function runService<C extends ShellConfig, B extends ShellBroker>(spec: ServiceSpec<C, B>): Promise<void> {
  const env = spec.env ?? processEnv();
  let config: C;
  try {
    config = spec.readConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`config error: ${err.message}\n`);
      exit(EXIT_CODES.config);
    }
    process.stderr.write(`fatal: ${(err as Error)?.stack ?? String(err)}\n`);
    exit(EXIT_CODES.fatal);
  }
  const logger = createLogger(spec.name, config.logLevel);
  process.on("uncaughtException", (err) => {
    logger.fatal({ err }, "uncaught exception");
    exit(EXIT_CODES.fatal);
  });
  process.on("unhandledRejection", (err) => {
    logger.fatal({ err }, "unhandled promise rejection");
    exit(EXIT_CODES.fatal);
  });

  const started: { tracing?: Tracing; broker?: B; apps: readonly ServiceApp[] } = { apps: [] };
  const abort = async (): Promise<never> => {
    const { tracing, broker, apps } = started;
    const cleanup = Promise.allSettled([
      ...apps.map(async (app) => app.close?.()),
      broker?.close(),
      tracing?.shutdown(),
    ]);
    await Promise.race([cleanup, new Promise((resolve) => setTimeout(resolve, SHELL_POLICY.abortCleanupMs).unref())]);
    exit(EXIT_CODES.fatal);
  };

  let ctx: ServiceContext<C, B>;
  try {
    spec.prepare?.({ config, env, logger });
    const tracing = (started.tracing = await startTracing(env, spec.name));
    const broker = (started.broker = spec.createBroker(config, logger));
    ctx = { config, env, logger, tracing, broker };
    started.apps = await spec.build(ctx);
  } catch (err) {
    if (err instanceof StartRefused) logger.fatal(err.fields, err.message);
    else logger.fatal({ err }, "cannot start");
    return abort();
  }

  const stopping = handleSignals(ctx, started.apps);
  for (const app of started.apps) {
    if (stopping.value) return;
    try {
      await app.listen();
    } catch (err) {
      if (spec.listenFailed) spec.listenFailed(app, err, logger);
      else logger.fatal({ err, app: app.name }, "cannot listen");
      return abort();
    }
  }
  try {
    await spec.started?.(ctx);
  } catch (err) {
    logger.fatal({ err }, "cannot start");
    return abort();
  }
}

/** SIGTERM / SIGINT: drain once; a second one exits at once. */
function handleSignals<C extends ShellConfig, B extends ShellBroker>(ctx: ServiceContext<C, B>, apps: readonly ServiceApp[]): { value: boolean } {
  const { config, logger } = ctx;
  const stopping = { value: false };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping.value) {
      logger.warn({ signal }, "second signal: exiting now");
      exit(signalExitCode(signal));
    }
    stopping.value = true;
    const deadlineSeconds = config.drainSeconds + SHELL_POLICY.deadlineSlackSeconds;
    logger.info({ signal, drainSeconds: config.drainSeconds }, "shutting down");
    // A stuck drain must not keep the process past its grace period.
    setTimeout(() => {
      logger.error({ deadlineSeconds }, "drain did not finish in time; exiting");
      exit(EXIT_CODES.fatal);
    }, deadlineSeconds * 1000).unref();
    void drainInOrder(ctx, apps).then((ok) => exit(ok ? EXIT_CODES.ok : EXIT_CODES.fatal));
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return stopping;
}

/** Every app (together), then the broker once, then the traces. False when a step failed. */
async function drainInOrder(ctx: ServiceContext<ShellConfig, ShellBroker>, apps: readonly ServiceApp[]): Promise<boolean> {
  const { logger, broker, tracing } = ctx;
  let ok = true;
  const drained = await Promise.allSettled(apps.map((app) => app.drain()));
  drained.forEach((result, i) => {
    if (result.status === "fulfilled") return;
    ok = false;
    logger.error({ err: result.reason, app: apps[i]?.name }, "error while draining");
  });
  logger.info("apps drained; draining the broker");
  try {
    await broker.drain();
  } catch (err) {
    ok = false;
    logger.error({ err }, "error while draining the broker");
  }
  try {
    await tracing.shutdown();
  } catch (err) {
    ok = false;
    logger.error({ err }, "error while flushing traces");
  }
  if (ok) logger.info("drained; bye");
  return ok;
}
