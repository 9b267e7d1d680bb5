/**
 * URL routing: a handful of fixed paths, matched without a router library.
 * Query strings are ignored (and never logged).
 */
import type { ServerApiRoute } from "@herald/core";

export type RouteMatch =
  | { kind: "publish"; route: "channel" | "user"; param: string; allow: "POST" }
  | { kind: "ops"; name: "healthz" | "readyz" | "metrics"; allow: "GET, HEAD" }
  | { kind: "api"; route: ServerApiRoute; param: string; allow: "POST" | "GET, HEAD" | "POST, DELETE" }
  | { kind: "none" };

const CHANNEL_PATH = /^\/v1\/channels\/([^/]+)\/messages$/;
const USER_PATH = /^\/v1\/users\/([^/]+)\/messages$/;
/** The server API's routes on a user. */
const USER_ACTION_PATH = /^\/v1\/users\/([^/]+)\/(disconnect|subscribe|unsubscribe|block)$/;
const HISTORY_PATH = /^\/v1\/channels\/([^/]+)\/history$/;
const PRESENCE_PATH = /^\/v1\/channels\/([^/]+)\/presence(\/stats)?$/;

/** The path of a request target without its query string. */
export function pathOf(target: string | undefined): string {
  const url = target ?? "/";
  const q = url.indexOf("?");
  return q === -1 ? url : url.slice(0, q);
}

export function matchRoute(path: string): RouteMatch {
  switch (path) {
    case "/healthz":
      return { kind: "ops", name: "healthz", allow: "GET, HEAD" };
    case "/readyz":
      return { kind: "ops", name: "readyz", allow: "GET, HEAD" };
    case "/metrics":
      return { kind: "ops", name: "metrics", allow: "GET, HEAD" };
    case "/v1/channels":
      return { kind: "api", route: "channels", param: "", allow: "GET, HEAD" };
    case "/v1/info":
      return { kind: "api", route: "info", param: "", allow: "GET, HEAD" };
    case "/v1/tokens/revoke":
      return { kind: "api", route: "revoke", param: "", allow: "POST" };
    default:
      break;
  }
  let m = CHANNEL_PATH.exec(path);
  if (m?.[1] !== undefined) return { kind: "publish", route: "channel", param: m[1], allow: "POST" };
  m = USER_PATH.exec(path);
  if (m?.[1] !== undefined) return { kind: "publish", route: "user", param: m[1], allow: "POST" };
  m = USER_ACTION_PATH.exec(path);
  if (m?.[1] !== undefined && m[2] !== undefined) {
    const route = m[2] as "disconnect" | "subscribe" | "unsubscribe" | "block";
    return { kind: "api", route, param: m[1], allow: route === "block" ? "POST, DELETE" : "POST" };
  }
  m = HISTORY_PATH.exec(path);
  if (m?.[1] !== undefined) return { kind: "api", route: "history", param: m[1], allow: "GET, HEAD" };
  m = PRESENCE_PATH.exec(path);
  if (m?.[1] !== undefined) return { kind: "api", route: m[2] ? "presence_stats" : "presence", param: m[1], allow: "GET, HEAD" };
  return { kind: "none" };
}

/** decodeURIComponent that returns undefined on malformed escapes. */
export function decodeParam(param: string): string | undefined {
  try {
    return decodeURIComponent(param);
  } catch {
    return undefined;
  }
}
