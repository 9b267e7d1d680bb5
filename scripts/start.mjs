#!/usr/bin/env node
/**
 * `npm start`: the all-in-one first look. Builds if needed, then runs a
 * gateway and a publisher in ONE process sharing the in-process memory broker
 * (or NATS when NATS_URL is set), and prints everything a new user needs to
 * see a message arrive: URLs, a ready-to-paste token and a curl command.
 *
 * Every setting of both services still applies (GATEWAY_PORT, PUBLISHER_PORT,
 * JWT_SECRET, ...), plus DEMO_PORT for the demo page. Missing secrets are
 * generated for this run only.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// tsc -b is incremental: this is a no-op when the build is current.
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-b"], { cwd: root, stdio: "inherit" });

const { processEnv, createLogger, startTracing, ConfigError, Subjects } = await import("@herald/core");
const { createBroker } = await import("@herald/broker");
const { buildGateway, readGatewayConfig } = await import("@herald/gateway");
const { buildPublisher, readPublisherConfig } = await import("@herald/publisher");
const { SignJWT } = await import("jose");

const env = processEnv();
const generated = {};
const demoEnv = { ...env };
if (!demoEnv.JWT_SECRET && !demoEnv.JWT_PUBLIC_KEY && !demoEnv.JWT_JWKS_URL) {
  demoEnv.JWT_SECRET = generated.JWT_SECRET = randomBytes(32).toString("base64url");
}
if (!demoEnv.PUBLISHER_API_KEY) demoEnv.PUBLISHER_API_KEY = generated.PUBLISHER_API_KEY = randomBytes(24).toString("base64url");
const demoPort = Number(demoEnv.DEMO_PORT || 8082);
// Browsers on this machine (the demo page, your own app on a dev server) may connect.
demoEnv.ALLOWED_ORIGINS ??= [
  `http://localhost:${demoPort}`, `http://127.0.0.1:${demoPort}`,
  "http://localhost:3000", "http://localhost:5173",
].join(",");

let gatewayConfig, publisherConfig;
try {
  gatewayConfig = readGatewayConfig(demoEnv);
  publisherConfig = readPublisherConfig(demoEnv);
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`herald: config error: ${err.message}`);
    process.exit(2);
  }
  throw err;
}

const logger = createLogger("herald", gatewayConfig.logLevel);
const tracing = await startTracing(env, "herald");
const broker = createBroker({
  servers: gatewayConfig.natsServers,
  name: "herald-all-in-one",
  logger,
  history: gatewayConfig.history,
  subjects: new Subjects(gatewayConfig.subjectPrefix),
});
const gateway = buildGateway({ config: gatewayConfig, broker, logger: logger.child({ component: "gateway" }), tracing });
const publisher = buildPublisher({ config: publisherConfig, broker, logger: logger.child({ component: "publisher" }), tracing });
const { port: gwPort } = await gateway.listen();
const { port: pubPort } = await publisher.listen();

const canSign = Boolean(demoEnv.JWT_SECRET);
const demoToken = (lifetime) =>
  new SignJWT({ channels: [">"], publish: [">"] })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("demo-user")
    .setIssuedAt()
    .setExpirationTime(lifetime)
    .sign(new TextEncoder().encode(demoEnv.JWT_SECRET ?? ""));
const token = canSign ? await demoToken("24h") : "";

// The demo page: a static page using @herald/client, which fetches fresh
// short-lived tokens from the demo server (a token provider, as a real app would).
const { startDemoServer } = await import("./demo-server.mjs");
const demo = canSign
  ? await startDemoServer({
      port: demoPort,
      gatewayUrl: `ws://localhost:${gwPort}/ws`,
      publisherUrl: `http://localhost:${pubPort}`,
      token: () => demoToken("1h"),
    })
  : undefined;

const lines = [
  "",
  "Herald is running (all-in-one: gateway + publisher in one process, " +
    (broker.kind === "nats" ? `NATS at ${gatewayConfig.natsServers.join(",")})` : "in-process memory broker)"),
  "",
  ...(demo ? [`  demo: http://localhost:${demo.port}/   <- open this in a browser`, ""] : []),
  `  WebSocket   ws://localhost:${gwPort}/ws`,
  `  Publish API http://localhost:${pubPort}/v1/channels/{channel}/messages`,
  `  Health      http://localhost:${gwPort}/readyz   Metrics http://localhost:${gwPort}/metrics`,
  "",
];
if (generated.JWT_SECRET) lines.push(`  JWT_SECRET (generated for this run)        ${generated.JWT_SECRET}`);
if (generated.PUBLISHER_API_KEY) lines.push(`  PUBLISHER_API_KEY (generated for this run) ${generated.PUBLISHER_API_KEY}`);
if (canSign) {
  lines.push(
    "",
    "1) Watch a channel (in a second terminal):",
    `   npm run watch -- demo --url ws://localhost:${gwPort}/ws --token ${token}`,
    "",
    "2) Publish to it (in a third terminal):",
    `   curl -i -X POST http://localhost:${pubPort}/v1/channels/demo/messages \\`,
    `     -H 'Authorization: Bearer ${demoEnv.PUBLISHER_API_KEY}' -H 'Content-Type: application/json' \\`,
    `     -d '{"text":"hello from Herald"}'`,
    "",
    "A demo token (sub demo-user, every channel, 24 h):",
    `   ${token}`,
  );
}
lines.push("", "Ctrl-C stops both services.", "");
process.stdout.write(lines.join("\n") + "\n");

let stopping = false;
async function stop() {
  if (stopping) process.exit(1); // second Ctrl-C: leave now
  stopping = true;
  publisher.startDraining();
  await Promise.all([gateway.drain(), publisher.close(), demo?.close()]);
  await broker.close();
  await tracing.shutdown();
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
