/**
 * Module-level registry of child processes spawned by the helpers. Every one
 * is killed (SIGKILL) when the test process exits, even when a test forgot
 * its cleanup or the runner interrupts the file.
 */
import type { ChildProcess } from "node:child_process";

const children = new Set<ChildProcess>();
let installed = false;

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        child.kill("SIGKILL");
      } catch {
        /* already gone */
      }
    }
  }
  children.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", killAll);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
    });
  }
}

export function track(child: ChildProcess): void {
  install();
  children.add(child);
  child.once("exit", () => children.delete(child));
}
