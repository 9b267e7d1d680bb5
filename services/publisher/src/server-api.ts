/**
 * The server API (API key only): acts on every gateway's connections through
 * control requests on `<prefix>.ctl.<kind>` and answers with what they
 * reached, or reads history straight from the broker. A control request
 * waits until every gateway of the roster has answered, or
 * CONTROL_TIMEOUT_MS at most, and says how many answered and how many known
 * gateways did not (`missing`), so a caller can tell a partial answer.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { readHistoryPage, type Broker, type BrokerKeyValue } from "@herald/broker";
import {
  BrokerUnavailableError,
  DISCONNECT_CODES,
  HISTORY_DEFAULT_LIMIT,
  HISTORY_MAX_LIMIT,
  MAX_CONTROL_SUB_LENGTH,
  REVOCATION_BUCKET_MAX_AGE_SECONDS,
  channelProblem,
  disconnectProblem,
  encodeControl,
  encodeRevocation,
  jtiProblem,
  revocationBucket,
  revocationKey,
  untilProblem,
  type Revocation,
  type ChannelClients,
  type ControlAnswer,
  type ControlKind,
  type ControlRequest,
  type GatewayInfo,
  type Logger,
  type Namespaces,
  type PublisherMetrics,
  type Subjects,
} from "@herald/core";
import { readJsonBody } from "./body.js";
import type { GatewayRoster } from "./gateway-roster.js";
import { HttpError, sendJson } from "./http-error.js";
import { decodeParam, type RouteMatch } from "./routes.js";

export interface ServerApiOptions {
  broker: Broker;
  subjects: Subjects;
  namespaces: Namespaces;
  metrics: PublisherMetrics;
  logger: Logger;
  roster: GatewayRoster;
  controlTimeoutMs: number;
  maxBodyBytes: number;
  /** HISTORY_STREAM: names the revocation bucket. */
  historyStream: string;
}

interface Gathered {
  answers: ControlAnswer[];
  /** Known gateways that did not answer in time. */
  missing: number;
}

export type ApiMatch = Extract<RouteMatch, { kind: "api" }>;

export class ServerApi {
  constructor(private readonly o: ServerApiOptions) {}

  async handle(match: ApiMatch, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!match.allow.split(", ").includes(req.method ?? "")) {
      throw new HttpError(405, "method_not_allowed", `use ${match.allow}`, { Allow: match.allow });
    }
    switch (match.route) {
      case "disconnect": {
        const sub = userParam(match.param);
        const body = await this.optionalBody(req);
        const code = body["code"] ?? DISCONNECT_CODES.default;
        const reason = body["reason"] ?? "disconnected by the server";
        const problem = disconnectProblem(code, reason);
        if (problem) throw new HttpError(400, "bad_request", problem);
        return this.reach(res, { kind: "disconnect", sub, code: code as number, reason: reason as string });
      }
      case "subscribe":
      case "unsubscribe": {
        const sub = userParam(match.param);
        const channel = (await this.body(req))["channel"];
        if (typeof channel !== "string") throw new HttpError(400, "bad_request", 'the body must be {"channel": "<channel>"}');
        const problem = channelProblem(channel) ?? this.o.namespaces.problem(channel);
        if (problem) throw new HttpError(400, "invalid_channel", problem);
        return this.reach(res, { kind: match.route, sub, channel });
      }
      case "channels":
        return this.channels(req, res);
      case "info":
        return this.info(res);
      case "history":
        return this.history(match.param, req, res);
      case "presence":
      case "presence_stats":
        return this.presence(match.route, match.param, req, res);
      case "block": {
        const sub = userParam(match.param);
        if (req.method === "DELETE") return this.lift(res, { kind: "user", sub });
        const until = (await this.body(req))["until"];
        return this.revoke(res, { kind: "user", sub, until: until as number }, untilProblem(until));
      }
      case "revoke": {
        const body = await this.body(req);
        const problem = jtiProblem(body["jti"]) ?? untilProblem(body["until"]);
        return this.revoke(res, { kind: "token", jti: body["jti"] as string, until: body["until"] as number }, problem);
      }
      default:
        throw new HttpError(404, "not_found", "no such route");
    }
  }

  /** disconnect / subscribe / unsubscribe: the connections reached on every gateway. */
  private async reach(res: ServerResponse, request: ControlRequest): Promise<void> {
    const { answers, missing } = await this.ask(request);
    let connections = 0;
    const errors: Array<{ gateway: string; error: string }> = [];
    for (const a of answers) {
      if ("connections" in a) connections += a.connections;
      else if ("error" in a) errors.push({ gateway: a.gateway, error: a.error });
    }
    sendJson(res, 200, { connections, gateways: answers.length, missing, ...(errors.length > 0 ? { errors } : {}) });
  }

  private async channels(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const prefix = new URL(req.url ?? "/", "http://x").searchParams.get("prefix") ?? "";
    if (prefix.length > 200) throw new HttpError(400, "bad_request", "prefix must be at most 200 characters");
    const { answers, missing } = await this.ask({ kind: "channels", prefix });
    const clients = new Map<string, number>();
    let truncated = false;
    for (const a of answers) {
      if (!("channels" in a)) continue;
      truncated ||= a.truncated;
      for (const c of a.channels) clients.set(c.channel, (clients.get(c.channel) ?? 0) + c.clients);
    }
    const channels: ChannelClients[] = [...clients].sort(([a], [b]) => (a < b ? -1 : 1)).map(([channel, n]) => ({ channel, clients: n }));
    sendJson(res, 200, { channels, gateways: answers.length, missing, truncated });
  }

  private async info(res: ServerResponse): Promise<void> {
    const { answers, missing } = await this.ask({ kind: "info" });
    const gateways: GatewayInfo[] = answers.flatMap((a) => ("info" in a ? [a.info] : [])).sort((a, b) => (a.id < b.id ? -1 : 1));
    sendJson(res, 200, { gateways, missing });
  }

  /** A channel's history, read from the broker's window here (no gateway involved). */
  private async history(param: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const channel = decodeParam(param);
    if (channel === undefined) throw new HttpError(400, "invalid_channel", "channel is not correctly URL-encoded");
    const problem = channelProblem(channel) ?? this.o.namespaces.problem(channel);
    if (problem) throw new HttpError(400, "invalid_channel", problem);
    const ns = this.o.namespaces.of(channel)!;
    if (!ns.history) throw new HttpError(400, "bad_request", `history is off for ${ns.name === "" ? "the default namespace" : `namespace "${ns.name}"`}`);
    const query = new URL(req.url ?? "/", "http://x").searchParams;
    const since = intParam(query.get("since"), "since", 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(query.get("limit"), "limit", HISTORY_DEFAULT_LIMIT, 1, HISTORY_MAX_LIMIT);
    const subject = this.o.subjects.channel(channel);
    const history = this.o.broker.history;
    if (!history?.windowOf(subject) || !this.o.broker.connected) throw unavailable("history unavailable, try again");
    let page;
    try {
      page = await readHistoryPage(history, subject, since, limit);
    } catch (err) {
      this.o.logger.warn({ err: (err as Error).message }, "history read failed");
      throw unavailable("history unavailable, try again");
    }
    // Entries are JSON already (the payload verbatim, or base64): join them, never parse them again.
    const head = `{"channel":${JSON.stringify(channel)},"epoch":${JSON.stringify(page.epoch)},"messages":[`;
    const body = Buffer.concat([Buffer.from(head), ...page.entries.flatMap((e, i) => (i > 0 ? [Buffer.from(","), e] : [e])), Buffer.from(`],"next":${page.next}}`)]);
    res.writeHead(200, { "Content-Type": "application/json", "Content-Length": body.length });
    res.end(body);
  }

  /**
   * A channel's presence, from one gateway (each holds every gateway's
   * members): the first known one, or the one whose cursor is continued
   * (the API's cursor names it).
   */
  private async presence(kind: "presence" | "presence_stats", param: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const channel = decodeParam(param);
    if (channel === undefined) throw new HttpError(400, "invalid_channel", "channel is not correctly URL-encoded");
    const problem = channelProblem(channel) ?? this.o.namespaces.problem(channel);
    if (problem) throw new HttpError(400, "invalid_channel", problem);
    const ns = this.o.namespaces.of(channel)!;
    if (!ns.presence) throw new HttpError(400, "bad_request", `presence is off for ${ns.name === "" ? "the default namespace" : `namespace "${ns.name}"`}`);
    const given = new URL(req.url ?? "/", "http://x").searchParams.get("cursor");
    let to = [...this.o.roster.known()].sort()[0];
    let cursor: string | null = null;
    if (kind === "presence" && given) {
      const parsed = parseApiCursor(given);
      if (!parsed) throw new HttpError(400, "bad_request", "cursor is not one this API gave: start again without it");
      [to, cursor] = parsed;
    }
    const request: ControlRequest = kind === "presence" ? { kind, channel, cursor, ...(to ? { to } : {}) } : { kind, channel, ...(to ? { to } : {}) };
    let answer: ControlAnswer | undefined;
    try {
      await this.o.broker.gather(this.o.subjects.control(kind), encodeControl(request), {
        timeoutMs: this.o.controlTimeoutMs,
        done: (data) => (answer = parseAnswer(data)) !== undefined,
      });
    } catch (err) {
      if (err instanceof BrokerUnavailableError) throw unavailable("broker unavailable, try again");
      throw err;
    }
    this.o.metrics.controlRequests.inc({ kind, result: answer ? "complete" : "partial" });
    if (!answer) {
      if (cursor !== null) throw new HttpError(400, "bad_request", "the gateway that gave this cursor is gone: start again without it");
      throw unavailable("no gateway answered");
    }
    if ("error" in answer) throw new HttpError(400, "bad_request", answer.error);
    if (!("presence" in answer)) throw unavailable("no gateway answered");
    const p = answer.presence;
    if (kind === "presence_stats") return sendJson(res, 200, { channel, clients: p.clients, users: p.users });
    const next = p.cursor ? Buffer.from(JSON.stringify([answer.gateway, p.cursor])).toString("base64url") : null;
    sendJson(res, 200, { channel, clients: p.clients, users: p.users, members: p.members ?? [], cursor: next });
  }

  /** Stores a block or a revocation: every gateway watching the bucket closes the matching connections with 4011 and refuses them from now on. */
  private async revoke(res: ServerResponse, entry: Revocation, problem: string | null): Promise<void> {
    if (problem) throw new HttpError(400, "bad_request", problem);
    await (await this.bucket()).put(revocationKey(entry), encodeRevocation(entry));
    this.o.logger.info({ kind: entry.kind, until: entry.until }, entry.kind === "user" ? "user blocked" : "token revoked");
    sendJson(res, 200, entry.kind === "user" ? { sub: entry.sub, until: entry.until } : { jti: entry.jti, until: entry.until });
  }

  private async lift(res: ServerResponse, key: { kind: "user"; sub: string }): Promise<void> {
    await (await this.bucket()).delete(revocationKey(key));
    sendJson(res, 200, { sub: key.sub, blocked: false });
  }

  private async bucket(): Promise<BrokerKeyValue> {
    try {
      return await this.o.broker.keyValue(revocationBucket(this.o.historyStream), { maxAgeSeconds: REVOCATION_BUCKET_MAX_AGE_SECONDS });
    } catch (err) {
      if (err instanceof BrokerUnavailableError) throw unavailable(err.message);
      throw err;
    }
  }

  /** Sends `request` to every gateway and gathers their answers (see the file comment). */
  private async ask(request: ControlRequest): Promise<Gathered> {
    const kind: ControlKind = request.kind;
    const expected = this.o.roster.known();
    const waiting = new Set(expected);
    const answers: ControlAnswer[] = [];
    const done = (data: Uint8Array): boolean => {
      const answer = parseAnswer(data);
      if (!answer) return false;
      answers.push(answer);
      this.o.roster.seen(answer.gateway);
      waiting.delete(answer.gateway);
      return expected.size > 0 && waiting.size === 0;
    };
    try {
      await this.o.broker.gather(this.o.subjects.control(kind), encodeControl(request), { timeoutMs: this.o.controlTimeoutMs, done });
    } catch (err) {
      this.o.metrics.controlRequests.inc({ kind, result: "unavailable" });
      if (err instanceof BrokerUnavailableError) throw unavailable("broker unavailable, try again");
      throw err;
    }
    this.o.metrics.controlRequests.inc({ kind, result: waiting.size > 0 ? "partial" : "complete" });
    if (waiting.size > 0) this.o.logger.warn({ kind, missing: [...waiting] }, "gateways did not answer a control request in time");
    return { answers, missing: waiting.size };
  }

  private async body(req: IncomingMessage): Promise<Record<string, unknown>> {
    const raw = await readJsonBody(req, this.o.maxBodyBytes);
    const value: unknown = JSON.parse(raw.toString("utf8"));
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new HttpError(400, "bad_request", "the body must be a JSON object");
    return value as Record<string, unknown>;
  }

  /** A body that may be left out (disconnect's code and reason have defaults). */
  private async optionalBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    const length = req.headers["content-length"];
    if ((length === undefined || length === "0") && req.headers["transfer-encoding"] === undefined) return {};
    return this.body(req);
  }
}

function userParam(param: string): string {
  const sub = decodeParam(param);
  if (sub === undefined) throw new HttpError(400, "bad_request", "user id is not correctly URL-encoded");
  if (sub.length === 0 || sub.length > MAX_CONTROL_SUB_LENGTH) throw new HttpError(400, "bad_request", `user id must be 1 to ${MAX_CONTROL_SUB_LENGTH} characters`);
  return sub;
}

function intParam(value: string | null, name: string, fallback: number, min: number, max: number): number {
  if (value === null || value === "") return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new HttpError(400, "bad_request", `${name} must be an integer from ${min} to ${max}`);
  return n;
}

function parseAnswer(data: Uint8Array): ControlAnswer | undefined {
  try {
    const a = JSON.parse(Buffer.from(data).toString("utf8")) as ControlAnswer;
    return typeof a?.gateway === "string" ? a : undefined;
  } catch {
    return undefined;
  }
}

/** The API's presence cursor: [gateway id, that gateway's cursor]; undefined when it is not one. */
function parseApiCursor(text: string): [string, string] | undefined {
  try {
    const v = JSON.parse(Buffer.from(text, "base64url").toString("utf8")) as unknown;
    return Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "string" ? [v[0], v[1]] : undefined;
  } catch {
    return undefined;
  }
}

function unavailable(message: string): HttpError {
  return new HttpError(503, "unavailable", message, { "Retry-After": "1" });
}
