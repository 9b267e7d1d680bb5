/**
 * .ci/run, the CI entry point, run against stand-ins: PATH holds only fake
 * `id`, `sudo`, `apt-get`, `node` and `npm` that record their calls (plus the
 * real `env` and `dirname`), so nothing is installed and no test suite runs.
 * It must call apt-get directly as root and through non-interactive sudo
 * otherwise, work with CI=true and no stdin, and end with exactly `npm test`.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { repoPath, requireBinary, run } from "./deploy/util.js";

const BASH = requireBinary("bash", "bash");

interface CiRun {
  status: number | null;
  stderr: string;
  /** One line per call of a stand-in, in order. */
  calls: string[];
}

function runCi(opts: { uid: number; sudo: boolean }): CiRun {
  const dir = mkdtempSync(path.join(tmpdir(), "herald-ci-run-"));
  try {
    const bin = path.join(dir, "bin");
    const log = path.join(dir, "calls.log");
    const script = (name: string, body: string) => {
      const file = path.join(bin, name);
      writeFileSync(file, `#!${BASH}\n${body}\n`);
      chmodSync(file, 0o755);
    };
    mkdirSync(bin);
    for (const real of ["env", "dirname"]) symlinkSync(requireBinary(real, "coreutils"), path.join(bin, real));
    script("id", `[ "$1" = "-u" ] && echo ${opts.uid}`);
    if (opts.sudo) script("sudo", `echo "sudo $*" >> "$CI_LOG"; [ "$1" = "-n" ] || exit 9; shift; exec "$@"`);
    script("apt-get", `echo "apt-get $* (DEBIAN_FRONTEND=$DEBIAN_FRONTEND)" >> "$CI_LOG"`);
    script("node", `echo v20.0.0`);
    script("npm", `echo "npm $*" >> "$CI_LOG"; echo 10.0.0`);
    const r = run(BASH, [repoPath(".ci/run")], {
      // Only the stand-ins: nats-server, prometheus, chromium, haproxy and curl are
      // "missing", so the script installs them.
      env: { PATH: bin, CI: "true", CI_LOG: log, HOME: dir },
      timeoutMs: 20_000,
    });
    const calls = existsSync(log) ? readFileSync(log, "utf8").split("\n").filter(Boolean) : [];
    return { status: r.status, stderr: r.stderr, calls };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const PACKAGES = "nats-server prometheus chromium haproxy curl";

test("ci: as root .ci/run calls apt-get directly, then npm ci and exactly `npm test`", () => {
  const r = runCi({ uid: 0, sudo: false });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, [
    "apt-get update -qq (DEBIAN_FRONTEND=noninteractive)",
    `apt-get install -y -qq --no-install-recommends ${PACKAGES} (DEBIAN_FRONTEND=noninteractive)`,
    "npm --version",
    "npm ci --no-audit --no-fund",
    "npm test",
  ]);
});

test("ci: as a user .ci/run installs through `sudo -n` and keeps DEBIAN_FRONTEND", () => {
  const r = runCi({ uid: 1000, sudo: true });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.calls, [
    "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq",
    "apt-get update -qq (DEBIAN_FRONTEND=noninteractive)",
    `sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${PACKAGES}`,
    `apt-get install -y -qq --no-install-recommends ${PACKAGES} (DEBIAN_FRONTEND=noninteractive)`,
    "npm --version",
    "npm ci --no-audit --no-fund",
    "npm test",
  ]);
});

test("ci: as a user without sudo .ci/run stops with a message before running anything", () => {
  const r = runCi({ uid: 1000, sudo: false });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /needs root or sudo: install nats-server/);
  assert.deepEqual(r.calls, []);
});
