/**
 * What every scenario uses: the run config, result rows, and starting a
 * target with its load generator (stopped again whatever happens).
 */
import { LoadGen, type PhaseResult, type TargetSpec } from "./loadgen.js";
import { sampleAll } from "./procstat.js";
import { startTarget, type RunningTarget, type TargetName, type TargetOptions } from "./targets.js";

export type { TargetName } from "./targets.js";

export interface RunConfig {
  /** Scale factor for connection counts (1 = the documented sizes; the smoke test uses ~0.02). */
  scale: number;
  /** Seconds per publish phase. */
  phaseSeconds: number;
  /** Gateway processes for the "-multi" targets. */
  multi: number;
  targets: TargetName[];
  quiet: boolean;
  /** Pause before reading RSS after connecting (lets allocators settle); 0 in the smoke run. */
  settleMs: number;
  log: (s: string) => void;
  targetOptions?: (t: TargetName) => TargetOptions;
}

export type Row = Record<string, unknown> & { target: string };
export interface ScenarioResult {
  name: string;
  title: string;
  description: string;
  rows: Row[];
  notes: string[];
}

export type Scenario = {
  title: string;
  description: string;
  defaultTargets: TargetName[];
  run(cfg: RunConfig, target: TargetName, notes: string[]): Promise<Row[]>;
};

export const n = (cfg: RunConfig, base: number) => Math.max(20, Math.round(base * cfg.scale));
export const workersFor = (conns: number) => Math.max(2, Math.ceil(conns / 15_000));
export const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (at most maxMs) until the processes use under `percent` CPU over one second: after a big connect they still register interest. */
export async function quiet(pids: number[], maxMs: number, percent = 20): Promise<number> {
  const t0 = Date.now();
  let last = sampleAll(pids).cpuSeconds;
  while (Date.now() - t0 < maxMs) {
    await settle(1000);
    const cpu = sampleAll(pids).cpuSeconds;
    const busy = (cpu - last) * 100;
    last = cpu;
    if (busy < percent) break;
  }
  return Date.now() - t0;
}

/** The report row of one publish phase (every figure the phase tables show). */
export function phaseRow(target: string, p: PhaseResult, extra: Record<string, unknown> = {}): Row {
  return {
    target,
    ...extra,
    rate: p.rate,
    size: p.size,
    published: p.published,
    expected: p.expected,
    received: p.received,
    deliveriesPerSecond: p.deliveriesPerSecond,
    lossRatio: +p.lossRatio.toFixed(5),
    lost: p.lost,
    probeGaps: p.probeGaps,
    p50Ms: p.latencyMs.p50,
    p90Ms: p.latencyMs.p90,
    p99Ms: p.latencyMs.p99,
    p999Ms: p.latencyMs.p999,
    maxMs: p.latencyMs.max,
    latencySamples: p.latencyMs.count,
    serverCpuPercent: p.serverCpuPercent,
    brokerCpuPercent: p.brokerCpuPercent,
    generatorCpuPercent: p.generatorCpuPercent,
    framesPerRead: p.framesPerRead,
    serverRssMiB: +(p.serverRssBytes / 2 ** 20).toFixed(1),
    closes: p.closes,
    openSockets: p.openSockets,
  };
}

/** A load step past what the target sustains: a ladder stops there. */
export const saturated = (p: PhaseResult) => p.lossRatio > 0.01 || (p.latencyMs.p99 ?? 0) > 2000 || Object.keys(p.closes).length > 0;

/** Per-scenario overrides of the run config: gateway processes for the -multi targets, extra server env. */
export interface TargetOverrides {
  multi?: number;
  env?: Record<string, string>;
  /** What the load generator is pointed at, from the started target's spec (the sse scenario: the same gateway's /sse). */
  spec?: (s: TargetSpec) => TargetSpec;
}

export async function withTarget<T>(cfg: RunConfig, name: TargetName, conns: number, fn: (t: RunningTarget, lg: LoadGen) => Promise<T>, over: TargetOverrides = {}): Promise<T> {
  const base = cfg.targetOptions?.(name) ?? {};
  const opts = over.env ? { ...base, env: { ...base.env, ...over.env } } : base;
  const t = await startTarget(name, over.multi ?? cfg.multi, opts);
  const lg = new LoadGen(over.spec ? over.spec(t.spec) : t.spec, workersFor(conns));
  lg.quiet = cfg.quiet;
  try {
    await lg.start();
    return await fn(t, lg);
  } finally {
    await lg.stop();
    await t.stop();
  }
}

