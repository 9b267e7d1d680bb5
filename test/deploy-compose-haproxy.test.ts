/**
 * The Compose stack's HAProxy: `haproxy -c` accepts the config, it balances
 * WebSockets and SSE streams over every gateway replica, logs paths without
 * the query string (no token in the log) and hands the gateway only its own
 * X-Forwarded-For, checked on a real HAProxy in front of a stand-in backend;
 * and SSE through it (issue 13), on a real HAProxy in front of a real gateway
 * on NATS: events arrive at once (not buffered, not compressed), a POST
 * /sse/commands through it is answered on the stream, keepalives hold a
 * stream open past the idle timeouts, and those timeouts (not `timeout
 * tunnel`) are what would cut a quiet one.
 */
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { connect as natsConnect } from "nats";
import { GATEWAY_DEFAULTS } from "../services/gateway/src/config.js";
import { findBinary, spawnChild, tail, type Proc } from "./helpers/children.js";
import { httpStatus } from "./helpers/http.js";
import { freePort, freePorts } from "./helpers/ports.js";
import { GATEWAY_MAIN, missingBuild } from "./helpers/procs.js";
import { SseReader } from "./helpers/sse.js";
import { TestStack } from "./helpers/stack.js";
import { hsToken } from "./helpers/tokens.js";
import { waitFor } from "./helpers/wait.js";
import { readText, run } from "./deploy/util.js";
import { HAPROXY_CFG, METRICS_PORT, interpolatedStack } from "./deploy/compose-stack.js";
import { effective, effectiveLogFormat, haproxyTimeMs, logsPath, loopbackConfig, optionOn, queryLeaks, rawRequest, sections, type Section } from "./deploy/haproxy.js";

/** The keepalive the Compose gateways run with: SSE_KEEPALIVE_MS in compose.yaml, else the gateway's default. */
function composeKeepaliveMs(): number {
  const env = (interpolatedStack().services["gateway"]!["environment"] ?? {}) as Record<string, string>;
  return Number(env["SSE_KEEPALIVE_MS"] ?? GATEWAY_DEFAULTS.sseKeepaliveMs);
}

function proxies(all: Section[]): { front: Section; back: Section } {
  const front = all.find((s) => s.header === "frontend ws");
  const back = all.find((s) => s.header === "backend gateways");
  assert.ok(front && back, "frontend ws and backend gateways");
  return { front, back };
}

/** The SSE idle timeouts: `timeout client` of the frontend, `timeout server` of the backend (ms). */
function idleTimeouts(all: Section[]): { client: number; server: number } {
  const { front, back } = proxies(all);
  const client = effective(all, front, "timeout client");
  const server = effective(all, back, "timeout server");
  assert.ok(client && server, "timeout client and timeout server are set");
  return { client: haproxyTimeMs(client), server: haproxyTimeMs(server) };
}

/** Runs HAProxy on `cfg` until the test ends. */
function startHaproxy(t: TestContext, bin: string, cfg: string, name = "haproxy"): Proc {
  const work = mkdtempSync(path.join(tmpdir(), "herald-haproxy-"));
  const cfgFile = path.join(work, "haproxy.cfg");
  writeFileSync(cfgFile, cfg);
  const proc = spawnChild(name, bin, ["-db", "-f", cfgFile], { env: process.env });
  t.after(async () => {
    await proc.stop();
    rmSync(work, { recursive: true, force: true });
  });
  return proc;
}

test("compose: HAProxy balances WebSockets over every gateway replica (haproxy -c)", (t) => {
  const cfgPath = HAPROXY_CFG;
  const cfg = readText(cfgPath);
  assert.match(cfg, /server-template \S+ \d+ gateway:8080\b/, "replicas discovered from the compose service name");
  assert.match(cfg, /resolvers docker[\s\S]*nameserver \S+ 127\.0\.0\.11:53/, "Docker's DNS");
  assert.match(cfg, /timeout tunnel\s+\d+[hm]/, "long WebSocket tunnel timeout");
  assert.match(cfg, /option httpchk\n\s*http-check send meth GET uri \/readyz ver HTTP\/1\.1 hdr Host \S+/, "health-checked on /readyz over HTTP/1.1 (uWS does not answer HTTP/1.0)");
  assert.match(cfg, new RegExp(`default-server check port ${METRICS_PORT}\\b`), "health checks go to METRICS_PORT, where /readyz is served");
  assert.match(cfg, /option forwardfor/);
  // Clients reach /ws and the SSE routes only: never /metrics (nor /healthz, /readyz).
  assert.match(cfg, /http-request deny deny_status 404 unless \{ path \/ws \/sse \/sse\/commands \}/, "everything but /ws, /sse and /sse/commands is refused");
  const servers = cfg.split("\n").filter((l) => /^\s*(server|server-template)\s/.test(l));
  assert.ok(servers.length > 0);
  for (const l of servers) assert.doesNotMatch(l, new RegExp(`:${METRICS_PORT}\\b`), `clients are never routed to METRICS_PORT: ${l.trim()}`);
  const haproxy = findBinary("haproxy");
  if (!haproxy) {
    t.skip("haproxy binary not installed (apt-get install -y haproxy): config syntax not checked by haproxy -c");
    return;
  }
  const r = run(haproxy, ["-c", "-f", cfgPath]);
  assert.equal(r.status, 0, `haproxy -c failed:\n${r.stdout}\n${r.stderr}`);
});

test("compose: HAProxy logs paths without the query string and forwards only its own X-Forwarded-For", () => {
  const all = sections(readText(HAPROXY_CFG));
  // Browsers send the JWT as /ws?access_token=<jwt> (DESIGN.md: tokens never
  // appear in logs). `option httplog` logs the request line with its query
  // string, so every HTTP proxy must end up with a custom format that
  // logs the path and no query.
  const proxies = all.filter((s) => ["frontend", "listen"].includes(s.keyword));
  assert.ok(proxies.length > 0);
  for (const proxy of proxies) {
    const format = effectiveLogFormat(all, proxy);
    assert.ok(format, `${proxy.header}: a log format is set`);
    assert.doesNotMatch(format, /^option /, `${proxy.header}: "${format}" logs the request line with its query string (?access_token=<jwt>)`);
    assert.deepEqual(queryLeaks(format), [], `${proxy.header}: the log format writes the query string or an auth header`);
    assert.ok(logsPath(format), `${proxy.header}: the log format keeps the path (%HPO or %HP)`);
  }
  for (const s of all) {
    for (const [i, line] of s.lines.entries()) {
      // A later `option httplog` would silently replace the custom format.
      if (/^option\s+https?log\b/.test(line)) {
        assert.ok(s.lines.slice(i + 1).some((l) => l.startsWith("log-format ")), `${s.header}: "${line}" without a query-free log-format after it`);
      }
      if (/^(log-format|log-format-sd|error-log-format|unique-id-format)\s/.test(line)) {
        assert.deepEqual(queryLeaks(line), [], `${s.header}: ${line}`);
      }
      assert.doesNotMatch(line, /capture\s+request\s+header\s+(authorization|sec-websocket-protocol|cookie)\b/i, `${s.header}: captures a header that carries tokens`);
      assert.doesNotMatch(line, /http-request\s+capture\s+.*(req\.hdr|hdr)\((authorization|sec-websocket-protocol)\)/i, `${s.header}: captures a header that carries tokens`);
    }
  }
  // X-Forwarded-For: the client's own lines are removed in the frontend, so
  // the gateways (TRUSTED_PROXIES = this proxy) see only HAProxy's line.
  const ws = all.find((s) => s.header === "frontend ws");
  assert.ok(ws, "frontend ws");
  const del = ws.lines.findIndex((l) => /^http-request\s+del-header\s+X-Forwarded-For$/i.test(l));
  const fwd = ws.lines.findIndex((l) => /^option\s+forwardfor\b/.test(l));
  assert.ok(del >= 0, "frontend ws: http-request del-header X-Forwarded-For (unconditional)");
  assert.ok(fwd > del, "frontend ws: option forwardfor, after the del-header");
  assert.doesNotMatch(ws.lines[fwd]!, /\bif-none\b/, "if-none would pass a client's header through instead of HAProxy's");
});

test("compose: a real HAProxy with this config logs no token and hands the gateway one X-Forwarded-For", async (t) => {
  const haproxy = findBinary("haproxy");
  if (!haproxy) {
    t.skip("haproxy binary not installed (apt-get install -y haproxy)");
    return;
  }
  const [wsPort, healthPort, backendPort, backendMetricsPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  // The repository's config with only the addresses changed (loopbackConfig).
  const cfg = loopbackConfig(readText(HAPROXY_CFG), { front: wsPort, health: healthPort, backend: backendPort, backendMetrics: backendMetricsPort }, Number(METRICS_PORT));

  // Stand-in gateway: records what arrives, echoes the X-Forwarded-For lines.
  // Like a gateway with METRICS_PORT set, its client port answers /readyz
  // 404 and a second port answers it 200: HAProxy only sends traffic once it
  // health-checks the metrics port.
  const seen: { url: string; xff: string[] }[] = [];
  const backend = createServer((req, res) => {
    const xff = req.headersDistinct["x-forwarded-for"] ?? [];
    seen.push({ url: req.url ?? "", xff });
    if (req.url === "/readyz") res.statusCode = 404;
    res.setHeader("x-seen-xff", JSON.stringify(xff));
    res.end("ok");
  });
  const backendMetrics = createServer((req, res) => {
    res.statusCode = req.url === "/readyz" ? 200 : 404;
    res.end();
  });
  await new Promise<void>((resolve) => backend.listen(backendPort, "127.0.0.1", resolve));
  await new Promise<void>((resolve) => backendMetrics.listen(backendMetricsPort, "127.0.0.1", resolve));
  const work = mkdtempSync(path.join(tmpdir(), "herald-haproxy-"));
  const cfgFile = path.join(work, "haproxy.cfg");
  writeFileSync(cfgFile, cfg);
  const proc = spawnChild("haproxy", haproxy, ["-db", "-f", cfgFile], { env: process.env });
  t.after(async () => {
    await proc.stop();
    await new Promise((resolve) => backend.close(resolve));
    await new Promise((resolve) => backendMetrics.close(resolve));
    rmSync(work, { recursive: true, force: true });
  });

  const token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJsb2ctdGVzdCJ9.c2lnbmF0dXJlLW5vdC1mb3ItbG9ncw";
  const upgrade = (target: string, extra: string[] = []) =>
    rawRequest(wsPort, [`GET ${target} HTTP/1.1`, "Host: herald.test", ...extra, "Connection: close"]);
  const res = await waitFor(
    async () => {
      const r = await upgrade(`/ws?access_token=${token}&v=1`, ["X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: 198.51.100.1, 192.0.2.9"]);
      return r.status === 200 ? r : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 250, message: `HAProxy forwarding to the backend\n${tail(proc)}` },
  );
  assert.deepEqual(JSON.parse(res.headers.get("x-seen-xff")?.[0] ?? "null"), ["127.0.0.1"], "the client's X-Forwarded-For lines are dropped; HAProxy's is the only one");
  assert.ok(seen.some((s) => s.url === `/ws?access_token=${token}&v=1`), "the gateway still receives the token in the query");
  // A malformed request carrying a token, and the /metrics deny rule.
  await rawRequest(wsPort, [`GET /ws?access_token=${token} HTTP/1.1`, "Host: herald.test", "Bad Header"]).catch(() => undefined);
  assert.equal((await upgrade(`/metrics?access_token=${token}`)).status, 404);
  for (const p of ["/metrics", "/healthz", "/readyz", "/ws/../metrics", "/sse/../metrics", "/ssex", "/sse/commands/x"]) assert.equal((await upgrade(p)).status, 404, `${p} through the load balancer`);
  assert.deepEqual(seen.filter((s) => s.url !== `/ws?access_token=${token}&v=1`), [], "only /ws requests reach the gateway's client port");
  // The SSE routes pass: the stream (token in the query, as EventSource sends it) and the command POSTs.
  assert.equal((await upgrade(`/sse?channel=x&access_token=${token}`)).status, 200);
  const body = '{"type":"ping"}';
  const post = await rawRequest(wsPort, ["POST /sse/commands HTTP/1.1", "Host: herald.test", "Content-Type: application/json", `Content-Length: ${body.length}`, "Connection: close"], 3_000, body);
  assert.equal(post.status, 200);
  assert.deepEqual(
    seen.slice(-2).map((s) => s.url),
    [`/sse?channel=x&access_token=${token}`, "/sse/commands"],
    "GET /sse and POST /sse/commands reach the gateway's client port",
  );

  const logged = () => proc.logs.filter((l) => / ws (gateways|ws)\//.test(l));
  await waitFor(() => logged().length >= 3, { timeoutMs: 5_000, message: `three request log lines\n${tail(proc)}` });
  assert.ok(logged().some((l) => l.includes('"GET /ws HTTP/1.1"')), `the request is logged with its path:\n${logged().join("\n")}`);
  assert.ok(logged().some((l) => l.includes('"GET /metrics HTTP/1.1"')));
  await waitFor(() => logged().some((l) => l.includes('"POST /sse/commands HTTP/1.1"')), { timeoutMs: 5_000, message: `the command POST logged\n${tail(proc)}` });
  assert.ok(logged().some((l) => l.includes('"GET /sse HTTP/1.1"')), `the SSE request is logged with its path only:\n${logged().join("\n")}`);
  for (const line of proc.logs) {
    assert.ok(!line.includes(token) && !line.includes("access_token"), `HAProxy logged the token: ${line}`);
  }
});

test("compose: HAProxy passes SSE unbuffered, uncompressed, without stickiness, with idle timeouts above the keepalive", () => {
  const all = sections(readText(HAPROXY_CFG));
  const { front, back } = proxies(all);
  const keepalive = composeKeepaliveMs();
  // SSE is not a tunnel: `timeout tunnel` (WebSocket) never applies to it,
  // and a quiet stream is cut after `timeout server` without a byte from the
  // gateway (or `timeout client` when the client stops reading). Two
  // keepalives at least, so one late or lost comment does not cut it.
  const { client, server } = idleTimeouts(all);
  assert.ok(server >= 2 * keepalive, `timeout server ${server} ms: at least twice SSE_KEEPALIVE_MS (${keepalive} ms)`);
  assert.ok(client >= 2 * keepalive, `timeout client ${client} ms: at least twice SSE_KEEPALIVE_MS (${keepalive} ms)`);
  // Responses forwarded as they come: no MSG_MORE delay, no compression, no waiting for request bodies.
  assert.ok(optionOn(all, back, "http-no-delay") || optionOn(all, front, "http-no-delay"), "option http-no-delay (else a small event waits up to 200 ms)");
  for (const s of [front, back, ...all.filter((x) => x.keyword === "defaults")]) {
    for (const line of s.lines) {
      assert.doesNotMatch(line, /^option\s+http-buffer-request\b/, `${s.header}: ${line}`);
      // Compression of text/event-stream holds events in the compressor.
      if (/^compression\s+(type|type-res)\s/.test(line)) assert.doesNotMatch(line, /text\/event-stream/, `${s.header}: ${line}`);
      if (/^compression\s+algo\s/.test(line)) {
        assert.ok(s.lines.some((l) => /^compression\s+(type|type-res)\s/.test(l)), `${s.header}: compression without a type list compresses text/event-stream too`);
      }
      assert.doesNotMatch(line, /^filter\s+compression\b/, `${s.header}: ${line}`);
      // Any gateway serves a stream (resumes with Last-Event-ID) and any takes its commands: no stickiness.
      assert.doesNotMatch(line, /^(stick|stick-table|cookie|hash-type)\b/, `${s.header}: stickiness is not needed: ${line}`);
    }
  }
  assert.match(effective(all, back, "balance") ?? "", /^(leastconn|roundrobin|random)\b/, "a balance algorithm that needs no affinity");
  // One path list for both frontends' rules (/ws, /sse, /sse/commands).
  const deny = front.lines.find((l) => l.startsWith("http-request deny"));
  assert.equal(deny, "http-request deny deny_status 404 unless { path /ws /sse /sse/commands }");
});

test(
  "compose: SSE through a real HAProxy with this config to a real gateway: events at once, keepalives keep it open past the idle timeouts, which cut a quiet stream",
  { skip: missingBuild(GATEWAY_MAIN) },
  async (t) => {
    const haproxy = findBinary("haproxy");
    if (!haproxy) {
      t.skip("haproxy binary not installed (apt-get install -y haproxy)");
      return;
    }
    const repoCfg = readText(HAPROXY_CFG);
    // Time scaled down: the gateway's keepalive 400 ms instead of 15 s, and
    // HAProxy's `timeout client`/`timeout server` by the same factor, so the
    // stream is checked at the config's own timeout-to-keepalive ratio.
    const KEEPALIVE_MS = 400;
    const factor = KEEPALIVE_MS / composeKeepaliveMs();
    const idle = idleTimeouts(sections(repoCfg));
    const scaledIdleMs = Math.round(Math.max(idle.client, idle.server) * factor);
    const scaleIdle = (cfg: string, to: (v: string) => number) =>
      cfg.replace(/^(\s*timeout\s+(?:client|server))\s+(\S+)$/gm, (_all, head: string, v: string) => `${head} ${to(v)}ms`);

    const stack = new TestStack();
    const readers: SseReader[] = [];
    t.after(async () => {
      for (const r of readers) r.close();
      await stack.close();
    });
    const nats = await stack.nats();
    const [metricsPort, lbPort, lbHealthPort, cutPort, cutHealthPort, statsPort] = (await freePorts(6)) as [number, number, number, number, number, number];
    // As Compose runs it: METRICS_PORT for /readyz (HAProxy's health checks), this proxy trusted.
    const gw = await stack.gateway(
      nats,
      { METRICS_PORT: String(metricsPort), SSE_KEEPALIVE_MS: String(KEEPALIVE_MS), TRUSTED_PROXIES: "127.0.0.1" },
      { waitFor: "none" },
    );
    await waitFor(async () => (await httpStatus(`http://127.0.0.1:${metricsPort}/readyz`)) === 200, {
      timeoutMs: 15_000,
      intervalMs: 100,
      proc: gw,
      message: "gateway /readyz on METRICS_PORT",
    });
    const ports = { backend: gw.port, backendMetrics: metricsPort };
    const lb = startHaproxy(
      t,
      haproxy,
      loopbackConfig(scaleIdle(repoCfg, (v) => Math.round(haproxyTimeMs(v) * factor)), { ...ports, front: lbPort, health: lbHealthPort }, Number(METRICS_PORT)) +
        // The stats page shows what the health checks of this config get from a real gateway.
        `\nfrontend stats\n    bind 127.0.0.1:${statsPort}\n    stats enable\n    stats uri /stats\n`,
    );

    const token = await hsToken({ sub: "sse-through-lb", channels: ["x"] });
    const open = (port: number, proc: Proc) =>
      waitFor(
        async () => {
          // accept-encoding: a proxy that compressed responses would do it now.
          const r = await SseReader.open(`http://127.0.0.1:${port}/sse?channel=x&access_token=${token}`, { "accept-encoding": "gzip, deflate, br" });
          if (!(r instanceof SseReader)) return undefined;
          readers.push(r);
          return r;
        },
        // HAProxy sends traffic once two health checks (inter 2s) passed.
        { timeoutMs: 15_000, intervalMs: 200, proc, message: `GET /sse through HAProxy\n${tail(proc)}` },
      );
    const r = await open(lbPort, lb);
    assert.equal(r.headers.get("content-type"), "text/event-stream");
    assert.equal(r.headers.get("cache-control"), "no-cache");
    assert.equal(r.headers.get("x-accel-buffering"), "no");
    assert.equal(r.headers.get("content-encoding"), null, "the stream is not compressed");
    await r.next((e) => e.frame?.type === "subscribed" && e.frame.channel === "x");

    // The replica passes the config's health check (a check the gateway does
    // not answer would mark every replica DOWN a few seconds after start).
    await waitFor(
      async () => {
        const csv = await (await fetch(`http://127.0.0.1:${statsPort}/stats;csv`)).text();
        const [head, ...rows] = csv.replace(/^# /, "").trim().split("\n").map((l) => l.split(","));
        const col = (name: string) => head!.indexOf(name);
        const row = rows.find((cells) => cells[col("pxname")] === "gateways" && cells[col("svname")] === "gw1");
        return row?.[col("check_status")] === "L7OK" && row[col("status")] === "UP";
      },
      { timeoutMs: 15_000, intervalMs: 200, proc: lb, message: `gateway passes HAProxy's /readyz check\n${tail(lb)}` },
    );

    // Each event arrives at once. HAProxy without `option http-no-delay`
    // holds a small chunk up to 200 ms (MSG_MORE) unless the next keepalive
    // pushes it out; a buffering proxy would not deliver it at all.
    const nc = await natsConnect({ servers: nats.url });
    stack.defer(() => nc.close());
    const latencies: number[] = [];
    for (let n = 0; n < 7; n++) {
      const from = r.events.length;
      const sent = performance.now();
      nc.publish("herald.ch.x", new TextEncoder().encode(JSON.stringify({ n })));
      await r.next((e) => e.frame?.type === "message" && (e.frame.data as { n?: number }).n === n, 5_000, from);
      latencies.push(Math.round(performance.now() - sent));
    }
    const median = [...latencies].sort((a, b) => a - b)[latencies.length >> 1]!;
    assert.ok(median < 100, `NATS → gateway → HAProxy → client in ${latencies.join(", ")} ms (median ${median}): events are held back`);

    // Client frames for the stream go through the same proxy (POST
    // /sse/commands, on its own connection); the answer comes on the stream.
    const welcome = r.events.find((e) => e.frame?.type === "welcome");
    const connection = welcome?.frame?.["connection"];
    assert.equal(typeof connection, "string", "the welcome names the stream's connection");
    const before = r.events.length;
    const cmd = await fetch(`http://127.0.0.1:${lbPort}/sse/commands`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ connection, frames: [{ type: "ping", id: 7 }] }),
    });
    assert.equal(cmd.status, 202, await cmd.text());
    await r.next((e) => e.frame?.type === "pong" && e.frame["id"] === 7, 5_000, before);

    // Quiet channel: only keepalive comments for twice the idle timeout, and the stream is still open.
    const quietSince = Date.now();
    let from = r.events.length;
    let keepalives = 0;
    while (Date.now() - quietSince < 2 * scaledIdleMs) {
      const k = await r.next((e) => e.comments.includes("keepalive"), 5 * KEEPALIVE_MS, from);
      from = r.events.indexOf(k) + 1;
      keepalives++;
    }
    assert.ok(keepalives >= 2, `${keepalives} keepalive comments through HAProxy`);
    assert.equal(r.ended, false, `the stream outlived the ${scaledIdleMs} ms idle timeout`);
    const at = r.events.length;
    nc.publish("herald.ch.x", new TextEncoder().encode(JSON.stringify({ n: "after" })));
    await r.next((e) => e.frame?.type === "message" && (e.frame.data as { n?: string }).n === "after", 5_000, at);

    // The same config with the idle timeouts below the keepalive (and
    // `timeout tunnel` untouched): HAProxy cuts the quiet stream, a server
    // timeout in the data phase. So these timeouts, not the tunnel's, are the
    // ones SSE needs above SSE_KEEPALIVE_MS.
    assert.match(repoCfg, /^\s*timeout tunnel\s+\S+$/m);
    const CUT_MS = Math.round(KEEPALIVE_MS / 3);
    const cut = startHaproxy(
      t,
      haproxy,
      loopbackConfig(scaleIdle(repoCfg, () => CUT_MS), { ...ports, front: cutPort, health: cutHealthPort }, Number(METRICS_PORT)),
      "haproxy-short-timeouts",
    );
    const short = await open(cutPort, cut);
    await short.end(5 * KEEPALIVE_MS);
    // The keepalive ticks for every stream at once: one may come right after
    // the stream opened; the next one is a whole keepalive away.
    assert.ok(short.events.filter((e) => e.comments.includes("keepalive")).length <= 1, "cut at the first quiet gap");
    const line = await waitFor(() => cut.logs.find((l) => l.includes('"GET /sse HTTP/1.1"') && / 200 /.test(l)), {
      timeoutMs: 5_000,
      message: `the cut stream's log line\n${tail(cut)}`,
    });
    assert.match(line, / sD/, `termination state sD (server-side timeout during data): ${line}`);
  },
);
