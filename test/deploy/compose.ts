/**
 * Compose helpers for test/deploy-compose*.test.ts: .env parsing, the
 * interpolation rules of the Compose specification, and the JSON schema of
 * the Compose specification as shipped by the `dclint` package.
 */
import { createRequire } from "node:module";
import path from "node:path";
import { readFileSync } from "node:fs";
import { Ajv, type ValidateFunction } from "ajv";

/** KEY=VALUE lines; # comments and blank lines ignored (the .env format). */
export function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`not KEY=VALUE: ${line}`);
    out.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return out;
}

const VAR = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\})*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** Names of every variable a string interpolates, with the operator used. */
export function referencedVars(text: string): { name: string; op: string | undefined }[] {
  const out: { name: string; op: string | undefined }[] = [];
  for (const m of text.matchAll(VAR)) {
    if (m[0] === "$$") continue;
    const name = m[1] ?? m[4];
    if (name) out.push({ name, op: m[2] });
  }
  return out;
}

/** Compose interpolation of one string (${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}, ${VAR:+a}, $$). */
export function interpolate(text: string, env: Map<string, string>): string {
  return text.replace(VAR, (whole, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
    if (whole === "$$") return "$";
    const name = (braced ?? bare)!;
    const has = env.has(name);
    const value = env.get(name) ?? "";
    switch (op) {
      case undefined:
        return value;
      case ":-":
        return value !== "" ? value : interpolate(arg ?? "", env);
      case "-":
        return has ? value : interpolate(arg ?? "", env);
      case ":?":
        if (value === "") throw new Error(`required variable ${name} is missing a value: ${arg ?? ""}`);
        return value;
      case "?":
        if (!has) throw new Error(`required variable ${name} is missing: ${arg ?? ""}`);
        return value;
      case ":+":
        return value !== "" ? interpolate(arg ?? "", env) : "";
      case "+":
        return has ? interpolate(arg ?? "", env) : "";
      default:
        throw new Error(`unknown interpolation operator ${op}`);
    }
  });
}

/** Applies interpolation to every string value of a parsed Compose document. */
export function interpolateDeep(value: unknown, env: Map<string, string>): unknown {
  if (typeof value === "string") return interpolate(value, env);
  if (Array.isArray(value)) return value.map((v) => interpolateDeep(v, env));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateDeep(v, env)]));
  }
  return value;
}

/** Every string value in a document (for variable and secret scans). */
export function allStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const v of value) allStrings(v, out);
  else if (value !== null && typeof value === "object") for (const v of Object.values(value)) allStrings(v, out);
  return out;
}

let validator: ValidateFunction | undefined;

/**
 * The Compose specification's JSON schema, as bundled by dclint (kept current
 * with docker/compose: it knows `include`, `models`, `start_interval`, ...).
 */
export function composeSchemaValidator(): ValidateFunction {
  if (validator) return validator;
  const require = createRequire(import.meta.url);
  const pkg = require.resolve("dclint/package.json");
  const schema = JSON.parse(readFileSync(path.join(path.dirname(pkg), "schemas/compose.schema.json"), "utf8")) as Record<string, unknown>;
  // Draft-07 schema whose $schema URL spelling ajv does not register; the
  // keywords themselves are plain draft-07.
  delete schema["$schema"];
  const ajv = new Ajv({ allErrors: true, strict: false });
  validator = ajv.compile(schema);
  return validator;
}
