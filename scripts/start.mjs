#!/usr/bin/env node
/**
 * `npm start`: the all-in-one first look. Builds if needed, then runs a
 * gateway and a publisher in ONE process sharing the in-process memory broker
 * (or NATS when NATS_URL is set), and prints everything a new user needs to
 * see a message arrive: URLs, a ready-to-paste token and a curl command.
 *
 * Every setting of both services still applies (GATEWAY_PORT, PUBLISHER_PORT,
 * JWT_SECRET, ...), plus DEMO_PORT and DEMO_HOST for the demo page. Missing
 * secrets are generated for this run only. Unlike the services alone, it
 * listens on 127.0.0.1 unless GATEWAY_HOST / PUBLISHER_HOST / DEMO_HOST say
 * otherwise: the demo page's /token hands a full-rights token to anyone who
 * can reach it.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { listenFailure } from "./lib/listen-failure.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// tsc -b is incremental: this is a no-op when the build is current.
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-b"], { cwd: root, stdio: "inherit" });

const { processEnv, runService, serviceApp } = await import("@herald/core");
const { brokerFor } = await import("@herald/broker");
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
// This machine only, unless a host is set explicitly (an empty value counts as unset, as for every setting).
const LOOPBACK = "127.0.0.1";
for (const name of ["GATEWAY_HOST", "PUBLISHER_HOST", "DEMO_HOST"]) {
  if (!demoEnv[name]?.trim()) demoEnv[name] = LOOPBACK;
}
const demoHost = demoEnv.DEMO_HOST.trim();
// Browsers on this machine (the demo page, your own app on a dev server) may connect.
demoEnv.ALLOWED_ORIGINS ??= [
  `http://localhost:${demoPort}`, `http://127.0.0.1:${demoPort}`,
  "http://localhost:3000", "http://localhost:5173",
].join(",");

// Presence on out of the box: channels `room.*` list who is on them, live
// (join/leave frames); every other channel behaves as with no namespaces.
// Your own NAMESPACES / NAMESPACES_FILE replace this (the page then starts on `demo` only).
const DEMO_NAMESPACES = { room: { presence: true, join_leave: true }, "": {} };
const ownNamespaces = Boolean(demoEnv.NAMESPACES?.trim() || demoEnv.NAMESPACES_FILE?.trim());
if (!ownNamespaces) demoEnv.NAMESPACES = JSON.stringify(DEMO_NAMESPACES);
const demoChannels = ownNamespaces ? ["demo"] : ["demo", "room.lobby"];

const canSign = Boolean(demoEnv.JWT_SECRET);
const demoToken = (lifetime) =>
  new SignJWT({ channels: [">"], publish: [">"], info: { name: "Demo user" } })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject("demo-user")
    .setIssuedAt()
    .setExpirationTime(lifetime)
    .sign(new TextEncoder().encode(demoEnv.JWT_SECRET ?? ""));

/** Where each app listens, for the one-line listen failure (`where` may depend on the error: two ports). */
const listenPlaces = new Map();
/** Filled in as the apps listen. */
let gwPort, pubPort, demo;

// The same process shell as each service alone (signals, drain order, exit
// codes): both apps drain, then the one broker they share, once.
await runService({
  name: "herald",
  env: demoEnv,
  readConfig(e) {
    const gateway = readGatewayConfig(e);
    // METRICS_PORT is the gateway's here: both services reading it would race for the same port.
    const publisher = readPublisherConfig({ ...e, METRICS_PORT: undefined });
    return { gateway, publisher, logLevel: gateway.logLevel, drainSeconds: Math.max(gateway.drainSeconds, publisher.drainSeconds) };
  },
  createBroker: (config, logger) => brokerFor(config.gateway, logger, "herald-all-in-one"),
  build({ config, broker, logger, tracing }) {
    const { gateway: gatewayConfig, publisher: publisherConfig } = config;
    const gateway = buildGateway({ config: gatewayConfig, broker, logger: logger.child({ component: "gateway" }), tracing });
    const publisher = buildPublisher({ config: publisherConfig, broker, logger: logger.child({ component: "publisher" }), tracing });
    const apps = [
      serviceApp("gateway", gateway, (bound) => (gwPort = bound.port)),
      serviceApp("publisher", publisher, (bound) => (pubPort = bound.port)),
    ];
    // The gateway opens GATEWAY_PORT, then METRICS_PORT when set; its error names the port that failed.
    listenPlaces.set("gateway", (err) => ({
      service: "gateway",
      host: gatewayConfig.host,
      ...(gatewayConfig.metricsPort !== undefined && String(err?.message).includes(`:${gatewayConfig.metricsPort} `)
        ? { variable: "METRICS_PORT", port: gatewayConfig.metricsPort }
        : { variable: "GATEWAY_PORT", port: gatewayConfig.port }),
    }));
    listenPlaces.set("publisher", () => ({ service: "publisher", variable: "PUBLISHER_PORT", host: publisherConfig.host, port: publisherConfig.port }));
    if (canSign) {
      // The demo page: a static page using @herald/client, which fetches fresh
      // short-lived tokens from the demo server (a token provider, as a real app would).
      listenPlaces.set("demo page", () => ({ service: "demo page", variable: "DEMO_PORT", host: demoHost, port: demoPort }));
      apps.push({
        name: "demo page",
        async listen() {
          const { startDemoServer } = await import("./demo-server.mjs");
          demo = await startDemoServer({
            port: demoPort,
            host: demoHost,
            gatewayUrl: `ws://${shownHost(gatewayConfig.host)}:${gwPort}/ws`,
            publisherUrl: `http://${shownHost(publisherConfig.host)}:${pubPort}`,
            token: () => demoToken("1h"),
            channels: demoChannels,
          });
        },
        drain: async () => demo?.close(),
      });
    }
    return apps;
  },
  // One line naming the port and the variable that moves it (then exit 1), not a stack trace.
  listenFailed(app, err) {
    console.error(listenFailure(listenPlaces.get(app.name)(err), err));
  },
  started: ({ config, broker }) => banner(config.gateway, config.publisher, broker),
});

/**
 * Everything listens; with NATS, "running" waits until the broker is
 * connected (it keeps retrying), so the banner never promises a Herald that
 * cannot deliver.
 */
async function banner(gatewayConfig, publisherConfig, broker) {
  const token = canSign ? await demoToken("24h") : "";
  if (broker.kind === "nats" && !broker.connected) {
    const where = broker.shownServers.join(",");
    process.stdout.write(`\nHerald is waiting for NATS at ${where} (NATS_URL); retrying until it answers. Ctrl-C stops.\n`);
    await new Promise((resolve) => {
      const off = broker.onStatus((status) => {
        if (status === "connected") {
          off();
          resolve(undefined);
        }
      });
      if (broker.connected) resolve(undefined);
    });
  }

  const gwUrl = `${shownHost(gatewayConfig.host)}:${gwPort}`;
  const pubUrl = `${shownHost(publisherConfig.host)}:${pubPort}`;
  const lines = [
    "",
    "Herald is running (all-in-one: gateway + publisher in one process, " +
      (broker.kind === "nats" ? `NATS at ${broker.shownServers.join(",")})` : "in-process memory broker)"),
    "",
    ...(demo ? [`  demo: http://${shownHost(demoHost)}:${demo.port}/   <- open this in a browser`, ""] : []),
    ...(ownNamespaces ? [] : ["  Presence    channels room.* list who is on them (the demo page joins room.lobby; open it twice)", ""]),
    `  WebSocket   ws://${gwUrl}/ws`,
    `  Publish API http://${pubUrl}/v1/channels/{channel}/messages`,
    `  Health      http://${gwUrl}/readyz   Metrics http://${gwUrl}/metrics`,
    "",
    ...exposureLines(gatewayConfig, publisherConfig),
    "",
  ];
  if (generated.JWT_SECRET) lines.push(`  JWT_SECRET (generated for this run)        ${generated.JWT_SECRET}`);
  if (generated.PUBLISHER_API_KEY) lines.push(`  PUBLISHER_API_KEY (generated for this run) ${generated.PUBLISHER_API_KEY}`);
  if (canSign) {
    lines.push(
      "",
      "1) Watch a channel (in a second terminal):",
      `   npm run watch -- demo --url ws://${gwUrl}/ws --token ${token}`,
      "",
      "2) Publish to it (in a third terminal):",
      `   curl -i -X POST http://${pubUrl}/v1/channels/demo/messages \\`,
      `     -H 'Authorization: Bearer ${demoEnv.PUBLISHER_API_KEY}' -H 'Content-Type: application/json' \\`,
      `     -d '{"text":"hello from Herald"}'`,
      "",
      "A demo token (sub demo-user, every channel, 24 h):",
      `   ${token}`,
    );
  }
  lines.push("", "Ctrl-C stops both services.", "");
  process.stdout.write(lines.join("\n") + "\n");
}

/** A host as a URL shows it: the wildcard addresses are reachable as localhost. */
function shownHost(host) {
  if (!host || host === "0.0.0.0" || host === "::") return "localhost";
  return host.includes(":") ? `[${host}]` : host;
}

function isLoopback(host) {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Where the all-in-one can be reached from, and what that means for the demo token endpoint. */
function exposureLines(gatewayConfig, publisherConfig) {
  const open = [
    ["GATEWAY_HOST", gatewayConfig.host],
    ["PUBLISHER_HOST", publisherConfig.host],
    ...(demo ? [["DEMO_HOST", demoHost]] : []),
  ].filter(([, host]) => !isLoopback(host));
  if (open.length === 0) {
    return [
      `  Listening on ${LOOPBACK} only (this machine). To expose it, set GATEWAY_HOST=0.0.0.0`,
      "  (and PUBLISHER_HOST / DEMO_HOST) — the demo token endpoint then gives anyone full rights.",
    ];
  }
  const lines = [`  Reachable from other machines: ${open.map(([name, host]) => `${name}=${host}`).join(", ")}.`];
  if (open.some(([name]) => name === "DEMO_HOST")) {
    lines.push(`  WARNING: anyone who reaches http://${shownHost(demoHost)}:${demo.port}/token gets a token with full rights.`);
  }
  return lines;
}
