#!/usr/bin/env node
/**
 * The client half of deploy/image-smoke.sh: one WebSocket client on the
 * gateway container receives a message published through the publisher
 * container's HTTP API.
 *
 * Needs nothing from node_modules: the token is an HS256 JWT made with
 * node:crypto, and the socket is Node 20's built-in WebSocket (run with
 * --experimental-websocket). The token travels in the subprotocol list
 * (`herald.v1, bearer.<jwt>`), as a browser sends it.
 *
 * Settings (environment): GATEWAY_URL (ws://127.0.0.1:PORT/ws), PUBLISHER_URL
 * (http://127.0.0.1:PORT), JWT_SECRET, PUBLISHER_API_KEY, CHANNEL (default
 * smoke.images), TIMEOUT_MS (default 15000). Prints one line per step; exit 0
 * only when the published message arrived intact.
 */
import { createHmac, randomUUID } from "node:crypto";

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === "") fail(`${name} is not set`);
  return v;
};
const gatewayUrl = env("GATEWAY_URL");
const publisherUrl = env("PUBLISHER_URL");
const secret = env("JWT_SECRET");
const apiKey = env("PUBLISHER_API_KEY");
const channel = env("CHANNEL", "smoke.images");
const timeoutMs = Number(env("TIMEOUT_MS", "15000"));

function fail(message) {
  process.stderr.write(`client: FAIL ${message}\n`);
  process.exit(1);
}
const say = (message) => process.stdout.write(`client: ${message}\n`);

if (typeof WebSocket !== "function") fail("no global WebSocket: run node with --experimental-websocket (Node 20.10+)");

const b64url = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const unsigned = `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url({ sub: "image-smoke", iat: now, exp: now + 300, channels: [channel] })}`;
const token = `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;

const timer = setTimeout(() => fail(`no message within ${timeoutMs} ms`), timeoutMs);
const nonce = randomUUID();
let publishedAt = 0;
let done = false;

const ws = new WebSocket(gatewayUrl, ["herald.v1", `bearer.${token}`]);
ws.addEventListener("open", () => say(`connected to ${gatewayUrl} (subprotocol ${ws.protocol || "none"})`));
ws.addEventListener("error", (event) => fail(`WebSocket error: ${event.message ?? event.error?.message ?? "handshake failed"}`));
ws.addEventListener("close", (event) => (done ? process.exit(0) : fail(`socket closed ${event.code} ${event.reason}`)));
ws.addEventListener("message", (event) => {
  let frame;
  try {
    frame = JSON.parse(String(event.data));
  } catch {
    fail(`not JSON: ${String(event.data).slice(0, 200)}`);
  }
  switch (frame.type) {
    case "welcome":
      say(`welcome sub=${frame.sub}`);
      ws.send(JSON.stringify({ type: "subscribe", channel, id: 1 }));
      return;
    case "subscribed":
      say(`subscribed ${frame.channel}${frame.seq !== undefined ? ` (seq ${frame.seq})` : ""}`);
      void publish();
      return;
    case "message":
      if (frame.channel === channel && frame.data?.nonce === nonce) {
        clearTimeout(timer);
        done = true;
        say(`received ${JSON.stringify(frame)} ${Date.now() - publishedAt} ms after the publish`);
        ws.close(1000);
        setTimeout(() => process.exit(0), 2000).unref();
      }
      return;
    case "error":
      fail(`gateway error ${JSON.stringify(frame)}`);
      return;
    default:
      return;
  }
});

async function publish() {
  const url = `${publisherUrl}/v1/channels/${encodeURIComponent(channel)}/messages`;
  publishedAt = Date.now();
  let res;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ nonce, from: "deploy/image-smoke.sh" }),
      signal: AbortSignal.timeout(5000),
    });
  } catch (err) {
    fail(`POST ${url}: ${err.message}`);
  }
  const body = await res.text();
  if (res.status !== 202) fail(`POST ${url}: ${res.status} ${body}`);
  say(`published through ${publisherUrl}: ${res.status} ${body}`);
}
