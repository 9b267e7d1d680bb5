#!/usr/bin/env node
/**
 * `npm run watch -- <channel> [--url ws://localhost:8080/ws] [--token JWT]`
 * A tiny terminal client: subscribes to a channel and prints every frame.
 * The token may also come from HERALD_TOKEN.
 */
import { parseArgs } from "node:util";
import WebSocket from "ws";

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
const ws = new WebSocket(values.url, ["herald.v1", `bearer.${token}`]);
ws.on("open", () => ws.send(JSON.stringify({ type: "subscribe", channel, id: 1 })));
ws.on("message", (data) => console.log(data.toString()));
ws.on("unexpected-response", (_req, res) => {
  console.error(`refused: HTTP ${res.statusCode}`);
  process.exit(1);
});
ws.on("error", (err) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
ws.on("close", (code, reason) => {
  console.error(`closed: ${code} ${reason.toString()}`);
  process.exit(code === 1000 ? 0 : 1);
});
