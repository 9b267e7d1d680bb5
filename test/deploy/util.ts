/**
 * Small helpers for the deploy tests (test/deploy-*.test.ts): repository
 * paths, YAML loading, required system binaries and short commands. Ports,
 * waits, child processes and binary lookup come from the shared test support
 * (test/helpers: ports.ts, wait.ts, children.ts).
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { findBinary } from "../helpers/children.js";
import { REPO_ROOT } from "../helpers/procs.js";

export { REPO_ROOT };

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

/** A plain object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
