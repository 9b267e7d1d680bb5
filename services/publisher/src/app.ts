/**
 * The publisher app factory, kept apart from process concerns (fastify
 * style): it builds the HTTP server(s) around a broker it is given, so the
 * all-in-one `npm start` can share one MemoryBroker with the gateway and
 * tests can construct it directly. It never creates, drains or closes the
 * broker: whoever passes it in owns it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Broker, BrokerStatus } from "@herald/broker";
import {
  BrokerUnavailableError,
  Subjects,
  channelProblem,
  createPublisherMetrics,
  newRegistry,
  type Logger,
  type PublisherMetrics,
  type PublisherRoute,
  type TokenVerifier,
  type Tracing,
} from "@herald/core";
import { Authenticator } from "./auth.js";
import { readJsonBody } from "./body.js";
import type { PublisherConfig } from "./config.js";
import { HttpError, sendError, sendJson } from "./http-error.js";
import { handleOps, type Registry } from "./ops.js";
import { MessagePublisher } from "./publish.js";
import { decodeParam, matchRoute, pathOf, type RouteMatch } from "./routes.js";
import { GatewayRoster } from "./gateway-roster.js";
import { ServerApi } from "./server-api.js";

export const MAX_SUB_LENGTH = 256;

/** HTTP server timeouts: slow clients cannot hold a request open for long. */
export const SERVER_TIMEOUTS = {
  /** Whole request (headers and body) must arrive within this. */
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  /** Longer than the usual 60 s load-balancer idle timeout, so the LB closes first. */
  keepAliveTimeoutMs: 65_000,
} as const;

export interface PublisherOptions {
  config: PublisherConfig;
  broker: Broker;
  logger: Logger;
  tracing?: Tracing;
  /** Registry for this instance's metrics; a fresh one (with default metrics) when omitted. */
  registry?: Registry;
  /** Overrides the verifier built from config.auth (e.g. to share a JWKS cache). */
  verifier?: TokenVerifier;
}

export interface ListenResult {
  port: number;
  metricsPort?: number;
}

export interface Publisher {
  readonly server: Server;
  /** The second server on METRICS_PORT, when configured. */
  readonly metricsServer: Server | undefined;
  readonly registry: Registry;
  readonly metrics: PublisherMetrics;
  /** True once draining started: /readyz answers 503. */
  readonly draining: boolean;
  listen(): Promise<ListenResult>;
  /** Turns /readyz to 503 without closing anything (first step of a graceful stop). */
  startDraining(): void;
  /**
   * Stops accepting connections, waits for in-flight requests (at most
   * DRAIN_SECONDS), then closes every connection. Does not touch the broker.
   */
  close(): Promise<void>;
  /** The shell's drain step (runService): /readyz 503, then close(). Never the broker. */
  drain(): Promise<void>;
}

interface RequestLog {
  route: PublisherRoute;
  sub?: string;
  error?: string;
}

export function buildPublisher(opts: PublisherOptions): Publisher {
  const { config, broker, logger } = opts;
  const registry = opts.registry ?? newRegistry();
  const metrics = createPublisherMetrics(registry);
  const subjects = new Subjects(config.subjectPrefix);
  const auth = new Authenticator({ apiKey: config.apiKey, auth: config.auth, verifier: opts.verifier, logger });
  const messages = new MessagePublisher(broker, opts.tracing);
  const roster = new GatewayRoster(broker, subjects, (known) => metrics.gatewaysKnown.set(known));
  const serverApi = new ServerApi({
    broker,
    subjects,
    namespaces: config.namespaces,
    metrics,
    logger,
    roster,
    controlTimeoutMs: config.controlTimeoutMs,
    maxBodyBytes: config.maxBodyBytes,
    historyStream: config.history.stream,
  });

  let draining = false;
  let closing: Promise<void> | undefined;
  /** Responses not yet closed: the in-flight requests. */
  const active = new Set<ServerResponse>();
  const idleWaiters = new Set<() => void>();

  metrics.brokerConnected.set(broker.connected ? 1 : 0);
  const offStatus = broker.onStatus((status: BrokerStatus) => {
    metrics.brokerConnected.set(status === "connected" ? 1 : 0);
  });

  const state = {
    get brokerConnected() {
      return broker.connected;
    },
    get draining() {
      return draining;
    },
  };

  // ---- request handling ---------------------------------------------------

  async function handlePublish(
    match: Extract<RouteMatch, { kind: "publish" }>,
    req: IncomingMessage,
    res: ServerResponse,
    log: RequestLog,
  ): Promise<void> {
    if (req.method !== "POST") {
      throw new HttpError(405, "method_not_allowed", `use ${match.allow}`, { Allow: match.allow });
    }
    const principal = await auth.authenticate(header(req, "authorization"));
    log.sub = principal.sub;

    let subject: string;
    if (match.route === "channel") {
      const channel = decodeParam(match.param);
      if (channel === undefined) throw new HttpError(400, "invalid_channel", "channel is not correctly URL-encoded");
      const problem = channelProblem(channel) ?? config.namespaces.problem(channel);
      if (problem !== null) throw new HttpError(400, "invalid_channel", problem);
      if (!auth.canPublishToChannel(principal, channel)) {
        throw new HttpError(403, "forbidden", "the token's publish claim does not cover this channel");
      }
      subject = subjects.channel(channel);
    } else {
      const sub = decodeParam(match.param);
      if (sub === undefined) throw new HttpError(400, "bad_request", "user id is not correctly URL-encoded");
      if (sub.length === 0 || sub.length > MAX_SUB_LENGTH) {
        throw new HttpError(400, "bad_request", `user id must be 1 to ${MAX_SUB_LENGTH} characters`);
      }
      if (!auth.canPublishToUser(principal, sub)) {
        throw new HttpError(403, "forbidden", 'publishing to a user needs "user:*" or "user:<sub>" in the publish claim');
      }
      subject = subjects.user(sub);
    }

    const idempotencyKey = header(req, "idempotency-key");
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw new HttpError(400, "bad_request", "Idempotency-Key must be 1 to 128 characters of A-Z a-z 0-9 . _ : -");
    }
    // Fail fast before reading the body; publish() re-checks (the link can drop meanwhile).
    if (!broker.connected) throw unavailable();
    const body = await readJsonBody(req, config.maxBodyBytes);
    let id: string;
    try {
      id = await messages.publish({ subject, route: match.route, body, incoming: (name) => header(req, name), id: idempotencyKey });
    } catch (err) {
      if (err instanceof BrokerUnavailableError) {
        log.error = err.message;
        throw unavailable();
      }
      throw err;
    }
    metrics.messages.inc();
    sendJson(res, 202, { id });
  }

  async function dispatch(req: IncomingMessage, res: ServerResponse, api: boolean): Promise<void> {
    const started = process.hrtime.bigint();
    const path = pathOf(req.url);
    const match = matchRoute(path);
    const log: RequestLog = { route: match.kind === "publish" || match.kind === "api" ? match.route : "other" };
    const counted = match.kind !== "ops"; // probes and scrapes would drown the request metrics

    active.add(res);
    res.once("close", () => {
      active.delete(res);
      if (active.size === 0) for (const wake of idleWaiters) wake();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const status = res.statusCode;
      if (counted) {
        metrics.requests.inc({ route: log.route, status: String(status) });
        metrics.requestDuration.observe({ route: log.route }, seconds);
      }
      const entry = {
        method: req.method,
        path,
        route: log.route,
        status,
        durationMs: Math.round(seconds * 1e6) / 1e3,
        sub: log.sub,
        err: log.error,
        aborted: res.writableFinished ? undefined : true,
      };
      if (status >= 500) logger.warn(entry, "request failed");
      else if (counted) logger.info(entry, "request");
      else logger.debug(entry, "request");
    });
    // While draining, every answer closes its connection so keep-alive clients move on.
    if (draining) res.setHeader("Connection", "close");

    try {
      if (match.kind === "ops") {
        if (req.method !== "GET" && req.method !== "HEAD") {
          throw new HttpError(405, "method_not_allowed", `use ${match.allow}`, { Allow: match.allow });
        }
        await handleOps(match.name, req, res, state, registry);
      } else if (match.kind === "publish" && api) {
        await handlePublish(match, req, res, log);
      } else if (match.kind === "api" && api) {
        auth.authenticateApiKey(header(req, "authorization"));
        log.sub = "api-key";
        await serverApi.handle(match, req, res);
      } else {
        throw new HttpError(404, "not_found", "no such route");
      }
    } catch (err) {
      if (!req.complete) lingerThenClose(req);
      if (err instanceof HttpError) {
        sendError(res, err);
        return;
      }
      log.error = (err as Error)?.message ?? String(err);
      logger.error({ err, route: log.route, path }, "unhandled error in request");
      if (res.headersSent) res.destroy();
      else sendError(res, new HttpError(500, "internal", "internal server error"));
    }
  }

  function newServer(api: boolean): Server {
    const server = createServer({ keepAlive: true, noDelay: true }, (req, res) => {
      dispatch(req, res, api).catch((err: unknown) => {
        // dispatch handles its own errors; this is the last line of defence.
        logger.error({ err }, "request handler crashed");
        res.destroy();
      });
    });
    server.requestTimeout = SERVER_TIMEOUTS.requestTimeoutMs;
    server.headersTimeout = SERVER_TIMEOUTS.headersTimeoutMs;
    server.keepAliveTimeout = SERVER_TIMEOUTS.keepAliveTimeoutMs;
    server.on("error", (err) => logger.error({ err: err.message }, "HTTP server error"));
    return server;
  }

  const server = newServer(true);
  const metricsServer = config.metricsPort !== undefined ? newServer(false) : undefined;

  // ---- lifecycle --------------------------------------------------------------

  function listenOne(s: Server, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      s.once("error", onError);
      s.listen(port, config.host, () => {
        s.off("error", onError);
        resolve((s.address() as AddressInfo).port);
      });
    });
  }

  function whenIdle(timeoutMs: number): Promise<boolean> {
    if (active.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (idle: boolean): void => {
        clearTimeout(timer);
        idleWaiters.delete(wake);
        resolve(idle);
      };
      const wake = (): void => done(true);
      const timer = setTimeout(() => done(false), timeoutMs);
      idleWaiters.add(wake);
    });
  }

  function closeServer(s: Server): Promise<void> {
    return new Promise((resolve) => {
      if (!s.listening) {
        s.closeAllConnections();
        resolve();
        return;
      }
      s.close(() => resolve());
      s.closeIdleConnections();
    });
  }

  function startDraining(): void {
    draining = true;
    // Answers still to come close their connection instead of keeping it alive.
    for (const res of active) if (!res.headersSent) res.setHeader("Connection", "close");
  }

  async function doClose(): Promise<void> {
    startDraining();
    // Stop accepting; idle keep-alive connections go now, busy ones after their answer.
    const mainClosed = closeServer(server);
    const idle = await whenIdle(config.drainSeconds * 1000);
    if (!idle) {
      logger.warn({ inFlight: active.size }, "drain timeout: closing connections with requests in flight");
      server.closeAllConnections();
    }
    // Answered connections end by themselves (Connection: close); give them a moment to flush.
    await Promise.race([mainClosed, delay(CLOSE_GRACE_MS)]);
    server.closeAllConnections();
    await mainClosed;
    if (metricsServer) {
      const closed = closeServer(metricsServer);
      metricsServer.closeAllConnections();
      await closed;
    }
    offStatus();
    roster.stop();
  }

  function closeOnce(): Promise<void> {
    closing ??= doClose();
    return closing;
  }

  return {
    server,
    metricsServer,
    registry,
    metrics,
    get draining() {
      return draining;
    },
    async listen() {
      const port = await listenOne(server, config.port);
      if (!metricsServer || config.metricsPort === undefined) return { port };
      const metricsPort = await listenOne(metricsServer, config.metricsPort);
      return { port, metricsPort };
    },
    startDraining,
    close: closeOnce,
    drain: closeOnce,
  };
}

/** How long an unread request body is discarded after an early error answer. */
export const LINGER_MS = 2000;

/** How long answered connections get to flush before being cut at close. */
const CLOSE_GRACE_MS = 1000;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

function unavailable(): HttpError {
  return new HttpError(503, "unavailable", "the message broker is not connected; retry shortly", { "Retry-After": "1" });
}

/**
 * An error answered before the body was read (401, 413, 415, ...): closing
 * the socket at once would make the kernel reset a connection the client is
 * still writing to, and the client would see EPIPE/ECONNRESET instead of our
 * answer. So, like nginx's lingering close, node:http discards the rest of
 * the body (nothing is buffered) for at most LINGER_MS; a client still
 * uploading after that is cut off.
 */
function lingerThenClose(req: IncomingMessage): void {
  const timer = setTimeout(() => {
    if (!req.complete) req.socket.destroy();
  }, LINGER_MS);
  timer.unref();
  const clear = (): void => clearTimeout(timer);
  req.once("end", clear);
  req.once("close", clear);
}

/** One request header as a string (repeated headers: the first value). */
/** What an Idempotency-Key may hold: it becomes the Herald-Id header and the JetStream dedupe id. */
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
