/**
 * HAProxy helpers for test/deploy-compose-haproxy.test.ts: the config split into its
 * sections, the log format a proxy section ends up with, the log-format
 * variables that would write a request's query string (where browsers carry
 * `access_token=<jwt>`), and raw HTTP/1.1 requests for the live test (raw so
 * that a request may carry several X-Forwarded-For lines, as a forging
 * client would send them).
 */
import { connect } from "node:net";

export interface Section {
  /** e.g. "defaults", "frontend ws". */
  header: string;
  keyword: string;
  name: string;
  /** Directive lines, trimmed, comments and blank lines removed. */
  lines: string[];
}

const SECTION = /^(global|defaults|frontend|backend|listen|resolvers|peers|userlist|program|http-errors|ring|mailers|cache|log-forward)\b\s*(\S*)/;

export function sections(cfg: string): Section[] {
  const out: Section[] = [];
  for (const raw of cfg.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = SECTION.exec(line);
    if (m && !/^\s/.test(raw)) {
      out.push({ header: line, keyword: m[1]!, name: m[2] ?? "", lines: [] });
      continue;
    }
    const cur = out[out.length - 1];
    if (!cur) throw new Error(`directive outside a section: ${line}`);
    cur.lines.push(line);
  }
  return out;
}

/** `option httplog` and friends: each sets a whole built-in log format. */
const BUILTIN_FORMAT = /^option\s+(httplog|httpslog|tcplog)\b/;

/**
 * The log format in effect for a proxy section: the last `log-format` or
 * built-in format option of the section, else of the defaults section before
 * it. Returns the custom format string, `option …` for a built-in one, or
 * undefined when none is set. (Each of the two overrides the other: HAProxy
 * keeps whichever comes last.)
 */
export function effectiveLogFormat(all: Section[], proxy: Section): string | undefined {
  const idx = all.indexOf(proxy);
  const defaults = all.slice(0, idx).filter((s) => s.keyword === "defaults").at(-1);
  let found: string | undefined;
  for (const s of [defaults, proxy]) {
    for (const line of s?.lines ?? []) {
      if (BUILTIN_FORMAT.test(line)) found = line;
      else if (/^log-format\s/.test(line)) found = unquote(line.replace(/^log-format\s+/, ""));
    }
  }
  return found;
}

function unquote(s: string): string {
  const t = s.trim();
  return t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
}

/**
 * Pieces of a log format that write the query string or an auth header:
 * %r (the request line), %HU (URI with query), %HQ (query), and sample
 * fetches of the URL, path with query, URL parameters or request headers.
 */
export function queryLeaks(format: string): string[] {
  const leaks: string[] = [];
  for (const m of format.matchAll(/%(\{[^}]*\})?(r|HU|HQ)(?![A-Za-z])/g)) leaks.push(m[0]);
  for (const m of format.matchAll(/%\[([^\]]*)\]/g)) {
    if (/\b(url|query|pathq|urlp|url_param|capture\.req\.uri|capture\.req\.hdr|req\.hdr|req\.fhdr|hdr|http_first_req)\b/.test(m[1]!)) leaks.push(m[0]);
  }
  return leaks;
}

/** Whether a format logs the request path (without the query string). */
export function logsPath(format: string): boolean {
  return /%(\{[^}]*\})?HPO?(?![A-Za-z])/.test(format);
}

export interface RawResponse {
  status: number;
  headers: Map<string, string[]>;
  text: string;
}

/** Sends one raw HTTP/1.1 request (lines joined with CRLF) and reads the response until the peer closes. */
export function rawRequest(port: number, lines: string[], timeoutMs = 3_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => sock.destroy(new Error("no response")), timeoutMs);
    sock.on("connect", () => sock.write(lines.join("\r\n") + "\r\n\r\n"));
    sock.on("data", (c) => chunks.push(c));
    sock.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    sock.on("close", () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("utf8");
      const [head = ""] = text.split("\r\n\r\n");
      const [statusLine = "", ...headerLines] = head.split("\r\n");
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1]);
      if (!Number.isFinite(status)) {
        reject(new Error(`not an HTTP response: ${JSON.stringify(text.slice(0, 200))}`));
        return;
      }
      const headers = new Map<string, string[]>();
      for (const h of headerLines) {
        const i = h.indexOf(":");
        if (i <= 0) continue;
        const k = h.slice(0, i).trim().toLowerCase();
        headers.set(k, [...(headers.get(k) ?? []), h.slice(i + 1).trim()]);
      }
      resolve({ status, headers, text });
    });
  });
}
