/**
 * The one registry of child processes spawned by tests and benchmarks
 * (test/, test/deploy/, bench/). Every tracked child is SIGKILLed when this
 * process exits or gets SIGINT/SIGTERM/SIGHUP, even when a test forgot its
 * cleanup or the runner interrupts the file. `spawnChild` spawns, tracks and
 * collects output; `track` registers a child spawned elsewhere.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import { withTimeout } from "./wait.js";

const children = new Set<ChildProcess>();
/** Scratch directories of tracked children, removed at exit when nobody did so before. */
const scratchDirs = new Set<string>();
let installed = false;

const running = (c: ChildProcess) => c.exitCode === null && c.signalCode === null;

/** SIGKILLs every tracked child that still runs. */
export function killAll(): void {
  for (const child of children) {
    if (running(child)) {
      try {
        child.kill("SIGKILL");
      } catch {
        /* already gone */
      }
    }
  }
  children.clear();
}

/** Tracked children that have not exited yet. */
export function liveChildren(): number {
  return [...children].filter(running).length;
}

const SIGNAL_NUMBERS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const;

function removeScratchDirs(): void {
  for (const dir of scratchDirs) rmSync(dir, { recursive: true, force: true });
  scratchDirs.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", () => {
    killAll();
    removeScratchDirs();
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      killAll();
      removeScratchDirs();
      process.exit(128 + SIGNAL_NUMBERS[sig]);
    });
  }
}

/** Registers `child`: it is killed when this process exits. */
export function track(child: ChildProcess): void {
  install();
  children.add(child);
  child.once("exit", () => children.delete(child));
}

export interface ScratchDir {
  dir: string;
  /** Removes the directory now. */
  release(): void;
}

/** Registers `dir` for removal (recursively) when this process exits, unless released before. */
export function scratchDir(dir: string): ScratchDir {
  install();
  scratchDirs.add(dir);
  return {
    dir,
    release() {
      rmSync(dir, { recursive: true, force: true });
      scratchDirs.delete(dir);
    },
  };
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Proc {
  name: string;
  child: ChildProcess;
  /** -1 when the spawn failed. */
  pid: number;
  /** stdout and stderr lines, in arrival order (the newest `maxLines`). */
  logs: string[];
  /** Resolves on "close" (every byte of output read) or a spawn error. */
  exited: Promise<ExitInfo>;
  /** The spawn error (ENOENT, ...), once there is one. */
  readonly spawnError: Error | undefined;
  readonly alive: boolean;
  kill(signal?: NodeJS.Signals): void;
  /** `signal` (default SIGTERM), wait for the exit; SIGKILL after `graceMs` (default 10 s). */
  stop(graceMs?: number, signal?: NodeJS.Signals): Promise<ExitInfo>;
}

export interface SpawnChildOptions extends Omit<SpawnOptions, "stdio"> {
  /** Keep at most this many output lines (default 5000). */
  maxLines?: number;
  /** Called with every output line (e.g. to echo it). */
  onLine?: (line: string) => void;
}

/** Spawns `cmd args` with piped output, tracked by the registry. */
export function spawnChild(name: string, cmd: string, args: string[], opts: SpawnChildOptions = {}): Proc {
  const { maxLines = 5000, onLine, ...spawnOpts } = opts;
  const child = spawn(cmd, args, { ...spawnOpts, stdio: ["ignore", "pipe", "pipe"] });
  track(child);
  const logs: string[] = [];
  const collector = () => {
    let rest = "";
    return (buf: Buffer) => {
      const lines = (rest + buf.toString("utf8")).split("\n");
      rest = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.trim()) continue;
        logs.push(line);
        onLine?.(line);
      }
      if (logs.length > maxLines) logs.splice(0, logs.length - maxLines);
    };
  };
  child.stdout?.on("data", collector());
  child.stderr?.on("data", collector());
  let spawnError: Error | undefined;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal }));
    child.once("error", (err) => {
      spawnError = err;
      logs.push(`spawn error: ${err.message}`);
      resolve({ code: null, signal: null });
    });
  });
  return {
    name,
    child,
    pid: child.pid ?? -1,
    logs,
    exited,
    get spawnError() {
      return spawnError;
    },
    get alive() {
      return spawnError === undefined && running(child);
    },
    kill(signal: NodeJS.Signals = "SIGTERM") {
      if (running(child)) child.kill(signal);
    },
    async stop(graceMs = 10_000, signal: NodeJS.Signals = "SIGTERM") {
      if (!running(child) || spawnError) return exited;
      return stopChild(child, exited, name, graceMs, signal);
    },
  };
}

/** Sends `signal` (default SIGTERM) and waits for `exited`; SIGKILL after `graceMs`. */
export async function stopChild(
  child: ChildProcess,
  exited: Promise<ExitInfo>,
  name: string,
  graceMs: number,
  signal: NodeJS.Signals = "SIGTERM",
): Promise<ExitInfo> {
  child.kill(signal);
  try {
    return await withTimeout(exited, graceMs, `${name} exit after ${signal}`);
  } catch {
    child.kill("SIGKILL");
    return withTimeout(exited, 5000, `${name} exit after SIGKILL`);
  }
}

/** The last `n` lines a process wrote, for assertion messages. */
export function tail(p: Pick<Proc, "name" | "logs">, n = 30): string {
  return `--- ${p.name} (last ${n} lines) ---\n${p.logs.slice(-n).join("\n")}`;
}

/** Where `findBinary` looks after PATH (sbin directories are often missing from a user's PATH). */
export const SYSTEM_BIN_DIRS = ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"];

/**
 * A binary from `pathVar` (default: PATH) or SYSTEM_BIN_DIRS, undefined when
 * absent. `exists` decides whether a path is there (the file system by default).
 */
export function findBinary(
  name: string,
  pathVar = process.env["PATH"] ?? "",
  exists: (file: string) => boolean = existsSync,
): string | undefined {
  for (const dir of [...pathVar.split(path.delimiter), ...SYSTEM_BIN_DIRS]) {
    if (!dir) continue;
    const p = path.join(dir, name);
    if (exists(p)) return p;
  }
  return undefined;
}
