/**
 * The settings both services read the same way (README "Settings"): where
 * the broker is and how the process serves and stops. Every error is a
 * ConfigError naming the variable; NATS URLs in errors are redacted.
 */
import * as read from "../config.js";
import { LOG_LEVELS, type LogLevel } from "../config.js";
import type { Env } from "../env.js";
import { ConfigError } from "../errors.js";
import { readHistoryConfig, type HistoryConfig } from "../history-config.js";
import { HistoryWindows } from "../history-windows.js";
import { readNamespaces, type Namespaces } from "../namespaces.js";
import { isValidSubjectPrefix } from "../subjects.js";
import { natsCredentials, natsUrlProblem } from "./nats-url.js";

/** Limits and defaults shared by every service. */
export const SHELL_DEFAULTS = {
  subjectPrefix: "herald",
  logLevel: "info" as LogLevel,
  /** Longest DRAIN_SECONDS (a number: fractions are allowed). */
  maxDrainSeconds: 3600,
} as const;

/** Where the broker is: NATS_URL, NATS_NAME, SUBJECT_PREFIX and HISTORY*. */
export interface NatsSection {
  /** NATS servers; empty means the in-process memory broker. */
  natsServers: string[];
  /** NATS connection name (shown in NATS monitoring). */
  natsName: string;
  subjectPrefix: string;
  /** History stream settings; gateways and publishers must agree on them. */
  history: HistoryConfig;
  /** NAMESPACES / NAMESPACES_FILE: options per channel family (the same file for both services). */
  namespaces: Namespaces;
  /** The history streams HISTORY* and the namespaces call for, and which channel each keeps. */
  windows: HistoryWindows;
}

export function readNatsSection(env: Env, defaults: { natsName: string }): NatsSection {
  const subjectPrefix = read.str(env, "SUBJECT_PREFIX", SHELL_DEFAULTS.subjectPrefix);
  if (!isValidSubjectPrefix(subjectPrefix)) {
    throw new ConfigError(
      "SUBJECT_PREFIX",
      `must be dot-separated tokens of A-Z a-z 0-9 _ - (at most 64 characters), got "${subjectPrefix}"`,
    );
  }
  const natsServers = read.list(env, "NATS_URL");
  for (const server of natsServers) {
    const problem = natsUrlProblem(server);
    if (problem !== null) throw new ConfigError("NATS_URL", problem);
  }
  try {
    natsCredentials(natsServers);
  } catch (err) {
    throw new ConfigError("NATS_URL", (err as Error).message);
  }
  const history = readHistoryConfig(env);
  const namespaces = readNamespaces(env, history);
  const variable = env["NAMESPACES_FILE"]?.trim() ? "NAMESPACES_FILE" : "NAMESPACES";
  const windows = HistoryWindows.of(namespaces, history, variable);
  return {
    natsServers,
    natsName: read.str(env, "NATS_NAME", defaults.natsName),
    subjectPrefix,
    history,
    namespaces,
    windows,
  };
}

/** How the process serves and stops: its host and port, METRICS_PORT, DRAIN_SECONDS, LOG_LEVEL. */
export interface ServeSection<Host extends string | undefined = string | undefined> {
  /** Interface to bind. */
  host: Host;
  port: number;
  /** Port for /healthz, /readyz and /metrics beside the service port; undefined = none. */
  metricsPort: number | undefined;
  /** SIGTERM: how long the app may take to close its connections (0 to 3600 s). */
  drainSeconds: number;
  logLevel: LogLevel;
}

export interface ServeSpec<Host extends string | undefined> {
  /** e.g. GATEWAY_HOST */
  hostVariable: string;
  /** e.g. GATEWAY_PORT */
  portVariable: string;
  host: Host;
  port: number;
  drainSeconds: number;
}

export function readServeSection<Host extends string | undefined>(env: Env, spec: ServeSpec<Host>): ServeSection<Host> {
  const port = read.port(env, spec.portVariable, spec.port);
  const metricsPort = read.optionalPort(env, "METRICS_PORT");
  if (metricsPort !== undefined && metricsPort === port) {
    throw new ConfigError("METRICS_PORT", `must differ from ${spec.portVariable} (${port}); leave it unset to serve metrics on the main port`);
  }
  return {
    host: (read.str(env, spec.hostVariable) ?? spec.host) as Host,
    port,
    metricsPort,
    drainSeconds: read.num(env, "DRAIN_SECONDS", spec.drainSeconds, 0, SHELL_DEFAULTS.maxDrainSeconds),
    logLevel: read.oneOf(env, "LOG_LEVEL", SHELL_DEFAULTS.logLevel, LOG_LEVELS),
  };
}
