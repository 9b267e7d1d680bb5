import { limiterKey } from "./client-ip.js";

/**
 * Open (and pending) connections per client, for MAX_CONNECTIONS_PER_IP.
 * A client is an IPv4 address or an IPv6 network of IPV6_LIMIT_PREFIX bits
 * (limiterKey); callers pass the (normalized) client address.
 */
export class IpLimiter {
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly ipv6Prefix: number,
  ) {}

  /** Reserves a slot; false when the client is at its limit. 0 turns the limit off. */
  acquire(ip: string): boolean {
    if (this.max === 0) return true;
    const key = limiterKey(ip, this.ipv6Prefix);
    const n = this.counts.get(key) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(key, n + 1);
    return true;
  }

  release(ip: string): void {
    if (this.max === 0) return;
    const key = limiterKey(ip, this.ipv6Prefix);
    const n = this.counts.get(key) ?? 0;
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
  }
}
