/**
 * Operational endpoints: /healthz (process alive), /readyz (broker connected
 * and not draining) and /metrics (Prometheus text).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { MetricsCache, readinessReply, type ReadinessState, type newRegistry } from "@herald/core";
import { sendJson } from "./http-error.js";

export type Registry = ReturnType<typeof newRegistry>;

export async function handleOps(
  name: "healthz" | "readyz" | "metrics",
  req: IncomingMessage,
  res: ServerResponse,
  state: ReadinessState,
  registry: Registry,
): Promise<void> {
  switch (name) {
    case "healthz":
      sendJson(res, 200, { status: "ok" });
      return;
    case "readyz": {
      const reply = readinessReply(state);
      sendJson(res, reply.status, reply.body);
      return;
    }
    case "metrics": {
      const cache = cacheFor(registry);
      const body = cache.cached() ?? (await cache.get());
      if (res.headersSent || res.destroyed) return;
      res.statusCode = 200;
      res.setHeader("Content-Type", cache.contentType);
      res.setHeader("Content-Length", body.length);
      res.setHeader("Cache-Control", "no-store");
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
  }
}

/**
 * Concurrent scrapes share one render; bursts get the latest one (issue 8). Keyed
 * by registry: the API port and METRICS_PORT serve the same registry and so
 * share one cache.
 */
const caches = new WeakMap<Registry, MetricsCache>();
function cacheFor(registry: Registry): MetricsCache {
  let cache = caches.get(registry);
  if (!cache) {
    cache = new MetricsCache(registry);
    caches.set(registry, cache);
  }
  return cache;
}
