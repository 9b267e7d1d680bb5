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

/** Sends one raw HTTP/1.1 request (lines joined with CRLF, then `body`) and reads the response until the peer closes. */
export function rawRequest(port: number, lines: string[], timeoutMs = 3_000, body = ""): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => sock.destroy(new Error("no response")), timeoutMs);
    sock.on("connect", () => sock.write(lines.join("\r\n") + "\r\n\r\n" + body));
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

/** An HAProxy time ("60s", "1h", "500ms"; a bare number is milliseconds) in milliseconds. */
export function haproxyTimeMs(value: string): number {
  const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(value.trim());
  if (!m) throw new Error(`not an HAProxy time: ${value}`);
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? "ms"]!;
  return Number(m[1]) * scale;
}

/**
 * The arguments of the directive `name` (e.g. "timeout server", "balance")
 * in effect for `proxy`: its own last one, else the last one of the
 * defaults section before it; undefined when neither sets it.
 */
export function effective(all: Section[], proxy: Section, name: string): string | undefined {
  const defaults = all.slice(0, all.indexOf(proxy)).filter((s) => s.keyword === "defaults").at(-1);
  const re = new RegExp(`^${name.replace(/ /g, "\\s+")}(?:\\s+(.*))?$`);
  let found: string | undefined;
  for (const s of [defaults, proxy]) {
    for (const line of s?.lines ?? []) {
      const m = re.exec(line);
      if (m) found = (m[1] ?? "").trim();
    }
  }
  return found;
}

/** Whether `option <name>` is in effect for `proxy` (set there or in its defaults, and no `no option <name>` after it). */
export function optionOn(all: Section[], proxy: Section, name: string): boolean {
  const defaults = all.slice(0, all.indexOf(proxy)).filter((s) => s.keyword === "defaults").at(-1);
  let on = false;
  for (const s of [defaults, proxy]) {
    for (const line of s?.lines ?? []) {
      if (new RegExp(`^option\\s+${name}$`).test(line)) on = true;
      if (new RegExp(`^no\\s+option\\s+${name}$`).test(line)) on = false;
    }
  }
  return on;
}

export interface LoopbackPorts {
  /** The client frontend (`bind :8080` in the repository). */
  front: number;
  /** The monitor frontend (`bind :8404`). */
  health: number;
  /** The one gateway's client port (for the `server-template`). */
  backend: number;
  /** The one gateway's METRICS_PORT, which the health checks go to. */
  backendMetrics: number;
}

/**
 * The repository's haproxy.cfg with only the addresses changed: loopback
 * ports, and one local server in place of the Docker-DNS server-template.
 * maxconn is lowered because HAProxy sizes its fd limit from it and refuses
 * to start where it cannot raise the limit that far (unprivileged CI,
 * sandboxes). `extra` swaps more (each pattern must match).
 */
export function loopbackConfig(cfg: string, ports: LoopbackPorts, metricsPort: number, extra: [RegExp, string][] = []): string {
  const swaps: [RegExp, string][] = [
    [/^(\s*)bind :8080$/m, `$1bind 127.0.0.1:${ports.front}`],
    [/^(\s*)bind :8404$/m, `$1bind 127.0.0.1:${ports.health}`],
    [/^(\s*)server-template \S+ \d+ gateway:8080$/m, `$1server gw1 127.0.0.1:${ports.backend}`],
    [new RegExp(`\\bcheck port ${metricsPort}\\b`), `check port ${ports.backendMetrics}`],
    [/\bmaxconn \d+/g, "maxconn 1000"],
    ...extra,
  ];
  for (const [from, to] of swaps) {
    if (!from.test(cfg)) throw new Error(`haproxy.cfg no longer has ${String(from)}`);
    from.lastIndex = 0;
    cfg = cfg.replace(from, to);
  }
  return cfg;
}
