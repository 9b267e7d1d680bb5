/**
 * deploy/k8s: `kubectl kustomize` renders the base, every overlay and the
 * base with every component; each rendered object validates against the
 * Kubernetes schemas (kubernetes-models); policy checks over the output
 * (probes, requests/limits, non-root, read-only root fs, gateway sysctls and
 * grace period, settings the code reads, namespaces and Secrets). Scaling,
 * NATS: deploy-k8s-workloads.test.ts; traffic and monitoring:
 * deploy-k8s-traffic.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readText, repoPath } from "./deploy/util.js";
import { byKind, find, podTemplate, render, schemaErrors } from "./deploy/k8s.js";
import { K8S, OVERLAYS, COMPONENTS, allTargets, gatewayOf, envValue } from "./deploy/k8s-targets.js";
import { knownSettings } from "./deploy/settings.js";

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

test("k8s: gateway and publisher get only settings their code reads", () => {
  for (const t of allTargets()) {
    for (const [deployment, svc] of [["herald-gateway", "gateway"], ["herald-publisher", "publisher"]] as const) {
      const known = knownSettings(svc);
      const c = podTemplate(find(t.objects, "Deployment", deployment)!)!.spec.containers[0]!;
      // POD_NAME and the NATS password only feed other values ($(NAME): OTEL_RESOURCE_ATTRIBUTES, NATS_URL).
      const composes = (n: string) => (c.env ?? []).some((e) => e.value?.includes(`$(${n})`));
      const names = (c.env ?? []).map((e) => e.name).filter((n) => !composes(n));
      for (const ef of c.envFrom ?? []) {
        const data = ef.configMapRef && (find(t.objects, "ConfigMap", ef.configMapRef.name)?.["data"] as Record<string, string> | undefined);
        names.push(...Object.keys(data ?? {}));
      }
      for (const n of names) assert.ok(known(n), `${t.label}: ${deployment} sets ${n}, which services/${svc} does not read`);
    }
  }
});

/** Memory quantity in MiB ("128Mi", "1Gi", "512M", bytes). */
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
