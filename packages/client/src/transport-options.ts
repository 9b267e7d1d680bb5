/**
 * The transport options (`transports`, `WebSocket`, `sseUrl`, `fetch`),
 * parsed once: which transports the client may use, in which order, and what
 * each needs. Apart from options.ts because the checks depend on each other
 * (a WebSocket implementation is needed only when "websocket" is listed).
 */
import { HeraldError } from "./errors.js";
import type { FetchLike } from "./sse-socket.js";
import type { HeraldClientOptions, TransportName, WebSocketConstructor } from "./types.js";

/** Preference order when `transports` is not given: the WebSocket, and SSE when it cannot open. */
export const DEFAULT_TRANSPORTS: readonly TransportName[] = ["websocket", "sse"];
const KNOWN = new Set<string>(DEFAULT_TRANSPORTS);

export interface SseEndpoints {
  /** GET: the stream. */
  url: string;
  /** POST: the commands (the stream's path + `/commands`). */
  commandsUrl: string;
  fetch: FetchLike;
}

export interface ResolvedTransports {
  /** The WebSocket endpoint (`url`). */
  wsUrl: string;
  /** At least one, no repeats, in preference order. */
  transports: TransportName[];
  /** Set when "websocket" is in `transports`. */
  WebSocket: WebSocketConstructor | undefined;
  /** Set when "sse" is in `transports`. */
  sse: SseEndpoints | undefined;
}

export function resolveTransports(options: HeraldClientOptions): ResolvedTransports {
  const explicit = options.transports !== undefined;
  let transports = explicit ? checkTransports(options.transports) : defaultTransports(options);
  const globalFetch = (globalThis as { fetch?: FetchLike }).fetch;
  // Called through globalThis: a browser's fetch throws "Illegal invocation" when called detached.
  const fetchImpl: FetchLike | undefined = options.fetch ?? (typeof globalFetch === "function" ? (url, init) => globalThis.fetch(url, init) : undefined);
  if (!explicit && fetchImpl === undefined) {
    // An old runtime without fetch: the default just goes without the fallback.
    transports = transports.filter((t) => t !== "sse");
  }
  let WS: WebSocketConstructor | undefined;
  if (transports.includes("websocket")) {
    WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (typeof WS !== "function") {
      throw new HeraldError(
        "invalid_argument",
        "no WebSocket implementation: pass the WebSocket option (in Node 20: `WebSocket: (await import('ws')).default`), or transports: [\"sse\"]",
      );
    }
  }
  let sse: SseEndpoints | undefined;
  if (transports.includes("sse")) {
    if (typeof fetchImpl !== "function") throw new HeraldError("invalid_argument", 'transports includes "sse" but there is no fetch: pass the fetch option');
    const url = options.sseUrl ?? deriveSseUrl(options.url);
    sse = { url: checkHttpUrl(url), commandsUrl: commandsUrlOf(url), fetch: fetchImpl };
  }
  return { wsUrl: options.url, transports, WebSocket: WS, sse };
}

/** The default list for `url`: without an SSE endpoint to derive (a url that does not parse), the WebSocket alone fails it as before, at connect(). */
function defaultTransports(options: HeraldClientOptions): TransportName[] {
  if (options.sseUrl !== undefined) return [...DEFAULT_TRANSPORTS];
  try {
    deriveSseUrl(options.url);
    return [...DEFAULT_TRANSPORTS];
  } catch {
    return ["websocket"];
  }
}

function checkTransports(value: unknown): TransportName[] {
  const list = value as unknown[];
  const bad = !Array.isArray(list) || list.length === 0 || list.some((t) => typeof t !== "string" || !KNOWN.has(t)) || new Set(list).size !== list.length;
  if (bad) throw new HeraldError("invalid_argument", 'transports must be a non-empty list of distinct "websocket" and "sse", in order of preference');
  return [...(list as TransportName[])];
}

/**
 * The gateway's SSE endpoint beside its WebSocket one: ws → http, wss → https,
 * a path ending in `/ws` ends in `/sse` instead, any other path gets `/sse`
 * appended (`wss://rt.example.com/ws` → `https://rt.example.com/sse`,
 * `wss://example.com/herald` → `https://example.com/herald/sse`).
 */
export function deriveSseUrl(wsUrl: string): string {
  const u = parseUrl(wsUrl, "url");
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  const path = u.pathname.replace(/\/+$/, "");
  u.pathname = path.endsWith("/ws") ? `${path.slice(0, -3)}/sse` : `${path}/sse`;
  return u.toString();
}

/** The commands endpoint of a stream: its path + `/commands`, the query kept. */
export function commandsUrlOf(sseUrl: string): string {
  const u = parseUrl(sseUrl, "sseUrl");
  u.pathname = `${u.pathname.replace(/\/+$/, "")}/commands`;
  return u.toString();
}

function checkHttpUrl(url: string): string {
  const u = parseUrl(url, "sseUrl");
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new HeraldError("invalid_argument", `sseUrl must be http:// or https:// (got ${url})`);
  return u.toString();
}

function parseUrl(url: string, name: string): URL {
  try {
    // Relative to the page in a browser, as `new WebSocket("/ws")` is.
    return new URL(url, (globalThis as { location?: { href?: string } }).location?.href);
  } catch (cause) {
    throw new HeraldError("invalid_argument", `${name} is not a URL: ${url}`, { cause });
  }
}
