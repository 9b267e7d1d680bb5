#!/usr/bin/env node
/**
 * `npm run watch -- <channel> [--url ws://localhost:8080/ws] [--token JWT]`
 * A tiny terminal client: subscribes to a channel and prints every frame.
 * The token may also come from HERALD_TOKEN.
 *
 * When it cannot watch, it says why and exits non-zero instead of sitting
 * silent: a refused upgrade prints the gateway's error code and message, and
 * an error answer to its subscribe (forbidden, invalid_channel, ...) ends it.
 * The token itself is never printed.
 */
import { parseArgs } from "node:util";
import WebSocket from "ws";

const SUBSCRIBE_ID = 1;
/** A refusal body is a short JSON object; anything longer is not worth a terminal line. */
const MAX_BODY_CHARS = 2000;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { url: { type: "string", default: "ws://localhost:8080/ws" }, token: { type: "string" } },
});
const channel = positionals[0] ?? "demo";
// eslint-disable-next-line no-undef
const token = values.token ?? process.env.HERALD_TOKEN;
if (!token) {
  console.error("usage: npm run watch -- <channel> --token <jwt> [--url ws://host:8080/ws]");
  process.exit(2);
}

/** Never echo the credential, even if a server were to quote it back. */
const hideToken = (text) => text.split(token).join("<token>");

/** "code: message" from a gateway error ({"error":{"code","message"}} or an error frame), else the raw text. */
function describeError(body) {
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    return body.trim().slice(0, 200);
  }
  const e = parsed?.error ?? parsed;
  const parts = [e?.code, e?.reason, e?.message].filter((p) => typeof p === "string" && p !== "");
  return parts.length > 0 ? parts.join(": ") : body.trim().slice(0, 200);
}

const ws = new WebSocket(values.url, ["herald.v1", `bearer.${token}`]);
ws.on("open", () => ws.send(JSON.stringify({ type: "subscribe", channel, id: SUBSCRIBE_ID })));
ws.on("message", (data) => {
  const text = data.toString();
  console.log(text);
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return;
  }
  if (frame?.type === "error" && frame.id === SUBSCRIBE_ID) {
    console.error(hideToken(`cannot watch ${channel}: ${describeError(text)}`));
    ws.terminate();
    process.exit(1);
  }
});
ws.on("unexpected-response", (_req, res) => {
  let body = "";
  res.setEncoding("utf8");
  res.on("data", (chunk) => {
    if (body.length < MAX_BODY_CHARS) body += chunk;
  });
  const report = () => {
    const detail = body ? ` ${describeError(body)}` : "";
    console.error(hideToken(`refused: HTTP ${res.statusCode}${detail}`));
    process.exit(1);
  };
  res.on("end", report);
  res.on("error", report);
});
ws.on("error", (err) => {
  console.error(hideToken(`error: ${err.message}`));
  process.exit(1);
});
ws.on("close", (code, reason) => {
  console.error(`closed: ${code} ${reason.toString()}`);
  process.exit(code === 1000 ? 0 : 1);
});
