/**
 * Finds the client's token in one of the three places DESIGN.md allows:
 * `Authorization: Bearer <jwt>`, the subprotocol pair `herald.v1, bearer.<jwt>`
 * or the `access_token` query parameter.
 */
import { SUBPROTOCOL, bearerCredential } from "@herald/core";

export interface TokenSource {
  token: string;
  /** Subprotocol to answer with ("" for none). */
  protocol: string;
}

export function findToken(authorization: string, protocols: string, accessToken: string): TokenSource {
  const offered = protocols === "" ? [] : protocols.split(",").map((p) => p.trim());
  const protocol = offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : "";
  const bearer = bearerCredential(authorization);
  if (bearer !== undefined) return { token: bearer, protocol };
  const fromProtocol = offered.find((p) => p.startsWith("bearer."));
  if (fromProtocol) return { token: fromProtocol.slice("bearer.".length), protocol };
  return { token: accessToken, protocol };
}
