/**
 * MetricsCache (packages/core/src/metrics-cache.ts) on a real prom-client
 * Registry: a gauge's collect() runs once per render, so it counts renders.
 * The process-level behaviour (a real gateway under a burst of scrapes) is
 * in metrics-scrape.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Gauge, Registry } from "prom-client";
import { METRICS_CACHE_MS, METRICS_RENDER_BURST, MetricsCache } from "@herald/core";
import { waitFor } from "./helpers/wait.js";

function countingRegistry(): { registry: Registry; renders: () => number; failNext: () => void } {
  const registry = new Registry();
  let renders = 0;
  let fail = false;
  new Gauge({
    name: "test_renders",
    help: "how often the registry was rendered",
    registers: [registry],
    collect() {
      renders++;
      if (fail) {
        fail = false;
        throw new Error("collect failed");
      }
      this.set(renders);
    },
  });
  return { registry, renders: () => renders, failNext: () => (fail = true) };
}

test("metrics cache: concurrent scrapes share one render", async () => {
  const { registry, renders } = countingRegistry();
  const cache = new MetricsCache(registry);
  assert.equal(cache.cached(), undefined, "nothing cached before the first scrape");
  const bodies = await Promise.all(Array.from({ length: 100 }, () => cache.get()));
  assert.equal(renders(), 1, "100 concurrent scrapes, one render");
  assert.ok(bodies.every((b) => b === bodies[0]));
  assert.match(bodies[0]!.toString(), /^test_renders 1$/m);
  assert.equal(cache.contentType, registry.contentType);
});

test("metrics cache: fresh renders up to the budget, then the latest render until the window passes", async () => {
  const { registry, renders } = countingRegistry();
  // A long window: the loop certainly runs inside it.
  const cache = new MetricsCache(registry, 60_000, METRICS_RENDER_BURST);
  for (let i = 1; i <= METRICS_RENDER_BURST; i++) {
    assert.equal(cache.cached(), undefined, `render ${i} is within the budget`);
    assert.match((await cache.get()).toString(), new RegExp(`^test_renders ${i}$`, "m"), "a sequential scrape is always fresh up to the budget");
  }
  const last = cache.cached();
  assert.ok(last, "budget spent: the latest render is served");
  assert.equal(await cache.get(), last);
  assert.equal(renders(), METRICS_RENDER_BURST);

  // A short window: the budget comes back once the oldest render has aged out.
  const short = new MetricsCache(registry, 50, 2);
  await short.get();
  await short.get();
  assert.ok(short.cached(), "two renders spend a budget of two");
  await waitFor(() => short.cached() === undefined, { timeoutMs: 5_000, intervalMs: 10, message: "the window to pass" });
  const before = renders();
  await short.get();
  assert.equal(renders(), before + 1, "a new render after the window");
  assert.ok(METRICS_CACHE_MS > 0 && METRICS_CACHE_MS <= 5_000, "a brief window, far below a scrape interval");
});

test("metrics cache: a failed render reaches every waiter and is not cached", async () => {
  const { registry, renders, failNext } = countingRegistry();
  const cache = new MetricsCache(registry);
  failNext();
  const results = await Promise.allSettled([cache.get(), cache.get(), cache.get()]);
  assert.deepEqual(
    results.map((r) => r.status),
    ["rejected", "rejected", "rejected"],
  );
  assert.equal(renders(), 1, "the waiters shared the failing render");
  assert.equal(cache.cached(), undefined);
  assert.match((await cache.get()).toString(), /^test_renders 2$/m, "the next scrape renders again");
});
