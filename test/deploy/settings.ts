/**
 * The environment variables a service actually reads, collected from its
 * TypeScript sources (string literals such as "GATEWAY_PORT"), so the deploy
 * tests can check that Compose and Kubernetes only set names the code knows:
 * a misspelt setting would otherwise be ignored silently.
 */
import { readdirSync } from "node:fs";
import path from "node:path";
import { readText, repoPath } from "./util.js";

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = path.join(dir, d.name);
    if (d.isDirectory()) return tsFiles(p);
    return d.name.endsWith(".ts") && !d.name.endsWith(".d.ts") ? [p] : [];
  });
}

/**
 * Names read by `service` (and the shared packages it uses), plus what the
 * runtime reads on its behalf: the OpenTelemetry SDK's OTEL_* variables and
 * Node's NODE_OPTIONS.
 */
export function knownSettings(service: "gateway" | "publisher"): (name: string) => boolean {
  const names = new Set<string>();
  for (const dir of [repoPath("services", service, "src"), repoPath("packages/core/src"), repoPath("packages/broker/src")]) {
    for (const f of tsFiles(dir)) for (const m of readText(f).matchAll(/"([A-Z][A-Z0-9_]{2,})"/g)) names.add(m[1]!);
  }
  return (name) => names.has(name) || name.startsWith("OTEL_") || name === "NODE_OPTIONS";
}
