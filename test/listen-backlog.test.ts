/**
 * The gateway's accept queue (listen-backlog.ts): uSockets listens with a
 * backlog of 512, and Linux drops SYNs past it, so a reconnect storm's late
 * clients wait 1 s or more. The gateway raises it to LISTEN_BACKLOG (capped
 * by net.core.somaxconn) and still serves; LISTEN_BACKLOG=0 keeps 512.
 * The backlog is read back with `ss` (inet_diag reports it as Send-Q).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, describe, test } from "node:test";
import { findListeningFd, raiseListenBacklog, USOCKETS_BACKLOG } from "../services/gateway/src/listen-backlog.js";
import { startGatewayInProcess, type InProcessGateway } from "./helpers/in-process.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { closeAll, connect } from "./helpers/ws.js";

const hasSs = spawnSync("ss", ["-V"]).status === 0;
const somaxconn = Number(readFileSync("/proc/sys/net/core/somaxconn", "utf8").trim());

/** The backlog of the socket listening on `port` (Send-Q of `ss -ltn`). */
function backlogOf(port: number): number {
  const out = execFileSync("ss", ["-Hltn", `sport = :${port}`]).toString().trim();
  const fields = out.split(/\s+/);
  assert.ok(fields.length >= 4, `ss found no listener on ${port}: ${out}`);
  return Number(fields[2]);
}

describe("listen backlog", { skip: !hasSs && "needs ss (iproute2)" }, () => {
  const gateways: InProcessGateway[] = [];
  after(async () => {
    for (const g of gateways) await g.close();
  });

  test("the gateway asks for LISTEN_BACKLOG (default 4096, capped by somaxconn) and still serves", async () => {
    const gw = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0" });
    gateways.push(gw);
    assert.equal(backlogOf(gw.port), Math.min(4096, somaxconn));
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "backlog", channels: ["b"] }) });
    assert.equal(c.welcome?.type, "welcome", "the re-listened socket still accepts");
    const reply = await c.request({ type: "subscribe", channel: "b", id: 1 });
    assert.equal(reply.type, "subscribed");
    await closeAll([c]);
  });

  test("LISTEN_BACKLOG sets it; 0 leaves uSockets' 512", async () => {
    const small = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0", LISTEN_BACKLOG: "1000" });
    const off = await startGatewayInProcess({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0", LISTEN_BACKLOG: "0" });
    gateways.push(small, off);
    assert.equal(backlogOf(small.port), Math.min(1000, somaxconn));
    assert.equal(backlogOf(off.port), USOCKETS_BACKLOG);
  });

  test("a port nobody of ours listens on is reported, not guessed", async () => {
    assert.equal(findListeningFd(1), undefined);
    const r = await raiseListenBacklog(1, 4096);
    assert.equal(r.raised, false);
    assert.match(r.raised ? "" : r.why, /no single listening socket on port 1/);
  });
});
