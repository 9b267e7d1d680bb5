/**
 * Quick sizing run (issue 2): N idle connections to one gateway process,
 * then a broadcast to all of them through NATS. Prints the gateway's RSS per
 * idle connection and the broadcast deliveries per second that clients saw.
 *
 *   node --import tsx bench/quick-10k.ts [connections=10000] [seconds=10] [rate=20]
 *
 * Traffic stays on loopback; client sockets are spread over 127.0.0.2-250.
 * The full benchmark suite (issue 4) supersedes this.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { SignJWT } from "jose";
import { connect } from "nats";
import WebSocket from "ws";

const N = Number(process.argv[2] ?? 10_000);
const SECONDS = Number(process.argv[3] ?? 10);
const RATE = Number(process.argv[4] ?? 20);
const SECRET = "quick-bench-secret-quick-bench-secret-0123";

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
const until = async (cond: () => boolean | Promise<boolean>, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
};
const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

const natsPort = await freePort();
const natsMon = await freePort();
const nats = spawn("nats-server", ["-a", "127.0.0.1", "-p", String(natsPort), "-m", String(natsMon)], { stdio: "ignore" });
await until(async () => (await fetch(`http://127.0.0.1:${natsMon}/healthz`).catch(() => null))?.ok === true);

const port = await freePort();
const gw = spawn(process.execPath, ["services/gateway/dist/main.js"], {
  env: { PATH: process.env.PATH, GATEWAY_PORT: String(port), JWT_SECRET: SECRET, NATS_URL: `nats://127.0.0.1:${natsPort}`, LOG_LEVEL: "warn", MAX_CONNECTIONS_PER_IP: "0" },
  stdio: "inherit",
});
const cleanup = () => {
  gw.kill("SIGKILL");
  nats.kill("SIGKILL");
};
process.on("exit", cleanup);
await until(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.ok === true);

const token = await new SignJWT({ channels: ["bench"] })
  .setProtectedHeader({ alg: "HS256" })
  .setSubject("bench")
  .setExpirationTime("2h")
  .sign(new TextEncoder().encode(SECRET));

const rssBefore = rssOf(gw.pid!);
let received = 0;
let subscribed = 0;
const clients: WebSocket[] = [];
const t0 = Date.now();
for (let i = 0; i < N; i++) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
    headers: { authorization: `Bearer ${token}` },
    localAddress: `127.0.0.${2 + (i % 249)}`,
    perMessageDeflate: false,
  });
  ws.on("message", (data) => {
    const text = data.toString();
    if (text.startsWith('{"type":"message"')) received++;
    else if (text.startsWith('{"type":"subscribed"')) subscribed++;
    else if (text.startsWith('{"type":"welcome"')) ws.send('{"type":"subscribe","channel":"bench"}');
  });
  ws.on("error", (e) => console.error("client error", e.message));
  clients.push(ws);
  if (i % 500 === 499) await until(() => subscribed >= i - 400, 60_000);
}
await until(() => subscribed === N, 60_000);
const connectSecs = (Date.now() - t0) / 1000;
global.gc?.();
await new Promise((r) => setTimeout(r, 1000)); // let the gateway settle before reading RSS (measurement, not a test)
const rssAfter = rssOf(gw.pid!);

const nc = await connect({ servers: `127.0.0.1:${natsPort}` });
const payload = new TextEncoder().encode(JSON.stringify({ n: 0, pad: "x".repeat(40) }));
const start = Date.now();
received = 0;
let sent = 0;
while (Date.now() - start < SECONDS * 1000) {
  nc.publish("herald.ch.bench", payload);
  sent++;
  await new Promise((r) => setTimeout(r, 1000 / RATE));
}
await nc.flush();
await until(() => received >= sent * N, 30_000).catch(() => {});
const secs = (Date.now() - start) / 1000;
console.log(
  JSON.stringify({
    connections: N,
    connectSeconds: connectSecs,
    gatewayRssBeforeMiB: +(rssBefore / 2 ** 20).toFixed(1),
    gatewayRssAfterMiB: +(rssAfter / 2 ** 20).toFixed(1),
    idleBytesPerConnection: Math.round((rssAfter - rssBefore) / N),
    messagesPublished: sent,
    framesReceived: received,
    framesExpected: sent * N,
    deliveriesPerSecond: Math.round(received / secs),
  }),
);
await nc.close();
for (const c of clients) c.terminate();
cleanup();
process.exit(0);
