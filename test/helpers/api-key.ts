/**
 * Calls to the publisher with its API key, for tests that publish or use the
 * server API: one place that builds the request and checks the status.
 */
import assert from "node:assert/strict";

export interface ApiAnswer {
  status: number;
  body: Record<string, unknown>;
}

export function withApiKey(key: string) {
  return {
    /** Publishes `body` to `channel` and expects 202. */
    async publish(base: string, channel: string, body: unknown): Promise<void> {
      const res = await fetch(`${base}/v1/channels/${channel}/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(res.status, 202, await res.text());
    },
    /** Any request; `body` a string is sent as it is (malformed bodies), anything else as JSON; `auth` null sends no Authorization. */
    async call(base: string, method: string, path: string, body?: unknown, auth: string | null = key): Promise<ApiAnswer> {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...(auth ? { authorization: `Bearer ${auth}` } : {}), ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
  };
}
