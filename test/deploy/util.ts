/**
 * Small helpers for the deploy tests (test/deploy-*.test.ts): repository
 * paths, YAML loading, finding system binaries, free ports, bounded polling
 * and child processes that are always cleaned up.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, parse as parseYaml } from "yaml";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export function repoPath(...parts: string[]): string {
  return path.join(REPO_ROOT, ...parts);
}

export function readText(file: string): string {
  return readFileSync(file, "utf8");
}

/** One YAML document; `<<` merge keys resolved as Compose does. */
export function loadYaml(file: string): unknown {
  return parseYaml(readText(file), { merge: true });
}

/** Every document of a multi-document YAML stream (kustomize output). */
export function loadYamlAll(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`YAML error: ${d.errors[0]!.message}`);
      return d.toJS() as unknown;
    })
    .filter((d): d is Record<string, unknown> => d !== null && typeof d === "object");
}

/** A binary from PATH or the usual system locations, undefined when absent. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env["PATH"] ?? "").split(path.delimiter), "/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = path.join(dir, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Like findBinary but fails with the apt package that provides it. */
export function requireBinary(name: string, aptPackage: string): string {
  const p = findBinary(name);
  if (!p) {
    throw new Error(`${name} not found: install Debian's "${aptPackage}" package (apt-get install -y ${aptPackage}); .ci/run does this in CI`);
  }
  return p;
}

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a short command to completion (bounded by timeoutMs). */
export function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: opts.env ?? process.env,
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 60_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      if (addr === null || typeof addr === "string") {
        srv.close();
        reject(new Error("no port"));
        return;
      }
      const port = addr.port;
      srv.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/** Polls `fn` until it returns a truthy value; throws after timeoutMs. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      lastErr = undefined;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const detail = lastErr instanceof Error ? `; last error: ${lastErr.message}` : "";
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? "condition"}${detail}`);
}

export interface Proc {
  name: string;
  proc: ChildProcess;
  /** stdout + stderr lines, for failure messages. */
  logs: string[];
  exited: Promise<number | null>;
  /** SIGTERM, then SIGKILL after graceMs; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a long-running child process that is killed by stop() (call it from t.after). */
export function start(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, cwd = REPO_ROOT): Proc {
  const proc = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  const logs: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) logs.push(line);
    if (logs.length > 2000) logs.splice(0, logs.length - 2000);
  };
  proc.stdout?.on("data", collect);
  proc.stderr?.on("data", collect);
  const exited = new Promise<number | null>((resolve) => {
    proc.once("exit", (code) => resolve(code));
    proc.once("error", (err) => {
      logs.push(`spawn error: ${err.message}`);
      resolve(null);
    });
  });
  return {
    name,
    proc,
    logs,
    exited,
    async stop(graceMs = 5_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The last lines a process wrote, for assertion messages. */
export function tail(p: Proc, n = 30): string {
  return `--- ${p.name} (last ${n} lines) ---\n${p.logs.slice(-n).join("\n")}`;
}

/** A plain object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
