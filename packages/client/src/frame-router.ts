/**
 * Where each server frame goes. A malformed one (parseServerFrame throws a
 * MalformedFrameError, code `protocol_error`) rejects the request it
 * answers when it names a waiting request's id, else it is an `error`
 * event; the connection stays up (README: "Malformed frames"). A frame type
 * this client does not know (a newer server) is ignored.
 */
import type { Conn } from "./connection.js";
import type { HeraldError } from "./errors.js";
import { parseServerFrame, welcomeOf, type MalformedFrameError } from "./frames.js";
import type { Requests } from "./requests.js";
import type { Subscriptions } from "./subscriptions.js";
import type { HeraldEvents, Welcome } from "./types.js";

export interface FrameRouter {
  requests: Requests;
  subs: Subscriptions;
  onWelcome(conn: Conn, welcome: Welcome): void;
  emit<K extends keyof HeraldEvents>(event: K, ...args: Parameters<HeraldEvents[K]>): void;
}

export function routeFrame(r: FrameRouter, conn: Conn, text: string): void {
  let frame;
  try {
    frame = parseServerFrame(text);
  } catch (err) {
    if (!r.requests.refuse(err as MalformedFrameError)) r.emit("error", err as MalformedFrameError);
    return;
  }
  switch (frame?.type) {
    case "welcome":
      return r.onWelcome(conn, welcomeOf(frame));
    case "message":
      return r.subs.onMessage(conn, frame);
    case "subscribed":
      return r.subs.onSubscribed(conn, frame, r.requests.take(frame.id));
    case "join":
    case "leave": {
      const { channel, sub, connection, info } = frame;
      return r.subs.onPresence(conn, frame.type, info === undefined ? { channel, sub, connection } : { channel, sub, connection, info });
    }
    case "unsubscribed":
    case "ack":
    case "pong":
    case "history":
    case "presence":
    case "presence_stats":
    case "error": {
      const unanswered: HeraldError | undefined = r.requests.answer(frame);
      if (unanswered) r.emit("error", unanswered);
      return;
    }
    default:
      return;
  }
}
