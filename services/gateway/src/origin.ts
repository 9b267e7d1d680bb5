/**
 * ALLOWED_ORIGINS: exact origins (`https://app.example.com`), subdomain
 * patterns (`https://*.example.com`) or `*`. With an empty list, requests
 * that carry an Origin header (browsers) are refused and non-browser clients,
 * which send none, are accepted.
 */
import { ConfigError } from "@herald/core";

export class OriginPolicy {
  private constructor(
    readonly allowAll: boolean,
    private readonly exact: Set<string>,
    /** [scheme + "//", ".example.com" (suffix), port part] */
    private readonly wildcards: Array<{ scheme: string; suffix: string; port: string }>,
  ) {}

  static parse(entries: readonly string[], variable: string): OriginPolicy {
    let allowAll = false;
    const exact = new Set<string>();
    const wildcards: Array<{ scheme: string; suffix: string; port: string }> = [];
    for (const entry of entries) {
      if (entry === "*") {
        allowAll = true;
        continue;
      }
      const m = /^(https?):\/\/\*\.([A-Za-z0-9.-]+)(:\d+)?$/.exec(entry);
      if (m) {
        wildcards.push({ scheme: `${m[1]}://`, suffix: `.${m[2]!.toLowerCase()}`, port: m[3] ?? "" });
        continue;
      }
      let url: URL;
      try {
        url = new URL(entry);
      } catch {
        throw new ConfigError(variable, `"${entry}" is not an origin like https://app.example.com`);
      }
      if (url.origin === "null" || url.pathname !== "/" || entry.endsWith("/")) {
        throw new ConfigError(variable, `"${entry}" is not an origin (scheme://host[:port], no path)`);
      }
      exact.add(url.origin);
    }
    return new OriginPolicy(allowAll, exact, wildcards);
  }

  /** `origin` is the raw header value; "" means the request had none. */
  allows(origin: string): boolean {
    if (origin === "") return true;
    if (this.allowAll) return true;
    if (this.exact.has(origin.toLowerCase())) return true;
    for (const w of this.wildcards) {
      const lower = origin.toLowerCase();
      if (!lower.startsWith(w.scheme)) continue;
      const rest = lower.slice(w.scheme.length);
      const portIdx = rest.lastIndexOf(":");
      const host = portIdx >= 0 ? rest.slice(0, portIdx) : rest;
      const port = portIdx >= 0 ? rest.slice(portIdx) : "";
      if (port === w.port && host.endsWith(w.suffix) && host.length > w.suffix.length && /^[a-z0-9.-]+$/.test(host)) {
        return true;
      }
    }
    return false;
  }
}
