/**
 * Spawns the built services (`node services/<name>/dist/main.js`) from the
 * repository root, configured by environment only, on a free port, and waits
 * until they are ready.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { GLIBC_TUNABLES_DEFAULT } from "../../services/gateway/src/malloc-tunables.js";
import { SEMI_SPACE_FLAG } from "../../services/gateway/src/heap-flags.js";
import { spawnChild, type ExitInfo } from "./children.js";
import { httpStatus } from "./http.js";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

export { waitFor, withTimeout, waitForEvent, type Truthy, type WaitOptions } from "./wait.js";
export { stopChild, type ExitInfo } from "./children.js";
export { httpGet } from "./http.js";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** Entry points; HERALD_GATEWAY_MAIN / HERALD_PUBLISHER_MAIN point the tests at another build (debugging). */
export const GATEWAY_MAIN = path.resolve(REPO_ROOT, process.env["HERALD_GATEWAY_MAIN"] ?? "services/gateway/dist/main.js");
export const PUBLISHER_MAIN = path.resolve(REPO_ROOT, process.env["HERALD_PUBLISHER_MAIN"] ?? "services/publisher/dist/main.js");

export type Env = Record<string, string | undefined>;

export interface StartOptions {
  /** Wait for `/readyz` (default) or only `/healthz` (e.g. while NATS is down), or nothing. */
  waitFor?: "readyz" | "healthz" | "none";
  /** Startup timeout (default 15 s). */
  timeoutMs?: number;
}

export interface ServiceProcess {
  name: string;
  port: number;
  /** http://127.0.0.1:<port> */
  url: string;
  /** ws://127.0.0.1:<port>/ws */
  wsUrl: string;
  proc: ChildProcess;
  pid: number;
  /** stdout and stderr lines, in arrival order. */
  logs: string[];
  exited: Promise<ExitInfo>;
  /** True while the process runs. */
  readonly alive: boolean;
  kill(signal?: NodeJS.Signals): void;
  /** SIGTERM, wait for the exit (SIGKILL after `graceMs`, default 15 s). */
  stop(graceMs?: number): Promise<ExitInfo>;
}

/** Returns a reason to skip when the service has not been built yet. */
export function missingBuild(main: string): string | undefined {
  return existsSync(main) ? undefined : `${path.relative(REPO_ROOT, main)} does not exist (run npm run build)`;
}

function baseEnv(): Env {
  // Deliberately minimal: nothing from the test process (NATS_URL, NODE_OPTIONS, ...) leaks in.
  // HERALD_TEST_LOG_LEVEL overrides the default level for debugging.
  // GLIBC_TUNABLES as `npm run gateway` and the images set it (services/gateway/src/malloc-tunables.ts).
  return {
    PATH: process.env["PATH"],
    HOME: process.env["HOME"],
    LOG_LEVEL: process.env["HERALD_TEST_LOG_LEVEL"] ?? "warn",
    GLIBC_TUNABLES: GLIBC_TUNABLES_DEFAULT,
  };
}

async function startService(
  name: string,
  main: string,
  portVar: string,
  hostVar: string,
  env: Env,
  opts: StartOptions,
): Promise<ServiceProcess> {
  if (!existsSync(main)) throw new Error(`${path.relative(REPO_ROOT, main)} is missing; run npm run build first`);
  const port = env[portVar] ? Number(env[portVar]) : await freePort();
  // A port given in `env` is passed as written (tests of bad values); the free port otherwise.
  const merged: Env = { ...baseEnv(), [hostVar]: "127.0.0.1", ...env, [portVar]: env[portVar] || String(port) };
  const cleanEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(merged)) if (v !== undefined) cleanEnv[k] = v;

  // The gateway as `npm run gateway` and the image start it (services/gateway/src/heap-flags.ts).
  const child = spawnChild(name, process.execPath, [...(main === GATEWAY_MAIN ? [SEMI_SPACE_FLAG] : []), main], {
    cwd: REPO_ROOT,
    env: cleanEnv,
    // HERALD_TEST_SHOW_LOGS=1 echoes service output to stderr, prefixed with the service name and port.
    ...(process.env["HERALD_TEST_SHOW_LOGS"] ? { onLine: (line: string) => process.stderr.write(`[${name}:${port}] ${line}\n`) } : {}),
  });
  const { child: proc, logs, exited } = child;
  const url = `http://127.0.0.1:${port}`;
  const svc: ServiceProcess = {
    name,
    port,
    url,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    proc,
    pid: proc.pid ?? -1,
    logs,
    exited,
    get alive() {
      return child.alive;
    },
    kill: (signal: NodeJS.Signals = "SIGTERM") => child.kill(signal),
    stop: (graceMs = 15_000) => child.stop(graceMs),
  };

  const waitPath = opts.waitFor ?? "readyz";
  if (waitPath !== "none") {
    try {
      await waitFor(async () => (await httpStatus(`${url}/${waitPath}`)) === 200, {
        timeoutMs: opts.timeoutMs ?? 15_000,
        intervalMs: 100,
        proc: child,
        message: `${name} GET /${waitPath} = 200`,
      });
    } catch (err) {
      svc.kill("SIGKILL");
      throw new Error(`${(err as Error).message}\n--- ${name} log tail ---\n${logs.slice(-30).join("\n")}`);
    }
  }
  return svc;
}

export function startGateway(env: Env, opts: StartOptions = {}): Promise<ServiceProcess> {
  return startService("gateway", GATEWAY_MAIN, "GATEWAY_PORT", "GATEWAY_HOST", env, opts);
}

export function startPublisher(env: Env, opts: StartOptions = {}): Promise<ServiceProcess> {
  return startService("publisher", PUBLISHER_MAIN, "PUBLISHER_PORT", "PUBLISHER_HOST", env, opts);
}

/** A unique name, for NATS_NAME and channels. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
