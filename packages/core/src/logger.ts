/**
 * pino JSON logs to stdout. Tokens must never reach a log line: the redact
 * paths cover the places a token could be attached, and callers log
 * identities (sub) rather than credentials.
 */
import { pino, type Logger } from "pino";
import type { LogLevel } from "./config.js";

export type { Logger };

export const REDACT_PATHS = [
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "req.headers.authorization",
  "headers['sec-websocket-protocol']",
  "apiKey",
  "*.apiKey",
  "secret",
  "*.secret",
];

export function createLogger(service: string, level: LogLevel): Logger {
  return pino({
    name: service,
    level,
    base: { service },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** Removes `access_token=...` from a query string or URL before it is logged. */
export function redactQuery(text: string): string {
  return text.replace(/(access_token=)[^&\s]*/gi, "$1[redacted]");
}
