/**
 * grafana/: provisioning (datasource with a fixed uid, dashboard provider)
 * and the dashboards' structure: every panel queries the provisioned
 * Prometheus through the ${datasource} variable, every query parses as
 * PromQL (promtool check rules), rates use $__rate_interval, job labels match
 * the scrape config, and the boards cover what operators need.
 * Whether each query returns data is proven by deploy-prometheus.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { loadYaml, repoPath, requireBinary, run } from "./deploy/util.js";
import { loadDashboards, panelsOf, substitute, type Dashboard } from "./deploy/dashboards.js";

const SUB = { rateInterval: "1m", interval: "15s", range: "1h" };

test("grafana: provisioning declares the Prometheus datasource with a fixed uid and a file dashboard provider", () => {
  const ds = loadYaml(repoPath("grafana/provisioning/datasources/herald.yaml")) as { apiVersion: number; datasources: Record<string, unknown>[] };
  assert.equal(ds.apiVersion, 1);
  const prom = ds.datasources.filter((d) => d["type"] === "prometheus");
  assert.equal(prom.length, 1);
  assert.equal(prom[0]!["uid"], "herald-prometheus");
  assert.equal(prom[0]!["isDefault"], true);
  const uids = ds.datasources.map((d) => d["uid"]);
  assert.ok(uids.every((u) => typeof u === "string" && u.length > 0), "every datasource has a fixed uid");
  const prov = loadYaml(repoPath("grafana/provisioning/dashboards/herald.yaml")) as { apiVersion: number; providers: Record<string, unknown>[] };
  assert.equal(prov.apiVersion, 1);
  assert.equal(prov.providers[0]!["type"], "file");
});

test("grafana: dashboards are well-formed, uniquely identified and laid out on the grid", () => {
  const boards = loadDashboards();
  assert.deepEqual(
    boards.map((b) => b.file),
    ["herald-gateway.json", "herald-nats.json", "herald-publisher.json"],
  );
  const uids = new Set<string>();
  for (const { file, dashboard: d } of boards) {
    assert.equal(`${d.uid}.json`, file, "file name = uid (stable links)");
    assert.ok(!uids.has(d.uid));
    uids.add(d.uid);
    assert.ok(d.uid.length <= 40, "Grafana uid length limit");
    assert.ok(d.title.startsWith("Herald / "));
    assert.ok(d.schemaVersion >= 36);
    const ids = new Set<number>();
    const cells = new Set<string>();
    for (const p of d.panels.concat(d.panels.flatMap((r) => r.panels ?? []))) {
      assert.ok(!ids.has(p.id), `${file}: panel id ${p.id} unique`);
      ids.add(p.id);
      const g = p.gridPos;
      assert.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0, `${file}: ${p.title} fits the 24-column grid`);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          const k = `${x},${y}`;
          assert.ok(!cells.has(k), `${file}: ${p.title} overlaps another panel at ${k}`);
          cells.add(k);
        }
      }
    }
  }
});

test("grafana: every panel queries Prometheus through ${datasource}, defaulting to the provisioned uid", () => {
  for (const { file, dashboard: d } of loadDashboards()) {
    const dsVar = d.templating.list.find((v) => v.type === "datasource");
    assert.ok(dsVar, `${file}: datasource variable`);
    assert.equal(dsVar.name, "datasource");
    assert.equal(dsVar.query, "prometheus");
    assert.equal(dsVar.current?.value, "herald-prometheus");
    for (const p of panelsOf(d)) {
      assert.deepEqual(p.datasource, { type: "prometheus", uid: "${datasource}" }, `${file}: ${p.title}`);
      assert.ok(p.targets && p.targets.length > 0, `${file}: ${p.title} has queries`);
      const refs = new Set(p.targets.map((t) => t.refId));
      assert.equal(refs.size, p.targets.length, `${file}: ${p.title} refIds unique`);
      for (const t of p.targets) {
        assert.ok(t.expr.trim(), `${file}: ${p.title} ${t.refId} has an expression`);
        if (t.datasource) assert.deepEqual(t.datasource, p.datasource);
        if (p.type === "heatmap") assert.equal(t.format, "heatmap", `${file}: ${p.title} heatmap query format`);
      }
    }
  }
});

test("grafana: queries use $__rate_interval, select scrape-config job names and carry only bounded labels", () => {
  const prom = loadYaml(repoPath("deploy/compose/prometheus/prometheus.yml")) as { scrape_configs: { job_name: string }[] };
  const jobs = new Set(prom.scrape_configs.map((j) => j.job_name));
  for (const { file, dashboard: d } of loadDashboards()) {
    for (const p of panelsOf(d)) {
      for (const t of p.targets ?? []) {
        const where = `${file}: ${p.title} ${t.refId}`;
        for (const m of t.expr.matchAll(/\b(rate|irate|increase)\([^[]*\[([^\]]+)\]/g)) {
          assert.equal(m[2], "$__rate_interval", `${where}: ${m[1]} window`);
        }
        const job = /job="([^"]+)"/.exec(t.expr)?.[1];
        assert.ok(job && jobs.has(job), `${where}: selects a job the scrape config defines (${job})`);
        assert.match(t.expr, /instance=~"\$instance"/, `${where}: honours the instance variable`);
        assert.doesNotMatch(t.expr, /\b(sub|channel|user|connection)\b\s*[=~,)]/, `${where}: no per-user/channel labels`);
      }
    }
  }
});

test("grafana: every query parses as PromQL (promtool check rules)", () => {
  const promtool = requireBinary("promtool", "prometheus");
  const rules: { record: string; expr: string }[] = [];
  for (const { dashboard: d } of loadDashboards()) {
    for (const p of panelsOf(d)) for (const t of p.targets ?? []) rules.push({ record: `herald:dashboard_check:${rules.length}`, expr: substitute(t.expr, d, SUB) });
  }
  const dir = mkdtempSync(path.join(tmpdir(), "herald-promql-"));
  try {
    const file = path.join(dir, "rules.yml");
    writeFileSync(file, stringify({ groups: [{ name: "dashboards", rules }] }));
    const r = run(promtool, ["check", "rules", file]);
    assert.equal(r.status, 0, `promtool check rules:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`SUCCESS: ${rules.length} rules found`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("grafana: the boards cover what the issue asks for", () => {
  const byUid = new Map<string, Dashboard>(loadDashboards().map((b) => [b.dashboard.uid, b.dashboard]));
  const text = (uid: string) => {
    const d = byUid.get(uid);
    assert.ok(d, uid);
    return panelsOf(d).map((p) => `${p.title}\n${(p.targets ?? []).map((t) => t.expr).join("\n")}`).join("\n\n");
  };
  const gw = text("herald-gateway");
  const required: [string, RegExp][] = [
    ["connections per pod", /sum by \(instance\) \(herald_connections_open/],
    ["upgrade rate", /sum by \(result\) \(rate\(herald_upgrades_total/],
    ["rejections by reason", /sum by \(reason\) \(rate\(herald_upgrades_total\{[^}]*reason!="ok"/],
    ["deliveries/s", /rate\(herald_deliveries_total/],
    ["latency p50", /histogram_quantile\(0\.5, sum by \(le\) \(rate\(herald_delivery_latency_seconds_bucket/],
    ["latency p99", /histogram_quantile\(0\.99, sum by \(le\) \(rate\(herald_delivery_latency_seconds_bucket/],
    ["slow-consumer closes", /herald_slow_consumer_closes_total/],
    ["errors by code", /sum by \(code\) \(rate\(herald_errors_total/],
    ["event-loop lag", /nodejs_eventloop_lag_p99_seconds/],
    ["CPU per pod", /sum by \(instance\) \(rate\(process_cpu_seconds_total/],
    ["RSS per pod", /process_resident_memory_bytes/],
    ["broker connection state", /herald_broker_connected/],
    ["server API requests", /sum by \(kind, result\) \(rate\(herald_control_requests_total/],
    ["server API closes", /herald_disconnects_total\{[^}]*code=~"4010\|4011"/],
    ["revocations in force", /herald_revocations\{/],
    ["presence members per pod", /max by \(instance\) \(herald_presence_members\{/],
    ["join/leave frames", /herald_join_leave_frames_total/],
    ["presence traffic", /herald_presence_messages_total/],
  ];
  for (const [what, re] of required) assert.match(gw, re, `gateway board: ${what}`);
  const heatmaps = panelsOf(byUid.get("herald-gateway")!).filter((p) => p.type === "heatmap");
  assert.ok(heatmaps.some((p) => p.targets?.some((t) => t.expr.includes("herald_delivery_latency_seconds_bucket"))), "latency heatmap");

  const pub = text("herald-publisher");
  assert.match(pub, /sum by \(route\) \(rate\(herald_publisher_requests_total/, "publisher requests");
  assert.match(pub, /sum by \(status\) \(rate\(herald_publisher_requests_total/, "publisher status codes");
  assert.match(pub, /histogram_quantile\(0\.99, sum by \(le, route\) \(rate\(herald_publisher_request_duration_seconds_bucket/, "publisher latency");
  assert.match(pub, /herald_publisher_control_requests_total/, "publisher server API requests");

  const nats = text("herald-nats");
  for (const m of ["gnatsd_varz_connections", "gnatsd_varz_in_msgs", "gnatsd_varz_out_msgs", "gnatsd_varz_slow_consumers", "gnatsd_varz_routes", "jetstream_server_total_message_bytes"]) {
    assert.ok(nats.includes(m), `NATS board: ${m}`);
  }
});
