/**
 * The NATS `authorization` block the Compose and Kubernetes configs share
 * (deploy/compose/nats/nats.conf, deploy/k8s/base/nats.conf): extracted as
 * text, its users and password variables, test passwords for them, and a
 * nats-server started from a committed config on loopback ports.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { spawnChild, tail, type Proc } from "../helpers/children.js";
import { httpOk } from "../helpers/http.js";
import { freePorts } from "../helpers/ports.js";
import { waitFor } from "../helpers/wait.js";
import { readText, repoPath } from "./util.js";

export const COMPOSE_NATS_CONF = repoPath("deploy/compose/nats/nats.conf");
export const K8S_NATS_CONF = repoPath("deploy/k8s/base/nats.conf");

/** The `authorization { ... }` block of a NATS config, from its keyword to the matching brace. */
export function authorizationBlock(conf: string): string {
  const start = conf.search(/^authorization\s*\{/m);
  assert.ok(start >= 0, "the config has a top-level authorization block");
  let depth = 0;
  let inComment = false;
  let quote: string | undefined;
  for (let i = conf.indexOf("{", start); i < conf.length; i++) {
    const ch = conf[i]!;
    if (inComment) {
      if (ch === "\n") inComment = false;
    } else if (quote) {
      if (ch === quote) quote = undefined;
    } else if (ch === "#") inComment = true;
    else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === "{") depth++;
    else if (ch === "}" && --depth === 0) return conf.slice(start, i + 1);
  }
  throw new Error("unterminated authorization block");
}

export interface NatsUser {
  user: string;
  /** The environment variable the password is read from ($NAME in the config). */
  passwordVar: string;
}

/** `{ user: x, password: $VAR, ... }` entries of the block, in order; a literal password fails. */
export function natsUsers(block: string): NatsUser[] {
  const out: NatsUser[] = [];
  for (const m of block.matchAll(/^\s*user:\s*(\S+)\s*\n\s*password:\s*(\S+)/gm)) {
    const [, user, password] = m as unknown as [string, string, string];
    const v = /^\$([A-Z][A-Z0-9_]*)$/.exec(password);
    assert.ok(v, `${user}: the password is an environment variable ($NAME), not ${password.slice(0, 3)}…`);
    out.push({ user, passwordVar: v[1]! });
  }
  return out;
}

/** A password by the documented recipe ("p" + hex): URL-safe, and read by NATS as a string. */
export function recipePassword(): string {
  return `p${randomBytes(32).toString("hex")}`;
}

/** A recipe password for every password variable of the block. */
export function testPasswords(block: string): Record<string, string> {
  return Object.fromEntries(natsUsers(block).map((u) => [u.passwordVar, recipePassword()]));
}

export interface RunningNats {
  url: string;
  monitorUrl: string;
  proc: Proc;
  stop(): Promise<void>;
}

/**
 * nats-server with a committed config: its client (4222), monitoring (8222)
 * and cluster (6222) listeners moved to free loopback ports, the JetStream
 * store and pid file into a temporary directory; the rest (authorization
 * included) as committed. Waits for `ready` (a monitoring path answering 200).
 */
export async function startNatsFromConfig(
  bin: string,
  conf: string,
  env: Record<string, string>,
  ready = "/healthz?js-server-only=true",
): Promise<RunningNats> {
  const dir = mkdtempSync(path.join(tmpdir(), "herald-nats-perms-"));
  const [client, monitor, cluster] = (await freePorts(3)) as [number, number, number];
  const swap = (from: RegExp, to: string, optional = false) => {
    if (optional && !from.test(conf)) return;
    assert.match(conf, from);
    conf = conf.replace(from, to);
  };
  swap(/^listen: 0\.0\.0\.0:4222$/m, `listen: 127.0.0.1:${client}`);
  swap(/^http: 0\.0\.0\.0:8222$/m, `http: 127.0.0.1:${monitor}`);
  swap(/^(\s*)listen: 0\.0\.0\.0:6222$/m, `$1listen: 127.0.0.1:${cluster}`, true);
  swap(/store_dir: \/data/, `store_dir: ${JSON.stringify(path.join(dir, "js"))}`);
  swap(/pid_file: \S+/, `pid_file: ${JSON.stringify(path.join(dir, "nats.pid"))}`, true);
  const file = path.join(dir, "nats.conf");
  writeFileSync(file, conf);
  const proc = spawnChild("nats-server", bin, ["-c", file], { env: { PATH: process.env["PATH"] ?? "", ...env } });
  const monitorUrl = `http://127.0.0.1:${monitor}`;
  const stop = async () => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => httpOk(`${monitorUrl}${ready}`), { timeoutMs: 15_000, intervalMs: 50, proc, message: `nats-server ${monitorUrl}${ready}` });
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${tail(proc)}`);
  }
  return { url: `nats://127.0.0.1:${client}`, monitorUrl, proc, stop };
}

/** The committed config files. */
export function natsConfigs(): { compose: string; k8s: string } {
  return { compose: readText(COMPOSE_NATS_CONF), k8s: readText(K8S_NATS_CONF) };
}
