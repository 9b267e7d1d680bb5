/** /healthz, /readyz and /metrics on a uWS app (the service port or METRICS_PORT). */
import type { Registry } from "prom-client";
import type { HttpResponse, TemplatedApp } from "./uws.js";

export interface HealthSource {
  /** True when the broker is connected and the gateway is not draining. */
  ready(): boolean;
  readyDetail(): Record<string, unknown>;
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
    const ok = health.ready();
    sendJson(res, ok ? "200 OK" : "503 Service Unavailable", { status: ok ? "ready" : "not ready", ...health.readyDetail() });
  });
  app.get("/metrics", (res) => {
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    registry.metrics().then(
      (text) => {
        if (aborted) return;
        res.cork(() => res.writeStatus("200 OK").writeHeader("Content-Type", registry.contentType).end(text));
      },
      (err: Error) => {
        if (!aborted) sendJson(res, "500 Internal Server Error", { error: { code: "internal", message: err.message } });
      },
    );
  });
}
