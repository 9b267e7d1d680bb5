/** Prometheus text format scraping. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  samples: Sample[];
  /**
   * Sum of the samples named `name` whose labels include every given label
   * (all samples of that name when `labels` is omitted); undefined when none.
   */
  get(name: string, labels?: Record<string, string>): number | undefined;
  /** Names of every metric family present. */
  names(): Set<string>;
  text: string;
}

function unescape(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}

function parseLabels(s: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) labels[m[1] as string] = unescape(m[2] as string);
  return labels;
}

function parseValue(v: string): number {
  if (v === "+Inf") return Infinity;
  if (v === "-Inf") return -Infinity;
  if (v === "NaN") return NaN;
  return Number(v);
}

export function parsePrometheus(text: string): Scrape {
  const samples: Sample[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/.exec(line);
    if (!m) continue;
    samples.push({ name: m[1] as string, labels: m[2] ? parseLabels(m[2]) : {}, value: parseValue(m[3] as string) });
  }
  return {
    samples,
    text,
    names: () => new Set(samples.map((s) => s.name)),
    get(name, labels) {
      let found = false;
      let sum = 0;
      for (const s of samples) {
        if (s.name !== name) continue;
        if (labels && !Object.entries(labels).every(([k, v]) => s.labels[k] === v)) continue;
        found = true;
        sum += s.value;
      }
      return found ? sum : undefined;
    },
  };
}

/** GET a /metrics URL (or a service base URL, /metrics is appended) and parse it. */
export async function scrape(url: string, timeoutMs = 3000): Promise<Scrape> {
  const target = /\/metrics(\?.*)?$/.test(url) ? url : `${url.replace(/\/$/, "")}/metrics`;
  const res = await fetch(target, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${target} -> ${res.status}: ${text.slice(0, 200)}`);
  return parsePrometheus(text);
}
