/**
 * The client IP used for per-IP limits and logs: the socket's peer address,
 * unless the peer is a trusted proxy, and only then X-Forwarded-For, read
 * from the right and skipping further trusted hops so a client cannot spoof
 * its address by sending its own header.
 */
import { BlockList, isIP } from "node:net";
import { ConfigError } from "@herald/core";

export class TrustedProxies {
  private constructor(
    private readonly list: BlockList,
    readonly empty: boolean,
  ) {}

  static parse(entries: readonly string[], variable: string): TrustedProxies {
    const list = new BlockList();
    for (const entry of entries) {
      const [addr, bitsText] = entry.split("/");
      const family = isIP(addr ?? "");
      if (!addr || family === 0) throw new ConfigError(variable, `"${entry}" is not an IP address or CIDR`);
      const type = family === 4 ? "ipv4" : "ipv6";
      if (bitsText === undefined) {
        list.addAddress(addr, type);
        continue;
      }
      const bits = Number(bitsText);
      if (!Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128)) {
        throw new ConfigError(variable, `"${entry}" has an invalid prefix length`);
      }
      list.addSubnet(addr, bits, type);
    }
    return new TrustedProxies(list, entries.length === 0);
  }

  trusts(ip: string): boolean {
    if (this.empty) return false;
    const family = isIP(ip);
    return family !== 0 && this.list.check(ip, family === 4 ? "ipv4" : "ipv6");
  }

  /**
   * Client address from the peer address and the X-Forwarded-For header,
   * which is only read (`readForwardedFor`) when the peer is trusted.
   */
  clientIp(peer: string, readForwardedFor: () => string): string {
    if (!this.trusts(peer)) return peer;
    const forwardedFor = readForwardedFor();
    if (forwardedFor === "") return peer;
    const hops = forwardedFor.split(",").map((s) => s.trim());
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (isIP(hop) === 0) return peer; // malformed header: do not believe any of it
      if (!this.trusts(hop)) return hop;
    }
    return hops[0] ?? peer;
  }
}

/**
 * Every X-Forwarded-For line of a request, joined in order. A request may
 * carry several (HAProxy's `option forwardfor` appends a line of its own and
 * keeps the client's), and reading only the first would believe the client.
 */
export function forwardedFor(req: { forEach(cb: (key: string, value: string) => void): void }): string {
  let joined = "";
  req.forEach((key, value) => {
    if (key === "x-forwarded-for") joined = joined === "" ? value : `${joined}, ${value}`;
  });
  return joined;
}

/** Text form of a uWS binary remote address (4 or 16 bytes), IPv4-mapped IPv6 as IPv4. */
export function addressText(raw: ArrayBuffer): string {
  const b = new Uint8Array(raw);
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) return "unknown";
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  if (mapped) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  // The URL parser prints IPv6 in canonical compressed form (RFC 5952).
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}
