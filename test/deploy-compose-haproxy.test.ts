/**
 * The Compose stack's HAProxy: `haproxy -c` accepts the config, it balances
 * WebSockets over every gateway replica, logs paths without the query string
 * (no token in the log) and hands the gateway only its own X-Forwarded-For,
 * checked on a real HAProxy in front of a stand-in backend.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { findBinary, spawnChild, tail } from "./helpers/children.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";
import { readText, run } from "./deploy/util.js";
import { HAPROXY_CFG, METRICS_PORT } from "./deploy/compose-stack.js";
import { effectiveLogFormat, logsPath, queryLeaks, rawRequest, sections } from "./deploy/haproxy.js";

test("compose: HAProxy balances WebSockets over every gateway replica (haproxy -c)", (t) => {
  const cfgPath = HAPROXY_CFG;
  const cfg = readText(cfgPath);
  assert.match(cfg, /server-template \S+ \d+ gateway:8080\b/, "replicas discovered from the compose service name");
  assert.match(cfg, /resolvers docker[\s\S]*nameserver \S+ 127\.0\.0\.11:53/, "Docker's DNS");
  assert.match(cfg, /timeout tunnel\s+\d+[hm]/, "long WebSocket tunnel timeout");
  assert.match(cfg, /option httpchk GET \/readyz/, "health-checked on /readyz");
  assert.match(cfg, new RegExp(`default-server check port ${METRICS_PORT}\\b`), "health checks go to METRICS_PORT, where /readyz is served");
  assert.match(cfg, /option forwardfor/);
  // Clients reach /ws only: never /metrics (nor /healthz, /readyz).
  assert.match(cfg, /http-request deny deny_status 404 unless \{ path \/ws \}/, "everything but /ws is refused");
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
  // The repository's config with only the addresses changed: local ports, and
  // one local server in place of the Docker-DNS server-template. maxconn is
  // lowered because HAProxy sizes its fd limit from it and refuses to start
  // where it cannot raise the limit that far (unprivileged CI, sandboxes).
  let cfg = readText(HAPROXY_CFG);
  const swap = (from: RegExp, to: string) => {
    assert.match(cfg, from, `haproxy.cfg still has ${String(from)}`);
    cfg = cfg.replace(from, to);
  };
  swap(/^(\s*)bind :8080$/m, `$1bind 127.0.0.1:${wsPort}`);
  swap(/^(\s*)bind :8404$/m, `$1bind 127.0.0.1:${healthPort}`);
  swap(/^(\s*)server-template \S+ \d+ gateway:8080$/m, `$1server gw1 127.0.0.1:${backendPort}`);
  swap(new RegExp(`\\bcheck port ${METRICS_PORT}\\b`), `check port ${backendMetricsPort}`);
  swap(/\bmaxconn \d+/g, "maxconn 1000");

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
  for (const p of ["/metrics", "/healthz", "/readyz", "/ws/../metrics"]) assert.equal((await upgrade(p)).status, 404, `${p} through the load balancer`);
  assert.deepEqual(seen.filter((s) => s.url !== `/ws?access_token=${token}&v=1`), [], "only /ws requests reach the gateway's client port");

  const logged = () => proc.logs.filter((l) => / ws (gateways|ws)\//.test(l));
  await waitFor(() => logged().length >= 3, { timeoutMs: 5_000, message: `three request log lines\n${tail(proc)}` });
  assert.ok(logged().some((l) => l.includes('"GET /ws HTTP/1.1"')), `the request is logged with its path:\n${logged().join("\n")}`);
  assert.ok(logged().some((l) => l.includes('"GET /metrics HTTP/1.1"')));
  for (const line of proc.logs) {
    assert.ok(!line.includes(token) && !line.includes("access_token"), `HAProxy logged the token: ${line}`);
  }
});
