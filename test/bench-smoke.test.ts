/**
 * Smoke run of the benchmark tooling (issue 4): a tiny version of the
 * side-by-side comparison — Herald, nats-server's WebSocket listener and the
 * `ws` baseline — through the real load generator (worker processes, lean
 * client, NATS publisher, merged histograms) and the report writer.
 * It checks the tooling is correct (counts, latency samples, loss, report
 * files, cleanup), never how fast anything is.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { liveChildren, killAll } from "./helpers/children.js";
import { natsServerBinary } from "./helpers/nats-source.js";
import { GATEWAY_MAIN } from "../bench/lib/targets.js";
import { writeReport } from "../bench/report.js";
import { runBench, type RunResult } from "../bench/run.js";
import type { Row } from "../bench/scenarios.js";

const skip = !existsSync(GATEWAY_MAIN) ? `${GATEWAY_MAIN} missing (npm run build)` : natsServerBinary() ? false : "nats-server not installed";

describe("bench smoke: Herald vs nats-ws vs ws baseline", { skip, timeout: 90_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "herald-bench-smoke-"));
  let result: RunResult;
  after(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  const rows = (scenario: string, target?: string): Row[] =>
    result.scenarios.find((s) => s.name === scenario)?.rows.filter((r) => !target || r.target === target) ?? [];

  test("runs the scenarios against every target and cleans up", async () => {
    const log: string[] = [];
    result = await runBench(["idle-10k", "connect-storm", "broadcast", "slow-consumer"], {
      scale: 0.02,
      phaseSeconds: 1,
      multi: 2,
      targets: ["herald", "nats-ws", "ws-baseline"],
      quiet: true,
      settleMs: 0,
      log: (s) => log.push(s),
    });
    for (const s of result.scenarios) assert.deepEqual(s.notes.filter((n) => n.includes("failed")), [], `${s.name}: ${s.notes.join("; ")}\n${log.join("\n")}`);
    assert.equal(liveChildren(), 0, "every server and worker process has exited");
  });

  test("connections are authenticated and subscribed on every target", () => {
    for (const target of ["herald", "nats-ws", "ws-baseline"]) {
      const [storm] = rows("connect-storm", target);
      assert.ok(storm, `connect-storm row for ${target}`);
      assert.equal(storm["ready"], 200, `${target}: all 200 connections ready`);
      assert.equal(storm["failed"], 0);
      assert.ok((storm["connectionsPerSecond"] as number) > 0);
      // where the storm's time went: the server's busiest thread and the whole machine
      // (/proc counts in 10 ms ticks, each thread's and the process's rounded
      // down on their own, so a thread may show one tick more than its process)
      const busiest = storm["serverBusiestThreadMsPerConnection"] as number;
      const processMs = storm["serverCpuMsPerConnection"] as number;
      const oneTick = 10 / (storm["ready"] as number);
      assert.ok(busiest >= 0 && busiest <= processMs + oneTick + 1e-9, `${target}: busiest thread ${busiest} within the process's ${processMs} (+${oneTick} for one tick)`);
      // null when the storm was over within one clock tick (a tiny smoke storm may be)
      const machine = storm["machineBusyPercent"] as number | null;
      assert.ok(machine === null || (machine >= 0 && machine <= 100), `${target}: machine busy ${machine}%`);
      const [idle] = rows("idle-10k", target);
      assert.ok(idle && idle["connections"] === 200 && typeof idle["bytesPerConnection"] === "number", `${target}: idle memory measured`);
    }
  });

  test("broadcast: every frame counted, latency sampled on probes, no loss at light load", () => {
    for (const target of ["herald", "nats-ws", "ws-baseline"]) {
      const r = rows("broadcast", target);
      assert.ok(r.length >= 2, `${target}: at least one step per payload size`);
      const first = r.find((x) => x["size"] === 64)!;
      assert.equal(first["received"], first["expected"], `${target}: received == published × subscribers`);
      assert.equal(first["expected"], (first["published"] as number) * 200);
      assert.equal(first["lossRatio"], 0);
      assert.equal(first["probeGaps"], 0);
      assert.ok((first["latencySamples"] as number) >= (first["published"] as number) * 2, `${target}: 2 probe sockets sampled every message`);
      assert.ok((first["p50Ms"] as number) > 0 && (first["p99Ms"] as number) >= (first["p50Ms"] as number));
    }
  });

  test("slow-consumer mix: 5% stop reading, the rest are measured", () => {
    for (const target of ["herald", "nats-ws", "ws-baseline"]) {
      const [a, b] = rows("slow-consumer", target);
      assert.ok(a && b, `${target}: two phases`);
      // 2000 × 0.02 = 40 sockets; every 20th (never a probe) stops reading
      assert.equal(b["stalled"], 2, `${target}: 2 of 40 sockets stopped reading`);
      assert.equal(a["received"], a["expected"], `${target}: no loss while all read`);
      assert.ok((b["received"] as number) > 0);
    }
  });

  test("report: Markdown tables with Herald/peer ratios and SVG charts", () => {
    const files = writeReport(result, dir, "smoke");
    const md = readFileSync(join(dir, "smoke.md"), "utf8");
    assert.match(md, /\| herald \/ nats-ws \|/);
    assert.match(md, /\| herald \/ ws-baseline \|/);
    assert.match(md, /Machine: \d+ ×/);
    for (const f of files.filter((x) => x.endsWith(".svg"))) assert.match(readFileSync(f, "utf8"), /^<svg /);
    assert.equal(files.filter((x) => x.endsWith(".svg")).length, 2, "latency and memory charts");
  });
});

describe("bench smoke: the presence scenario", { skip, timeout: 120_000 }, () => {
  after(() => killAll());

  test("three runs side by side: exact counts, every page walk lists each member once, join/leave latency measured", async () => {
    const log: string[] = [];
    const result = await runBench(["presence"], { scale: 0.01, phaseSeconds: 1, multi: 2, targets: [], quiet: true, settleMs: 0, log: (s) => log.push(s) });
    const [s] = result.scenarios;
    assert.ok(s);
    assert.deepEqual(s.notes.filter((n) => /failed:|NOT exact/.test(n)), [], `${s.notes.join("; ")}\n${log.join("\n")}`);
    assert.deepEqual(s.rows.map((r) => r.target.replace(/^herald-x\d+ /, "")), ["(no presence)", "(presence, counts and lists)", "(presence + join/leave in rooms)"]);
    const [off, counts, events] = s.rows as [Row, Row, Row];
    assert.equal(off["membersPerGateway"], 0);
    for (const r of [counts, events]) {
      assert.deepEqual([r["connections"], r["membersPerGateway"], typeof r["statsP99Ms"], typeof r["pageP99Ms"], typeof r["extraRssBytesPerMember"], (r["allGatewaysExactAfterMs"] as number) >= 0], [1000, 2000, "number", "number", "number", true]);
    }
    assert.equal(counts["joinLeaveFramesReceived"], 0, "no join/leave frames without join_leave");
    assert.ok((events["joinLeaveFramesReceived"] as number) > 0);
    assert.deepEqual([typeof events["joinToEventP99Ms"], typeof events["leaveToEventP99Ms"], counts["joinToEventP99Ms"]], ["number", "number", undefined]);
    const walks = s.notes.filter((n) => n.startsWith("member pages"));
    assert.equal(walks.length, 2);
    for (const w of walks) assert.equal(w.match(/1000 members, 0 duplicates/g)?.length, 3, w);
    assert.equal(liveChildren(), 0, "every server and worker process has exited");
  });
});
