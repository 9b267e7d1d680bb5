/**
 * The Compose stack (compose.yaml at the root including deploy/compose):
 * valid against the Compose specification's JSON schema, every build
 * context, Dockerfile, mounted file and variable it references exists, no
 * secrets are hard-coded, and the operational settings the issue asks for are
 * in place. The HAProxy and Prometheus configs are checked by the real tools
 * (`haproxy -c`, `promtool check config`). No Docker engine is needed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { findBinary, spawnChild, tail } from "./helpers/children.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";
import { isRecord, loadYaml, readText, repoPath, requireBinary, run } from "./deploy/util.js";
import { allStrings, composeSchemaValidator, interpolateDeep, parseEnvFile, referencedVars } from "./deploy/compose.js";
import { effectiveLogFormat, logsPath, queryLeaks, rawRequest, sections } from "./deploy/haproxy.js";
import { knownSettings } from "./deploy/settings.js";

const ROOT_FILE = repoPath("compose.yaml");
const STACK_FILE = repoPath("deploy/compose/compose.yaml");
const STACK_DIR = path.dirname(STACK_FILE);
const ENV_EXAMPLE = repoPath(".env.example");
const HAPROXY_CFG = path.join(STACK_DIR, "haproxy/haproxy.cfg");
/** The services' METRICS_PORT in Compose (and Kubernetes): /metrics, /healthz, /readyz. */
const METRICS_PORT = "9464";

type Service = Record<string, unknown>;

function stack(): { doc: Record<string, unknown>; services: Record<string, Service> } {
  const doc = loadYaml(STACK_FILE);
  assert.ok(isRecord(doc));
  const services = doc["services"];
  assert.ok(isRecord(services));
  return { doc, services: services as Record<string, Service> };
}

function envExample(): Map<string, string> {
  return parseEnvFile(readText(ENV_EXAMPLE));
}

/** The stack as `docker compose config` would see it with .env = .env.example. */
function interpolatedStack(): { services: Record<string, Service>; doc: Record<string, unknown> } {
  const doc = interpolateDeep(loadYaml(STACK_FILE), envExample()) as Record<string, unknown>;
  return { doc, services: doc["services"] as Record<string, Service> };
}

function schemaErrors(doc: unknown): string {
  const validate = composeSchemaValidator();
  if (validate(doc)) return "";
  return (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ""} ${JSON.stringify(e.params)}`).join("\n");
}

test("compose: the root compose.yaml includes deploy/compose/compose.yaml", () => {
  const root = loadYaml(ROOT_FILE);
  assert.ok(isRecord(root));
  const include = root["include"];
  assert.ok(Array.isArray(include) && include.length > 0, "root compose.yaml has include:");
  const paths = include.map((i: unknown) => (typeof i === "string" ? i : isRecord(i) ? String(i["path"]) : ""));
  assert.ok(paths.includes("deploy/compose/compose.yaml"));
  for (const p of paths) assert.ok(existsSync(repoPath(p)), `${p} exists`);
});

test("compose: both files validate against the Compose specification schema (raw and interpolated)", () => {
  assert.equal(schemaErrors(loadYaml(ROOT_FILE)), "", "compose.yaml");
  assert.equal(schemaErrors(loadYaml(STACK_FILE)), "", "deploy/compose/compose.yaml");
  assert.equal(schemaErrors(interpolatedStack().doc), "", "deploy/compose/compose.yaml with .env.example");
  // The validator is live: a misspelt key is an error.
  const bad = loadYaml(STACK_FILE) as { services: Record<string, Record<string, unknown>> };
  bad.services["gateway"]!["ulimit"] = { nofile: 1 };
  assert.notEqual(schemaErrors(bad), "", "an unknown service key must fail validation");
});

test("compose: every interpolated variable is defined in .env.example; secrets are required, never defaulted", () => {
  const env = envExample();
  const raw = readText(STACK_FILE) + readText(ROOT_FILE);
  const refs = referencedVars(raw.split("\n").filter((l) => !l.trim().startsWith("#")).join("\n"));
  assert.ok(refs.length > 0);
  for (const { name } of refs) assert.ok(env.has(name), `${name} is used by compose but missing from .env.example`);
  for (const secret of ["JWT_SECRET", "PUBLISHER_API_KEY", "GRAFANA_ADMIN_PASSWORD"]) {
    const ops = refs.filter((r) => r.name === secret).map((r) => r.op);
    assert.ok(ops.length > 0, `${secret} is passed to a service`);
    assert.ok(ops.every((op) => op === ":?"), `${secret} must be \${${secret}:?...}: required, with no default baked into the file`);
    assert.match(env.get(secret) ?? "", /change-me/, `.env.example holds a placeholder for ${secret}, not a real key`);
  }
  // Interpolation with .env.example succeeds (no required variable missing).
  interpolatedStack();
  // .env itself is never committed.
  assert.match(readText(repoPath(".gitignore")), /^\.env$/m, ".gitignore lists .env");
});

test("compose: no hard-coded credentials in service environments", () => {
  const { services } = stack();
  for (const [name, svc] of Object.entries(services)) {
    const env = svc["environment"];
    if (!isRecord(env)) continue;
    for (const [k, v] of Object.entries(env)) {
      if (/SECRET|PASSWORD|API_KEY|TOKEN|PRIVATE/i.test(k) && !/SAMPLER/.test(k)) {
        assert.match(String(v), /^\$\{[A-Z0-9_]+:\?[^}]*\}$/, `${name}.${k} must come from .env, got ${String(v)}`);
      }
    }
  }
});

test("compose: build contexts, Dockerfiles, mounted files and dashboards exist", () => {
  const { services } = stack();
  for (const [name, svc] of Object.entries(services)) {
    const build = svc["build"];
    if (isRecord(build)) {
      const ctx = path.resolve(STACK_DIR, String(build["context"]));
      assert.ok(existsSync(ctx) && statSync(ctx).isDirectory(), `${name}: build context ${ctx}`);
      const dockerfile = path.resolve(ctx, String(build["dockerfile"] ?? "Dockerfile"));
      assert.ok(existsSync(dockerfile), `${name}: ${dockerfile}`);
      assert.ok(existsSync(path.join(ctx, ".dockerignore")), `${name}: the build context has a .dockerignore`);
    }
    const volumes = svc["volumes"];
    if (Array.isArray(volumes)) {
      for (const v of volumes) {
        const source = typeof v === "string" ? v.split(":")[0]! : isRecord(v) ? String(v["source"]) : "";
        if (source.startsWith(".") || source.startsWith("/")) {
          const p = path.resolve(STACK_DIR, source);
          assert.ok(existsSync(p), `${name}: mounted ${source} (${p}) exists`);
        }
      }
    }
  }
});

test("compose: every image is pinned (no latest); the gateway runs 2+ replicas with fd limits, sysctls and a drain-length grace period", () => {
  const { services } = interpolatedStack();
  for (const [name, svc] of Object.entries(services)) {
    const image = String(svc["image"] ?? "");
    assert.ok(image, `${name} names an image`);
    assert.match(image, /:[^/]+$/, `${name}: ${image} has a tag`);
    assert.doesNotMatch(image, /:latest$/, `${name}: ${image}`);
  }
  const gw = services["gateway"]!;
  const deploy = gw["deploy"] as Record<string, unknown>;
  assert.ok(Number(deploy["replicas"]) >= 2, "two or more gateway replicas");
  assert.ok(!("container_name" in gw), "replicas need generated container names");
  assert.ok(!("ports" in gw), "gateways are reached through the load balancer only");
  const nofile = (gw["ulimits"] as Record<string, Record<string, number>>)["nofile"]!;
  assert.ok(nofile["hard"]! >= 65536 && nofile["soft"]! >= 65536, "nofile raised");
  const minOpen = Number((gw["environment"] as Record<string, string>)["MIN_OPEN_FILES"]);
  assert.ok(nofile["hard"]! >= minOpen, "the hard limit satisfies MIN_OPEN_FILES");
  const sysctls = gw["sysctls"] as Record<string, unknown>;
  for (const k of ["net.core.somaxconn", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_keepalive_time"]) {
    assert.ok(k in sysctls, `gateway sysctl ${k}`);
  }
  const drain = Number((gw["environment"] as Record<string, string>)["DRAIN_SECONDS"]);
  const grace = Number(/^(\d+)s$/.exec(String(gw["stop_grace_period"]))?.[1]);
  assert.ok(grace > drain, `stop_grace_period (${grace}s) > DRAIN_SECONDS (${drain}s)`);
  assert.equal(gw["read_only"], true);
  assert.deepEqual(gw["cap_drop"], ["ALL"]);
});

test("compose: healthchecks and depends_on conditions let `up --wait` settle", () => {
  const { services } = stack();
  const names = new Set(Object.keys(services));
  for (const must of ["nats", "nats-exporter", "gateway", "lb", "publisher", "prometheus", "grafana", "jaeger"]) {
    assert.ok(names.has(must), `service ${must}`);
  }
  for (const [name, svc] of Object.entries(services)) {
    const deps = svc["depends_on"];
    if (!deps) continue;
    assert.ok(isRecord(deps), `${name}: depends_on uses the long form with conditions`);
    for (const [dep, spec] of Object.entries(deps)) {
      assert.ok(names.has(dep), `${name} depends on unknown service ${dep}`);
      const cond = isRecord(spec) ? spec["condition"] : undefined;
      assert.ok(cond === "service_healthy" || cond === "service_started", `${name} -> ${dep}: condition`);
      if (cond === "service_healthy") assert.ok(isRecord(services[dep]!["healthcheck"]), `${dep} needs a healthcheck for ${name}`);
    }
  }
  for (const name of ["nats", "gateway", "lb", "publisher", "prometheus", "grafana"]) {
    const hc = services[name]!["healthcheck"];
    assert.ok(isRecord(hc) && Array.isArray(hc["test"]), `${name} has a healthcheck`);
  }
  // Node services probe readiness with node itself (no curl in the images),
  // on METRICS_PORT: the only port that serves /readyz once it is set.
  for (const name of ["gateway", "publisher"]) {
    const t = (services[name]!["healthcheck"] as { test: string[] }).test.join(" ");
    assert.match(t, /^CMD node -e .*\/readyz/);
    const metricsPort = (services[name]!["environment"] as Record<string, string>)["METRICS_PORT"];
    assert.ok(metricsPort, `${name}: METRICS_PORT is set`);
    assert.ok(t.includes(`http://127.0.0.1:${metricsPort}/readyz`), `${name}: the healthcheck asks METRICS_PORT ${metricsPort}: ${t}`);
  }
  const gwDeps = services["gateway"]!["depends_on"] as Record<string, { condition: string }>;
  assert.equal(gwDeps["nats"]!.condition, "service_healthy");
  // "Healthy" NATS = JetStream usable (the Kubernetes readinessProbe's check):
  // js-enabled-only answers 200 before JetStream can serve the history stream.
  const natsTest = (services["nats"]!["healthcheck"] as { test: string[] }).test.join(" ");
  assert.match(natsTest, /\/healthz\?js-server-only=true/, "NATS healthcheck waits for usable JetStream");
  assert.doesNotMatch(natsTest, /js-enabled-only/);
  assert.equal((services["lb"]!["depends_on"] as Record<string, { condition: string }>)["gateway"]!.condition, "service_healthy");
});

test("compose: services point at each other by the names and ports they listen on", () => {
  const { services } = interpolatedStack();
  const gwEnv = services["gateway"]!["environment"] as Record<string, string>;
  const pubEnv = services["publisher"]!["environment"] as Record<string, string>;
  assert.equal(gwEnv["NATS_URL"], "nats://nats:4222");
  assert.equal(pubEnv["NATS_URL"], "nats://nats:4222");
  assert.equal(gwEnv["GATEWAY_PORT"], "8080");
  assert.equal(pubEnv["PUBLISHER_PORT"], "8081");
  // /metrics, /healthz and /readyz on a port of their own (issue 8): the
  // client-facing port behind HAProxy answers them 404.
  assert.equal(gwEnv["METRICS_PORT"], METRICS_PORT, "gateway METRICS_PORT");
  assert.equal(pubEnv["METRICS_PORT"], METRICS_PORT, "publisher METRICS_PORT");
  assert.deepEqual(services["gateway"]!["expose"], [gwEnv["GATEWAY_PORT"], METRICS_PORT]);
  for (const p of (services["publisher"]!["ports"] as string[]) ?? []) {
    assert.doesNotMatch(p, new RegExp(`:${METRICS_PORT}$`), "the publisher's metrics port is not published on the host");
  }
  for (const e of [gwEnv, pubEnv]) assert.match(e["OTEL_EXPORTER_OTLP_ENDPOINT"] ?? "", /^http:\/\/jaeger:4318$/);
  assert.equal((services["jaeger"]!["environment"] as Record<string, string>)["COLLECTOR_OTLP_ENABLED"], "true");
  // The load balancer trusts-forwarding address is the LB's fixed address.
  const lbNet = (services["lb"]!["networks"] as Record<string, Record<string, string>>)["default"]!;
  assert.equal(gwEnv["TRUSTED_PROXIES"], lbNet["ipv4_address"]);
  // NATS: JetStream and monitoring on.
  const natsCmd = (services["nats"]!["command"] as string[]).join(" ");
  assert.match(natsCmd, /(^| )-js( |$)/);
  assert.match(natsCmd, /-m 8222/);
  const exporterCmd = (services["nats-exporter"]!["command"] as string[]).join(" ");
  assert.match(exporterCmd, /http:\/\/nats:8222$/);
});

test("compose: the gateway and publisher get only settings their code reads", () => {
  const { services } = stack();
  for (const svc of ["gateway", "publisher"] as const) {
    const known = knownSettings(svc);
    for (const key of Object.keys(services[svc]!["environment"] as Record<string, unknown>)) {
      assert.ok(known(key), `${svc}: ${key} is not read by services/${svc} (misspelt?)`);
    }
  }
});

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

test("compose: Prometheus scrapes every gateway replica, the publisher and the NATS exporter (promtool check config)", () => {
  const file = path.join(STACK_DIR, "prometheus/prometheus.yml");
  const promtool = requireBinary("promtool", "prometheus");
  const r = run(promtool, ["check", "config", file]);
  assert.equal(r.status, 0, `promtool check config failed:\n${r.stdout}\n${r.stderr}`);
  const cfg = loadYaml(file) as { scrape_configs: Record<string, unknown>[] };
  const jobs = new Map(cfg.scrape_configs.map((j) => [String(j["job_name"]), j]));
  const gw = jobs.get("herald-gateway");
  assert.ok(gw, "job herald-gateway");
  // dns_sd on the service name yields one target per replica (not the LB).
  const sd = (gw["dns_sd_configs"] as Record<string, unknown>[] | undefined)?.[0];
  assert.ok(sd, "gateway targets come from DNS service discovery");
  assert.deepEqual(sd["names"], ["gateway"]);
  // Scraped on METRICS_PORT, the port the load balancer never forwards.
  assert.equal(String(sd["port"]), METRICS_PORT, "gateway scraped on METRICS_PORT");
  const pub = jobs.get("herald-publisher");
  assert.ok(pub, "job herald-publisher");
  const pubSd = (pub["dns_sd_configs"] as Record<string, unknown>[] | undefined)?.[0];
  assert.deepEqual(pubSd?.["names"], ["publisher"]);
  assert.equal(String(pubSd?.["port"]), METRICS_PORT, "publisher scraped on METRICS_PORT");
  const nats = jobs.get("nats") as { static_configs: { targets: string[] }[] } | undefined;
  assert.ok(nats, "job nats");
  assert.deepEqual(nats.static_configs[0]!.targets, ["nats-exporter:7777"]);
});

test("compose: Grafana gets the shared provisioning and dashboards from grafana/", () => {
  const { services } = stack();
  const vols = (services["grafana"]!["volumes"] as string[]).map((v) => v.split(":"));
  const byTarget = new Map(vols.map(([src, dst]) => [dst!, path.resolve(STACK_DIR, src!)]));
  assert.equal(byTarget.get("/etc/grafana/provisioning"), repoPath("grafana/provisioning"));
  const provider = loadYaml(repoPath("grafana/provisioning/dashboards/herald.yaml")) as { providers: { options: { path: string } }[] };
  const dashPath = provider.providers[0]!.options.path;
  assert.equal(byTarget.get(dashPath), repoPath("grafana/dashboards"), "the provider reads the mounted dashboards");
  const ds = loadYaml(repoPath("grafana/provisioning/datasources/herald.yaml")) as { datasources: Record<string, string>[] };
  const prom = ds.datasources.find((d) => d["type"] === "prometheus")!;
  assert.equal(prom["uid"], "herald-prometheus");
  assert.equal(prom["url"], "http://prometheus:9090");
  const jaeger = ds.datasources.find((d) => d["type"] === "jaeger")!;
  assert.match(jaeger["url"]!, /^http:\/\/jaeger:16686$/);
});

test("compose: `docker compose config` accepts the stack (when the compose plugin is installed)", (t) => {
  const docker = findBinary("docker");
  const probe = docker ? run(docker, ["compose", "version"], { timeoutMs: 20_000 }) : undefined;
  if (!docker || probe?.status !== 0) {
    t.skip("docker compose plugin not installed here: the JSON-schema validation above stands in for it");
    return;
  }
  const r = run(docker, ["compose", "--env-file", ENV_EXAMPLE, "-f", ROOT_FILE, "config", "--quiet"], { timeoutMs: 60_000 });
  assert.equal(r.status, 0, `docker compose config failed:\n${r.stderr}`);
});

test("compose: .env.example documents only variables, and never real-looking keys", () => {
  const env = envExample();
  for (const [k, v] of env) {
    assert.match(k, /^[A-Z][A-Z0-9_]*$/);
    if (/SECRET|PASSWORD|API_KEY/.test(k)) assert.match(v, /^change-me/, `${k} is a placeholder`);
  }
  // Every variable defined there is used by the stack (no stale settings).
  const used = new Set(referencedVars(allStrings(loadYaml(STACK_FILE)).join("\n")).map((r) => r.name));
  for (const k of env.keys()) assert.ok(used.has(k), `${k} in .env.example is not used by deploy/compose/compose.yaml`);
});
