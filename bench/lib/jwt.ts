/** HS256 JWTs signed with node:crypto (synchronous and cheap: ~5 us each). */
import { createHmac } from "node:crypto";

const b64u = (s: string | Buffer) => Buffer.from(s).toString("base64url");
const HEAD = b64u(JSON.stringify({ alg: "HS256", typ: "JWT" }));

export function signHs256(secret: string, claims: Record<string, unknown>, ttlSeconds = 3 * 3600): string {
  const now = Math.floor(Date.now() / 1000);
  const body = b64u(JSON.stringify({ iat: now, exp: now + ttlSeconds, ...claims }));
  const sig = createHmac("sha256", secret).update(`${HEAD}.${body}`).digest("base64url");
  return `${HEAD}.${body}.${sig}`;
}
