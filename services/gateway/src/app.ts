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
  bearerChallenge,
  closeCodeLabel,
  createGatewayMetrics,
  newRegistry,
  peekRequestId,
  redactQuery,
  userMessageHead,
  userToken,
  welcomeFrame,
  type GatewayMetrics,
  type Identity,
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
import { IpLimiter, KeyedLimiter } from "./ip-limiter.js";
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

/**
 * Largest frame uWS will buffer: frames between the limit and this get a
 * clean 1009; a frame declared larger is refused at its header (uWS closes
 * the TCP connection: the client sees 1006). uWS reserves a frame's whole
 * declared length as soon as part of it arrives, so this, not the limit, is
 * what one socket can make the gateway hold for an unfinished frame.
 */
export function hardFrameCap(maxPayloadBytes: number): number {
  return maxPayloadBytes + Math.max(4096, Math.floor(maxPayloadBytes / 4));
}

/** Hard per-socket send-buffer cap of uWS, well above SLOW_CONSUMER_BYTES. */
export function backpressureCap(slowConsumerBytes: number): number {
  return Math.max(slowConsumerBytes * 8, 8 * 1024 * 1024);
}

/** uWS.js takes (host, port, options, cb) too; its types only list (port, options, cb). */
type ListenWithHost = (host: string, port: number, options: number, cb: (ls: us_listen_socket | false) => void) => TemplatedApp;

/** How often expired tokens, slow consumers and stalled frames are looked for. */
const SWEEP_INTERVAL_MS = 250;
/**
 * Between two sweeps a fast channel can fill a stalled socket's buffer far
 * past SLOW_CONSUMER_BYTES. Send buffers are also checked whenever this
 * fraction of the bound has been written to topics since the last check: no
 * socket's buffer can have grown by more than what was written.
 */
const SHED_CHECK_FRACTION = 1 / 8;
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
  const ipLimiter = new IpLimiter(config.maxConnectionsPerIp, config.ipv6LimitPrefix);
  const userLimiter = new KeyedLimiter(config.maxConnectionsPerUser);
  const sockets = new Set<WebSocket<Session>>();
  let pendingUpgrades = 0;
  let draining = false;
  let listenSockets: us_listen_socket[] = [];

  const app: TemplatedApp = uws.App();
  // Set below, with the sweep: counts bytes written to topics for the send-buffer checks.
  let onTopicBytes: (bytes: number) => void = () => {};
  const fanout = new Fanout(app, broker, metrics, tracing, logger, config.writeDelayMs, (bytes) => onTopicBytes(bytes));
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
    if (status === "disconnected" && !draining && sockets.size > 0) {
      // Core NATS does not keep what is published while we are away; with
      // history the fan-out reads the gap back after the reconnect.
      metrics.drops.inc({ reason: "broker_disconnect" });
      logger.warn(
        { connections: sockets.size, history: broker.history !== undefined },
        broker.history
          ? "broker disconnected: channel messages published meanwhile are read back from history on reconnect; direct user messages are lost"
          : "broker disconnected: messages published until the reconnect are lost for this gateway's clients (core NATS keeps nothing)",
      );
    }
  });

  /** A 401 carries the refusal's reason in the body and an RFC 6750 challenge (no refusal = no token). */
  const reject = (res: HttpResponse, status: number, reason: UpgradeReason, message: string, headers: Record<string, string> = {}, refusal?: AuthError) => {
    metrics.upgrades.inc({ result: "rejected", reason });
    const error = status === 401 ? { code: reason, reason: refusal?.reason ?? "missing", message } : { code: reason, message };
    if (status === 401) headers["WWW-Authenticate"] = bearerChallenge(refusal);
    sendJson(res, STATUS[status] ?? `${status} Error`, { error }, headers);
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
      const span = tracing.enabled
        ? tracing.tracer.startSpan("herald.upgrade", { kind: SpanKind.SERVER, attributes: { "client.address": ip } })
        : undefined;

      const accept = (identity: Identity, upgrade: (session: Session) => void) => {
        span?.setAttributes({ "herald.upgrade.result": aborted ? "aborted" : "accepted", "enduser.id": identity.sub });
        span?.end();
        if (aborted) return ipLimiter.release(ip);
        if (draining) {
          ipLimiter.release(ip);
          return reject(res, 503, "draining", "server is draining, reconnect elsewhere", { "Retry-After": "1" });
        }
        if (!userLimiter.acquire(identity.sub)) {
          ipLimiter.release(ip);
          logger.debug({ ip, sub: identity.sub }, "upgrade refused: per-user connection limit");
          return reject(res, 429, "user_limit", "too many connections for this user", { "Retry-After": "10" });
        }
        upgrade({
          id: randomBytes(12).toString("base64url"),
          sub: identity.sub,
          ip,
          identity,
          userTopic: userTopicOf(userToken(identity.sub)),
          limiter: new RateLimiter(config.rateLimitPerSecond, config.rateLimitBurst),
          channels: new Set(),
          recovering: undefined,
          closed: false,
          lastFrameAt: Date.now(),
          pinged: false,
        });
      };
      const refuse = (err: unknown) => {
        ipLimiter.release(ip);
        const refusal = err instanceof AuthError ? err : new AuthError("malformed", "token could not be verified", { cause: err });
        const reason = refusal.code;
        span?.setAttributes({ "herald.upgrade.result": "rejected", "herald.upgrade.reason": reason });
        span?.setStatus({ code: SpanStatusCode.ERROR, message: reason });
        span?.end();
        if (aborted) return;
        if (!(err instanceof AuthError)) logger.error({ err }, "token verification failed unexpectedly");
        logger.debug({ ip, reason, refusal: refusal.reason, detail: redactQuery(refusal.message) }, "upgrade refused");
        reject(res, 401, reason, refusal.message, {}, refusal);
      };

      if (verifier.synchronous) {
        // Static keys: the upgrade completes here, inside uWS's upgrade
        // handler. Completing it later from a promise needs res.cork(), and
        // uWebSockets.js 20.30 then sometimes reads the upgraded socket as an
        // HTTP response marked "connection: close" and shuts it down right
        // after the 101 (the client sees 1006; static-key-jws.ts).
        let identity: Identity;
        try {
          identity = verifier.verifySync(token);
        } catch (err) {
          return refuse(err);
        }
        return accept(identity, (session) => res.upgrade<Session>(session, secKey, protocol, extensions, context));
      }
      // JWKS keys may have to be fetched. Nothing from req is used after
      // this point, and res may be aborted by the client meanwhile.
      res.onAborted(() => {
        aborted = true;
      });
      pendingUpgrades++;
      verifier.verify(token).then(
        (identity) => {
          pendingUpgrades--;
          accept(identity, (session) => res.cork(() => res.upgrade<Session>(session, secKey, protocol, extensions, context)));
        },
        (err: unknown) => {
          pendingUpgrades--;
          refuse(err);
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
      const session = ws.getUserData();
      session.lastFrameAt = Date.now();
      session.pinged = false;
      if (message.byteLength > config.maxPayloadBytes) {
        metrics.errors.inc({ code: "too_large" });
        ws.end(CloseCode.TooLarge, "frame too large");
        return;
      }
      const verdict = session.limiter.take();
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

    pong: (ws) => {
      const s = ws.getUserData();
      s.lastFrameAt = Date.now();
      s.pinged = false;
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
      userLimiter.release(s.sub);
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

  // Expired tokens (4001), slow consumers (4009) and stalled frames (1008).
  // One periodic pass over the sockets costs far less than a timer per socket
  // or a check per send. The same clock tolerance as at the upgrade: a token
  // accepted a moment after its exp must not be closed with 4001 on the next sweep.
  const expiryGraceMs = config.auth.clockToleranceSeconds * 1000;
  const frameTimeoutMs = config.frameTimeoutSeconds * 1000;
  const sendBufferCap = backpressureCap(config.slowConsumerBytes);
  /** Closes a socket whose send buffer passed the bound; true when it did. */
  const shedIfSlow = (ws: WebSocket<Session>): boolean => {
    const buffered = ws.getBufferedAmount();
    if (buffered <= config.slowConsumerBytes) return false;
    // At the hard cap uWS has already dropped frames for this socket.
    const reason = buffered >= sendBufferCap ? "backpressure" : "slow_consumer";
    metrics.slowConsumerCloses.inc();
    metrics.drops.inc({ reason });
    if (logger.isLevelEnabled("debug")) logger.debug({ connection: ws.getUserData().id, buffered, reason }, "slow consumer closed");
    ws.end(CloseCode.SlowConsumer, "slow consumer");
    return true;
  };
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const ws of sockets) {
      const s = ws.getUserData();
      if (now >= s.identity.expiresAt + expiryGraceMs) {
        ws.end(CloseCode.TokenExpired, "token expired");
      } else if (shedIfSlow(ws)) {
        // closed
      } else if (frameTimeoutMs > 0 && now - s.lastFrameAt > frameTimeoutMs) {
        // A socket in the middle of a frame cannot answer a ping (control
        // frames may not interrupt a frame), and trickled bytes do not count:
        // only complete frames do. Quiet for one timeout: ping; for two: close.
        if (!s.pinged) {
          s.pinged = true;
          ws.ping();
        } else if (now - s.lastFrameAt > 2 * frameTimeoutMs) {
          metrics.errors.inc({ code: "frame_timeout" });
          ws.end(CloseCode.PolicyViolation, "frame not completed in time");
        }
      }
    }
  }, SWEEP_INTERVAL_MS);
  let writtenSinceCheck = 0;
  let soonQueued = false;
  let laterQueued = false;
  const shedCheckBytes = Math.max(1, Math.floor(config.slowConsumerBytes * SHED_CHECK_FRACTION));
  const checkSendBuffers = () => {
    for (const ws of sockets) shedIfSlow(ws);
  };
  onTopicBytes = (bytes: number) => {
    writtenSinceCheck += bytes;
    if (writtenSinceCheck < shedCheckBytes) return;
    // Frames of 16 KiB and more are in the sockets' buffers at once: look as
    // soon as the broker read that wrote them is handled (not from inside
    // it: closing sockets there would run into the fan-out that is writing).
    if (!soonQueued) {
      soonQueued = true;
      queueMicrotask(() => {
        soonQueued = false;
        writtenSinceCheck = 0;
        checkSendBuffers();
      });
    }
    // Smaller frames are moved there when this loop iteration ends: look
    // again in the next one, or those buffers still look empty.
    if (!laterQueued) {
      laterQueued = true;
      setImmediate(() =>
        setImmediate(() => {
          laterQueued = false;
          checkSendBuffers();
        }),
      );
    }
  };
  sweep.unref();

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
      return health.ready();
    },

    async listen() {
      const main = await listenOn(app, config.port, "GATEWAY_PORT");
      listenSockets.push(main);
      const port = uws.us_socket_local_port(main as never);
      if (!metricsApp || config.metricsPort === undefined) return { port };
      const m = await listenOn(metricsApp, config.metricsPort, "METRICS_PORT");
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
