/**
 * Grafana dashboard helpers shared by the static dashboard test and the live
 * Prometheus test: load every board in grafana/dashboards, flatten panels,
 * and turn a panel query into plain PromQL by substituting Grafana's
 * variables the way Grafana would for "All" selections.
 */
import { readdirSync } from "node:fs";
import { readText, repoPath } from "./util.js";

export interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  format?: string;
  datasource?: { type?: string; uid?: string };
}
export interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
export interface Variable {
  name: string;
  type: string;
  query?: unknown;
  includeAll?: boolean;
  allValue?: string;
  current?: { value?: string | string[] };
}
export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

export const DASHBOARD_DIR = repoPath("grafana/dashboards");

export function loadDashboards(): { file: string; dashboard: Dashboard }[] {
  return readdirSync(DASHBOARD_DIR)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => ({ file, dashboard: JSON.parse(readText(`${DASHBOARD_DIR}/${file}`)) as Dashboard }));
}

/** Every panel, rows' nested panels included (rows themselves excluded). */
export function panelsOf(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  for (const p of d.panels) {
    if (p.type === "row") out.push(...(p.panels ?? []));
    else out.push(p);
  }
  return out;
}

export interface SubstituteOptions {
  /** Value for $__rate_interval (Grafana: max(4 x scrape interval, $__interval + scrape)). */
  rateInterval: string;
  /** Value for $__interval. */
  interval: string;
  /** Value for $__range. */
  range: string;
}

/**
 * PromQL as Grafana sends it with every variable at "All" (or its current
 * value): $__rate_interval etc. from `opts`, query variables with `allValue`.
 */
export function substitute(expr: string, d: Dashboard, opts: SubstituteOptions): string {
  const values = new Map<string, string>([
    ["__rate_interval", opts.rateInterval],
    ["__interval", opts.interval],
    ["__range", opts.range],
  ]);
  for (const v of d.templating.list) {
    if (v.includeAll && v.allValue !== undefined) values.set(v.name, v.allValue);
    else if (typeof v.current?.value === "string") values.set(v.name, v.current.value);
  }
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    const v = values.get(name);
    if (v === undefined) throw new Error(`unknown Grafana variable ${whole} in ${expr}`);
    return v;
  });
}
