/** Reads a JWT's claims WITHOUT verifying it: only to learn when it expires. */

export interface TokenTimes {
  /** `exp` in ms since the epoch. */
  expiresAt: number | undefined;
  /** `iat` in ms since the epoch. */
  issuedAt: number | undefined;
}

export function decodeJwtPayload(token: string): Record<string, unknown> | undefined {
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const json = base64UrlDecodeToString(parts[1]);
    const value: unknown = JSON.parse(json);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function tokenTimes(token: string): TokenTimes {
  const payload = decodeJwtPayload(token);
  const exp = payload?.["exp"];
  const iat = payload?.["iat"];
  return {
    expiresAt: typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined,
    issuedAt: typeof iat === "number" && Number.isFinite(iat) ? iat * 1000 : undefined,
  };
}

function base64UrlDecodeToString(s: string): string {
  return new TextDecoder().decode(base64ToBytes(s));
}

/** Decodes standard or URL-safe base64 (padding optional) in browsers and Node alike. */
export function base64ToBytes(s: string): Uint8Array {
  let b64 = s.replace(/-/g, "+").replace(/_/g, "/").replace(/\s+/g, "");
  while (b64.length % 4 !== 0) b64 += "=";
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
