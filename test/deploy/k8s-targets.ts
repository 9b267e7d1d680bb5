/**
 * The rendered Kubernetes targets the deploy-k8s*.test.ts files check:
 * deploy/k8s, the base, every overlay and the base with every component,
 * each rendered once per file; and lookups into a rendered gateway.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { find, podTemplate, render, renderWithComponent, type Container, type K8sObject, type PodSpec } from "./k8s.js";
import { repoPath } from "./util.js";

export const K8S = "deploy/k8s";
const dirs = (rel: string) =>
  readdirSync(repoPath(rel), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(repoPath(rel, d.name, "kustomization.yaml")))
    .map((d) => `${rel}/${d.name}`);
export const OVERLAYS = dirs(`${K8S}/overlays`);
export const COMPONENTS = dirs(`${K8S}/components`);

export interface Target {
  label: string;
  objects: K8sObject[];
  component?: string;
}

/** Rendered once per test file. */
const cache = new Map<string, Target>();
export function target(label: string, make: () => K8sObject[], component?: string): Target {
  let t = cache.get(label);
  if (!t) {
    t = { label, objects: make(), ...(component ? { component } : {}) };
    cache.set(label, t);
  }
  return t;
}
export function allTargets(): Target[] {
  return [
    target(K8S, () => render(K8S)),
    target(`${K8S}/base`, () => render(`${K8S}/base`)),
    ...OVERLAYS.map((o) => target(o, () => render(o))),
    ...COMPONENTS.map((c) => target(`base + ${c}`, () => renderWithComponent(`${K8S}/base`, c), c)),
  ];
}

export function gatewayOf(objs: K8sObject[]): { dep: K8sObject; pod: PodSpec; labels: Record<string, string>; c: Container } {
  const dep = find(objs, "Deployment", "herald-gateway");
  assert.ok(dep, "Deployment herald-gateway");
  const tpl = podTemplate(dep)!;
  const c = tpl.spec.containers.find((x) => x.name === "gateway");
  assert.ok(c, "container gateway");
  return { dep, pod: tpl.spec, labels: tpl.labels, c };
}

/** Value of an env var set through envFrom ConfigMaps or env literals. */
export function envValue(objs: K8sObject[], c: Container, name: string): string | undefined {
  const literal = c.env?.find((e) => e.name === name && e.value !== undefined)?.value;
  if (literal !== undefined) return literal;
  for (const ef of c.envFrom ?? []) {
    const cm = ef.configMapRef && find(objs, "ConfigMap", ef.configMapRef.name);
    const data = cm?.["data"] as Record<string, string> | undefined;
    if (data && name in data) return data[name];
  }
  return undefined;
}
