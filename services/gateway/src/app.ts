/**
 * The gateway app factory (kept apart from process concerns in main.ts, like
 * fastify's build()): uWS routes, authenticated upgrades, the protocol,
 * limits, interest-based fan-out, health and metrics, and graceful drain.
 */
import { randomBytes } from "node:crypto";
import {
  AuthError,
  CloseCode,
  Subjects,
  TokenVerifier,
  closeCodeLabel,
  createGatewayMetrics,
  newRegistry,
  peekRequestId,
  redactQuery,
  userMessageHead,
  userToken,
  welcomeFrame,
  type GatewayMetrics,
  type Logger,
  type Tracing,
  type UpgradeReason,
  SpanKind,
  SpanStatusCode,
  trace,
} from "@herald/core";
import type { Broker } from "@herald/broker";
import type { Registry } from "prom-client";
import { addressText, forwardedFor } from "./client-ip.js";
import { ClientMessages } from "./client-messages.js";
import type { GatewayConfig } from "./config.js";
import { Fanout } from "./fanout.js";
import { attachOperationalRoutes, sendJson } from "./http-routes.js";
import { IpLimiter } from "./ip-limiter.js";
import { RateLimiter } from "./rate-limiter.js";
import { channelTopic, userTopicOf, type Session } from "./session.js";
import { findToken } from "./token.js";
import { LISTEN_EXCLUSIVE_PORT, uws, type HttpResponse, type TemplatedApp, type WebSocket, type us_listen_socket } from "./uws.js";

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
  /** SIGTERM behaviour: not ready, stop accepting, 1001 spread over drainSeconds, broker drained. */
  drain(): Promise<void>;
  /** Immediate stop (tests): closes sockets and listeners, not the broker. */
  close(): void;
}

/** Largest frame uWS will buffer: frames between the limit and this get a clean 1009. */
export function hardFrameCap(maxPayloadBytes: number): number {
  return Math.max(maxPayloadBytes * 4, 1024 * 1024);
}

/** Hard per-socket send-buffer cap of uWS, well above SLOW_CONSUMER_BYTES. */
export function backpressureCap(slowConsumerBytes: number): number {
  return Math.max(slowConsumerBytes * 8, 8 * 1024 * 1024);
}

/** uWS.js takes (host, port, options, cb) too; its types only list (port, options, cb). */
type ListenWithHost = (host: string, port: number, options: number, cb: (ls: us_listen_socket | false) => void) => TemplatedApp;

/** How often expired tokens and slow consumers are looked for. */
const SWEEP_INTERVAL_MS = 250;
/** Time between batches of 1001 closes while draining. */
const DRAIN_TICK_MS = 100;

const NO_TRACING: Tracing = { enabled: false, tracer: trace.getTracer("herald-gateway"), shutdown: async () => {} };

const STATUS: Record<number, string> = {
  401: "401 Unauthorized",
  403: "403 Forbidden",
  429: "429 Too Many Requests",
  503: "503 Service Unavailable",
};

export function buildGateway(opts: GatewayOptions): Gateway {
  const { config, broker, logger } = opts;
  const tracing = opts.tracing ?? NO_TRACING;
  const registry = opts.registry ?? newRegistry();
  const metrics = createGatewayMetrics(registry);
  const subjects = new Subjects(config.subjectPrefix);
  const verifier = new TokenVerifier(config.auth);
  const ipLimiter = new IpLimiter(config.maxConnectionsPerIp);
  const sockets = new Set<WebSocket<Session>>();
  let pendingUpgrades = 0;
  let draining = false;
  let listenSockets: us_listen_socket[] = [];

  const app: TemplatedApp = uws.App();
  const fanout = new Fanout(app, broker, metrics, tracing, logger, config.writeDelayMs);
  const messages = new ClientMessages({
    broker,
    fanout,
    subjects,
    metrics,
    logger,
    maxChannelsPerConnection: config.maxChannelsPerConnection,
    slowConsumerBytes: config.slowConsumerBytes,
    historyMaxPerChannel: config.history.maxPerChannel,
  });

  metrics.brokerConnected.set(broker.connected ? 1 : 0);
  const offStatus = broker.onStatus((status) => {
    metrics.brokerConnected.set(status === "connected" ? 1 : 0);
  });

  const reject = (res: HttpResponse, status: number, reason: UpgradeReason, message: string, headers: Record<string, string> = {}) => {
    metrics.upgrades.inc({ result: "rejected", reason });
    if (status === 401) headers["WWW-Authenticate"] = "Bearer";
    sendJson(res, STATUS[status] ?? `${status} Error`, { error: { code: reason, message } }, headers);
  };

  app.ws<Session>("/ws", {
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
    compression: uws.DISABLED,

    upgrade: (res, req, context) => {
      // Everything needed from req is copied now: req is invalid after the
      // first await, and res may be aborted by the client at any time.
      const secKey = req.getHeader("sec-websocket-key");
      const protocols = req.getHeader("sec-websocket-protocol");
      const extensions = req.getHeader("sec-websocket-extensions");
      const origin = req.getHeader("origin");
      const authorization = req.getHeader("authorization");
      const accessToken = req.getQuery("access_token") ?? "";
      const peer = addressText(res.getRemoteAddress());
      // Only a trusted proxy's X-Forwarded-For counts, and then every line of
      // it: a proxy that appends its own line keeps the client's first one.
      const ip = config.trustedProxies.clientIp(peer, () => forwardedFor(req));
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });

      if (draining) return reject(res, 503, "draining", "server is draining, reconnect elsewhere", { "Retry-After": "1" });
      if (sockets.size + pendingUpgrades >= config.maxConnections) {
        return reject(res, 503, "capacity", "server is at its connection limit", { "Retry-After": "5" });
      }
      if (!config.origins.allows(origin)) {
        logger.debug({ ip, origin }, "upgrade refused: origin not allowed");
        return reject(res, 403, "forbidden_origin", "origin not allowed");
      }
      const { token, protocol } = findToken(authorization, protocols, accessToken);
      if (!token) return reject(res, 401, "missing_token", "a token is required");
      if (!ipLimiter.acquire(ip)) {
        logger.debug({ ip }, "upgrade refused: per-IP connection limit");
        return reject(res, 429, "ip_limit", "too many connections from this address", { "Retry-After": "10" });
      }
      pendingUpgrades++;
      const span = tracing.enabled
        ? tracing.tracer.startSpan("herald.upgrade", { kind: SpanKind.SERVER, attributes: { "client.address": ip } })
        : undefined;
      verifier.verify(token).then(
        (identity) => {
          pendingUpgrades--;
          span?.setAttributes({ "herald.upgrade.result": aborted ? "aborted" : "accepted", "enduser.id": identity.sub });
          span?.end();
          if (aborted) return ipLimiter.release(ip);
          if (draining) {
            ipLimiter.release(ip);
            return reject(res, 503, "draining", "server is draining, reconnect elsewhere", { "Retry-After": "1" });
          }
          const session: Session = {
            id: randomBytes(12).toString("base64url"),
            sub: identity.sub,
            ip,
            identity,
            userTopic: userTopicOf(userToken(identity.sub)),
            limiter: new RateLimiter(config.rateLimitPerSecond, config.rateLimitBurst),
            channels: new Set(),
            recovering: undefined,
            closed: false,
          };
          res.cork(() => res.upgrade<Session>(session, secKey, protocol, extensions, context));
        },
        (err: unknown) => {
          pendingUpgrades--;
          ipLimiter.release(ip);
          const reason = err instanceof AuthError ? err.reason : "invalid_token";
          span?.setAttributes({ "herald.upgrade.result": "rejected", "herald.upgrade.reason": reason });
          span?.setStatus({ code: SpanStatusCode.ERROR, message: reason });
          span?.end();
          if (aborted) return;
          if (!(err instanceof AuthError)) logger.error({ err }, "token verification failed unexpectedly");
          logger.debug({ ip, reason, detail: err instanceof Error ? redactQuery(err.message) : "" }, "upgrade refused");
          reject(res, 401, reason, reason === "expired_token" ? "token expired" : "invalid token");
        },
      );
    },

    open: (ws) => {
      const s = ws.getUserData();
      sockets.add(ws);
      metrics.connectionsOpen.inc();
      metrics.upgrades.inc({ result: "accepted", reason: "ok" });
      try {
        // The reference first: if taking it throws, the close handler's
        // release must not drop another socket's reference to the topic.
        void fanout.acquire({ topic: s.userTopic, subject: subjects.user(s.sub), head: userMessageHead(s.sub) });
        ws.subscribe(s.userTopic);
      } catch (err) {
        // Backstop: uWS hands an exception thrown here to uncaughtException,
        // where main.ts exits, and every socket of the process would see 1006.
        // Without its user subscription this socket cannot be served: a
        // proper close frame lets the client reconnect (1011, RFC 6455).
        logger.error({ err, connection: s.id }, "connection setup failed");
        ws.end(CloseCode.InternalError, "connection setup failed");
        return;
      }
      ws.send(welcomeFrame(s.sub, s.id), false);
    },

    message: (ws, message, isBinary) => {
      if (message.byteLength > config.maxPayloadBytes) {
        metrics.errors.inc({ code: "too_large" });
        ws.end(CloseCode.TooLarge, "frame too large");
        return;
      }
      const verdict = ws.getUserData().limiter.take();
      if (verdict !== "ok") {
        if (verdict === "abusive") {
          metrics.errors.inc({ code: "rate_limited" });
          ws.end(CloseCode.RateLimited, "rate limited");
        } else {
          // The id lets the client retry exactly the request that was refused.
          const id = isBinary ? undefined : peekRequestId(message);
          messages.error(ws, "rate_limited", "too many messages, slow down", id);
        }
        return;
      }
      if (isBinary) {
        messages.error(ws, "bad_request", "binary frames are not supported; send JSON text", undefined);
        return;
      }
      // Buffer.from(ArrayBuffer) is a view; toString copies before uWS neuters it.
      const text = Buffer.from(message).toString("utf8");
      try {
        messages.handle(ws, text);
      } catch (err) {
        // Backstop: nothing one client sends may take the process down.
        logger.error({ err, connection: ws.getUserData().id }, "client frame handler failed");
        messages.error(ws, "bad_request", "the frame could not be handled", undefined);
      }
    },

    close: (ws, code, message) => {
      const s = ws.getUserData();
      s.closed = true;
      if (logger.isLevelEnabled("debug")) {
        logger.debug({ connection: s.id, sub: s.sub, code, reason: Buffer.from(message).toString() }, "connection closed");
      }
      sockets.delete(ws);
      metrics.connectionsOpen.dec();
      metrics.disconnects.inc({ code: closeCodeLabel(code) });
      if (s.recovering) for (const [channel, buffer] of s.recovering) fanout.unwatch(channelTopic(channel), buffer);
      for (const channel of s.channels) fanout.release(channelTopic(channel));
      fanout.release(s.userTopic);
      ipLimiter.release(s.ip);
    },
  });

  app.get("/ws", (res) => sendJson(res, "426 Upgrade Required", { error: { code: "upgrade_required", message: "connect with a WebSocket client" } }, { Upgrade: "websocket" }));

  const health = {
    ready: () => broker.connected && !draining,
    readyDetail: () => ({ broker: broker.connected ? "connected" : "disconnected", draining, connections: sockets.size }),
  };
  if (config.metricsPort === undefined) attachOperationalRoutes(app, health, registry);
  const metricsApp = config.metricsPort === undefined ? undefined : uws.App();
  if (metricsApp) attachOperationalRoutes(metricsApp, health, registry);
  for (const a of metricsApp ? [app, metricsApp] : [app]) {
    a.any("/*", (res) => sendJson(res, "404 Not Found", { error: { code: "not_found", message: "no such route" } }));
  }

  // Expired tokens (4001) and slow consumers (4009). One periodic pass over
  // the sockets costs far less than a timer per socket or a check per send.
  // The same clock tolerance as at the upgrade: a token accepted a moment
  // after its exp must not be closed with 4001 on the next sweep.
  const expiryGraceMs = config.auth.clockToleranceSeconds * 1000;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const ws of sockets) {
      const s = ws.getUserData();
      if (now >= s.identity.expiresAt + expiryGraceMs) {
        ws.end(CloseCode.TokenExpired, "token expired");
      } else if (ws.getBufferedAmount() > config.slowConsumerBytes) {
        metrics.slowConsumerCloses.inc();
        ws.end(CloseCode.SlowConsumer, "slow consumer");
      }
    }
  }, SWEEP_INTERVAL_MS);
  sweep.unref();

  const listenOn = (a: TemplatedApp, port: number): Promise<us_listen_socket> =>
    new Promise((resolve, reject) => {
      const done = (ls: us_listen_socket | false) =>
        ls ? resolve(ls) : reject(new Error(`cannot listen on ${config.host ?? "*"}:${port} (in use by another process, or not permitted)`));
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
      return health.ready();
    },

    async listen() {
      const main = await listenOn(app, config.port);
      listenSockets.push(main);
      const port = uws.us_socket_local_port(main as never);
      if (!metricsApp || config.metricsPort === undefined) return { port };
      const m = await listenOn(metricsApp, config.metricsPort);
      listenSockets.push(m);
      return { port, metricsPort: uws.us_socket_local_port(m as never) };
    },

    async drain() {
      if (draining) return;
      draining = true;
      // Keep the metrics port (if separate) answering 503 on /readyz while we drain.
      const main = listenSockets.shift();
      if (main) uws.us_listen_socket_close(main);
      const total = sockets.size;
      logger.info({ connections: total, drainSeconds: config.drainSeconds }, "draining");
      // Spread the 1001 closes evenly over the whole window so clients do not
      // all reconnect (to the other pods) at the same moment.
      const windowMs = config.drainSeconds * 1000;
      const started = Date.now();
      let closed = 0;
      while (sockets.size > 0) {
        const elapsed = Date.now() - started;
        const due = elapsed >= windowMs ? Number.POSITIVE_INFINITY : Math.ceil((total * elapsed) / windowMs);
        for (const ws of sockets) {
          if (closed >= due) break;
          closed++;
          ws.end(CloseCode.GoingAway, "server going away");
        }
        if (sockets.size > 0) await new Promise((r) => setTimeout(r, DRAIN_TICK_MS));
      }
      clearInterval(sweep);
      offStatus();
      fanout.stop();
      closeListeners();
      logger.info("connections closed; draining broker");
      await broker.drain();
    },

    close() {
      draining = true;
      clearInterval(sweep);
      offStatus();
      fanout.stop();
      for (const ws of [...sockets]) ws.end(CloseCode.GoingAway, "server closing");
      closeListeners();
    },
  };
}
