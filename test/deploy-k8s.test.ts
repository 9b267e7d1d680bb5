/**
 * deploy/k8s: `kubectl kustomize` renders the base, every overlay and the
 * base with every component; each rendered object validates against the
 * Kubernetes schemas (kubernetes-models); policy checks over the output
 * (probes, requests/limits, non-root, read-only root fs, gateway sysctls and
 * grace period, references that resolve).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { findBinary, spawnChild, tail } from "./helpers/children.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";
import { readText, repoPath, run } from "./deploy/util.js";
import {
  byKind,
  find,
  podTemplate,
  render,
  renderWithComponent,
  schemaErrors,
  selects,
  type Container,
  type K8sObject,
  type PodSpec,
} from "./deploy/k8s.js";
import { knownSettings } from "./deploy/settings.js";

const K8S = "deploy/k8s";
const dirs = (rel: string) =>
  readdirSync(repoPath(rel), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(repoPath(rel, d.name, "kustomization.yaml")))
    .map((d) => `${rel}/${d.name}`);
const OVERLAYS = dirs(`${K8S}/overlays`);
const COMPONENTS = dirs(`${K8S}/components`);

/** Kubernetes' safe sysctls (allowed by every kubelet; keepalive/fin since 1.29). */
const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced",
  "net.ipv4.ip_local_port_range",
  "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies",
  "net.ipv4.ping_group_range",
  "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time",
  "net.ipv4.tcp_fin_timeout",
  "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]);

interface Target {
  label: string;
  objects: K8sObject[];
  component?: string;
}

const cache = new Map<string, Target>();
function target(label: string, make: () => K8sObject[], component?: string): Target {
  let t = cache.get(label);
  if (!t) {
    t = { label, objects: make(), ...(component ? { component } : {}) };
    cache.set(label, t);
  }
  return t;
}
function allTargets(): Target[] {
  return [
    target(K8S, () => render(K8S)),
    target(`${K8S}/base`, () => render(`${K8S}/base`)),
    ...OVERLAYS.map((o) => target(o, () => render(o))),
    ...COMPONENTS.map((c) => target(`base + ${c}`, () => renderWithComponent(`${K8S}/base`, c), c)),
  ];
}

function gatewayOf(objs: K8sObject[]): { dep: K8sObject; pod: PodSpec; labels: Record<string, string>; c: Container } {
  const dep = find(objs, "Deployment", "herald-gateway");
  assert.ok(dep, "Deployment herald-gateway");
  const tpl = podTemplate(dep)!;
  const c = tpl.spec.containers.find((x) => x.name === "gateway");
  assert.ok(c, "container gateway");
  return { dep, pod: tpl.spec, labels: tpl.labels, c };
}

/** Value of an env var set through envFrom ConfigMaps or env literals. */
function envValue(objs: K8sObject[], c: Container, name: string): string | undefined {
  const literal = c.env?.find((e) => e.name === name && e.value !== undefined)?.value;
  if (literal !== undefined) return literal;
  for (const ef of c.envFrom ?? []) {
    const cm = ef.configMapRef && find(objs, "ConfigMap", ef.configMapRef.name);
    const data = cm?.["data"] as Record<string, string> | undefined;
    if (data && name in data) return data[name];
  }
  return undefined;
}

test("k8s: layout has base, overlays and components", () => {
  assert.ok(existsSync(repoPath(K8S, "kustomization.yaml")), "kubectl apply -k deploy/k8s works");
  assert.ok(existsSync(repoPath(K8S, "base/kustomization.yaml")));
  assert.ok(OVERLAYS.length >= 2, `overlays: ${OVERLAYS.join(", ")}`);
  for (const c of ["unsafe-sysctls", "prometheus-operator", "grafana-dashboards", "ingress-nginx"]) {
    assert.ok(COMPONENTS.includes(`${K8S}/components/${c}`), `component ${c}`);
  }
});

test("k8s: kubectl kustomize renders deploy/k8s, the base, every overlay and base + every component", () => {
  for (const t of allTargets()) {
    assert.ok(t.objects.length > 0, `${t.label} renders objects`);
  }
});

test("k8s: every rendered object validates against the Kubernetes schemas (kubernetes-models)", async () => {
  const failures: string[] = [];
  let checked = 0;
  for (const t of allTargets()) {
    for (const o of t.objects) {
      const err = await schemaErrors(o);
      checked++;
      if (err) failures.push(`${t.label}: ${o.kind}/${o.metadata.name}: ${err}`);
    }
  }
  assert.deepEqual(failures, []);
  assert.ok(checked > 50);
  // The validator is live: a wrong type is caught.
  const bad = structuredClone(find(render(`${K8S}/base`), "Deployment", "herald-gateway")!);
  (podTemplate(bad)!.spec.containers[0]!.ports![0] as { containerPort: unknown }).containerPort = "eight";
  assert.notEqual(await schemaErrors(bad), "");
});

test("k8s: every container has probes, requests/limits, runs as non-root with a read-only root filesystem and no capabilities", () => {
  const failures: string[] = [];
  for (const t of allTargets()) {
    for (const o of t.objects) {
      const tpl = podTemplate(o);
      if (!tpl) continue;
      const pod = tpl.spec;
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        const where = `${t.label}: ${o.kind}/${o.metadata.name}/${c.name}`;
        const fail = (msg: string) => failures.push(`${where}: ${msg}`);
        if (!c.readinessProbe) fail("no readinessProbe");
        if (!c.livenessProbe) fail("no livenessProbe");
        for (const r of ["cpu", "memory"]) {
          if (!c.resources?.requests?.[r]) fail(`no requests.${r}`);
          if (!c.resources?.limits?.[r]) fail(`no limits.${r}`);
        }
        const sc = c.securityContext ?? {};
        const nonRoot = sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
        const uid = sc.runAsUser ?? pod.securityContext?.runAsUser;
        if (nonRoot !== true) fail("runAsNonRoot is not true");
        if (uid === 0) fail("runAsUser 0");
        if (sc.readOnlyRootFilesystem !== true) fail("readOnlyRootFilesystem is not true");
        if (sc.allowPrivilegeEscalation !== false) fail("allowPrivilegeEscalation is not false");
        if (sc.privileged) fail("privileged");
        if (!sc.capabilities?.drop?.includes("ALL")) fail("capabilities.drop lacks ALL");
        if (sc.capabilities?.add?.length) fail("adds capabilities");
        if (!c.image || !/:[^/]+$/.test(c.image) || c.image.endsWith(":latest")) fail(`image ${c.image} not pinned`);
      }
      if (pod.securityContext?.seccompProfile?.type !== "RuntimeDefault") failures.push(`${t.label}: ${o.metadata.name}: seccompProfile`);
      if (pod.automountServiceAccountToken !== false) failures.push(`${t.label}: ${o.metadata.name}: mounts a service account token it does not use`);
    }
  }
  assert.deepEqual(failures, []);
});

test("k8s: the gateway has safe sysctls in the pod securityContext; unsafe ones only through the component", () => {
  for (const t of allTargets()) {
    const { pod } = gatewayOf(t.objects);
    const sysctls = new Map((pod.securityContext?.sysctls ?? []).map((s) => [s.name, s.value]));
    for (const name of ["net.ipv4.ip_local_port_range", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"]) {
      assert.ok(sysctls.has(name), `${t.label}: gateway sysctl ${name}`);
    }
    assert.match(sysctls.get("net.ipv4.ip_local_port_range") ?? "", /^\d+ \d+$/);
    const unsafe = [...sysctls.keys()].filter((n) => !SAFE_SYSCTLS.has(n));
    if (t.component?.endsWith("/unsafe-sysctls")) {
      assert.ok(unsafe.includes("net.core.somaxconn"), `${t.label}: adds net.core.somaxconn`);
      assert.equal(sysctls.size, unsafe.length + 4, "keeps the safe sysctls");
    } else {
      assert.deepEqual(unsafe, [], `${t.label}: unsafe sysctls outside components/unsafe-sysctls`);
    }
  }
  const doc = readText(repoPath(K8S, "components/unsafe-sysctls/kustomization.yaml"));
  assert.match(doc, /--allowed-unsafe-sysctls/, "the component documents the kubelet flag it needs");
  assert.match(doc, /allowedUnsafeSysctls/, "and the KubeletConfiguration field");
});

test("k8s: gateway probes, preStop and a grace period longer than the drain; fd minimum configured", () => {
  for (const t of allTargets()) {
    const { pod, c } = gatewayOf(t.objects);
    assert.equal(c.readinessProbe?.httpGet?.path, "/readyz", t.label);
    assert.equal(c.livenessProbe?.httpGet?.path, "/healthz", t.label);
    // With METRICS_PORT set the client port answers /healthz and /readyz 404:
    // every probe must ask the metrics port.
    const metricsPort = Number(envValue(t.objects, c, "METRICS_PORT"));
    assert.ok(metricsPort > 0 && metricsPort !== Number(envValue(t.objects, c, "GATEWAY_PORT")), `${t.label}: METRICS_PORT set, apart from GATEWAY_PORT`);
    for (const [kind, probe] of [["startup", c.startupProbe], ["readiness", c.readinessProbe], ["liveness", c.livenessProbe]] as const) {
      const port = c.ports?.find((p) => p.name === probe?.httpGet?.port);
      assert.equal(port?.containerPort, metricsPort, `${t.label}: ${kind}Probe hits METRICS_PORT`);
    }
    const preStop = c.lifecycle?.preStop?.sleep?.seconds;
    assert.ok(preStop && preStop > 0, `${t.label}: preStop sleep`);
    const drain = Number(envValue(t.objects, c, "DRAIN_SECONDS"));
    assert.ok(Number.isFinite(drain) && drain > 0, `${t.label}: DRAIN_SECONDS set`);
    const grace = pod.terminationGracePeriodSeconds ?? 30;
    // NATS drain and telemetry flush need a few seconds on top of preStop + drain.
    assert.ok(grace >= preStop + drain + 10, `${t.label}: terminationGracePeriodSeconds ${grace} > preStop ${preStop} + DRAIN_SECONDS ${drain} + 10`);
    assert.ok(Number(envValue(t.objects, c, "MIN_OPEN_FILES")) >= 65536, `${t.label}: MIN_OPEN_FILES`);
    assert.ok((pod.topologySpreadConstraints ?? []).length >= 2, `${t.label}: topology spread over zones and nodes`);
    const jwt = c.env?.find((e) => e.name === "JWT_SECRET")?.valueFrom?.secretKeyRef;
    assert.ok(jwt, `${t.label}: JWT_SECRET from a Secret`);
    for (const ef of c.envFrom ?? []) {
      const data = (ef.configMapRef && find(t.objects, "ConfigMap", ef.configMapRef.name)?.["data"]) as Record<string, string> | undefined;
      for (const key of Object.keys(data ?? {})) {
        assert.doesNotMatch(key, /SECRET|API_KEY|PASSWORD|PRIVATE/, `${t.label}: ${key} belongs in the Secret, not a ConfigMap`);
      }
    }
  }
});

test("k8s: HPA and PDBs cover the workloads; Services select pods; references resolve", () => {
  for (const t of allTargets()) {
    const objs = t.objects;
    const workloads = objs.filter((o) => podTemplate(o));
    const hpa = find(objs, "HorizontalPodAutoscaler", "herald-gateway");
    assert.ok(hpa, `${t.label}: HPA`);
    const ref = (hpa["spec"] as { scaleTargetRef: { kind: string; name: string } }).scaleTargetRef;
    assert.ok(find(objs, ref.kind, ref.name), `${t.label}: HPA target exists`);
    const { dep } = gatewayOf(objs);
    assert.equal((dep["spec"] as Record<string, unknown>)["replicas"], undefined, "the HPA owns the gateway replica count");

    for (const w of workloads) {
      const labels = podTemplate(w)!.labels;
      const pdb = byKind(objs, "PodDisruptionBudget").find((p) =>
        selects((p["spec"] as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels, labels),
      );
      assert.ok(pdb, `${t.label}: a PDB covers ${w.metadata.name}`);
    }
    for (const svc of byKind(objs, "Service")) {
      const spec = svc["spec"] as { selector: Record<string, string>; ports: { targetPort?: string | number }[] };
      const pods = workloads.filter((w) => selects(spec.selector, podTemplate(w)!.labels));
      assert.ok(pods.length > 0, `${t.label}: Service ${svc.metadata.name} selects a workload`);
      for (const p of spec.ports) {
        if (typeof p.targetPort === "string") {
          const named = pods.some((w) => podTemplate(w)!.spec.containers.some((c) => c.ports?.some((cp) => cp.name === p.targetPort)));
          assert.ok(named, `${t.label}: ${svc.metadata.name} targetPort ${p.targetPort} exists`);
        }
      }
    }
    // ConfigMaps and Secrets the pods reference exist in the render, except
    // herald-secrets where an overlay expects it to be created outside Git.
    const external = find(objs, "Secret", "herald-secrets") === undefined && !objs.some((o) => o.kind === "Secret" && o.metadata.name.startsWith("herald-secrets"));
    for (const w of workloads) {
      const spec = podTemplate(w)!.spec;
      for (const c of spec.containers) {
        for (const ef of c.envFrom ?? []) {
          if (ef.configMapRef) assert.ok(find(objs, "ConfigMap", ef.configMapRef.name), `${t.label}: ConfigMap ${ef.configMapRef.name}`);
        }
        for (const e of c.env ?? []) {
          const s = e.valueFrom?.secretKeyRef;
          if (!s) continue;
          const secret = find(objs, "Secret", s.name);
          if (secret) {
            const data = { ...(secret["data"] as Record<string, string> | undefined), ...(secret["stringData"] as Record<string, string> | undefined) };
            assert.ok(s.key in data, `${t.label}: Secret ${s.name} has key ${s.key}`);
          } else {
            assert.ok(external && s.name === "herald-secrets", `${t.label}: Secret ${s.name} missing`);
          }
        }
      }
      for (const v of spec.volumes ?? []) {
        if (v.configMap) assert.ok(find(objs, "ConfigMap", v.configMap.name), `${t.label}: volume ConfigMap ${v.configMap.name}`);
      }
    }
    assert.ok(find(objs, "NetworkPolicy", "default-deny-ingress"), `${t.label}: default-deny NetworkPolicy`);
    assert.ok(find(objs, "Deployment", "herald-publisher") && find(objs, "Service", "herald-publisher"), `${t.label}: publisher`);
  }
});

test("k8s: gateway and publisher get only settings their code reads", () => {
  for (const t of allTargets()) {
    for (const [deployment, svc] of [["herald-gateway", "gateway"], ["herald-publisher", "publisher"]] as const) {
      const known = knownSettings(svc);
      const c = podTemplate(find(t.objects, "Deployment", deployment)!)!.spec.containers[0]!;
      const names = (c.env ?? []).map((e) => e.name).filter((n) => n !== "POD_NAME");
      for (const ef of c.envFrom ?? []) {
        const data = ef.configMapRef && (find(t.objects, "ConfigMap", ef.configMapRef.name)?.["data"] as Record<string, string> | undefined);
        names.push(...Object.keys(data ?? {}));
      }
      for (const n of names) assert.ok(known(n), `${t.label}: ${deployment} sets ${n}, which services/${svc} does not read`);
    }
  }
});

/** Memory quantity in MiB ("128Mi", "1Gi", "512M", bytes). */
function mebibytes(q: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|k|M|G|T)?$/.exec(q);
  assert.ok(m, `memory quantity ${q}`);
  const factor: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, K: 1e3, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
  return (Number(m[1]) * (m[2] ? factor[m[2]]! : 1)) / 2 ** 20;
}

interface SpreadConstraint {
  topologyKey: string;
  whenUnsatisfiable: string;
  nodeTaintsPolicy?: string;
  nodeAffinityPolicy?: string;
}

test("k8s: the gateway's topology spread never keeps HPA-added pods Pending", () => {
  for (const t of allTargets()) {
    const { pod } = gatewayOf(t.objects);
    const spread = (pod.topologySpreadConstraints ?? []) as SpreadConstraint[];
    assert.ok(spread.some((c) => c.topologyKey === "kubernetes.io/hostname"), `${t.label}: spread over nodes`);
    for (const c of spread) {
      const where = `${t.label}: ${c.topologyKey}`;
      // With the default Ignore, tainted nodes the pod cannot use count as
      // domains with zero pods, so a hard maxSkew 1 allows one gateway per node.
      assert.equal(c.nodeTaintsPolicy, "Honor", `${where}: nodeTaintsPolicy Honor`);
      assert.equal(c.nodeAffinityPolicy, "Honor", `${where}: nodeAffinityPolicy Honor`);
      // A hard spread also stalls on one full node; the HPA's pods must run
      // wherever there is room.
      assert.equal(c.whenUnsatisfiable, "ScheduleAnyway", `${where}: a preference, not a hard rule`);
    }
  }
});

/** About what an idle gateway process holds (RSS ~80 MiB: Node, uWS, OpenTelemetry SDK, prom-client). */
const IDLE_GATEWAY_MIB = 80;

test("k8s: an HPA memory target sits well above an idle gateway's footprint", () => {
  for (const t of allTargets()) {
    const hpa = find(t.objects, "HorizontalPodAutoscaler", "herald-gateway")!;
    const { c } = gatewayOf(t.objects);
    const metrics = (hpa["spec"] as { metrics: { type: string; resource?: { name: string; target: { type: string; averageUtilization?: number } } }[] }).metrics;
    assert.ok(metrics.some((m) => m.resource?.name === "cpu"), `${t.label}: scales on CPU`);
    for (const m of metrics) {
      if (m.type !== "Resource" || m.resource?.name !== "memory") continue;
      const util = m.resource.target.averageUtilization;
      assert.ok(util !== undefined, `${t.label}: memory target is a utilization`);
      const request = mebibytes(c.resources?.requests?.["memory"] ?? "0");
      // Utilization = usage / request: below ~2x the idle footprint the HPA
      // scales to maxReplicas with no traffic.
      assert.ok(
        (request * util) / 100 >= 2 * IDLE_GATEWAY_MIB,
        `${t.label}: memory target ${util}% of ${request} Mi = ${(request * util) / 100} Mi, under 2 x the ~${IDLE_GATEWAY_MIB} Mi of an idle gateway`,
      );
    }
  }
});

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

test("k8s: NATS is a 3-node JetStream cluster (StatefulSet, headless Service, PDB, storage)", (t) => {
  const objs = render(`${K8S}/base`);
  const sts = find(objs, "StatefulSet", "nats");
  assert.ok(sts);
  const spec = sts["spec"] as { replicas: number; serviceName: string; volumeClaimTemplates: unknown[]; podManagementPolicy: string };
  assert.equal(spec.replicas, 3);
  assert.equal(spec.podManagementPolicy, "Parallel");
  assert.ok(spec.volumeClaimTemplates.length > 0, "JetStream storage");
  const headless = find(objs, "Service", spec.serviceName);
  assert.equal((headless?.["spec"] as { clusterIP?: string }).clusterIP, "None");
  const pdb = find(objs, "PodDisruptionBudget", "nats");
  assert.equal((pdb?.["spec"] as { maxUnavailable?: number }).maxUnavailable, 1, "keeps the quorum of 3");

  const cm = byKind(objs, "ConfigMap").find((c) => c.metadata.name.startsWith("nats-config"));
  const conf = (cm?.["data"] as Record<string, string>)["nats.conf"]!;
  assert.match(conf, /jetstream\s*\{[^}]*store_dir:\s*\/data/);
  for (let i = 0; i < 3; i++) assert.ok(conf.includes(`nats://nats-${i}.${spec.serviceName}:6222`), `route to nats-${i}`);
  const nats = findBinary("nats-server");
  if (!nats) {
    t.diagnostic("nats-server not installed: nats.conf syntax not checked by nats-server -t");
    return;
  }
  const dir = mkdtempSync(path.join(tmpdir(), "herald-nats-conf-"));
  try {
    const file = path.join(dir, "nats.conf");
    writeFileSync(file, conf);
    const r = run(nats, ["-c", file, "-t"], { env: { ...process.env, SERVER_NAME: "nats-0" } });
    assert.equal(r.status, 0, `nats-server -t: ${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("k8s: NATS probes follow the Helm chart: ready only with a JetStream meta leader, alive without one (real nats-server)", async (t) => {
  const expected = { startup: "/healthz", readiness: "/healthz?js-server-only=true", liveness: "/healthz?js-enabled-only=true" };
  let conf = "";
  for (const target of allTargets()) {
    const sts = find(target.objects, "StatefulSet", "nats")!;
    const c = podTemplate(sts)!.spec.containers.find((x) => x.name === "nats")!;
    const probes = { startup: c.startupProbe?.httpGet?.path ?? "", readiness: c.readinessProbe?.httpGet?.path ?? "", liveness: c.livenessProbe?.httpGet?.path ?? "" };
    assert.deepEqual(probes, expected, target.label);
    for (const p of [c.startupProbe, c.readinessProbe, c.livenessProbe]) assert.equal(p?.httpGet?.port, "monitor", target.label);
    if (target.label === `${K8S}/base`) {
      const cm = byKind(target.objects, "ConfigMap").find((x) => x.metadata.name.startsWith("nats-config"))!;
      conf = (cm["data"] as Record<string, string>)["nats.conf"]!;
    }
  }
  const natsServer = findBinary("nats-server");
  if (!natsServer) {
    t.diagnostic("nats-server not installed: probe semantics not checked against a real server");
    return;
  }
  // The base's nats.conf on local ports: a cluster member whose peers
  // (nats-1/2.nats-headless) do not exist, like a pod waiting for the rest of
  // its StatefulSet, or one that lost the quorum. It has no meta leader.
  const dir = mkdtempSync(path.join(tmpdir(), "herald-nats-probes-"));
  const [client, cluster, monitor] = [await freePort(), await freePort(), await freePort()];
  const swap = (from: RegExp, to: string) => {
    assert.match(conf, from);
    conf = conf.replace(from, to);
  };
  swap(/^listen: 0\.0\.0\.0:4222$/m, `listen: 127.0.0.1:${client}`);
  swap(/^http: 0\.0\.0\.0:8222$/m, `http: 127.0.0.1:${monitor}`);
  swap(/^(\s*)listen: 0\.0\.0\.0:6222$/m, `$1listen: 127.0.0.1:${cluster}`);
  swap(/store_dir: \/data/, `store_dir: ${JSON.stringify(path.join(dir, "js"))}`);
  swap(/pid_file: \S+/, `pid_file: ${JSON.stringify(path.join(dir, "nats.pid"))}`);
  const file = path.join(dir, "nats.conf");
  writeFileSync(file, conf);
  const proc = spawnChild("nats-server", natsServer, ["-c", file], { env: { ...process.env, SERVER_NAME: "nats-0" } });
  t.after(async () => {
    await proc.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const status = async (p: string) => (await fetch(`http://127.0.0.1:${monitor}${p}`)).status;
  await waitFor(async () => (await status("/varz")) === 200, { timeoutMs: 10_000, message: `NATS monitoring\n${tail(proc)}` });
  assert.equal(await status(expected.readiness), 503, "not ready without a JetStream meta leader (js-enabled-only would say 200 here)");
  assert.equal(await status(expected.startup), 503, "startup waits for the meta leader too");
  assert.equal(await status(expected.liveness), 200, "alive: restarting it would not bring the quorum back");
});

test("k8s: ingress example keeps WebSockets open and exposes only /ws", () => {
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
  const rules = (ing["spec"] as { rules: { http: { paths: { path: string; backend: { service: { name: string; port: { name: string } } } }[] } }[] }).rules;
  const paths = rules.flatMap((r) => r.http.paths);
  assert.deepEqual(paths.map((p) => p.path), ["/ws"]);
  for (const p of paths) {
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

test("k8s: overlays set a namespace; production ships no Secret, dev generates one", () => {
  for (const o of OVERLAYS) {
    const objs = render(o);
    const ns = byKind(objs, "Namespace");
    assert.equal(ns.length, 1, `${o}: creates its namespace`);
    for (const obj of objs) {
      if (obj.kind === "Namespace") continue;
      assert.equal(obj.metadata.namespace, ns[0]!.metadata.name, `${o}: ${obj.kind}/${obj.metadata.name} namespaced`);
    }
  }
  const prod = render(`${K8S}/overlays/production`);
  assert.deepEqual(byKind(prod, "Secret"), [], "production Secrets are created outside Git");
  assert.ok(byKind(prod, "Ingress").length === 1 && byKind(prod, "ServiceMonitor").length === 2);
  for (const c of prod.flatMap((o) => podTemplate(o)?.spec.containers ?? [])) {
    if (c.name === "gateway" || c.name === "publisher") assert.match(c.image ?? "", /^[\w.-]+\/.+:\d+\.\d+\.\d+$/, "registry image with a version tag");
  }
  const dev = render(`${K8S}/overlays/dev`);
  const secret = byKind(dev, "Secret")[0];
  assert.ok(secret && secret.metadata.name.startsWith("herald-secrets-"), "dev generates herald-secrets (hash-suffixed)");
  for (const v of Object.values(secret["data"] as Record<string, string>)) {
    assert.match(Buffer.from(v, "base64").toString(), /dev-only-insecure/, "dev secret values are marked as such");
  }
});
