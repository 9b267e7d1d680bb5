/**
 * The gateway app factory (kept apart from process concerns in main.ts, like
 * fastify's build()): uWS routes, authenticated upgrades, the protocol,
 * limits, interest-based fan-out, health and metrics, and graceful drain.
 */
import {
  CloseCode,
  Subjects,
  TokenVerifier,
  closeCodeLabel,
  createGatewayMetrics,
  newRegistry,
  errorBody,
  readinessReply,
  userMessageHead,
  welcomeFrame,
  type GatewayMetrics,
  type Logger,
  type Tracing,
  trace,
} from "@herald/core";
import type { Broker } from "@herald/broker";
import type { Registry } from "prom-client";
import type { GatewayConfig } from "./config.js";
import { holdsChannel, type TopicSink } from "./connection.js";
import { Fanout } from "./fanout.js";
import { attachOperationalRoutes, sendJson, type HealthSource } from "./http-routes.js";
import { IpLimiter, KeyedLimiter } from "./ip-limiter.js";
import { HeldTopics } from "./pre-welcome.js";
import { ProtocolHandler } from "./protocol-handler.js";
import { openWithSubs } from "./server-subs.js";
import { SocketGuard, backpressureCap, hardFrameCap } from "./socket-guard.js";
import { createUpgradeHandler } from "./upgrade.js";
import { SseHub } from "./sse-hub.js";
import { attachSseRoute } from "./sse-route.js";
import { ConnectionsByUser } from "./connections-by-user.js";
import { ControlResponder, newGatewayId } from "./control.js";
import { Presence } from "./presence.js";
import { Revocations } from "./revocations.js";
import { applyListenBacklog } from "./listen-backlog.js";
import { LISTEN_EXCLUSIVE_PORT, closeApp, uws, uwsCompression, type TemplatedApp, type us_listen_socket } from "./uws.js";
import type { WsConnection, WsUserData } from "./ws-connection.js";
import type { SseConnection } from "./sse-connection.js";

export interface GatewayOptions {
  config: GatewayConfig;
  broker: Broker;
  logger: Logger;
  tracing?: Tracing;
  registry?: Registry;
}

export interface Gateway {
  readonly registry: Registry;
  readonly metrics: GatewayMetrics;
  /** Open WebSocket connections. */
  readonly connections: number;
  readonly ready: boolean;
  /** Binds the ports; resolves with the bound ports (useful with port 0). */
  listen(): Promise<{ port: number; metricsPort?: number }>;
  /** SIGTERM behaviour: not ready, stop accepting, 1001 spread over drainSeconds. Never touches the broker. */
  drain(): Promise<void>;
  /** Immediate stop (tests): closes sockets and listeners, not the broker. */
  close(): void;
}

/** uWS.js takes (host, port, options, cb) too; its types only list (port, options, cb). */
type ListenWithHost = (host: string, port: number, options: number, cb: (ls: us_listen_socket | false) => void) => TemplatedApp;

/** Time between batches of 1001 closes while draining. */
const DRAIN_TICK_MS = 100;

const NO_TRACING: Tracing = { enabled: false, tracer: trace.getTracer("herald-gateway"), shutdown: async () => {} };

export function buildGateway(opts: GatewayOptions): Gateway {
  const { config, broker, logger } = opts;
  const tracing = opts.tracing ?? NO_TRACING;
  const registry = opts.registry ?? newRegistry();
  const metrics = createGatewayMetrics(registry);
  const subjects = new Subjects(config.subjectPrefix);
  const ipLimiter = new IpLimiter(config.maxConnectionsPerIp, config.ipv6LimitPrefix);
  const userLimiter = new KeyedLimiter(config.maxConnectionsPerUser);
  const sockets = new Set<WsConnection>();
  const users = new ConnectionsByUser();
  /** Upgrades in flight, and whether the gateway is draining (read by the upgrade handler). */
  const gate = { pending: 0, draining: false };
  let listenSockets: us_listen_socket[] = [];

  const app: TemplatedApp = uws.App();
  // Set below, with the socket guard: counts bytes written to topics for the send-buffer checks.
  let onTopicBytes: (bytes: number) => void = () => {};
  // uWS pub/sub copies each frame to every socket on the topic in C++;
  // connections still waiting for their welcome get theirs kept (pre-welcome.ts).
  const held = new HeldTopics();
  // SSE streams (sse-hub.ts) get each frame encoded once as event lines.
  const sse = new SseHub(config.sseKeepaliveMs);
  /** Every open connection, WebSockets and SSE streams. */
  const all: Iterable<WsConnection | SseConnection> = { *[Symbol.iterator]() { yield* sockets; yield* sse.streams; } };
  const open = () => sockets.size + sse.streams.size;
  const sink: TopicSink = {
    publish: (topic, frame) => {
      app.publish(topic, frame, false, config.compression !== "off");
      held.publish(topic, frame);
      sse.publish(topic, frame);
    },
    subscribers: (topic) => app.numSubscribers(topic) + held.count(topic) + sse.count(topic),
  };
  const gatewayId = newGatewayId();
  const presence: Presence = Presence.start({
    self: gatewayId,
    namespaces: config.namespaces,
    sink,
    metrics,
    error: (conn, code, message, id) => protocol.error(conn, code, message, id),
    share: { broker, subjects, logger, ttlMs: config.presenceTtlSeconds * 1000 },
  });
  const fanout = new Fanout({
    broker, sink, metrics, tracing, logger,
    membership: presence,
    writeDelayMs: config.writeDelayMs,
    onWritten: (bytes) => onTopicBytes(bytes),
    slowConsumerBytes: config.slowConsumerBytes,
  });
  const protocol = new ProtocolHandler({
    broker,
    fanout,
    presence,
    subjects,
    metrics,
    logger,
    namespaces: config.namespaces,
    maxChannelsPerConnection: config.maxChannelsPerConnection,
  });

  metrics.brokerConnected.set(broker.connected ? 1 : 0);
  const offStatus = broker.onStatus((status) => {
    metrics.brokerConnected.set(status === "connected" ? 1 : 0);
    if (status === "disconnected" && !gate.draining && open() > 0) {
      // Core NATS does not keep what is published while we are away; with
      // history the fan-out reads the gap back after the reconnect.
      metrics.drops.inc({ reason: "broker_disconnect" });
      logger.warn(
        { connections: open(), history: broker.history !== undefined },
        broker.history
          ? "broker disconnected: channel messages published meanwhile are read back from history on reconnect; direct user messages are lost"
          : "broker disconnected: messages published until the reconnect are lost for this gateway's clients (core NATS keeps nothing)",
      );
    }
  });

  // The history started a new life under this process (the stream was
  // recreated): every position it holds is void, and live frames restart
  // from low positions its streams and its clients would take for
  // duplicates. Connections on channels resume elsewhere or here (1001),
  // where their old epoch is answered recovered: false from the new positions.
  const offEpoch = broker.onEpochChange(({ stream, epoch }) => {
    const inWindow = (channel: string) => broker.history?.windowOf(subjects.channel(channel))?.stream === stream;
    let closed = 0;
    for (const conn of [...all]) {
      if (!holdsChannel(conn, inWindow)) continue;
      closed++;
      conn.close(CloseCode.GoingAway, "history restarted, resubscribe");
    }
    logger.warn({ stream, epoch, closed }, "history epoch changed: connections on its channels closed with 1001 to resume");
  });

  const control = new ControlResponder({
    id: gatewayId,
    broker,
    subjects,
    namespaces: config.namespaces,
    metrics,
    logger,
    sink,
    users,
    connections: open,
    topics: () => fanout.topics(),
    serverSubscribe: (conn, channel) => protocol.serverSubscribe(conn, channel),
    serverUnsubscribe: (conn, channel) => protocol.serverUnsubscribe(conn, channel),
    presence,
  });
  control.start();

  const revocations = new Revocations({ broker, historyStream: config.history.stream, users, connections: () => all, metrics, logger });
  revocations.start();

  const admissionDeps = {
    config,
    verifier: new TokenVerifier(config.auth),
    ipLimiter,
    userLimiter,
    metrics,
    logger,
    tracing,
    gate,
    openConnections: open,
    revocations,
  };
  const upgradeHandler = createUpgradeHandler(admissionDeps);
  attachSseRoute(app, { ...admissionDeps, broker, hub: sse, protocol, fanout, subjects, users, held });

  app.ws<WsUserData>("/ws", {
    // uWS drops frames over maxPayloadLength without a close frame (the
    // client only sees 1006). We let somewhat larger frames through and answer
    // those over MAX_PAYLOAD_BYTES ourselves with a proper 1009; only frames
    // beyond this hard cap are cut at the TCP level, which bounds what one
    // socket can make us buffer.
    maxPayloadLength: hardFrameCap(config.maxPayloadBytes),
    idleTimeout: config.idleTimeoutSeconds,
    sendPingsAutomatically: config.idleTimeoutSeconds > 0,
    // The sweep closes a socket with 4009 once it holds more than
    // SLOW_CONSUMER_BYTES. uWS itself only acts at maxBackpressure, where it
    // silently drops frames, the close frame included; the headroom (what
    // can pile up between two sweeps) keeps it from ever getting there first.
    maxBackpressure: backpressureCap(config.slowConsumerBytes),
    closeOnBackpressureLimit: 0,
    compression: uwsCompression(config.compression),

    upgrade: upgradeHandler,

    open: (ws) => {
      const { conn } = ws.getUserData();
      conn.bind(ws);
      sockets.add(conn);
      users.add(conn);
      metrics.connectionsOpen.inc();
      metrics.upgrades.inc({ result: "accepted", reason: "ok" });
      try {
        fanout.joinNow(conn, { topic: conn.userTopic, subject: subjects.user(conn.identity.sub), head: userMessageHead, name: conn.identity.sub });
        // The token's subs: the welcome waits for them and lists their positions.
        if (conn.identity.subs.length > 0) return openWithSubs(conn, { protocol, held, metrics, logger });
      } catch (err) {
        // Backstop: uWS hands an exception thrown here to uncaughtException,
        // where main.ts exits, and every socket of the process would see 1006.
        // Without its user subscription this socket cannot be served: a
        // proper close frame lets the client reconnect (1011, RFC 6455).
        logger.error({ err, connection: conn.id }, "connection setup failed");
        conn.close(CloseCode.InternalError, "connection setup failed");
        return;
      }
      conn.send(welcomeFrame(conn.identity.sub, conn.id));
    },

    message: (ws, message, isBinary) => {
      const { conn } = ws.getUserData();
      conn.heard();
      if (message.byteLength > config.maxPayloadBytes) {
        metrics.errors.inc({ code: "too_large" });
        conn.close(CloseCode.TooLarge, "frame too large");
        return;
      }
      protocol.receive(conn, message, isBinary);
    },

    pong: (ws) => ws.getUserData().conn.heard(),

    close: (ws, code, message) => {
      const { conn } = ws.getUserData();
      conn.unbind();
      if (logger.isLevelEnabled("debug")) {
        logger.debug({ connection: conn.id, sub: conn.identity.sub, code, reason: Buffer.from(message).toString() }, "connection closed");
      }
      sockets.delete(conn);
      users.delete(conn);
      metrics.connectionsOpen.dec();
      metrics.disconnects.inc({ code: closeCodeLabel(code) });
      fanout.leaveAll(conn);
      ipLimiter.release(conn.ip);
      userLimiter.release(conn.identity.sub);
    },
  });

  app.get("/ws", (res) => sendJson(res, "426 Upgrade Required", errorBody("upgrade_required", "connect with a WebSocket client"), { Upgrade: "websocket" }));

  const health: HealthSource = {
    get brokerConnected() {
      return broker.connected;
    },
    get draining() {
      return gate.draining;
    },
    get loaded() {
      return revocations.loaded;
    },
    detail: () => ({ connections: sockets.size, sse: sse.streams.size }),
  };
  if (config.metricsPort === undefined) attachOperationalRoutes(app, health, registry);
  const metricsApp = config.metricsPort === undefined ? undefined : uws.App();
  if (metricsApp) attachOperationalRoutes(metricsApp, health, registry);
  for (const a of metricsApp ? [app, metricsApp] : [app]) {
    a.any("/*", (res) => sendJson(res, "404 Not Found", errorBody("not_found", "no such route")));
  }

  const guard = new SocketGuard(all, {
    slowConsumerBytes: config.slowConsumerBytes,
    frameTimeoutSeconds: config.frameTimeoutSeconds,
    expiryGraceMs: config.auth.clockToleranceSeconds * 1000,
    metrics,
    logger,
  });
  onTopicBytes = (bytes) => guard.onTopicBytes(bytes);

  const listenOn = (a: TemplatedApp, port: number, variable: string): Promise<us_listen_socket> =>
    new Promise((resolve, reject) => {
      const done = (ls: us_listen_socket | false) =>
        ls
          ? resolve(ls)
          : reject(new Error(`cannot listen on ${config.host ?? "*"}:${port}: in use by another process, or not permitted; set ${variable} to a free port`));
      // Exclusive: uWS otherwise sets SO_REUSEPORT, and a second gateway on
      // the same port would silently share it (the kernel splitting new
      // connections between the two) instead of failing to start.
      if (config.host) (a.listen as unknown as ListenWithHost)(config.host, port, LISTEN_EXCLUSIVE_PORT, done);
      else a.listen(port, LISTEN_EXCLUSIVE_PORT, done);
    });

  const closeListeners = () => {
    for (const ls of listenSockets) uws.us_listen_socket_close(ls);
    listenSockets = [];
  };

  return {
    registry,
    metrics,
    get connections() {
      return sockets.size;
    },
    get ready() {
      return readinessReply(health).ready;
    },

    async listen() {
      const main = await listenOn(app, config.port, "GATEWAY_PORT");
      listenSockets.push(main);
      const port = uws.us_socket_local_port(main as never);
      if (config.listenBacklog > 0) await applyListenBacklog(port, config.listenBacklog, logger);
      if (!metricsApp || config.metricsPort === undefined) return { port };
      const m = await listenOn(metricsApp, config.metricsPort, "METRICS_PORT");
      listenSockets.push(m);
      return { port, metricsPort: uws.us_socket_local_port(m as never) };
    },

    async drain() {
      if (gate.draining) return;
      gate.draining = true;
      // Keep the metrics port (if separate) answering 503 on /readyz while we drain.
      const main = listenSockets.shift();
      if (main) uws.us_listen_socket_close(main);
      const total = open();
      logger.info({ connections: total, drainSeconds: config.drainSeconds }, "draining");
      // Spread the 1001 closes evenly over the whole window so clients do not
      // all reconnect (to the other pods) at the same moment.
      const windowMs = config.drainSeconds * 1000;
      const started = Date.now();
      let closed = 0;
      while (open() > 0) {
        const elapsed = Date.now() - started;
        const due = elapsed >= windowMs ? Number.POSITIVE_INFINITY : Math.ceil((total * elapsed) / windowMs);
        for (const conn of [...all]) {
          if (closed >= due) break;
          closed++;
          conn.close(CloseCode.GoingAway, "server going away");
        }
        if (open() > 0) await new Promise((r) => setTimeout(r, DRAIN_TICK_MS));
      }
      // It answered the server API for as long as it held connections.
      await control.stop();
      presence.stop();
      revocations.stop();
      guard.stop();
      sse.stop();
      offStatus();
      offEpoch();
      fanout.stop();
      closeListeners();
      // The broker is not ours: the process shell drains it once every app has drained.
      logger.info("connections closed");
    },

    close() {
      gate.draining = true;
      void control.stop();
      presence.stop();
      revocations.stop();
      guard.stop();
      sse.stop();
      offStatus();
      offEpoch();
      fanout.stop();
      for (const conn of [...all]) conn.close(CloseCode.GoingAway, "server closing");
      closeListeners();
      // Idle keep-alive HTTP connections would otherwise keep the process
      // (an in-process test) alive until the clients drop them. In the next
      // iteration, so the 1001 close frames are written first.
      setImmediate(() => {
        closeApp(app);
        if (metricsApp) closeApp(metricsApp);
      });
    },
  };
}
