/**
 * Operational endpoints: /healthz (process alive), /readyz (broker connected
 * and not draining) and /metrics (Prometheus text).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { newRegistry } from "@herald/core";
import { sendJson } from "./http-error.js";

export type Registry = ReturnType<typeof newRegistry>;

export interface Readiness {
  readonly brokerConnected: boolean;
  readonly draining: boolean;
}

export async function handleOps(
  name: "healthz" | "readyz" | "metrics",
  req: IncomingMessage,
  res: ServerResponse,
  state: Readiness,
  registry: Registry,
): Promise<void> {
  switch (name) {
    case "healthz":
      sendJson(res, 200, { status: "ok" });
      return;
    case "readyz": {
      if (state.draining) sendJson(res, 503, { status: "unavailable", reason: "draining" });
      else if (!state.brokerConnected) sendJson(res, 503, { status: "unavailable", reason: "broker_disconnected" });
      else sendJson(res, 200, { status: "ok" });
      return;
    }
    case "metrics": {
      const text = await registry.metrics();
      if (res.headersSent || res.destroyed) return;
      res.statusCode = 200;
      res.setHeader("Content-Type", registry.contentType);
      res.setHeader("Content-Length", Buffer.byteLength(text));
      res.setHeader("Cache-Control", "no-store");
      res.end(req.method === "HEAD" ? undefined : text);
      return;
    }
  }
}
