#!/usr/bin/env node
/**
 * The load generator as a CLI, for any deployment (local or remote).
 *
 *   node --import tsx bench/loadgen.ts \
 *     --url ws://127.0.0.1:8080/ws[,ws://127.0.0.1:8081/ws] --secret $JWT_SECRET \
 *     --connections 10000 --connect-rate 2000 --shape shared:bench \
 *     --publish nats://127.0.0.1:4222 --rate 100 --size 64 --seconds 10 \
 *     --workers 2 --server-pid 1234,1235 --out result.json
 *
 * --proto herald|nats      client protocol (nats = NATS over WebSocket, e.g. nats-server's websocket listener)
 * --secret S | --token T   Herald: sign one HS256 token per user with S, or send T on every connection
 * --nats-token T           NATS over WebSocket: CONNECT auth_token
 * --shape shared:<ch> | per-user | groups:<k>
 * --publish nats://… | http://publisher:8081 (with --api-key K; POST /v1/channels/<ch>/messages)
 * --rate a,b,c             one measured phase per rate (msg/s over all channels)
 * --probe-every N          every N-th socket decodes payloads for latency and sequence gaps (default 100)
 * --spread-local           bind client sockets to 127.0.0.2-250 (default: on when the URL host is loopback)
 * --server-pid / --broker-pid  local processes to read CPU seconds and RSS from /proc
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { LoadGen, type TargetSpec } from "./lib/loadgen.js";
import type { Shape } from "./lib/protocol.js";
import type { PublishVia } from "./lib/publisher.js";
import { describeMachine } from "./lib/machine.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    proto: { type: "string", default: "herald" },
    secret: { type: "string" },
    token: { type: "string" },
    "nats-token": { type: "string" },
    "subject-prefix": { type: "string", default: "herald" },
    connections: { type: "string", default: "1000" },
    "connect-rate": { type: "string", default: "0" },
    inflight: { type: "string", default: "500" },
    shape: { type: "string", default: "shared:bench" },
    publish: { type: "string" },
    "api-key": { type: "string" },
    "publish-token": { type: "string" },
    rate: { type: "string", default: "100" },
    size: { type: "string", default: "64" },
    seconds: { type: "string", default: "10" },
    workers: { type: "string" },
    "probe-every": { type: "string", default: "100" },
    "spread-local": { type: "boolean" },
    "server-pid": { type: "string", default: "" },
    "broker-pid": { type: "string", default: "" },
    out: { type: "string" },
    quiet: { type: "boolean", default: false },
  },
});

if (!values.url) {
  process.stderr.write("usage: node --import tsx bench/loadgen.ts --url ws://host:port/ws --secret S [options]; see the header of bench/loadgen.ts\n");
  process.exit(2);
}
const urls = values.url.split(",").map((u) => new URL(u));
const loopback = urls.every((u) => u.hostname === "localhost" || u.hostname.startsWith("127."));
const [kind, arg] = values.shape.split(":");
const shape: Shape = kind === "per-user" ? { kind: "per-user" } : kind === "groups" ? { kind: "groups", k: Number(arg ?? 10) } : { kind: "shared", channel: arg ?? "bench" };
const pids = (s: string) => s.split(",").filter(Boolean).map(Number);
let publish: PublishVia | undefined;
if (values.publish?.startsWith("http")) publish = { kind: "http", url: values.publish, apiKey: values["api-key"] ?? "" };
else if (values.publish) publish = { kind: "nats", url: values.publish, subjectPrefix: values["subject-prefix"], ...(values["publish-token"] ? { token: values["publish-token"] } : {}) };

const spec: TargetSpec = {
  name: "target",
  proto: values.proto === "nats" ? "nats" : "herald",
  endpoints: urls.map((u) => ({ host: u.hostname, port: Number(u.port || 80), path: u.pathname + u.search })),
  subjectPrefix: values["subject-prefix"],
  publish: publish ?? { kind: "nats", url: "nats://127.0.0.1:4222", subjectPrefix: values["subject-prefix"] },
  serverPids: pids(values["server-pid"]),
  brokerPids: pids(values["broker-pid"]),
  spreadLocal: values["spread-local"] ?? loopback,
  ...(values.secret ? { secret: values.secret } : {}),
  ...(values.token ? { token: values.token } : {}),
  ...(values["nats-token"] ? { natsToken: values["nats-token"] } : {}),
};
if (spec.proto === "herald" && !spec.secret && !spec.token) {
  process.stderr.write("--secret or --token is required for --proto herald\n");
  process.exit(2);
}
const count = Number(values.connections);
const lg = new LoadGen(spec, Number(values.workers ?? Math.max(2, Math.ceil(count / 15_000))));
lg.quiet = values.quiet;
const result: Record<string, unknown> = { kind: "herald-loadgen", startedAt: new Date().toISOString(), args: process.argv.slice(2), machine: describeMachine() };
try {
  await lg.start();
  const c = await lg.connect({ count, rate: Number(values["connect-rate"]), inflight: Number(values.inflight), shape, probeEvery: Number(values["probe-every"]) });
  process.stderr.write(`connect: ${c.ready}/${count} ready, ${c.failed} failed ${JSON.stringify(c.failures)}, ${Math.round(c.perSecond)}/s, handshake p50 ${c.handshakeMs.p50} ms p99 ${c.handshakeMs.p99} ms\n`);
  result["connect"] = c;
  const phases = [];
  if (publish) {
    for (const rate of values.rate.split(",").map(Number)) {
      const p = await lg.phase({ rate, size: Number(values.size), seconds: Number(values.seconds) });
      process.stderr.write(
        `rate ${rate}/s × ${values.size} B: ${p.deliveriesPerSecond} deliveries/s, loss ${(p.lossRatio * 100).toFixed(2)}%, ` +
          `p50 ${p.latencyMs.p50} p99 ${p.latencyMs.p99} p99.9 ${p.latencyMs.p999} ms, server CPU ${p.serverCpuPercent}%, generator CPU ${p.generatorCpuPercent}%\n`,
      );
      phases.push(p);
    }
  }
  result["phases"] = phases;
} finally {
  await lg.stop();
}
const json = JSON.stringify(result, null, 2) + "\n";
if (values.out) writeFileSync(values.out, json);
else process.stdout.write(json);
process.exit(0);
