/**
 * URL routing: a handful of fixed paths, matched without a router library.
 * Query strings are ignored (and never logged).
 */
import type { PublisherRoute } from "@herald/core";

export type RouteMatch =
  | { kind: "publish"; route: Exclude<PublisherRoute, "other">; param: string; allow: "POST" }
  | { kind: "ops"; name: "healthz" | "readyz" | "metrics"; allow: "GET, HEAD" }
  | { kind: "none" };

const CHANNEL_PATH = /^\/v1\/channels\/([^/]+)\/messages$/;
const USER_PATH = /^\/v1\/users\/([^/]+)\/messages$/;

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
    default:
      break;
  }
  let m = CHANNEL_PATH.exec(path);
  if (m?.[1] !== undefined) return { kind: "publish", route: "channel", param: m[1], allow: "POST" };
  m = USER_PATH.exec(path);
  if (m?.[1] !== undefined) return { kind: "publish", route: "user", param: m[1], allow: "POST" };
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
