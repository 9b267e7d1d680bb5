/**
 * GET /sse on the asynchronous admission path (JWT_JWKS_URL: the key may
 * have to be fetched before the token is checked): the stream opens from
 * inside res.cork() once the JWKS answered, and a client that goes away
 * while the fetch is in flight gets nothing written to its response and
 * gives its per-IP slot back.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { exportJWK } from "jose";
import { startGatewayInProcess, type InProcessGateway } from "./helpers/in-process.js";
import { scrape } from "./helpers/metrics.js";
import { SseReader } from "./helpers/sse.js";
import { rsKeys, rsToken, type RsKeys } from "./helpers/tokens.js";
import { waitFor } from "./helpers/wait.js";

describe("SSE with keys from a JWKS endpoint", () => {
  let gw: InProcessGateway;
  let keys: RsKeys;
  let jwks: Server;
  /** JWKS requests not answered yet: the test releases them. */
  const held: Array<() => void> = [];
  let holdRequests = false;

  before(async () => {
    keys = await rsKeys();
    const jwk = { ...(await exportJWK(keys.publicKey)), kid: "k1", alg: "RS256", use: "sig" };
    jwks = createServer((_req, res) => {
      const answer = () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
      if (holdRequests) held.push(answer);
      else answer();
    });
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    const port = (jwks.address() as AddressInfo).port;
    gw = await startGatewayInProcess({
      JWT_JWKS_URL: `http://127.0.0.1:${port}/jwks.json`,
      JWT_ALGORITHMS: "RS256",
      JWT_JWKS_TIMEOUT_MS: "5000",
      // One stream per address: a slot not given back would refuse the next stream.
      MAX_CONNECTIONS_PER_IP: "1",
    });
  });

  after(async () => {
    for (const answer of held.splice(0)) answer();
    await gw?.close();
    jwks.closeAllConnections();
    await new Promise((resolve) => jwks.close(resolve));
  });

  const token = (sub: string) => rsToken(keys.privateKey, { sub, channels: ["news"] }, { kid: "k1" });

  test("a client that leaves while its key is fetched gets nothing and gives its per-IP slot back", async () => {
    // The first token of this gateway: the verifier fetches the JWKS, held here until the client left.
    holdRequests = true;
    const controller = new AbortController();
    const attempt = fetch(`${gw.url}/sse?channel=news&access_token=${await token("leaving")}`, { signal: controller.signal }).catch((err: Error) => err);
    await waitFor(() => held.length > 0, { message: "the gateway asked the JWKS endpoint" });
    controller.abort();
    assert.ok((await attempt) instanceof Error, "the client gave up");
    holdRequests = false;
    for (const answer of held.splice(0)) answer();
    // The token verifies, the admission sees the client gone: the slot is free again and no stream is counted.
    const r = await waitFor(
      async () => {
        const next = await SseReader.open(`${gw.url}/sse?channel=news&access_token=${await token("next")}`);
        return next instanceof SseReader ? next : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100, message: "the next stream from this address opens" },
    );
    await r.next((e) => e.frame?.type === "welcome");
    assert.equal((await scrape(gw.url)).get("herald_sse_connections"), 1, "only the new stream is open");
    r.close();
    await waitFor(async () => (await scrape(gw.url)).get("herald_sse_connections") === 0, { message: "the stream is gone" });
  });

  test("a stream verified on the asynchronous path opens with its welcome and subscription", async () => {
    const r = await SseReader.open(`${gw.url}/sse?channel=news&access_token=${await token("second")}`);
    assert.ok(r instanceof SseReader, `stream refused: ${JSON.stringify(r)}`);
    await r.next((e) => e.frame?.type === "welcome");
    await r.next((e) => e.frame?.type === "subscribed" && e.frame.channel === "news");
    r.close();
  });
});
