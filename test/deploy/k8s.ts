/**
 * Kubernetes helpers for test/deploy-k8s*.test.ts: rendering with
 * `kubectl kustomize` and schema validation with the maintained
 * `kubernetes-models` validators (JSON schemas generated from the Kubernetes
 * OpenAPI spec; the Prometheus Operator CRDs from
 * @kubernetes-models/prometheus-operator).
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { loadYamlAll, repoPath, requireBinary, run } from "./util.js";

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
};

export function kubectl(): string {
  const bin = requireBinary("kubectl", "kubectl");
  return bin;
}

/** `kubectl kustomize <dir>` (dir relative to the repo root) parsed into objects. */
export function render(dir: string): K8sObject[] {
  const r = run(kubectl(), ["kustomize", dir], { timeoutMs: 60_000 });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${r.stderr}`);
  return loadYamlAll(r.stdout) as K8sObject[];
}

/**
 * Renders base + one component. A Component cannot be built alone, and
 * kustomize refuses absolute paths, so the wrapper kustomization is written
 * under test-artifacts/ (git-ignored) and removed again.
 */
export function renderWithComponent(base: string, component: string): K8sObject[] {
  const dir = repoPath("test-artifacts", `kustomize-${process.pid}-${path.basename(component)}`);
  mkdirSync(dir, { recursive: true });
  try {
    const rel = (p: string) => path.relative(dir, repoPath(p));
    writeFileSync(
      path.join(dir, "kustomization.yaml"),
      [
        "apiVersion: kustomize.config.k8s.io/v1beta1",
        "kind: Kustomization",
        "resources:",
        `  - ${rel(base)}`,
        "components:",
        `  - ${rel(component)}`,
        "",
      ].join("\n"),
    );
    return render(path.relative(repoPath(), dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: unknown) => Validatable;

/** The kubernetes-models module for an apiVersion/kind, or undefined when none exists. */
async function modelFor(apiVersion: string, kind: string): Promise<ModelClass | undefined> {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const specifier =
    group === "monitoring.coreos.com"
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`
      : group === ""
        ? `kubernetes-models/${version}/${kind}`
        : `kubernetes-models/${group}/${version}/${kind}`;
  try {
    const mod = (await import(specifier)) as Record<string, unknown>;
    return mod[kind] as ModelClass | undefined;
  } catch {
    return undefined;
  }
}

/** Schema errors of one object ("" when valid). Unknown kinds are an error too. */
export async function schemaErrors(obj: K8sObject): Promise<string> {
  const Model = await modelFor(obj.apiVersion, obj.kind);
  if (!Model) return `no schema for ${obj.apiVersion} ${obj.kind}`;
  try {
    new Model(obj).validate();
    return "";
  } catch (err) {
    return (err as Error).message;
  }
}

export function byKind(objs: K8sObject[], kind: string): K8sObject[] {
  return objs.filter((o) => o.kind === kind);
}

export function find(objs: K8sObject[], kind: string, name: string): K8sObject | undefined {
  return objs.find((o) => o.kind === kind && o.metadata.name === name);
}

export interface Container {
  name: string;
  image?: string;
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string }; configMapKeyRef?: { name: string; key: string } } }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { sleep?: { seconds: number }; exec?: { command: string[] } } };
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
  };
}
export interface Probe {
  httpGet?: { path: string; port: string | number };
  tcpSocket?: { port: string | number };
  exec?: { command: string[] };
  periodSeconds?: number;
}
export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  terminationGracePeriodSeconds?: number;
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    sysctls?: { name: string; value: string }[];
    seccompProfile?: { type: string };
  };
  topologySpreadConstraints?: unknown[];
  volumes?: { name: string; configMap?: { name: string }; secret?: { secretName: string } }[];
  automountServiceAccountToken?: boolean;
}

/** Pod template of a workload object, or undefined for other kinds. */
export function podTemplate(obj: K8sObject): { labels: Record<string, string>; spec: PodSpec } | undefined {
  if (!["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"].includes(obj.kind)) return undefined;
  const spec = obj["spec"] as { template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
  return { labels: spec.template.metadata.labels, spec: spec.template.spec };
}

export function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
