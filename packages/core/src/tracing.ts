/**
 * OpenTelemetry tracing, off unless an OTLP endpoint is configured through the
 * standard OTEL_* variables. When off, nothing is started and the hot path
 * checks one boolean instead of creating no-op spans.
 */
import { randomBytes } from "node:crypto";
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type Context,
  type Span,
  type Tracer,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { Env } from "./env.js";

export { SpanKind, SpanStatusCode, context, trace, type Context, type Span };

export interface Tracing {
  readonly enabled: boolean;
  readonly tracer: Tracer;
  shutdown(): Promise<void>;
}

export function tracingWanted(env: Env): boolean {
  if ((env["OTEL_SDK_DISABLED"] ?? "").toLowerCase() === "true") return false;
  if ((env["OTEL_TRACES_EXPORTER"] ?? "").toLowerCase() === "none") return false;
  return Boolean(env["OTEL_EXPORTER_OTLP_ENDPOINT"] || env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);
}

/**
 * Starts the OTel SDK when wanted. The SDK itself reads the standard OTEL_*
 * variables (endpoint, headers, sampler, resource attributes).
 */
export async function startTracing(env: Env, serviceName: string): Promise<Tracing> {
  // Trace context is propagated (passed through NATS headers) even when we
  // export nothing, so a tracing-enabled hop further on still sees the parent.
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  if (!tracingWanted(env)) {
    return { enabled: false, tracer: trace.getTracer(serviceName), shutdown: async () => {} };
  }
  const { NodeSDK } = await import("@opentelemetry/sdk-node");
  const { OTLPTraceExporter } = await import("@opentelemetry/exporter-trace-otlp-http");
  const sdk = new NodeSDK({
    serviceName: env["OTEL_SERVICE_NAME"] ?? serviceName,
    traceExporter: new OTLPTraceExporter(),
    instrumentations: [],
  });
  sdk.start();
  return {
    enabled: true,
    tracer: trace.getTracer(serviceName),
    shutdown: () => sdk.shutdown(),
  };
}

/** Writes W3C trace headers of `ctx` into a plain header record. */
export function injectTraceHeaders(ctx: Context, headers: Record<string, string>): void {
  propagation.inject(ctx, headers);
}

/** Reads a parent context from headers looked up through `get`. */
export function extractTraceContext(get: (name: string) => string | undefined): Context {
  return propagation.extract(ROOT_CONTEXT, null, {
    get: (_carrier, key) => get(key),
    keys: () => ["traceparent", "tracestate"],
  });
}

/** A fresh, unsampled W3C traceparent for messages published with tracing off. */
export function newTraceparent(): string {
  return `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-00`;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
export function isTraceparent(value: string | undefined): value is string {
  return value !== undefined && TRACEPARENT.test(value) && !/^[0-9a-f]{2}-0{32}-/.test(value);
}
