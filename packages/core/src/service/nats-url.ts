/**
 * NATS server URLs, the one place that knows their shape. They can carry
 * `user:password@` or `token@`, which must never reach an error message or a
 * log line: everything that shows a server URL shows `redactNatsUrl(url)`.
 */

/**
 * The URL with everything between the scheme and the LAST `@` replaced by
 * `***`, so a password that itself contains `@` or `/` is hidden whole.
 * A NATS URL has no path or query, so no legitimate `@` follows the host.
 */
export function redactNatsUrl(server: string): string {
  return server.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[^]*@/i, "$1***@");
}

/** Server URLs as logs and banners may show them. */
export function redactServers(servers: readonly string[]): string[] {
  return servers.map(redactNatsUrl);
}

const NATS_SCHEMES = new Set(["nats:", "tls:", "ws:", "wss:"]);

/**
 * Why `server` is not a NATS server address, or null when it is one
 * (nats.js accepts bare `host[:port]` as well as URLs). The reason shows the
 * address redacted.
 */
export function natsUrlProblem(server: string): string | null {
  const candidate = server.includes("://") ? server : `nats://${server}`;
  let url: URL;
  try {
    url = new URL(candidate);
  } catch {
    return `"${redactNatsUrl(server)}" is not a valid server URL`;
  }
  if (!NATS_SCHEMES.has(url.protocol) || url.hostname === "") {
    return `"${redactNatsUrl(server)}" must be a nats://, tls://, ws:// or wss:// URL (comma-separated list)`;
  }
  return null;
}
