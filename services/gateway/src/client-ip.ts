/**
 * The client IP used for per-IP limits and logs: the socket's peer address,
 * unless the peer is a trusted proxy, and only then X-Forwarded-For, read
 * from the right and skipping further trusted hops so a client cannot spoof
 * its address by sending its own header.
 *
 * Every address is normalized (normalizeIp): an IPv4-mapped IPv6 address
 * (`::ffff:10.5.5.5`) is the IPv4 address it carries, and IPv6 is written in
 * its canonical form, so one client is one address however it arrives.
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
      const [rawAddr, bitsText] = entry.split("/");
      const family = isIP(rawAddr ?? "");
      if (!rawAddr || family === 0) throw new ConfigError(variable, `"${entry}" is not an IP address or CIDR`);
      const bits = bitsText === undefined ? undefined : Number(bitsText);
      if (bits !== undefined && (!Number.isInteger(bits) || bits < 0 || bits > (family === 4 ? 32 : 128))) {
        throw new ConfigError(variable, `"${entry}" has an invalid prefix length`);
      }
      // An IPv4-mapped entry means the IPv4 address (or, from /96 on, subnet) it carries.
      const addr = normalizeIp(rawAddr);
      const mapped = family === 6 && isIP(addr) === 4;
      const type = isIP(addr) === 4 ? "ipv4" : "ipv6";
      if (bits === undefined) list.addAddress(addr, type);
      else if (mapped && bits >= 96) list.addSubnet(addr, bits - 96, "ipv4");
      else list.addSubnet(mapped ? rawAddr : addr, bits, mapped ? "ipv6" : type);
    }
    return new TrustedProxies(list, entries.length === 0);
  }

  trusts(ip: string): boolean {
    if (this.empty) return false;
    const addr = normalizeIp(ip);
    const family = isIP(addr);
    return family !== 0 && this.list.check(addr, family === 4 ? "ipv4" : "ipv6");
  }

  /**
   * Client address (normalized) from the peer address and the X-Forwarded-For
   * header, which is only read (`readForwardedFor`) when the peer is trusted.
   */
  clientIp(rawPeer: string, readForwardedFor: () => string): string {
    const peer = normalizeIp(rawPeer);
    if (!this.trusts(peer)) return peer;
    const forwardedFor = readForwardedFor();
    if (forwardedFor === "") return peer;
    const hops = forwardedFor.split(",").map((s) => normalizeIp(s.trim()));
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
  return ipv6Text(b);
}

function isMapped(b: Uint8Array): boolean {
  return b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
}

/** 16 address bytes as text: IPv4-mapped as dotted IPv4, else canonical IPv6 (RFC 5952). */
function ipv6Text(b: Uint8Array): string {
  if (isMapped(b)) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  // The URL parser prints IPv6 in canonical compressed form (RFC 5952).
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/** The 16 bytes of an IPv6 address in text form (a `%zone` is ignored); undefined when it is none. */
export function ipv6Bytes(text: string): Uint8Array | undefined {
  const zone = text.indexOf("%");
  const addr = zone === -1 ? text : text.slice(0, zone);
  if (isIP(addr) !== 6) return undefined;
  // The URL parser accepts every IPv6 text form (embedded IPv4 included) and
  // prints hex groups, compressed with at most one "::".
  const host = new URL(`http://[${addr}]/`).hostname.slice(1, -1);
  const [head = "", tail] = host.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill("0"), ...tailGroups];
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[i * 2] = v >> 8;
    bytes[i * 2 + 1] = v & 0xff;
  });
  return bytes;
}

/**
 * One text per client address: IPv4 as is, IPv4-mapped IPv6 (`::ffff:10.5.5.5`,
 * `::ffff:a05:505`) as the IPv4 address, other IPv6 in canonical form
 * (lower case, compressed, no zone). Anything that is not an IP comes back unchanged.
 */
export function normalizeIp(ip: string): string {
  if (!ip.includes(":")) return ip; // IPv4 (or not an address): nothing to do, and the common case
  const bytes = ipv6Bytes(ip);
  return bytes === undefined ? ip : ipv6Text(bytes);
}

/**
 * The per-IP limiter's key of a client address: an IPv4 address itself, an
 * IPv6 address its network of `ipv6Prefix` bits (`2001:db8:1:2::/64`), as one
 * host usually holds a whole /64 and could otherwise open a budget per address.
 * 128 keys each IPv6 address apart. Logs keep the full address.
 */
export function limiterKey(ip: string, ipv6Prefix: number): string {
  if (!ip.includes(":")) return ip;
  const bytes = ipv6Bytes(ip);
  if (bytes === undefined) return ip;
  if (isMapped(bytes) || ipv6Prefix >= 128) return ipv6Text(bytes);
  for (let bit = ipv6Prefix; bit < 128; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return `${ipv6Text(bytes)}/${ipv6Prefix}`;
}
