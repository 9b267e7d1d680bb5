#!/usr/bin/env node
/**
 * Runs named benchmark scenarios against Herald and its peers on this
 * machine, writes the raw result (bench/runs/<stamp>/result.json) and the
 * report (Markdown + SVG) next to it, and with --publish also into bench/results/.
 *
 *   node --import tsx bench/run.ts full --publish          # everything, < 15 min on 2 cores
 *   node --import tsx bench/run.ts broadcast idle-10k      # some scenarios
 *   node --import tsx bench/run.ts smoke                   # tiny version of everything (tooling check)
 *   node --import tsx bench/run.ts avalanche --scale 0.02  # a small reconnect avalanche (< 30 s)
 *
 * Options: --targets herald,nats-ws,...  --multi 4  --phase-seconds 5  --scale 1  --out DIR  --publish  --quiet  --help
 * Scenarios: ceiling idle-10k idle-10k-shared idle-50k connect-storm broadcast channels slow-consumer; full = all of them.
 * Also by name only (minutes each): avalanche (kill -9 and drain under 40k resuming clients), conns-100k (100k sockets, 6 gateways),
 *   connect-storm-warm (three storms in a row on one server process), presence (100k members over 6 gateways, with and without presence),
 *   sse (SSE vs WebSocket: idle memory, broadcast CPU and latency), compression (COMPRESSION=off vs shared: bytes on the wire, CPU, a compression bomb).
 *   Several by name with --publish write bench/results/<name>.* each.
 * Targets: herald herald-history herald-history-multi herald-batched herald-multi nats-ws ws-baseline ws-baseline-multi uws-ceiling
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { describeMachine } from "./lib/machine.js";
import { GATEWAY_MAIN, ROOT, type TargetName } from "./lib/targets.js";
import { existsSync } from "node:fs";
import { EXTRA, FULL, SCENARIOS, runScenario, type RunConfig, type ScenarioResult } from "./scenarios.js";
import { writeReport } from "./report.js";
import { runIfMain } from "./lib/cli.js";

export interface RunResult {
  kind: "herald-bench";
  version: 1;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  command: string;
  machine: Record<string, unknown>;
  config: Omit<RunConfig, "log" | "targetOptions">;
  scenarios: ScenarioResult[];
}

export async function runBench(names: string[], cfg: RunConfig): Promise<RunResult> {
  const t0 = Date.now();
  const startedAt = new Date().toISOString();
  const scenarios: ScenarioResult[] = [];
  for (const name of names) scenarios.push(await runScenario(name, cfg));
  const { log: _l, targetOptions: _t, ...config } = cfg;
  return {
    kind: "herald-bench",
    version: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    seconds: Math.round((Date.now() - t0) / 1000),
    command: `node --import tsx bench/run.ts ${process.argv.slice(2).join(" ")}`.trim(),
    machine: describeMachine(),
    config,
    scenarios,
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      targets: { type: "string" },
      multi: { type: "string", default: "4" },
      "phase-seconds": { type: "string" },
      scale: { type: "string" },
      out: { type: "string" },
      publish: { type: "boolean", default: false },
      quiet: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
      "server-node-args": { type: "string" },
    },
  });
  // Extra node flags for the WebSocket server processes, e.g. --cpu-prof --cpu-prof-dir=/tmp/p (profiling a scenario).
  const serverNodeArgs = values["server-node-args"]?.split(" ").filter(Boolean) ?? [];
  if (values.help || positionals.includes("help")) {
    const line = (name: string) => `  ${name.padEnd(16)} ${SCENARIOS[name]!.title} (targets: ${SCENARIOS[name]!.defaultTargets.join(", ")})`;
    process.stdout.write(
      "usage: node --import tsx bench/run.ts [scenario ...] [--targets a,b] [--multi 4] [--phase-seconds 5] [--scale 1] [--out DIR] [--publish] [--quiet] [--server-node-args='--cpu-prof ...']\n" +
        `scenarios in full (also: smoke = all of them at scale 0.02):\n${FULL.map(line).join("\n")}\n` +
        `by name only:\n${EXTRA.map(line).join("\n")}\n`,
    );
    return;
  }
  if (!existsSync(GATEWAY_MAIN)) throw new Error(`${GATEWAY_MAIN} is missing: run npm run build first`);
  let names = positionals.length ? positionals : ["full"];
  const smoke = names.includes("smoke");
  if (names.includes("full") || smoke) names = FULL;
  const cfg: RunConfig = {
    scale: Number(values.scale ?? (smoke ? 0.02 : 1)),
    phaseSeconds: Number(values["phase-seconds"] ?? (smoke ? 1 : 5)),
    multi: Number(values.multi),
    targets: (values.targets?.split(",").filter(Boolean) ?? []) as TargetName[],
    quiet: values.quiet,
    settleMs: smoke ? 0 : 2000,
    log: (s) => process.stderr.write(s + "\n"),
    ...(serverNodeArgs.length ? { targetOptions: () => ({ nodeArgs: serverNodeArgs }) } : {}),
  };
  // bench/results/latest.* is the full run only; scenarios run by name (EXTRA) publish each under its own name.
  const publishAs = !values.publish ? undefined : names.join(",") === FULL.join(",") && !smoke ? "latest" : names.every((x) => EXTRA.includes(x)) ? "each" : null;
  if (publishAs === null) throw new Error(`--publish needs \`full\` (bench/results/latest.*) or some of ${EXTRA.join(", ")} (bench/results/<name>.*), not ${positionals.join(" ")}`);
  const result = await runBench(names, cfg);
  const stamp = result.startedAt.replace(/[:.]/g, "-").slice(0, 19);
  const dir = values.out ?? join(ROOT, "bench/runs", stamp);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "result.json"), JSON.stringify(result, null, 2) + "\n");
  const files = writeReport(result, dir);
  process.stderr.write(`wrote ${join(dir, "result.json")}, ${files.join(", ")} (${result.seconds} s)\n`);
  if (publishAs) {
    const pub = join(ROOT, "bench/results");
    mkdirSync(pub, { recursive: true });
    // one result per scenario when run by name (bench/results/sse.*, compression.*), the whole run as latest.*
    const parts = publishAs === "latest" ? [{ name: "latest", r: result }] : result.scenarios.map((sc) => ({ name: sc.name, r: { ...result, scenarios: [sc] } }));
    for (const { name, r } of parts) {
      writeFileSync(join(pub, `${name}.json`), JSON.stringify(r, null, 2) + "\n");
      process.stderr.write(`published ${writeReport(r, pub, name).join(", ")}\n`);
    }
  }
}

runIfMain(import.meta.url, main);
