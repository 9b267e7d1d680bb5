/**
 * parseServerFrame: the one place server frames are read, so the rest of the
 * client can trust every field it uses (docs/protocol.md §7). It runs on
 * every message: the checks are typeof tests on the parsed object, which is
 * returned as it is, without a copy; fields the client does not know are left
 * alone (the protocol may add optional ones).
 */
import { HeraldError } from "./errors.js";
import type { RequestId, ServerFrame, WelcomeFrame } from "./protocol.js";
import type { Welcome } from "./types.js";

/** A frame that is not herald.v1: code `protocol_error`; `requestId` when the frame named a readable id. */
export class MalformedFrameError extends HeraldError {
  constructor(
    message: string,
    readonly requestId: RequestId | undefined,
  ) {
    super("protocol_error", message);
  }
}

type Fields = Record<string, unknown>;

/**
 * Parses and checks one text frame from the server. Throws
 * MalformedFrameError for anything that is not a well-formed frame of a known
 * type; returns undefined for a well-formed frame of a type this client does
 * not know (a newer server), which the client ignores.
 */
export function parseServerFrame(text: string): ServerFrame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new MalformedFrameError("the server sent a frame that is not JSON", undefined);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new MalformedFrameError("the server sent a frame that is not a JSON object", undefined);
  }
  const f = value as Fields;
  const type = f["type"];
  if (typeof type !== "string") throw malformed(f, "frame", "type must be a string");
  const id = f["id"];
  if (id !== undefined && !isRequestId(id)) throw malformed(f, type, "id must be a number or a string");
  switch (type) {
    case "welcome":
      if (typeof f["sub"] !== "string") throw malformed(f, type, "sub must be a string");
      if (typeof f["connection"] !== "string") throw malformed(f, type, "connection must be a string");
      if (f["subs"] !== undefined) checkWelcomeSubs(f, f["subs"]);
      break;
    case "subscribed":
      if (typeof f["channel"] !== "string") throw malformed(f, type, "channel must be a string");
      if (!optionalPosition(f["seq"])) throw malformed(f, type, "seq must be a non-negative integer");
      if (f["recovered"] !== undefined && typeof f["recovered"] !== "boolean") throw malformed(f, type, "recovered must be a boolean");
      if (f["epoch"] !== undefined && !isEpoch(f["epoch"])) throw malformed(f, type, "epoch must be a string of 1 to 64 characters");
      break;
    case "unsubscribed":
      if (typeof f["channel"] !== "string") throw malformed(f, type, "channel must be a string");
      break;
    case "ack":
    case "pong":
      break;
    case "history":
      if (typeof f["channel"] !== "string" || typeof f["epoch"] !== "string") throw malformed(f, type, "channel and epoch must be strings");
      if (!Array.isArray(f["messages"])) throw malformed(f, type, "messages must be an array");
      if (f["next"] !== null && !optionalPosition(f["next"])) throw malformed(f, type, "next must be a position or null");
      break;
    case "message":
      checkMessage(f);
      break;
    case "presence":
      if (!Array.isArray(f["members"]) || (f["cursor"] !== null && typeof f["cursor"] !== "string")) throw malformed(f, type, "members must be an array and cursor a string or null");
      checkCounts(f, type);
      break;
    case "presence_stats":
      checkCounts(f, type);
      break;
    case "join":
    case "leave":
      if (typeof f["channel"] !== "string" || typeof f["sub"] !== "string" || typeof f["connection"] !== "string") throw malformed(f, type, "channel, sub and connection must be strings");
      break;
    case "error":
      if (typeof f["code"] !== "string" || f["code"] === "") throw malformed(f, type, "code must be a non-empty string");
      if (f["message"] !== undefined && typeof f["message"] !== "string") throw malformed(f, type, "message must be a string");
      break;
    default:
      return undefined;
  }
  return f as unknown as ServerFrame;
}

/** What a (checked) welcome frame tells the application; unknown fields are left behind. */
export function welcomeOf(frame: WelcomeFrame): Welcome {
  const { sub, connection, subs } = frame;
  if (subs === undefined) return { sub, connection };
  return { sub, connection, subs: subs.map(({ channel, seq, epoch }) => (seq === undefined ? { channel } : { channel, seq, epoch: epoch as string })) };
}

/** The welcome's server-side subscriptions: distinct channels, each with both `seq` and `epoch` (history) or neither. */
function checkWelcomeSubs(f: Fields, subs: unknown): void {
  if (!Array.isArray(subs)) throw malformed(f, "welcome", "subs must be an array");
  const seen = new Set<string>();
  for (const entry of subs as unknown[]) {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) throw malformed(f, "welcome", "every entry of subs must be an object");
    const { channel, seq, epoch } = entry as Fields;
    if (typeof channel !== "string" || channel === "") throw malformed(f, "welcome", "every entry of subs needs a non-empty string channel");
    if (seen.has(channel)) throw malformed(f, "welcome", "subs lists a channel twice");
    seen.add(channel);
    if (!optionalPosition(seq)) throw malformed(f, "welcome", "a seq in subs must be a non-negative integer");
    if (epoch !== undefined && !isEpoch(epoch)) throw malformed(f, "welcome", "an epoch in subs must be a string of 1 to 64 characters");
    if ((seq === undefined) !== (epoch === undefined)) throw malformed(f, "welcome", "an entry of subs has seq and epoch together, or neither");
  }
}

/** The channel and counts of a presence answer. */
function checkCounts(f: Fields, type: string): void {
  if (typeof f["channel"] !== "string" || !Number.isInteger(f["clients"]) || !Number.isInteger(f["users"])) throw malformed(f, type, "channel, clients and users are required");
}

function isEpoch(v: unknown): boolean {
  return typeof v === "string" && v.length > 0 && v.length <= 64;
}

function checkMessage(f: Fields): void {
  const channel = f["channel"];
  if (channel !== undefined ? typeof channel !== "string" : typeof f["user"] !== "string") {
    throw malformed(f, "message", "a message needs a string channel or user");
  }
  if (!("data" in f)) throw malformed(f, "message", "data is missing");
  const encoding = f["encoding"];
  if (encoding !== undefined && (encoding !== "base64" || typeof f["data"] !== "string")) {
    throw malformed(f, "message", 'encoding must be "base64", with string data');
  }
  if (!optionalPosition(f["seq"]) || !optionalPosition(f["prev"])) throw malformed(f, "message", "seq and prev must be non-negative integers");
}

function optionalPosition(v: unknown): boolean {
  return v === undefined || (typeof v === "number" && Number.isSafeInteger(v) && v >= 0);
}

function isRequestId(v: unknown): v is RequestId {
  return (typeof v === "number" && Number.isFinite(v)) || typeof v === "string";
}

function malformed(f: Fields, type: string, what: string): MalformedFrameError {
  const id = f["id"];
  return new MalformedFrameError(`malformed ${type} frame from the server: ${what}`, isRequestId(id) ? id : undefined);
}
