/**
 * Where the tests get NATS from, decided from the environment alone:
 *
 * 1. `NATS_URL` set: that server, as is (`NATS_MONITOR_URL` names its monitor);
 * 2. else a `nats-server` binary (`NATS_SERVER_BIN`, PATH, then the sbin/bin
 *    directories): spawned on free loopback ports, clusters too;
 * 3. else Docker through testcontainers: a `nats:2.10` container with JetStream.
 */
import { existsSync } from "node:fs";
import { findBinary } from "./children.js";

/** The image of the container fallback. */
export const NATS_IMAGE = "nats:2.10";

export type NatsSource =
  | { kind: "external"; url: string; monitorUrl: string | undefined }
  | { kind: "binary"; bin: string }
  | { kind: "container"; image: string };

type Env = Readonly<Record<string, string | undefined>>;

/** The nats-server binary: NATS_SERVER_BIN when it exists, else PATH and the system directories. */
export function natsServerBinary(env: Env = process.env, exists: (file: string) => boolean = existsSync): string | undefined {
  const fromEnv = env["NATS_SERVER_BIN"];
  if (fromEnv && exists(fromEnv)) return fromEnv;
  return findBinary("nats-server", env["PATH"] ?? "", exists);
}

/** Picks the source by the order above; `exists` decides whether a file is there. */
export function natsSource(env: Env = process.env, exists: (file: string) => boolean = existsSync): NatsSource {
  const url = env["NATS_URL"]?.trim();
  if (url) return { kind: "external", url, monitorUrl: env["NATS_MONITOR_URL"]?.trim() || undefined };
  const bin = natsServerBinary(env, exists);
  if (bin) return { kind: "binary", bin };
  return { kind: "container", image: NATS_IMAGE };
}
