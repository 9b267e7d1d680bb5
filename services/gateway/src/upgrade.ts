/**
 * The WebSocket upgrade: every check that happens before a socket exists
 * (drain, capacity, origin, token and its subs, per-IP and per-user limits), refused with
 * a plain HTTP answer (DESIGN.md "Connecting"), or completed into a WsConnection.
 * The admission (createAdmission) is shared with GET /sse (sse-route.ts).
 */
import {
  AuthError,
  SpanKind,
  SpanStatusCode,
  bearerChallenge,
  errorBody,
  redactQuery,
  userToken,
  type GatewayMetrics,
  type Identity,
  type Logger,
  type TokenVerifier,
  type Tracing,
  type UpgradeReason,
} from "@herald/core";
import { addressText, forwardedFor } from "./client-ip.js";
import type { GatewayConfig } from "./config.js";
import { sendJson } from "./http-routes.js";
import type { IpLimiter, KeyedLimiter } from "./ip-limiter.js";
import { RateLimiter } from "./rate-limiter.js";
import { userTopicOf } from "./connection.js";
import { newConnectionId } from "./connection-id.js";
import { subsRefusal } from "./server-subs.js";
import { findToken } from "./token.js";
import type { WebSocketBehavior, HttpRequest, HttpResponse } from "./uws.js";
import { WsConnection, type WsUserData } from "./ws-connection.js";

const STATUS: Record<number, string> = {
  401: "401 Unauthorized",
  403: "403 Forbidden",
  429: "429 Too Many Requests",
  503: "503 Service Unavailable",
};

export interface UpgradeDeps {
  config: GatewayConfig;
  verifier: TokenVerifier;
  ipLimiter: IpLimiter;
  userLimiter: KeyedLimiter;
  metrics: GatewayMetrics;
  logger: Logger;
  tracing: Tracing;
  /** Upgrades in flight (counted against MAX_CONNECTIONS) and the drain flag, shared with the app. */
  gate: { pending: number; readonly draining: boolean };
  openConnections: () => number;
  /** Blocked users and revoked tokens (server API): refused with 401 revoked_token, and every upgrade while the list is not read yet with 503. */
  revocations: { readonly ready: boolean; refusal(identity: Identity): AuthError | undefined };
}

/** A client that passed every check: what its connection (any transport) is built from. */
export interface Admitted {
  id: string;
  identity: Identity;
  ip: string;
  userTopic: string;
  limiter: RateLimiter;
}

/** What the admission reads from the request (copied before any await: req is invalid after it). */
export interface AdmissionRequest {
  origin: string;
  authorization: string;
  /** Sec-WebSocket-Protocol ("" for SSE). */
  protocols: string;
  accessToken: string;
  ip: string;
}

/** Whether the client went away: set by whoever registered the response's (one) onAborted. */
export interface AbortFlag {
  aborted: boolean;
}

/**
 * `complete` gets the admitted client and the subprotocol to answer with,
 * always with the response corked: inside uWS's request callback (static
 * keys) or, after a JWKS fetch, inside res.cork(). Not called when the
 * client went away meanwhile. A transport that registers onAborted itself
 * (a stream needs it for its whole life) passes `abort`; the admission then
 * reads that flag and registers nothing, and keeps nothing alive after it
 * answered.
 */
export type Admission = (res: HttpResponse, request: AdmissionRequest, complete: (admitted: Admitted, protocol: string) => void, abort?: AbortFlag) => void;

/** Reads the request fields every transport's admission needs (inside the uWS callback). */
export function admissionRequest(res: HttpResponse, req: HttpRequest, config: GatewayConfig, protocols: string): AdmissionRequest {
  const peer = addressText(res.getRemoteAddress());
  return {
    origin: req.getHeader("origin"),
    authorization: req.getHeader("authorization"),
    protocols,
    accessToken: req.getQuery("access_token") ?? "",
    // Only a trusted proxy's X-Forwarded-For counts, and then every line of
    // it: a proxy that appends its own line keeps the client's first one.
    ip: config.trustedProxies.clientIp(peer, () => forwardedFor(req)),
  };
}

/**
 * The checks of DESIGN.md "Connecting", the same for every transport (the
 * WebSocket upgrade, GET /sse): drain, capacity, origin, token and its subs,
 * revocations, per-IP and per-user limits; refusals are plain HTTP answers.
 * `onAborted` is registered here on the asynchronous path unless the caller
 * passes its own abort flag.
 */
export function createAdmission(deps: UpgradeDeps): Admission {
  const { config, verifier, ipLimiter, userLimiter, metrics, logger, tracing, gate, openConnections, revocations } = deps;

  /** A 401 carries the refusal's reason in the body and an RFC 6750 challenge (no refusal = no token). */
  const reject = (res: HttpResponse, status: number, reason: UpgradeReason, message: string, headers: Record<string, string> = {}, refusal?: AuthError) => {
    metrics.upgrades.inc({ result: "rejected", reason });
    const body = status === 401 ? errorBody(reason, message, refusal?.reason ?? "missing") : errorBody(reason, message);
    if (status === 401) headers["WWW-Authenticate"] = bearerChallenge(refusal);
    sendJson(res, STATUS[status] ?? `${status} Error`, body, headers);
  };

  return (res, request, complete, callerAbort) => {
    const { origin, authorization, protocols, accessToken, ip } = request;
    const abort = callerAbort ?? { aborted: false };

    if (gate.draining) return reject(res, 503, "draining", "server is draining, reconnect elsewhere", { "Retry-After": "1" });
    if (!revocations.ready) return reject(res, 503, "not_ready", "server is starting: the list of revoked tokens is not read yet", { "Retry-After": "1" });
    if (openConnections() + gate.pending >= config.maxConnections) {
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

    const accept = (identity: Identity, corked: boolean) => {
      span?.setAttributes({ "herald.upgrade.result": abort.aborted ? "aborted" : "accepted", "enduser.id": identity.sub });
      span?.end();
      if (abort.aborted) return ipLimiter.release(ip);
      if (gate.draining) {
        ipLimiter.release(ip);
        return reject(res, 503, "draining", "server is draining, reconnect elsewhere", { "Retry-After": "1" });
      }
      if (!userLimiter.acquire(identity.sub)) {
        ipLimiter.release(ip);
        logger.debug({ ip, sub: identity.sub }, "upgrade refused: per-user connection limit");
        return reject(res, 429, "user_limit", "too many connections for this user", { "Retry-After": "10" });
      }
      const admitted: Admitted = {
        id: newConnectionId(),
        identity,
        ip,
        userTopic: userTopicOf(userToken(identity.sub)),
        limiter: new RateLimiter(config.rateLimitPerSecond, config.rateLimitBurst),
      };
      if (corked) res.cork(() => complete(admitted, protocol));
      else complete(admitted, protocol);
    };
    const refuse = (err: unknown) => {
      ipLimiter.release(ip);
      const refusal = err instanceof AuthError ? err : new AuthError("malformed", "token could not be verified", { cause: err });
      const reason = refusal.code;
      span?.setAttributes({ "herald.upgrade.result": "rejected", "herald.upgrade.reason": reason });
      span?.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      span?.end();
      if (abort.aborted) return;
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
      const refusal = subsRefusal(identity, config) ?? revocations.refusal(identity);
      if (refusal) return refuse(refusal);
      return accept(identity, false);
    }
    // JWKS keys may have to be fetched. Nothing from req is used after
    // this point, and res may be aborted by the client meanwhile.
    if (!callerAbort) {
      res.onAborted(() => {
        abort.aborted = true;
      });
    }
    gate.pending++;
    verifier.verify(token).then(
      (identity) => {
        gate.pending--;
        const refusal = subsRefusal(identity, config) ?? revocations.refusal(identity);
        if (refusal) return refuse(refusal);
        accept(identity, true);
      },
      (err: unknown) => {
        gate.pending--;
        refuse(err);
      },
    )
      // The shell exits on an unhandled rejection: a failed answer to one upgrade must not.
      .catch((err: unknown) => logger.error({ err }, "completing an upgrade failed"));
  };
}

export function createUpgradeHandler(deps: UpgradeDeps): NonNullable<WebSocketBehavior<WsUserData>["upgrade"]> {
  const admit = createAdmission(deps);
  return (res, req, context) => {
    // Everything needed from req is copied now: req is invalid after the
    // first await, and res may be aborted by the client at any time.
    const secKey = req.getHeader("sec-websocket-key");
    const extensions = req.getHeader("sec-websocket-extensions");
    const request = admissionRequest(res, req, deps.config, req.getHeader("sec-websocket-protocol"));
    admit(res, request, (a, protocol) =>
      res.upgrade<WsUserData>({ conn: new WsConnection(a.id, a.identity, a.ip, a.userTopic, a.limiter) }, secKey, protocol, extensions, context),
    );
  };
}
