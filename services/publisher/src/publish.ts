/**
 * Publishes one message to the broker with the Herald headers:
 * `Herald-Id`, `Herald-Published-At` (epoch ms) and W3C `traceparent`
 * (+ `tracestate`).
 *
 * With tracing on, a PRODUCER span `publish <route>` is started as a child of
 * the request's traceparent and its context is injected. With tracing off,
 * a valid incoming traceparent is forwarded unchanged, otherwise a fresh one
 * is generated, so the gateway always has a trace id to log and link.
 */
import { randomUUID } from "node:crypto";
import type { Broker } from "@herald/broker";
import {
  Header,
  SpanKind,
  extractTraceContext,
  injectTraceHeaders,
  isTraceparent,
  newTraceparent,
  SpanStatusCode,
  trace,
  type Tracing,
} from "@herald/core";

/** Longest tracestate forwarded (W3C allows 32 members of up to 256 chars, but 512 is the common cap). */
const MAX_TRACESTATE = 512;

export type HeaderLookup = (name: string) => string | undefined;

export interface PublishRequest {
  subject: string;
  route: "channel" | "user";
  body: Uint8Array;
  /** Reads an incoming HTTP request header (lower-case name). */
  incoming: HeaderLookup;
  /** The caller's Idempotency-Key, used as the message id; a fresh UUID otherwise. */
  id?: string | undefined;
}

export class MessagePublisher {
  constructor(
    private readonly broker: Broker,
    private readonly tracing: Tracing | undefined,
  ) {}

  /** Resolves with the message id once the broker accepted it; rejects with BrokerUnavailableError. */
  async publish(req: PublishRequest): Promise<string> {
    // With JetStream history the id is also the stream's dedupe id (Nats-Msg-Id),
    // so a retried request with the same Idempotency-Key is stored once.
    const id = req.id ?? randomUUID();
    const headers: Record<string, string> = {
      [Header.Id]: id,
      [Header.PublishedAt]: String(Date.now()),
    };
    if (!this.tracing?.enabled) {
      const parent = req.incoming(Header.TraceParent);
      if (isTraceparent(parent)) {
        headers[Header.TraceParent] = parent;
        const state = req.incoming(Header.TraceState);
        if (state && state.length <= MAX_TRACESTATE) headers[Header.TraceState] = state;
      } else {
        headers[Header.TraceParent] = newTraceparent();
      }
      await this.broker.publish(req.subject, req.body, headers);
      return id;
    }

    const parent = extractTraceContext(req.incoming);
    const span = this.tracing.tracer.startSpan(
      `publish ${req.route}`,
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          "messaging.system": "nats",
          "messaging.operation.type": "publish",
          "messaging.destination.name": req.subject,
          "messaging.message.id": id,
          "messaging.message.body.size": req.body.byteLength,
          "herald.route": req.route,
        },
      },
      parent,
    );
    injectTraceHeaders(trace.setSpan(parent, span), headers);
    try {
      await this.broker.publish(req.subject, req.body, headers);
      span.setStatus({ code: SpanStatusCode.OK });
      return id;
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
      throw err;
    } finally {
      span.end();
    }
  }
}
