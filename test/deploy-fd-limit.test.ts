/**
 * The open-files limit as the containers get it: Compose sets
 * `ulimits.nofile` (soft < hard) and Kubernetes inherits the runtime's
 * limits. Node raises its soft limit to the hard limit at start, and the
 * gateway logs the result and refuses to run below MIN_OPEN_FILES with a
 * clear message. Here the limits are set with prlimit(1) (util-linux), as a
 * container runtime would.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { spawnChild, tail, type Proc } from "./helpers/children.js";
import { freePort } from "./helpers/ports.js";
import { waitFor, withTimeout } from "./helpers/wait.js";
import { repoPath, requireBinary } from "./deploy/util.js";

const MAIN = repoPath("services/gateway/dist/main.js");

function ownHardLimit(): number {
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
  return m?.[1] === "unlimited" || !m ? 1_048_576 : Number(m[1]);
}

interface LogLine {
  msg?: string;
  soft?: number;
  hard?: number;
  required?: number;
  level?: number;
}
function parsed(p: Proc): LogLine[] {
  return p.logs.flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine];
    } catch {
      return [];
    }
  });
}

async function gateway(t: import("node:test").TestContext, soft: number, hard: number, minOpenFiles: number): Promise<{ p: Proc; port: number }> {
  const prlimit = requireBinary("prlimit", "util-linux");
  assert.ok(existsSync(MAIN), `${MAIN} missing: run \`npm run build\` first`);
  const port = await freePort();
  const p = spawnChild("gateway", prlimit, [`--nofile=${soft}:${hard}`, process.execPath, MAIN], {
    env: {
    ...process.env,
    GATEWAY_HOST: "127.0.0.1",
    GATEWAY_PORT: String(port),
    JWT_SECRET: "fd-limit-test-secret-0123456789abcdef",
    MIN_OPEN_FILES: String(minOpenFiles),
    LOG_LEVEL: "info",
    NATS_URL: "",
    },
  });
  t.after(() => p.stop());
  return { p, port };
}

test("fd limit: the gateway runs with its soft limit raised to the hard limit and logs it", async (t) => {
  const hard = Math.min(ownHardLimit(), 65_536);
  assert.ok(hard > 1024, "this machine allows more than 1024 files");
  // Soft 1024 (the usual default) but hard high, like `ulimits: nofile: {soft: 1024, hard: ...}`.
  const { p, port } = await gateway(t, 1024, hard, hard);
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, { message: "gateway ready", timeoutMs: 15_000 }).catch((err: Error) => {
    throw new Error(`${err.message}\n${tail(p)}`);
  });
  const line = parsed(p).find((l) => l.msg === "open files limit");
  assert.ok(line, `an "open files limit" log line\n${tail(p)}`);
  assert.equal(line.hard, hard);
  assert.equal(line.soft, hard, "soft limit raised to the hard limit at start");
});

test("fd limit: a hard limit below MIN_OPEN_FILES stops the gateway with a clear log line", async (t) => {
  const { p } = await gateway(t, 512, 1024, 65_536);
  const { code } = await withTimeout(p.exited, 15_000, `the gateway exit\n${tail(p)}`);
  assert.notEqual(code, 0);
  const line = parsed(p).find((l) => l.required === 65_536);
  assert.ok(line, `a log line naming the required minimum\n${tail(p)}`);
  assert.match(line.msg ?? "", /MIN_OPEN_FILES/);
  assert.equal(line.soft, 1024);
});
