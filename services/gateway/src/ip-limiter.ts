import { limiterKey } from "./client-ip.js";

/**
 * Open (and pending) connections per key, at most `max` each (0 = no limit):
 * per user for MAX_CONNECTIONS_PER_USER, and the counting behind IpLimiter.
 */
export class KeyedLimiter {
  private readonly counts = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Reserves a slot; false when `key` is at its limit. */
  acquire(key: string): boolean {
    if (this.max === 0) return true;
    const n = this.counts.get(key) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    if (this.max === 0) return;
    const n = this.counts.get(key) ?? 0;
    if (n <= 1) this.counts.delete(key);
    else this.counts.set(key, n - 1);
  }
}

/**
 * Open (and pending) connections per client, for MAX_CONNECTIONS_PER_IP.
 * A client is an IPv4 address or an IPv6 network of IPV6_LIMIT_PREFIX bits
 * (limiterKey); callers pass the (normalized) client address.
 */
export class IpLimiter {
  private readonly counts: KeyedLimiter;

  constructor(
    max: number,
    private readonly ipv6Prefix: number,
  ) {
    this.counts = new KeyedLimiter(max);
  }

  /** Reserves a slot; false when the client is at its limit. 0 turns the limit off. */
  acquire(ip: string): boolean {
    return this.counts.acquire(limiterKey(ip, this.ipv6Prefix));
  }

  release(ip: string): void {
    this.counts.release(limiterKey(ip, this.ipv6Prefix));
  }
}
