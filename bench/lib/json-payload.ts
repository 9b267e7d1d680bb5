/**
 * Realistic, compressible JSON payloads of an exact size for the compression
 * scenario: an order-book update (repeated keys and enums, varying ids,
 * prices, quantities and times: what app payloads look like), not random
 * bytes and not one repeated character (the default payload's `"pad":"xxx…"`
 * would deflate about 50 to 1). It starts `{"seq":N,"t":<epoch ms>` like
 * publisher.ts payloadFor, so probes read latency and gaps from it.
 */
import { now } from "./wsclient.js";

const SIDES = ["buy", "sell"];
const STATUS = ["open", "partially_filled", "filled", "cancelled"];
const WORDS = ["limit", "order", "book", "update", "market", "maker", "taker", "fee", "tier", "rebate", "spot", "margin", "settled", "pending"];

/** xorshift32: the same payload body for the same seq, cheap to make at thousands per second. */
function rng(seed: number): () => number {
  let x = (seed * 2654435761) >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/** `{"seq":…,"t":…,"type":"book_update",…,"items":[…],"note":"…"}`, exactly `size` bytes (ASCII). */
export function jsonPayload(seq: number, size: number): string {
  const r = rng(seq);
  const t = now();
  let out = `{"seq":${seq},"t":${t.toFixed(3)},"type":"book_update","market":"BTC-EUR","venue":"herald-x","items":[`;
  const tail = (fill: number) => `],"note":"${note(r, fill)}"}`;
  for (let k = 0; ; k++) {
    const item =
      `${k ? "," : ""}{"id":"ord-${Math.floor(r() * 0xffffffff).toString(16).padStart(8, "0")}","side":"${SIDES[Math.floor(r() * 2)]}",` +
      `"price":${(43000 + r() * 500).toFixed(2)},"qty":${(r() * 2).toFixed(4)},"status":"${STATUS[Math.floor(r() * STATUS.length)]}",` +
      `"user":"u-${Math.floor(r() * 100000)}","ts":${Math.floor(t - r() * 5000)}}`;
    if (out.length + item.length + tail(0).length > size) break;
    out += item;
  }
  return out + tail(Math.max(0, size - out.length - tail(0).length));
}

function note(r: () => number, len: number): string {
  let s = "";
  while (s.length < len) s += (s ? " " : "") + WORDS[Math.floor(r() * WORDS.length)];
  return s.slice(0, len);
}
