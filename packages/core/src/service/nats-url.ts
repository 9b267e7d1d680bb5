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

/** Credentials a NATS URL carries, for the connect options: nats.js keeps only host and port of a server URL. */
export type NatsCredentials = { user: string; pass: string } | { token: string } | Record<string, never>;

/**
 * The credentials in `servers` (`user:password@` or `token@`,
 * percent-decoded), which must be the same wherever given: nats.js takes one
 * set for every server. Throws (with redacted URLs) when two servers carry
 * different ones.
 */
export function natsCredentials(servers: readonly string[]): NatsCredentials {
  let found: NatsCredentials | undefined;
  let foundText: string | undefined;
  for (const server of servers) {
    const url = new URL(server.includes("://") ? server : `nats://${server}`);
    if (url.username === "" && url.password === "") continue;
    const text = `${url.username}:${url.password}`;
    if (foundText !== undefined && foundText !== text) throw new Error("every server in NATS_URL must carry the same credentials (or none)");
    foundText = text;
    const user = decodeURIComponent(url.username);
    found = url.password === "" && !server.includes(`${url.username}:@`) ? { token: user } : { user, pass: decodeURIComponent(url.password) };
  }
  return found ?? {};
}
