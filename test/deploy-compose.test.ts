/**
 * The Compose stack (compose.yaml at the root including deploy/compose):
 * valid against the Compose specification's JSON schema, every build
 * context, Dockerfile, mounted file and variable it references exists, no
 * secrets are hard-coded, and the operational settings the issue asks for are
 * in place. The Prometheus config is checked by `promtool check config`;
 * HAProxy in deploy-compose-haproxy.test.ts. No Docker engine is needed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { findBinary } from "./helpers/children.js";
import { isRecord, loadYaml, readText, repoPath, requireBinary, run } from "./deploy/util.js";
import { allStrings, referencedVars } from "./deploy/compose.js";
import { ROOT_FILE, STACK_FILE, STACK_DIR, ENV_EXAMPLE, METRICS_PORT, stack, envExample, interpolatedStack, schemaErrors } from "./deploy/compose-stack.js";
import { knownSettings } from "./deploy/settings.js";

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
  for (const secret of ["JWT_SECRET", "PUBLISHER_API_KEY", "GRAFANA_ADMIN_PASSWORD", "NATS_GATEWAY_PASSWORD", "NATS_PUBLISHER_PASSWORD", "NATS_BACKEND_PASSWORD"]) {
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
  // NATS with a user per service (deploy-nats-permissions.test.ts runs them).
  const env = envExample();
  assert.equal(gwEnv["NATS_URL"], `nats://gateway:${env.get("NATS_GATEWAY_PASSWORD")}@nats:4222`);
  assert.equal(pubEnv["NATS_URL"], `nats://publisher:${env.get("NATS_PUBLISHER_PASSWORD")}@nats:4222`);
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
  // NATS: JetStream on the volume and monitoring on 8222, from the mounted config.
  const natsSvc = services["nats"]!;
  const [flag, confPath] = natsSvc["command"] as string[];
  assert.equal(flag, "--config");
  const mounts = new Map((natsSvc["volumes"] as string[]).map((v) => [v.split(":")[1]!, v.split(":")[0]!]));
  const confSource = mounts.get(confPath!);
  assert.ok(confSource, `the nats service mounts its --config ${confPath}`);
  const conf = readText(path.resolve(STACK_DIR, confSource));
  const store = /jetstream\s*\{[^}]*store_dir:\s*(\S+)/.exec(conf)?.[1];
  assert.ok(store && mounts.get(store) === "nats-data", `JetStream stores on the nats-data volume (${store})`);
  assert.match(conf, /^http: 0\.0\.0\.0:8222$/m, "monitoring on 8222 (healthcheck, exporter)");
  assert.match(conf, /^listen: 0\.0\.0\.0:4222$/m);
  const natsServer = findBinary("nats-server");
  if (natsServer) {
    const natsEnv = natsSvc["environment"] as Record<string, string>;
    const r = run(natsServer, ["-c", path.resolve(STACK_DIR, confSource), "-t"], { env: { ...process.env, ...natsEnv } });
    assert.equal(r.status, 0, `nats-server -t: ${r.stdout}${r.stderr}`);
  }
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
