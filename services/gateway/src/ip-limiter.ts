/** Open (and pending) connections per client IP, for MAX_CONNECTIONS_PER_IP. */
export class IpLimiter {
  private readonly counts = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Reserves a slot; false when the IP is at its limit. 0 turns the limit off. */
  acquire(ip: string): boolean {
    if (this.max === 0) return true;
    const n = this.counts.get(ip) ?? 0;
    if (n >= this.max) return false;
    this.counts.set(ip, n + 1);
    return true;
  }

  release(ip: string): void {
    if (this.max === 0) return;
    const n = this.counts.get(ip) ?? 0;
    if (n <= 1) this.counts.delete(ip);
    else this.counts.set(ip, n - 1);
  }
}
