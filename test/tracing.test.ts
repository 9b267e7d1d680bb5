/**
 * Tracing (issue 2): with an OTLP endpoint configured, the publisher's span
 * continues the caller's trace, the trace travels in the NATS `traceparent`
 * header, and the gateway's fan-out span is its child; upgrades get a span.
 * A small OTLP/HTTP (JSON) receiver stands in for the collector.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { after, before, describe, test } from "node:test";
import { startNats, type NatsServer } from "./helpers/nats.js";
import { GATEWAY_MAIN, missingBuild, startGateway, startPublisher, waitFor, type ServiceProcess } from "./helpers/procs.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { connect } from "./helpers/ws.js";

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes?: Array<{ key: string; value: Record<string, unknown> }>;
}

const API_KEY = "tracing-test-api-key-0123456789";

describe("tracing through publisher, NATS and gateway", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  let receiver: Server;
  let endpoint: string;
  const spans: Array<OtlpSpan & { service: string }> = [];
  let nats: NatsServer;
  let gw: ServiceProcess;
  let pub: ServiceProcess;

  before(async () => {
    receiver = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (req.url === "/v1/traces" && (req.headers["content-type"] ?? "").includes("json")) {
          const body = JSON.parse(Buffer.concat(chunks).toString()) as {
            resourceSpans: Array<{
              resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
              scopeSpans: Array<{ spans: OtlpSpan[] }>;
            }>;
          };
          for (const rs of body.resourceSpans) {
            const service = rs.resource.attributes.find((a) => a.key === "service.name")?.value.stringValue ?? "?";
            for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ ...span, service });
          }
        }
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
    nats = await startNats();
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_BSP_SCHEDULE_DELAY: "100" };
    gw = await startGateway({ NATS_URL: nats.url, JWT_SECRET: TEST_SECRET, ...otel });
    pub = await startPublisher({ NATS_URL: nats.url, PUBLISHER_API_KEY: API_KEY, ...otel });
  });

  after(async () => {
    await Promise.all([gw?.stop(), pub?.stop()]);
    await nats?.stop();
    await new Promise((r) => receiver?.close(r));
  });

  test("publisher span continues the caller's trace; the gateway fan-out span is its child", async () => {
    const client = await connect(gw.wsUrl, { token: await hsToken({ sub: "tracer", channels: ["traced"] }) });
    assert.equal((await client.request({ type: "subscribe", channel: "traced", id: 1 })).type, "subscribed");

    const traceId = randomBytes(16).toString("hex");
    const callerSpanId = randomBytes(8).toString("hex");
    const res = await fetch(`${pub.url}/v1/channels/traced/messages`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${API_KEY}`,
        "content-type": "application/json",
        traceparent: `00-${traceId}-${callerSpanId}-01`,
      },
      body: JSON.stringify({ traced: true }),
    });
    assert.equal(res.status, 202);
    assert.deepEqual((await client.next((f) => f.type === "message")).data, { traced: true });
    await client.close();

    const publishSpan = await waitFor(() => spans.find((s) => s.traceId === traceId && s.parentSpanId === callerSpanId), {
      timeoutMs: 15_000,
      message: "the publisher exported a span continuing the caller's trace",
    });
    assert.equal(publishSpan.service, "herald-publisher");
    const fanout = await waitFor(() => spans.find((s) => s.traceId === traceId && s.name === "herald.fanout"), {
      timeoutMs: 15_000,
      message: "the gateway exported a fan-out span in the same trace",
    });
    assert.equal(fanout.parentSpanId, publishSpan.spanId, "fan-out is a child of the publish span (traceparent in NATS headers)");
    assert.equal(fanout.service, "herald-gateway");
    const recipients = fanout.attributes?.find((a) => a.key === "herald.recipients")?.value;
    assert.equal(Number(recipients?.["intValue"]), 1, "the span counts the recipients");
    assert.ok(spans.some((s) => s.name === "herald.upgrade" && s.service === "herald-gateway"), "upgrades are traced");
  });
});
