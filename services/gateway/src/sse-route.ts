/**
 * GET /sse (docs/protocol.md "SSE"): the same admission as the WebSocket
 * upgrade (upgrade.ts: token from the Authorization header or
 * `access_token`, since EventSource cannot set headers; Origin; limits),
 * then `200 text/event-stream`, the welcome as the first event, and each
 * `channel` query parameter subscribed through the protocol handler exactly
 * as a subscribe frame would be, from the positions of `Last-Event-ID`
 * (or `?lastEventId=`) when given.
 */
import type { Broker } from "@herald/broker";
import { CloseCode, closeCodeLabel, errorBody, userMessageHead, welcomeFrame, type GatewayMetrics, type Logger, type Subjects } from "@herald/core";
import type { ConnectionsByUser } from "./connections-by-user.js";
import type { Fanout } from "./fanout.js";
import { sendJson } from "./http-routes.js";
import type { HeldTopics } from "./pre-welcome.js";
import type { ProtocolHandler } from "./protocol-handler.js";
import { openWithSubs } from "./server-subs.js";
import { SseConnection } from "./sse-connection.js";
import { SseCommands } from "./sse-commands.js";
import type { SseHub } from "./sse-hub.js";
import { MAX_SSE_CHANNELS, decodeResumeId, type ChannelPosition } from "./sse-resume.js";
import { admissionRequest, createAdmission, type UpgradeDeps } from "./upgrade.js";
import type { HttpResponse, TemplatedApp } from "./uws.js";

export interface SseRouteDeps extends UpgradeDeps {
  broker: Broker;
  hub: SseHub;
  protocol: ProtocolHandler;
  fanout: Fanout;
  subjects: Subjects;
  users: ConnectionsByUser;
  held: HeldTopics;
  metrics: GatewayMetrics;
  logger: Logger;
}

/**
 * The one onAborted of a stream's response: it serves the admission (a JWKS
 * fetch in flight) and, once open, the stream. Registered here, apart from
 * the request handler, so that it keeps only this small object alive for the
 * stream's life (not the request's headers and token).
 */
function watchAbort(res: HttpResponse): { aborted: boolean; conn?: SseConnection } {
  const stream: { aborted: boolean; conn?: SseConnection } = { aborted: false };
  res.onAborted(() => {
    stream.aborted = true;
    stream.conn?.aborted();
  });
  return stream;
}

export function attachSseRoute(app: TemplatedApp, deps: SseRouteDeps): void {
  const { hub, protocol, fanout, subjects, users, held, metrics, logger, ipLimiter, userLimiter } = deps;

  // Frames for these streams, posted to any gateway (POST /sse/commands).
  const commands = new SseCommands(deps);
  commands.start();
  hub.onStop(() => commands.stop());
  commands.attach(app);

  const ended = (conn: SseConnection, code: number) => {
    hub.remove(conn);
    users.delete(conn);
    // The fan-out does not unsubscribe a closed connection: take it off the hub's topics here.
    for (const topic of conn.topics) hub.leave(topic, conn);
    fanout.leaveAll(conn);
    metrics.sseConnections.dec();
    metrics.disconnects.inc({ code: closeCodeLabel(code) });
    ipLimiter.release(conn.ip);
    userLimiter.release(conn.identity.sub);
    if (logger.isLevelEnabled("debug")) logger.debug({ connection: conn.id, sub: conn.identity.sub, code }, "sse stream ended");
  };

  // One admission for every stream: made per request, its closures would
  // live as long as the stream (through the response's onAborted).
  const admit = createAdmission(deps);

  app.get("/sse", (res, req) => {
    const params = new URLSearchParams(req.getQuery() ?? "");
    const channels = [...new Set(params.getAll("channel"))];
    const lastEventId = req.getHeader("last-event-id") || (params.get("lastEventId") ?? "");
    if (channels.length > MAX_SSE_CHANNELS) {
      return sendJson(res, "400 Bad Request", errorBody("bad_request", `at most ${MAX_SSE_CHANNELS} channel parameters per stream`));
    }
    const stream = watchAbort(res);
    const request = admissionRequest(res, req, deps.config, "");
    admit(
      res,
      request,
      (a) => {
        res.writeStatus("200 OK");
        // A page on another origin reads the stream only with CORS; the origin was checked (ALLOWED_ORIGINS) already.
        if (request.origin !== "") res.writeHeader("Access-Control-Allow-Origin", request.origin).writeHeader("Vary", "Origin");
        res.writeHeader("Content-Type", "text/event-stream");
        res.writeHeader("Cache-Control", "no-cache");
        // nginx (and proxies that honour it) would otherwise buffer the stream.
        res.writeHeader("X-Accel-Buffering", "no");
        // The route token first: a command posted to another gateway finds this one by it.
        const conn = new SseConnection(commands.route + a.id, a.identity, a.ip, a.userTopic, a.limiter, res, hub, channels, ended);
        stream.conn = conn;
        open(conn, lastEventId);
      },
      stream,
    );
  });

  const open = (conn: SseConnection, lastEventId: string) => {
    hub.add(conn);
    users.add(conn);
    metrics.sseConnections.inc();
    metrics.upgrades.inc({ result: "accepted", reason: "ok" });
    try {
      fanout.joinNow(conn, { topic: conn.userTopic, subject: subjects.user(conn.identity.sub), head: userMessageHead, name: conn.identity.sub });
      if (conn.identity.subs.length > 0) openWithSubs(conn, { protocol, held, metrics, logger });
      else conn.send(welcomeFrame(conn.identity.sub, conn.id));
    } catch (err) {
      logger.error({ err, connection: conn.id }, "sse stream setup failed");
      conn.close(CloseCode.InternalError, "connection setup failed");
      return;
    }
    let from = new Map<string, ChannelPosition>();
    if (lastEventId !== "") {
      const decoded = decodeResumeId(lastEventId, conn.channels);
      if (decoded instanceof Map) from = decoded;
      else protocol.error(conn, "bad_request", `${decoded.problem}: the stream starts afresh`, undefined);
    }
    // The subscribe frame's own path: the token's channel claims, namespaces,
    // limits, and recovery from `since` in the position's epoch.
    for (const channel of conn.channels) {
      const at = from.get(channel);
      protocol.handle(conn, JSON.stringify(at ? { type: "subscribe", channel, since: at.seq, epoch: at.epoch } : { type: "subscribe", channel }));
    }
  };
}
