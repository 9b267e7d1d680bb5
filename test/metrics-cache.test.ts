/**
 * MetricsCache (packages/core/src/metrics-cache.ts) on a real prom-client
 * Registry: a gauge's collect() runs once per render, so it counts renders.
 * The process-level behaviour (a real gateway under a burst of scrapes) is
 * in metrics-scrape.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Gauge, Registry } from "prom-client";
import { METRICS_CACHE_MS, MetricsCache } from "@herald/core";
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

test("metrics cache: concurrent scrapes share one render; later ones inside the window get the same bytes", async () => {
  const { registry, renders } = countingRegistry();
  const cache = new MetricsCache(registry);
  assert.equal(cache.fresh(), undefined, "nothing cached before the first scrape");
  const bodies = await Promise.all(Array.from({ length: 100 }, () => cache.get()));
  assert.equal(renders(), 1, "100 concurrent scrapes, one render");
  assert.ok(bodies.every((b) => b === bodies[0]));
  assert.match(bodies[0]!.toString(), /^test_renders 1$/m);
  assert.equal(cache.fresh(), bodies[0], "fresh right after the render");
  assert.equal(await cache.get(), bodies[0]);
  assert.equal(renders(), 1);
  assert.equal(cache.contentType, registry.contentType);
  assert.ok(METRICS_CACHE_MS > 0 && METRICS_CACHE_MS <= 5_000, "a brief window, far below a scrape interval");
});

test("metrics cache: renders again once the window has passed", async () => {
  const { registry, renders } = countingRegistry();
  const cache = new MetricsCache(registry, 50);
  const first = await cache.get();
  await waitFor(() => cache.fresh() === undefined, { timeoutMs: 5_000, intervalMs: 10, message: "the cached render to expire" });
  const second = await cache.get();
  assert.equal(renders(), 2);
  assert.match(second.toString(), /^test_renders 2$/m);
  assert.notEqual(second, first);
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
  assert.equal(cache.fresh(), undefined);
  assert.match((await cache.get()).toString(), /^test_renders 2$/m, "the next scrape renders again");
});
