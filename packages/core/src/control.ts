/**
 * The server API's control messages: what the publisher asks every gateway
 * over `<prefix>.ctl.<kind>` and what each gateway answers. JSON both ways.
 * A gateway parses every request with parseControlRequest, since anything
 * with NATS access could send one: a bad one is answered with an error,
 * never acted on and never able to take the process down.
 */
import { channelProblem } from "./channels.js";

export const CONTROL_KINDS = ["disconnect", "subscribe", "unsubscribe", "channels", "info", "presence", "presence_stats"] as const;
export type ControlKind = (typeof CONTROL_KINDS)[number];

/** Close codes the server API may disconnect with: 4010 or another application code (4000-4999). */
export const DISCONNECT_CODES = { min: 4000, max: 4999, default: 4010 } as const;
/** Longest close reason: a close frame's payload is at most 125 bytes, 2 of them the code. */
export const MAX_CLOSE_REASON_BYTES = 123;
/** Longest `sub` the server API takes (the publisher's user route has the same bound). */
export const MAX_CONTROL_SUB_LENGTH = 256;
/** Most channels one gateway lists in a `channels` answer; `truncated` says when it had more. */
export const MAX_CHANNELS_LISTED = 2000;

export type ControlRequest =
  | { kind: "disconnect"; sub: string; code: number; reason: string }
  | { kind: "subscribe"; sub: string; channel: string }
  | { kind: "unsubscribe"; sub: string; channel: string }
  | { kind: "channels"; prefix: string }
  | { kind: "info" }
  /** Answered by the gateway `to` only (every gateway holds every member): pages continue where their cursor was made. */
  | { kind: "presence"; channel: string; cursor: string | null; to?: string }
  | { kind: "presence_stats"; channel: string; to?: string };

export interface ChannelClients {
  channel: string;
  clients: number;
}

export interface GatewayInfo {
  id: string;
  connections: number;
  channels: number;
  uptime_seconds: number;
  version: string;
}

/** One gateway's answer. */
export type ControlAnswer =
  | { gateway: string; connections: number }
  | { gateway: string; channels: ChannelClients[]; truncated: boolean }
  | { gateway: string; info: GatewayInfo }
  | { gateway: string; presence: { clients: number; users: number; members?: Array<{ sub: string; connection: string; info: unknown }>; cursor?: string | null } }
  | { gateway: string; error: string };

/** The heartbeat a gateway publishes on `<prefix>.gw.hello`; `bye` when it stops. */
export interface GatewayHello {
  gateway: string;
  bye?: true;
}

/** Why a request cannot be acted on; null when it is fine. */
function subProblem(sub: unknown): string | null {
  return typeof sub === "string" && sub.length > 0 && sub.length <= MAX_CONTROL_SUB_LENGTH ? null : `sub must be a string of 1 to ${MAX_CONTROL_SUB_LENGTH} characters`;
}

/** The close `code` and `reason` of a disconnect, validated; a string says what is wrong. */
export function disconnectProblem(code: unknown, reason: unknown): string | null {
  if (typeof code !== "number" || !Number.isInteger(code) || code < DISCONNECT_CODES.min || code > DISCONNECT_CODES.max) {
    return `code must be an integer from ${DISCONNECT_CODES.min} to ${DISCONNECT_CODES.max} (default ${DISCONNECT_CODES.default})`;
  }
  if (typeof reason !== "string" || Buffer.byteLength(reason) > MAX_CLOSE_REASON_BYTES) return `reason must be a string of at most ${MAX_CLOSE_REASON_BYTES} bytes`;
  return null;
}

/** Parses a control request of `kind`; a string is the reason it is refused. */
export function parseControlRequest(kind: string, data: Uint8Array): ControlRequest | string {
  if (!(CONTROL_KINDS as readonly string[]).includes(kind)) return `unknown control request ${JSON.stringify(kind)}`;
  let body: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(data).toString("utf8"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return "the request must be a JSON object";
    body = parsed as Record<string, unknown>;
  } catch {
    return "the request is not valid JSON";
  }
  switch (kind as ControlKind) {
    case "disconnect": {
      const problem = subProblem(body["sub"]) ?? disconnectProblem(body["code"], body["reason"]);
      return problem ?? { kind: "disconnect", sub: body["sub"] as string, code: body["code"] as number, reason: body["reason"] as string };
    }
    case "subscribe":
    case "unsubscribe": {
      const channel = body["channel"];
      const problem = subProblem(body["sub"]) ?? (typeof channel === "string" ? channelProblem(channel) : "channel must be a string");
      return problem ?? { kind: kind as "subscribe" | "unsubscribe", sub: body["sub"] as string, channel: channel as string };
    }
    case "channels": {
      const prefix = body["prefix"] ?? "";
      return typeof prefix === "string" && prefix.length <= 200 ? { kind: "channels", prefix } : "prefix must be a string of at most 200 characters";
    }
    case "info":
      return { kind: "info" };
    case "presence":
    case "presence_stats": {
      const channel = body["channel"];
      const to = body["to"];
      if (typeof channel !== "string" || channelProblem(channel)) return "channel must be a valid channel";
      if (to !== undefined && typeof to !== "string") return "to must be a gateway id";
      if (kind === "presence_stats") return { kind, channel, ...(to === undefined ? {} : { to }) };
      const cursor = body["cursor"] ?? null;
      if (cursor !== null && typeof cursor !== "string") return "cursor must be a string or null";
      return { kind: "presence", channel, cursor, ...(to === undefined ? {} : { to }) };
    }
  }
}

export function encodeControl(value: ControlRequest | ControlAnswer | GatewayHello): Uint8Array {
  return Buffer.from(JSON.stringify(value));
}
