#!/usr/bin/env node
/**
 * Where one gateway's memory per connection goes: RSS growth split into the
 * V8 heap (by object kind, from a heap snapshot diff) and what lies outside
 * it (uWS' C++ sockets and topics, malloc, kernel-side buffers are not in
 * RSS). One gateway, N idle authenticated connections, snapshots taken
 * before connecting and after (V8 runs a full GC before each snapshot).
 *
 *   node --import tsx bench/heap.ts [--connections 10000] [--shape per-user|shared] [--transport ws|sse] [--out bench/results]
 *
 * per-user: each connection subscribes to its own channel (plus, as always,
 * its user subject); shared: every connection subscribes to one channel.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LoadGen } from "./lib/loadgen.js";
import { sseSpec } from "./lib/sse-scenario.js";
import { sampleProc } from "./lib/procstat.js";
import { ROOT, startHerald } from "./lib/targets.js";
import { waitFor } from "../test/helpers/wait.js";
import { runIfMain } from "./lib/cli.js";

interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Self size and count per "type:name" (e.g. "object:WsConnection", "closure:callback"). */
export function tally(file: string): { total: number; kinds: Map<string, { count: number; bytes: number }> } {
  const snap = JSON.parse(readFileSync(file, "utf8")) as HeapSnapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [typeAt, nameAt, sizeAt] = ["type", "name", "self_size"].map((f) => fields.indexOf(f)) as [number, number, number];
  const kinds = new Map<string, { count: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + typeAt]!]!;
    const bytes = snap.nodes[i + sizeAt]!;
    // Strings are told apart by kind only: their names are their contents.
    const name = type === "string" || type === "concatenated string" || type === "sliced string" ? "" : snap.strings[snap.nodes[i + nameAt]!]!;
    const key = `${type}:${name.length > 60 ? `${name.slice(0, 57)}...` : name}`;
    const k = kinds.get(key) ?? { count: 0, bytes: 0 };
    k.count++;
    k.bytes += bytes;
    kinds.set(key, k);
    total += bytes;
  }
  return { total, kinds };
}

async function snapshot(pid: number, dir: string, label: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, "SIGUSR2");
  let file: string | undefined;
  let size = -1;
  // Written by the gateway; done when its size stops changing.
  await waitFor(
    () => {
      file ??= readdirSync(dir).find((f) => f.endsWith(".heapsnapshot") && !before.has(f));
      if (!file) return false;
      const now = readFileSync(join(dir, file)).length;
      const stable = now > 0 && now === size;
      size = now;
      return stable;
    },
    { timeoutMs: 120_000, intervalMs: 500, message: `heap snapshot ${label}` },
  );
  return join(dir, file!);
}

/** Committed bytes per V8 heap space (prom-client's nodejs_heap_space_size_total_bytes). */
async function heapSpaces(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const spaces = new Map<string, number>();
  for (const m of text.matchAll(/^nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\d+)/gm)) spaces.set(m[1]!, Number(m[2]));
  return spaces;
}

const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connections: { type: "string", default: "10000" },
      shape: { type: "string", default: "per-user" },
      out: { type: "string", default: join(ROOT, "bench/results") },
      "node-args": { type: "string", default: "" },
      transport: { type: "string", default: "ws" },
    },
  });
  const count = Number(values.connections);
  const shape = values.shape === "shared" ? ({ kind: "shared", channel: "bench" } as const) : ({ kind: "per-user" } as const);
  if (values.shape !== "shared" && values.shape !== "per-user") throw new Error(`--shape must be per-user or shared, not ${values.shape}`);
  if (values.transport !== "ws" && values.transport !== "sse") throw new Error(`--transport must be ws or sse, not ${values.transport}`);
  const sse = values.transport === "sse";
  const dir = mkdtempSync(join(tmpdir(), "herald-heap-"));
  const extra = values["node-args"].split(" ").filter(Boolean);
  const t = await startHerald(1, { nodeArgs: [...extra, "--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${dir}`] });
  const metricsUrl = `http://127.0.0.1:${t.spec.endpoints[0]!.port}/metrics`;
  const pid = t.spec.serverPids[0]!;
  // SSE: the same connections as GET /sse streams (bench/lib/sse-scenario.ts).
  const lg = new LoadGen(sse ? sseSpec(t.spec) : t.spec, 2);
  let rows: Array<{ kind: string; count: number; bytes: number }> = [];
  let rssGrowth = 0;
  let heapGrowth = 0;
  let ready = 0;
  let spacesBefore = new Map<string, number>();
  let spacesAfter = new Map<string, number>();
  try {
    await lg.start();
    await settle(1000);
    const first = await snapshot(pid, dir, "before");
    await settle(1000);
    const rssBefore = sampleProc(pid).rssBytes;
    spacesBefore = await heapSpaces(metricsUrl);
    const c = await lg.connect({ count, rate: 5000, shape, probeEvery: 1e9 });
    ready = c.ready;
    await settle(3000);
    const rssAfter = sampleProc(pid).rssBytes;
    spacesAfter = await heapSpaces(metricsUrl);
    rssGrowth = rssAfter - rssBefore;
    const second = await snapshot(pid, dir, "after");
    const a = tally(first);
    const b = tally(second);
    heapGrowth = b.total - a.total;
    rows = [...b.kinds]
      .map(([kind, v]) => {
        const was = a.kinds.get(kind) ?? { count: 0, bytes: 0 };
        return { kind, count: v.count - was.count, bytes: v.bytes - was.bytes };
      })
      .filter((r) => r.bytes > 0)
      .sort((x, y) => y.bytes - x.bytes);
  } finally {
    await lg.stop();
    await t.stop();
  }
  const per = (bytes: number) => (ready > 0 ? Math.round(bytes / ready) : 0);
  const top = rows.slice(0, 30);
  const shown = top.reduce((s, r) => s + r.bytes, 0);
  const md = [
    `# Where a${sse ? "n SSE" : ""} connection's memory goes — ${values.shape === "shared" ? "one shared channel" : "a personal channel"}`,
    "",
    `${ready.toLocaleString("en-US")} idle authenticated connections on one gateway, each subscribed to ${values.shape === "shared" ? "one channel shared by all" : "its own channel"} (and its user subject).`,
    `Command: \`node --import tsx bench/heap.ts --connections ${count} --shape ${values.shape}${sse ? " --transport sse" : ""}\``,
    "",
    "| per connection | bytes |",
    "|---|---:|",
    `| RSS growth | ${per(rssGrowth).toLocaleString("en-US")} |`,
    `| V8 heap growth (live objects, after a full GC) | ${per(heapGrowth).toLocaleString("en-US")} |`,
    `| outside the V8 heap (uWS sockets and topics, malloc, V8 pages not yet reused) | ${per(rssGrowth - heapGrowth).toLocaleString("en-US")} |`,
    "",
    "V8 heap spaces, committed before → after connecting (MiB): " +
      [...spacesAfter].map(([space, after]) => `${space} ${((spacesBefore.get(space) ?? 0) / 2 ** 20).toFixed(1)} → ${(after / 2 ** 20).toFixed(1)}`).join(", ") +
      ".",
    "",
    "## V8 heap growth by kind (heap snapshot diff)",
    "",
    "`type:name` as the snapshot names it: `object:X` are instances of X, `closure:f` functions, `array:` and `hidden:` V8's internal arrays (Map/Set tables, properties, elements), `string:` strings.",
    "",
    "| kind | objects per connection | bytes per connection |",
    "|---|---:|---:|",
    ...top.map((r) => `| \`${r.kind}\` | ${(r.count / Math.max(1, ready)).toFixed(2)} | ${per(r.bytes)} |`),
    `| (everything else) | | ${per(heapGrowth - shown)} |`,
    "",
  ].join("\n");
  mkdirSync(values.out, { recursive: true });
  const outFile = join(values.out, `heap-per-connection-${values.shape}${sse ? "-sse" : ""}.md`);
  writeFileSync(outFile, md);
  process.stdout.write(`${md}\nwrote ${outFile}\n`);
}

runIfMain(import.meta.url, main);
