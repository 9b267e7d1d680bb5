/**
 * POST /sse/commands (docs/protocol.md "SSE"): client frames for an SSE
 * stream, posted to any gateway. The gateway that takes the POST checks the
 * token; the frames then go, in order, to the gateway holding the stream:
 * at once when that is this one, otherwise over NATS to
 * `<prefix>.sse.<route>`, the holder's subject, whose route token starts
 * every connection id it hands out. The holder checks that the stream
 * belongs to the token's user and handles each frame as a WebSocket frame
 * (rate limit, size, protocol); the answers go out on the stream.
 */
import { randomBytes } from "node:crypto";
import { AuthError, CloseCode, bearerChallenge, errorBody, type GatewayMetrics, type Identity, type Logger, type Subjects, type TokenVerifier } from "@herald/core";
import type { Broker, BrokerMessage, BrokerSubscription } from "@herald/broker";
import type { GatewayConfig } from "./config.js";
import { readBody } from "./http-body.js";
import { sendJson } from "./http-routes.js";
import type { ProtocolHandler } from "./protocol-handler.js";
import type { SseHub } from "./sse-hub.js";
import { findToken } from "./token.js";
import type { HttpResponse, TemplatedApp } from "./uws.js";

/** Frames per POST: a client batches what queued while its previous POST was in flight. */
export const MAX_COMMAND_FRAMES = 100;
/** How long the taking gateway waits for the holder's answer before it answers 404 (no gateway holds the stream). */
export const COMMAND_ROUTE_TIMEOUT_MS = 2000;
/** Route tokens: 6 random bytes in base64url, 8 characters, one NATS subject token. */
const ROUTE_LENGTH = 8;
const CONNECTION_ID = /^[A-Za-z0-9_-]{8,64}$/;

/** A body holds one frame of the largest size a WebSocket may send, or a batch of smaller ones (64 KiB), plus the envelope. */
export function commandBodyLimit(maxPayloadBytes: number): number {
  return Math.max(maxPayloadBytes, 64 * 1024) + 1024;
}

export type CommandResult =
  | { status: 202; accepted: number }
  | { status: 400 | 403 | 404 | 413 | 503; code: "bad_request" | "forbidden" | "unknown_connection" | "too_large" | "unavailable"; message: string };

export interface SseCommandsDeps {
  config: GatewayConfig;
  verifier: TokenVerifier;
  revocations: { refusal(identity: Identity): AuthError | undefined };
  broker: Broker;
  subjects: Subjects;
  hub: SseHub;
  protocol: ProtocolHandler;
  metrics: GatewayMetrics;
  logger: Logger;
}

const STATUS: Record<number, string> = {
  202: "202 Accepted",
  400: "400 Bad Request",
  401: "401 Unauthorized",
  403: "403 Forbidden",
  404: "404 Not Found",
  413: "413 Payload Too Large",
  503: "503 Service Unavailable",
};

export class SseCommands {
  /** This process's route token: the first ROUTE_LENGTH characters of its SSE connection ids. */
  readonly route = randomBytes(6).toString("base64url");
  private sub: BrokerSubscription | undefined;

  constructor(private readonly deps: SseCommandsDeps) {}

  start(): void {
    this.sub = this.deps.broker.subscribe(this.deps.subjects.sseCommands(this.route), (msg) => this.fromBroker(msg));
    this.deps.metrics.brokerSubscriptions.inc();
  }

  stop(): void {
    if (!this.sub) return;
    this.sub.unsubscribe();
    this.sub = undefined;
    this.deps.metrics.brokerSubscriptions.dec();
  }

  /** POST /sse/commands and the CORS preflights of the SSE endpoints. */
  attach(app: TemplatedApp): void {
    app.post("/sse/commands", (res, req) => {
      const request = {
        origin: req.getHeader("origin"),
        authorization: req.getHeader("authorization"),
        accessToken: req.getQuery("access_token") ?? "",
        length: req.getHeader("content-length"),
      };
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        if (aborted) return;
        this.deps.metrics.sseCommands.inc({ result: resultLabel(status, body) });
        if (request.origin !== "") Object.assign(headers, { "Access-Control-Allow-Origin": request.origin, Vary: "Origin" });
        sendJson(res, STATUS[status] ?? `${status} Error`, body, headers);
      };
      if (!this.deps.config.origins.allows(request.origin)) return answer(403, errorBody("forbidden_origin", "origin not allowed"));
      const { token } = findToken(request.authorization, "", request.accessToken);
      if (!token) return answer(401, errorBody("missing_token", "a token is required", "missing"), { "WWW-Authenticate": bearerChallenge(undefined) });
      const limit = commandBodyLimit(this.deps.config.maxPayloadBytes);
      readBody(res, request.length, limit, (read) => {
        if (!read.ok) return answer(413, errorBody("too_large", `body is larger than ${limit} bytes`));
        const parsed = parseCommands(read.body);
        if (typeof parsed === "string") return answer(400, errorBody("bad_request", parsed));
        this.identify(token).then(
          (identity) => this.dispatch(parsed.connection, identity.sub, parsed.frames),
          (err: unknown) => {
            const refusal = err instanceof AuthError ? err : new AuthError("malformed", "token could not be verified", { cause: err });
            if (!(err instanceof AuthError)) this.deps.logger.error({ err }, "command token verification failed unexpectedly");
            answer(401, errorBody(refusal.code, refusal.message, refusal.reason), { "WWW-Authenticate": bearerChallenge(refusal) });
            return undefined;
          },
        ).then((result) => {
          if (!result) return;
          if (result.status === 202) answer(202, { accepted: result.accepted });
          else answer(result.status, errorBody(result.code, result.message));
        }).catch((err: unknown) => {
          this.deps.logger.error({ err }, "sse command failed");
          answer(503, errorBody("unavailable", "the command could not be delivered"));
        });
      });
    });
    const preflight = (res: HttpResponse, origin: string) => {
      if (origin === "" || !this.deps.config.origins.allows(origin)) {
        res.cork(() => res.writeStatus("403 Forbidden").end());
        return;
      }
      res.cork(() =>
        res
          .writeStatus("204 No Content")
          .writeHeader("Access-Control-Allow-Origin", origin)
          .writeHeader("Vary", "Origin")
          .writeHeader("Access-Control-Allow-Methods", "GET, POST")
          .writeHeader("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
          .writeHeader("Access-Control-Max-Age", "600")
          .end(),
      );
    };
    app.options("/sse/commands", (res, req) => preflight(res, req.getHeader("origin")));
    app.options("/sse", (res, req) => preflight(res, req.getHeader("origin")));
  }

  /** The token as the upgrade checks it: signature and claims, then blocked users and revoked tokens. */
  private async identify(token: string): Promise<Identity> {
    const { verifier, revocations } = this.deps;
    const identity = verifier.synchronous ? verifier.verifySync(token) : await verifier.verify(token);
    const refusal = revocations.refusal(identity);
    if (refusal) throw refusal;
    return identity;
  }

  /** To the holder: this process, or the one whose route token starts the id. */
  private async dispatch(connection: string, sub: string, frames: string[]): Promise<CommandResult> {
    const route = connection.slice(0, ROUTE_LENGTH);
    if (route === this.route) return this.deliver(connection, sub, frames);
    const { broker, subjects } = this.deps;
    if (!broker.connected) return { status: 503, code: "unavailable", message: "the broker is unavailable: commands for streams on other gateways cannot be routed" };
    const answers = await broker.gather(subjects.sseCommands(route), Buffer.from(JSON.stringify({ connection, sub, frames })), {
      timeoutMs: COMMAND_ROUTE_TIMEOUT_MS,
      done: () => true,
    });
    const answer = answers[0] === undefined ? undefined : parseResult(answers[0]);
    return answer ?? unknownConnection();
  }

  /** Commands over NATS from another gateway (or any NATS client that may publish there: check everything). */
  private fromBroker(msg: BrokerMessage): void {
    let result: CommandResult;
    try {
      const m = JSON.parse(Buffer.from(msg.data).toString("utf8")) as { connection?: unknown; sub?: unknown; frames?: unknown };
      const frames = Array.isArray(m.frames) && m.frames.length <= MAX_COMMAND_FRAMES && m.frames.every((f) => typeof f === "string") ? (m.frames as string[]) : undefined;
      result =
        typeof m.connection === "string" && typeof m.sub === "string" && frames
          ? this.deliver(m.connection, m.sub, frames)
          : { status: 400, code: "bad_request", message: "malformed command envelope" };
    } catch {
      result = { status: 400, code: "bad_request", message: "malformed command envelope" };
    }
    msg.respond?.(Buffer.from(JSON.stringify(result)));
  }

  /** On the holder: the stream's own user only; each frame as if it came on a WebSocket. */
  private deliver(connection: string, sub: string, frames: string[]): CommandResult {
    const conn = this.deps.hub.byId(connection);
    if (!conn || conn.closed) return unknownConnection();
    if (conn.identity.sub !== sub) return { status: 403, code: "forbidden", message: "the connection belongs to another user" };
    const { protocol, metrics, config } = this.deps;
    let accepted = 0;
    conn.batch(() => {
      for (const frame of frames) {
        if (conn.closed) break;
        if (Buffer.byteLength(frame, "utf8") > config.maxPayloadBytes) {
          metrics.errors.inc({ code: "too_large" });
          conn.close(CloseCode.TooLarge, "frame too large");
          break;
        }
        protocol.receiveText(conn, frame);
        accepted++;
      }
    });
    return { status: 202, accepted };
  }
}

function unknownConnection(): CommandResult {
  return { status: 404, code: "unknown_connection", message: "no open SSE stream has this connection id (closed, or never opened)" };
}

/** `{"connection":"<id>","frames":[<client frames>]}`: the frames come back as JSON text, one per frame. */
function parseCommands(body: Buffer): { connection: string; frames: string[] } | string {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8"));
  } catch {
    return "body must be JSON: {\"connection\":\"<id>\",\"frames\":[...]}";
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "body must be a JSON object";
  const { connection, frames } = value as { connection?: unknown; frames?: unknown };
  if (typeof connection !== "string" || !CONNECTION_ID.test(connection)) return "connection must be the connection id of the stream's welcome";
  if (!Array.isArray(frames) || frames.length === 0) return "frames must be a non-empty array of client frames";
  if (frames.length > MAX_COMMAND_FRAMES) return `at most ${MAX_COMMAND_FRAMES} frames per request`;
  if (!frames.every((f) => typeof f === "object" && f !== null && !Array.isArray(f))) return "every frame must be a JSON object";
  return { connection, frames: frames.map((f) => JSON.stringify(f)) };
}

function parseResult(data: Uint8Array): CommandResult | undefined {
  try {
    const r = JSON.parse(Buffer.from(data).toString("utf8")) as CommandResult;
    return typeof r === "object" && r !== null && typeof r.status === "number" ? r : undefined;
  } catch {
    return undefined;
  }
}

/** The metric's bounded label: the outcome's error code, or accepted. */
function resultLabel(status: number, body: unknown): string {
  if (status === 202) return "accepted";
  const code = (body as { error?: { code?: string } }).error?.code;
  return status === 401 ? "unauthorized" : (code ?? "error");
}
