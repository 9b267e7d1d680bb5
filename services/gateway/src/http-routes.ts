/** /healthz, /readyz and /metrics on a uWS app (the service port or METRICS_PORT). */
import { MetricsCache, errorBody, readinessReply, type ReadinessState } from "@herald/core";
import type { Registry } from "prom-client";
import type { HttpResponse, TemplatedApp } from "./uws.js";

/** What /readyz reports: the shared readiness state, plus the gateway's own fields. */
export interface HealthSource extends ReadinessState {
  detail(): Record<string, unknown>;
}

export function sendJson(res: HttpResponse, status: string, body: unknown, headers: Record<string, string> = {}): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader("Content-Type", "application/json");
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    res.end(JSON.stringify(body));
  });
}

export function attachOperationalRoutes(app: TemplatedApp, health: HealthSource, registry: Registry): void {
  app.get("/healthz", (res) => sendJson(res, "200 OK", { status: "ok" }));
  app.get("/readyz", (res) => {
    const reply = readinessReply(health, health.detail());
    sendJson(res, reply.ready ? "200 OK" : "503 Service Unavailable", reply.body);
  });
  // Concurrent scrapes share one render; bursts get the latest one (issue 8).
  const cache = new MetricsCache(registry);
  const reply = (res: HttpResponse, body: Buffer): void => {
    res.cork(() => res.writeStatus("200 OK").writeHeader("Content-Type", cache.contentType).writeHeader("Cache-Control", "no-store").end(body));
  };
  app.get("/metrics", (res) => {
    // Over the render budget the answer is synchronous: no render, no promise.
    const cached = cache.cached();
    if (cached) {
      reply(res, cached);
      return;
    }
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    cache.get().then(
      (body) => {
        if (!aborted) reply(res, body);
      },
      (err: Error) => {
        if (!aborted) sendJson(res, "500 Internal Server Error", errorBody("internal", err.message));
      },
    );
  });
}
