/**
 * The Compose stack the deploy-compose*.test.ts files check: its files, the
 * parsed and the interpolated (.env = .env.example) stack, schema errors.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { composeSchemaValidator, interpolateDeep, parseEnvFile } from "./compose.js";
import { isRecord, loadYaml, readText, repoPath } from "./util.js";

export const ROOT_FILE = repoPath("compose.yaml");
export const STACK_FILE = repoPath("deploy/compose/compose.yaml");
export const STACK_DIR = path.dirname(STACK_FILE);
export const ENV_EXAMPLE = repoPath(".env.example");
export const HAPROXY_CFG = path.join(STACK_DIR, "haproxy/haproxy.cfg");
/** The services' METRICS_PORT in Compose (and Kubernetes): /metrics, /healthz, /readyz. */
export const METRICS_PORT = "9464";

export type Service = Record<string, unknown>;

export function stack(): { doc: Record<string, unknown>; services: Record<string, Service> } {
  const doc = loadYaml(STACK_FILE);
  assert.ok(isRecord(doc));
  const services = doc["services"];
  assert.ok(isRecord(services));
  return { doc, services: services as Record<string, Service> };
}

export function envExample(): Map<string, string> {
  return parseEnvFile(readText(ENV_EXAMPLE));
}

/** The stack as `docker compose config` would see it with .env = .env.example. */
export function interpolatedStack(): { services: Record<string, Service>; doc: Record<string, unknown> } {
  const doc = interpolateDeep(loadYaml(STACK_FILE), envExample()) as Record<string, unknown>;
  return { doc, services: doc["services"] as Record<string, Service> };
}

export function schemaErrors(doc: unknown): string {
  const validate = composeSchemaValidator();
  if (validate(doc)) return "";
  return (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ""} ${JSON.stringify(e.params)}`).join("\n");
}
