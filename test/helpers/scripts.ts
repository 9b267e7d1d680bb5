/**
 * Runs the repository's entry scripts (scripts/*.mjs: npm start, npm run
 * watch, npm run token) as real processes and waits on what they print.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { connect as tcpConnect } from "node:net";
import path from "node:path";
import { track } from "./children.js";
import { REPO_ROOT, stopChild, type Env, type ExitInfo } from "./procs.js";

export interface ScriptProcess {
  proc: ChildProcess;
  stdout: string;
  stderr: string;
  /** stdout and stderr together, in arrival order. */
  output: string;
  exited: Promise<ExitInfo>;
  readonly alive: boolean;
  /** Resolves with the first match of `pattern` in the output (already printed or yet to come); rejects on exit or timeout. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit. */
  stop(graceMs?: number): Promise<ExitInfo>;
}

/** `node scripts/<name> ...args` from the repository root with only PATH, HOME and `env`. */
export function runScript(name: string, args: string[], env: Env): ScriptProcess {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries({ PATH: process.env["PATH"], HOME: process.env["HOME"], ...env })) {
    if (v !== undefined) clean[k] = v;
  }
  const proc = spawn(process.execPath, [path.join(REPO_ROOT, "scripts", name), ...args], {
    cwd: REPO_ROOT,
    env: clean,
    stdio: ["ignore", "pipe", "pipe"],
  });
  track(proc);
  const listeners = new Set<() => void>();
  // "close", not "exit": by then every byte of stdout/stderr has been read.
  let closed = false;
  const exited = new Promise<ExitInfo>((resolve) =>
    proc.once("close", (code, signal) => {
      closed = true;
      resolve({ code, signal });
      for (const l of listeners) l();
    }),
  );
  proc.once("error", () => {}); // surfaces as an exit
  const sp: ScriptProcess = {
    proc,
    stdout: "",
    stderr: "",
    output: "",
    exited,
    get alive() {
      return !closed;
    },
    waitForOutput(pattern, timeoutMs = 20_000) {
      return new Promise<RegExpMatchArray>((resolve, reject) => {
        const finish = (fn: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          fn();
        };
        // The message is built when the wait fails, so it shows everything printed until then.
        const timer = setTimeout(
          () => finish(() => reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\n${sp.output.slice(-3000)}`))),
          timeoutMs,
        );
        const check = () => {
          const m = sp.output.match(pattern);
          if (m) finish(() => resolve(m));
          else if (!sp.alive) {
            finish(() => reject(new Error(`${name} exited (${proc.exitCode ?? proc.signalCode}) without printing ${pattern}:\n${sp.output.slice(-3000)}`)));
          }
        };
        listeners.add(check);
        check();
      });
    },
    async stop(graceMs = 10_000) {
      if (!sp.alive) return exited;
      return stopChild(proc, exited, name, graceMs);
    },
  };
  const collect = (stream: "stdout" | "stderr") => (buf: Buffer) => {
    const text = buf.toString("utf8");
    sp[stream] += text;
    sp.output += text;
    if (process.env["HERALD_TEST_SHOW_LOGS"]) process.stderr.write(`[${name}] ${text}`);
    for (const l of [...listeners]) l();
  };
  proc.stdout?.on("data", collect("stdout"));
  proc.stderr?.on("data", collect("stderr"));
  return sp;
}

/** True when a TCP connection to host:port is accepted, false when it is refused or fails. */
export function tcpReachable(host: string, port: number, timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Lines that look like a JavaScript stack frame ("    at fn (file:1:2)"). */
export function stackFrames(text: string): string[] {
  return text.split("\n").filter((l) => /^\s+at .+[:(]/.test(l));
}
