/**
 * What the presence registry costs per member (issue 12): heap bytes per
 * member of one channel of 100,000 (local members, and remote ones with
 * strings parsed from the wire), the time of presence_stats and of a walk
 * through every page. A microbenchmark of one data structure, not the
 * issue's cluster benchmark.
 *
 *   node --expose-gc --import tsx bench/presence-registry.ts
 */
import { PresenceRegistry } from "../services/gateway/src/presence-registry.js";

const N = 100_000;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

function heapPerMember(fill: (r: PresenceRegistry) => void): { bytes: number; registry: PresenceRegistry } {
  gc!();
  const before = process.memoryUsage().heapUsed;
  const registry = new PresenceRegistry();
  fill(registry);
  gc!();
  return { bytes: (process.memoryUsage().heapUsed - before) / registry.size, registry };
}

// Local members: sub and connection id are strings the connection holds anyway.
const subs = Array.from({ length: N }, (_, i) => `user-${i}`);
const conns = Array.from({ length: N }, (_, i) => `k3J9dQx0${i.toString(36).padStart(8, "0")}`);
const local = heapPerMember((r) => {
  for (let i = 0; i < N; i++) r.join("big.1", subs[i]!, conns[i]!, undefined, "self");
});
// Remote members: every string is new, parsed from a change batch.
const remote = heapPerMember((r) => {
  for (let i = 0; i < N; i++) {
    const [channel, connection, sub, info] = JSON.parse(`["big.1","r3J9dQx0${i.toString(36).padStart(8, "0")}","user-${i}","{\\"n\\":${i}}"]`) as string[];
    r.join(channel!, sub!, connection!, info, "peer");
  }
});

const r = local.registry;
let t = process.hrtime.bigint();
for (let k = 0; k < 10_000; k++) r.stats("big.1");
const statsUs = Number(process.hrtime.bigint() - t) / 1e3 / 10_000;
t = process.hrtime.bigint();
let after = 0;
let pages = 0;
for (;;) {
  const page = r.page("big.1", after, 1000);
  pages++;
  if (!page.more) break;
  after = page.members[page.members.length - 1]!.seq;
}
const walkMs = Number(process.hrtime.bigint() - t) / 1e6;
console.log(`local member: ${local.bytes.toFixed(0)} B; remote member with its strings: ${remote.bytes.toFixed(0)} B (${N.toLocaleString("en")} in one channel)`);
console.log(`presence_stats: ${statsUs.toFixed(2)} µs; walk of ${pages} pages of 1,000: ${walkMs.toFixed(1)} ms`);
console.log(`(kept alive: ${remote.registry.size + r.size} members)`);
