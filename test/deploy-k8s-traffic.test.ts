/**
 * deploy/k8s traffic and monitoring: network policies (ingress controller and
 * Prometheus only), TRUSTED_PROXIES, the ingress example (WebSocket and SSE:
 * timeouts, no buffering, no affinity), prometheus-operator monitors and the
 * Grafana dashboard ConfigMaps.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { isIP } from "node:net";
import { readText, repoPath } from "./deploy/util.js";
import { byKind, find, podTemplate, renderWithComponent, selects } from "./deploy/k8s.js";
import { K8S, allTargets, gatewayOf, envValue } from "./deploy/k8s-targets.js";
import { GATEWAY_DEFAULTS } from "../services/gateway/src/config.js";
import { commandBodyLimit } from "../services/gateway/src/sse-commands.js";

/** An nginx size ("16k", "1m", "1024") in bytes. */
function nginxSize(v: string): number {
  const m = /^(\d+)([kKmMgG]?)$/.exec(v.trim());
  assert.ok(m, `an nginx size: ${v}`);
  return Number(m[1]) * ({ "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase()] ?? 1);
}

test("k8s: only the ingress controller reaches the gateway port, only Prometheus its METRICS_PORT", () => {
  for (const t of allTargets()) {
    const np = find(t.objects, "NetworkPolicy", "herald-gateway");
    assert.ok(np, `${t.label}: NetworkPolicy herald-gateway`);
    const { c } = gatewayOf(t.objects);
    const gatewayPort = Number(envValue(t.objects, c, "GATEWAY_PORT"));
    const metricsPort = Number(envValue(t.objects, c, "METRICS_PORT"));
    type Peer = { namespaceSelector?: { matchLabels?: Record<string, string> }; podSelector?: unknown; ipBlock?: unknown };
    const rules = (np["spec"] as { ingress: { from?: Peer[]; ports?: { port: number }[] }[] }).ingress;
    const portsByNamespace = new Map<string, number[]>();
    for (const r of rules) {
      // A rule without `from` admits every pod (and address): any of them
      // could then forge X-Forwarded-For.
      assert.ok(r.from && r.from.length > 0, `${t.label}: a gateway ingress rule open to every source`);
      for (const peer of r.from) {
        assert.equal(peer.ipBlock, undefined, `${t.label}: no ipBlock peers`);
        const ns = peer.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"];
        assert.ok(ns, `${t.label}: peers are namespaces selected by name`);
        assert.ok(r.ports && r.ports.length > 0, `${t.label}: a rule for ${ns} open on every port`);
        portsByNamespace.set(ns, [...(portsByNamespace.get(ns) ?? []), ...r.ports.map((p) => p.port)]);
      }
    }
    assert.deepEqual(
      Object.fromEntries([...portsByNamespace].sort(([a], [b]) => a.localeCompare(b))),
      { "ingress-nginx": [gatewayPort], monitoring: [metricsPort] },
      `${t.label}: clients (through the ingress) on the gateway port, Prometheus on METRICS_PORT`,
    );
  }
  const doc = readText(repoPath(K8S, "base/networkpolicy.yaml"));
  assert.match(doc, /CHANGE the two namespace names/, "the policy says what to adapt");
});

test("k8s: the publisher's METRICS_PORT: probes on it, only Prometheus reaches it", () => {
  for (const t of allTargets()) {
    const c = podTemplate(find(t.objects, "Deployment", "herald-publisher")!)!.spec.containers[0]!;
    const apiPort = Number(envValue(t.objects, c, "PUBLISHER_PORT"));
    const metricsPort = Number(envValue(t.objects, c, "METRICS_PORT"));
    assert.ok(metricsPort > 0 && metricsPort !== apiPort, `${t.label}: publisher METRICS_PORT set, apart from PUBLISHER_PORT`);
    for (const [kind, probe] of [["startup", c.startupProbe], ["readiness", c.readinessProbe], ["liveness", c.livenessProbe]] as const) {
      const port = c.ports?.find((p) => p.name === probe?.httpGet?.port);
      assert.equal(port?.containerPort, metricsPort, `${t.label}: publisher ${kind}Probe hits METRICS_PORT`);
    }
    const np = find(t.objects, "NetworkPolicy", "herald-publisher");
    assert.ok(np, `${t.label}: NetworkPolicy herald-publisher`);
    type Rule = { from?: { namespaceSelector?: { matchLabels?: Record<string, string> } }[]; ports?: { port: number }[] };
    for (const r of (np["spec"] as { ingress: Rule[] }).ingress) {
      const ports = (r.ports ?? []).map((p) => p.port);
      assert.ok(ports.length > 0, `${t.label}: a publisher rule open on every port`);
      if (!ports.includes(metricsPort)) continue;
      const namespaces = (r.from ?? []).map((p) => p.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"]);
      assert.deepEqual(namespaces, ["monitoring"], `${t.label}: publisher METRICS_PORT only from the monitoring namespace`);
    }
  }
});

test("k8s: TRUSTED_PROXIES is narrow: the ingress controller's addresses, never the whole pod network", () => {
  for (const t of allTargets()) {
    const { c } = gatewayOf(t.objects);
    const value = envValue(t.objects, c, "TRUSTED_PROXIES") ?? "";
    const entries = value.split(",").map((e) => e.trim()).filter(Boolean);
    if (t.label.endsWith("/production")) assert.ok(entries.length > 0, `${t.label}: TRUSTED_PROXIES set (client IPs come through the ingress)`);
    for (const e of entries) {
      const [addr = "", bits] = e.split("/");
      const family = isIP(addr);
      assert.ok(family !== 0, `${t.label}: ${e} is an address or CIDR (no placeholder: the gateway refuses to start on one)`);
      const prefix = bits === undefined ? (family === 4 ? 32 : 128) : Number(bits);
      assert.ok(Number.isInteger(prefix), `${t.label}: ${e}`);
      assert.ok(prefix >= (family === 4 ? 16 : 48), `${t.label}: ${e} is as wide as a cluster network; every pod in it could forge X-Forwarded-For`);
    }
  }
});

test("k8s: ingress example keeps WebSockets and SSE streams open, SSE unbuffered, and exposes only /ws, /sse, /sse/commands", () => {
  const objs = renderWithComponent(`${K8S}/base`, `${K8S}/components/ingress-nginx`);
  const ing = byKind(objs, "Ingress")[0];
  assert.ok(ing);
  const ann = ing.metadata.annotations ?? {};
  // The controller-wide log format decides whether ?access_token=<jwt> is
  // logged; the component must tell the operator what to set.
  const doc = readText(repoPath(K8S, "components/ingress-nginx/ingress.yaml"));
  assert.match(doc, /log-format-upstream/);
  assert.match(doc, /\$uri/);
  assert.match(doc, /Sec-WebSocket-Protocol/);
  assert.match(readText(repoPath("deploy/README.md")), /log-format-upstream[\s\S]*\$uri/, "deploy/README.md documents the access-log setting");
  assert.ok(Number(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600);
  assert.ok(Number(ann["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600);
  // SSE (issue 13): the read timeout is the longest silence between two
  // reads from the gateway, which sends a keepalive every SSE_KEEPALIVE_MS.
  const { c: gw } = gatewayOf(objs);
  const keepaliveMs = Number(envValue(objs, gw, "SSE_KEEPALIVE_MS") ?? GATEWAY_DEFAULTS.sseKeepaliveMs);
  for (const k of ["proxy-read-timeout", "proxy-send-timeout"]) {
    assert.ok(Number(ann[`nginx.ingress.kubernetes.io/${k}`]) * 1000 >= 2 * keepaliveMs, `${k} at least twice SSE_KEEPALIVE_MS (${keepaliveMs} ms)`);
  }
  assert.equal(ann["nginx.ingress.kubernetes.io/proxy-buffering"], "off", "SSE events are not buffered by nginx");
  assert.equal(ann["nginx.ingress.kubernetes.io/proxy-http-version"] ?? "1.1", "1.1");
  // Any gateway serves a stream (Last-Event-ID resumes anywhere) and takes its commands: no affinity.
  for (const k of Object.keys(ann)) {
    assert.doesNotMatch(k, /^nginx\.ingress\.kubernetes\.io\/(affinity|affinity-mode|session-cookie-.*|upstream-hash-by.*)$/, `${k}: stickiness is not needed`);
    assert.doesNotMatch(ann[k]!, /\bgzip\s+on\b|\bproxy_buffering\s+on\b/, `${k}: would buffer or compress the stream`);
  }
  // Gzip is controller-wide: the component tells the operator to keep text/event-stream out.
  assert.match(doc, /gzip-types[\s\S]*text\/event-stream/);
  // POST /sse/commands bodies: nginx must admit whatever the gateway does,
  // so that an oversized one gets the gateway's JSON 413, not nginx's page.
  const limit = commandBodyLimit(Number(envValue(objs, gw, "MAX_PAYLOAD_BYTES") ?? GATEWAY_DEFAULTS.maxPayloadBytes));
  assert.ok(nginxSize(ann["nginx.ingress.kubernetes.io/proxy-body-size"] ?? "1m") >= limit, `proxy-body-size admits the gateway's ${limit}-byte command bodies`);
  const rules = (ing["spec"] as { rules: { http: { paths: { path: string; pathType: string; backend: { service: { name: string; port: { name: string } } } }[] } }[] }).rules;
  const paths = rules.flatMap((r) => r.http.paths);
  assert.deepEqual(paths.map((p) => p.path), ["/ws", "/sse", "/sse/commands"]);
  for (const p of paths) {
    assert.equal(p.pathType, "Exact", `${p.path}: Exact, so nothing under it is exposed`);
    const svc = find(objs, "Service", p.backend.service.name);
    assert.ok(svc, `backend ${p.backend.service.name}`);
    const port = (svc["spec"] as { ports: { name: string; targetPort?: string | number }[] }).ports.find((x) => x.name === p.backend.service.port.name);
    assert.ok(port, `backend port ${p.backend.service.port.name}`);
    // Never the port that serves /metrics.
    assert.notEqual(port.targetPort, "metrics", "the Ingress routes to the gateway's client port, not METRICS_PORT");
    const { c } = gatewayOf(objs);
    const container = c.ports?.find((cp) => cp.name === port.targetPort);
    assert.equal(container?.containerPort, Number(envValue(objs, c, "GATEWAY_PORT")), "the Ingress backend is GATEWAY_PORT");
  }
});

test("k8s: prometheus-operator monitors select the Services/pods and ports that serve /metrics", () => {
  const objs = renderWithComponent(`${K8S}/base`, `${K8S}/components/prometheus-operator`);
  const jobs = new Set<string>();
  for (const sm of byKind(objs, "ServiceMonitor")) {
    const spec = sm["spec"] as { jobLabel: string; selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string }[] };
    const svcs = byKind(objs, "Service").filter((s) => selects(spec.selector.matchLabels, s.metadata.labels ?? {}));
    assert.equal(svcs.length, 1, `${sm.metadata.name} selects one Service`);
    const svc = svcs[0]!;
    const workload = objs.find((o) => podTemplate(o) && selects((svc["spec"] as { selector: Record<string, string> }).selector, podTemplate(o)!.labels));
    assert.ok(workload, `${sm.metadata.name}: the Service selects a workload`);
    const container = podTemplate(workload)!.spec.containers[0]!;
    for (const ep of spec.endpoints) {
      const port = (svc["spec"] as { ports: { name: string; targetPort?: string | number }[] }).ports.find((p) => p.name === ep.port);
      assert.ok(port, `${sm.metadata.name}: port ${ep.port}`);
      assert.equal(ep.path, "/metrics");
      // Scraped on METRICS_PORT: the client port answers /metrics 404.
      const target = container.ports?.find((cp) => cp.name === port.targetPort || cp.containerPort === port.targetPort);
      assert.equal(target?.containerPort, Number(envValue(objs, container, "METRICS_PORT")), `${sm.metadata.name}: scrapes METRICS_PORT`);
    }
    jobs.add(svc.metadata.labels![spec.jobLabel]!);
  }
  for (const pm of byKind(objs, "PodMonitor")) {
    const spec = pm["spec"] as { jobLabel: string; selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string }[] };
    const w = objs.filter((o) => podTemplate(o) && selects(spec.selector.matchLabels, podTemplate(o)!.labels));
    assert.equal(w.length, 1);
    for (const ep of spec.podMetricsEndpoints) {
      assert.ok(podTemplate(w[0]!)!.spec.containers.some((c) => c.ports?.some((p) => p.name === ep.port)), `${pm.metadata.name}: port ${ep.port}`);
    }
    jobs.add(podTemplate(w[0]!)!.labels[spec.jobLabel]!);
  }
  // Same job labels as the Compose Prometheus config, which the dashboards use.
  assert.deepEqual([...jobs].sort(), ["herald-gateway", "herald-publisher", "nats"]);
});

test("k8s: grafana-dashboards ConfigMaps carry exactly the JSON files in grafana/dashboards", () => {
  const objs = renderWithComponent(`${K8S}/base`, `${K8S}/components/grafana-dashboards`);
  const cms = byKind(objs, "ConfigMap").filter((c) => c.metadata.labels?.["grafana_dashboard"] === "1");
  const files = readdirSync(repoPath("grafana/dashboards")).filter((f) => f.endsWith(".json"));
  assert.ok(files.length >= 3);
  const shipped = new Map<string, string>();
  for (const cm of cms) for (const [k, v] of Object.entries(cm["data"] as Record<string, string>)) shipped.set(k, v);
  assert.deepEqual([...shipped.keys()].sort(), files.sort(), "one ConfigMap entry per dashboard file");
  for (const f of files) {
    assert.equal(shipped.get(f), readText(repoPath("grafana/dashboards", f)), `${f} is shipped verbatim`);
  }
  for (const cm of cms) {
    // kubectl apply (client-side) keeps a copy in an annotation limited to 256 KiB.
    assert.ok(JSON.stringify(cm).length < 200 * 1024, `${cm.metadata.name} fits kubectl apply's annotation limit`);
  }
});
