/**
 * Smoke run of the sse and compression benchmark scenarios (issue 13) at 1%
 * scale, in a file of its own so that each smoke file stays within the
 * suite's per-file timeout: SSE vs WebSocket on one gateway, COMPRESSION
 * off / shared / dedicated with a bomb. It checks the tooling (exact counts,
 * deflate negotiated and smaller on the wire, bombs cut with RSS bounded,
 * report sections, cleanup), never how fast anything is.
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
import { runBench } from "../bench/run.js";
import type { Row, ScenarioResult } from "../bench/scenarios.js";

const skip = !existsSync(GATEWAY_MAIN) ? `${GATEWAY_MAIN} missing (npm run build)` : natsServerBinary() ? false : "nats-server not installed";

describe("bench smoke: the sse and compression scenarios", { skip, timeout: 150_000 }, () => {
  after(() => killAll());
  const dir = mkdtempSync(join(tmpdir(), "herald-bench-sse-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("SSE vs WebSocket on one gateway, COMPRESSION off vs shared with a bomb: every message counted, bytes on the wire, RSS bounded", async () => {
    const log: string[] = [];
    const result = await runBench(["sse", "compression"], { scale: 0.01, phaseSeconds: 1, multi: 1, targets: [], quiet: true, settleMs: 0, log: (s) => log.push(s) });
    const [sse, zip] = result.scenarios as [ScenarioResult, ScenarioResult];
    assert.deepEqual(result.scenarios.map((s) => s.name), ["sse", "compression"]);
    for (const s of [sse, zip]) assert.deepEqual(s.notes.filter((n) => /failed/.test(n)), [], `${s.name}: ${s.notes.join("; ")}\n${log.join("\n")}`);
    // sse: 10,000 × 0.01 = 100 connections each way, idle memory then a ladder of broadcasts
    for (const transport of ["ws", "sse"]) {
      const rows: Row[] = sse.rows.filter((r) => r["transport"] === transport);
      const idle: Row = rows.find((r) => r["measure"] === "idle")!;
      assert.deepEqual([idle["connections"], idle["failed"], typeof idle["bytesPerConnection"], typeof idle["heapBytesPerConnection"]], [100, 0, "number", "number"], transport);
      const [first] = rows.filter((r) => r["measure"] === "broadcast");
      assert.ok(first, `${transport}: a broadcast step`);
      assert.equal(first["received"], first["expected"], `${transport}: received == published × subscribers`);
      assert.equal(first["expected"], (first["published"] as number) * 100);
      assert.equal(first["probeGaps"], 0);
      assert.ok((first["latencySamples"] as number) >= (first["published"] as number), `${transport}: the probe sampled every message`);
      assert.ok((first["p99Ms"] as number) >= (first["p50Ms"] as number) && (first["p50Ms"] as number) > 0);
      assert.equal(typeof first["serverCpuUsPerDelivery"], "number");
    }
    // compression: 5,000 × 0.01 = 50 connections; shared negotiates deflate and sends fewer bytes than off
    const step = (mode: string) => zip.rows.find((r) => r["measure"] === "broadcast" && r["compression"] === mode)!;
    const [off, shared] = [step("off"), step("shared")];
    assert.deepEqual([off["deflateNegotiated"], shared["deflateNegotiated"], off["compressedShare"], shared["compressedShare"]], [0, 50, 0, 1]);
    for (const r of [off, shared]) {
      assert.equal(r["received"], r["expected"], `${r.target}: no loss`);
      assert.deepEqual([r["checkerGaps"], r["checkerBad"], r["checkerMessages"]], [0, 0, (r["published"] as number) * 4], `${r.target}: the ws checkers inflated every message intact`);
      assert.ok((r["latencySamples"] as number) > 0);
    }
    assert.ok((shared["wireBytesPerDelivery"] as number) < (off["wireBytesPerDelivery"] as number) * 0.7, `${shared["wireBytesPerDelivery"]} vs ${off["wireBytesPerDelivery"]} B per delivery`);
    assert.ok((off["wireBytesPerDelivery"] as number) >= 1024);
    const bomb = zip.rows.find((r) => r["measure"] === "bomb")!;
    assert.ok(bomb, "a bomb row");
    assert.deepEqual([bomb["bombs"], bomb["negotiated"], bomb["under10MiB"], bomb["gatewayAlive"], bomb["lossRatio"], bomb["checkerMessages"]], [3, 3, true, true, 0, bomb["checkerExpected"]]);
    assert.equal(Object.keys(bomb["closeCodes"] as object).includes("0"), false, "every bomber was cut");
    const files = writeReport(result, dir, "sse");
    const md = readFileSync(files[0]!, "utf8");
    assert.match(md, /Idle connections on one channel:/);
    assert.match(md, /Compression bombs during a broadcast/);
    assert.equal(liveChildren(), 0, "every server and worker process has exited");
  });
});
