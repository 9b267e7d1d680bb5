/**
 * deploy/k8s workloads: HPA and PDBs, Services and references, the gateway's
 * topology spread and memory target, and the NATS JetStream cluster with its
 * probes checked against a real nats-server.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { findBinary, spawnChild, tail } from "./helpers/children.js";
import { freePort } from "./helpers/ports.js";
import { waitFor } from "./helpers/wait.js";
import { run } from "./deploy/util.js";
import { byKind, find, podTemplate, render, selects } from "./deploy/k8s.js";
import { K8S, allTargets, gatewayOf } from "./deploy/k8s-targets.js";
import { authorizationBlock, testPasswords } from "./deploy/nats-auth.js";

/** Passwords for the users of nats.conf's authorization block (deploy-nats-permissions.test.ts tests them). */
const natsPasswordEnv = (conf: string) => testPasswords(authorizationBlock(conf));

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
    const r = run(nats, ["-c", file, "-t"], { env: { ...process.env, ...natsPasswordEnv(conf), SERVER_NAME: "nats-0" } });
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
  const proc = spawnChild("nats-server", natsServer, ["-c", file], { env: { ...process.env, ...natsPasswordEnv(conf), SERVER_NAME: "nats-0" } });
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
