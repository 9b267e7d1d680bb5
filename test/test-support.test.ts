/**
 * The shared test support itself (test/helpers): bounded waits, the child
 * process registry and binary lookup. Real timers, real processes.
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { findBinary, liveChildren, scratchDir, spawnChild, tail } from "./helpers/children.js";
import { freePorts } from "./helpers/ports.js";
import { waitFor, waitForEvent, withTimeout } from "./helpers/wait.js";

describe("waits", () => {
  test("waitFor returns the first truthy value; exceptions count as not yet", async () => {
    let n = 0;
    const v = await waitFor(() => {
      n++;
      if (n < 3) throw new Error("not yet");
      return n === 4 ? { n } : 0;
    }, { intervalMs: 1 });
    assert.deepEqual(v, { n: 4 });
  });

  test("waitFor times out naming the condition and the last error", async () => {
    await assert.rejects(
      waitFor(() => { throw new Error("still down"); }, { timeoutMs: 50, intervalMs: 5, message: "the thing" }),
      /waitFor: the thing not met within 50 ms; last error: still down/,
    );
  });

  test("waitFor fails at once when the watched process has exited", async () => {
    const p = spawnChild("quitter", process.execPath, ["-e", "console.log('bye'); process.exit(3)"]);
    assert.deepEqual(await p.exited, { code: 3, signal: null });
    await assert.rejects(waitFor(() => false, { timeoutMs: 10_000, proc: p, message: "readiness" }), /quitter exited while waiting for readiness\nbye/);
  });

  test("waitForEvent resolves with the event's arguments (filtered), rejects on error and on timeout", async () => {
    const e = new EventEmitter();
    const got = waitForEvent<[number, string]>(e, "data", { filter: (n) => n > 1 });
    e.emit("data", 1, "skipped");
    e.emit("data", 2, "taken");
    assert.deepEqual(await got, [2, "taken"]);
    assert.equal(e.listenerCount("data") + e.listenerCount("error"), 0, "listeners removed");

    const failed = waitForEvent(e, "data");
    e.emit("error", new Error("boom"));
    await assert.rejects(failed, /boom/);
    await assert.rejects(waitForEvent(e, "never", { timeoutMs: 20 }), /event "never" did not finish within 20 ms/);
    assert.equal(e.listenerCount("never") + e.listenerCount("error"), 0);
  });

  test("withTimeout passes a settled value through", async () => {
    assert.equal(await withTimeout(Promise.resolve(7), 100), 7);
  });
});

describe("child processes and binaries", () => {
  test("spawnChild collects lines, is counted while alive and stops with SIGTERM", async () => {
    const before = liveChildren();
    const p = spawnChild("sleeper", process.execPath, ["-e", "console.log('up'); console.error('err'); setInterval(() => {}, 1000)"]);
    assert.ok(p.pid > 0 && p.alive);
    await waitFor(() => p.logs.length === 2, { message: "two lines" });
    assert.deepEqual([...p.logs].sort(), ["err", "up"]);
    assert.equal(liveChildren(), before + 1);
    assert.deepEqual(await p.stop(5000), { code: null, signal: "SIGTERM" });
    assert.equal(p.alive, false);
    assert.equal(liveChildren(), before);
    assert.match(tail(p, 5), /^--- sleeper \(last 5 lines\) ---\n/);
  });

  test("a spawn error is an exit, not an exception", async () => {
    const p = spawnChild("missing", "/nonexistent/binary", []);
    assert.deepEqual(await p.exited, { code: null, signal: null });
    assert.match(p.spawnError?.message ?? "", /ENOENT/);
    assert.equal(p.alive, false);
  });

  test("findBinary: PATH first, then the system directories", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "herald-bin-"));
    try {
      writeFileSync(path.join(dir, "herald-test-tool"), "");
      assert.equal(findBinary("herald-test-tool", dir), path.join(dir, "herald-test-tool"));
      assert.equal(findBinary("herald-test-tool", "/nowhere"), undefined);
      assert.match(findBinary("sh", "/nowhere") ?? "", /^\/usr\/(s?bin|local\/s?bin)\/sh$/, "found in a system directory off PATH");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a scratch directory is removed on release (and at exit otherwise)", () => {
    const s = scratchDir(mkdtempSync(path.join(tmpdir(), "herald-scratch-")));
    assert.ok(existsSync(s.dir));
    s.release();
    assert.ok(!existsSync(s.dir));
  });

  test("freePorts gives distinct ports", async () => {
    const ports = await freePorts(5);
    assert.equal(new Set(ports).size, 5);
    for (const p of ports) assert.ok(p > 0 && p < 65536);
  });
});
