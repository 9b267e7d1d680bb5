/**
 * The generator's ceiling target: the cheapest server that speaks Herald's
 * protocol. No auth, no limits, no metrics; every NATS message on
 * <prefix>.ch.> becomes one frame (head + payload + "}") handed to uWS
 * pub/sub. Whatever the load generator cannot receive from this server is
 * the generator's own limit.
 *
 *   PORT=9100 NATS_URL=nats://127.0.0.1:4222 node --import tsx bench/peers/uws-broadcast.ts
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { connect } from "nats";
import type * as U from "uWebSockets.js";

const require = createRequire(import.meta.url);
const uws = require(
  join(dirname(require.resolve("uWebSockets.js/package.json")), "binaries", `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`),
) as typeof U;

const PORT = Number(process.env["PORT"] ?? 9100);
const PREFIX = process.env["SUBJECT_PREFIX"] ?? "herald";
const nc = await connect({ servers: process.env["NATS_URL"] ?? "nats://127.0.0.1:4222", name: "uws-broadcast" });
const heads = new Map<string, Buffer>();
const TAIL = Buffer.from("}");
let open = 0;

const app = uws.App();
app.ws("/*", {
  compression: uws.DISABLED,
  maxBackpressure: 64 << 20,
  idleTimeout: 0,
  open: (ws) => {
    open++;
    ws.send('{"type":"welcome","sub":"bench","connection":"x"}');
  },
  message: (ws, msg) => {
    const m = JSON.parse(Buffer.from(msg).toString()) as { type: string; channel: string; id?: number };
    if (m.type === "subscribe") {
      ws.subscribe(m.channel);
      ws.send(JSON.stringify({ type: "subscribed", channel: m.channel, id: m.id }));
    }
  },
  close: () => {
    open--;
  },
});
app.get("/readyz", (res) => void res.end(`{"connections":${open}}`));
app.listen("127.0.0.1", PORT, (ls) => {
  if (!ls) {
    console.error("cannot listen");
    process.exit(1);
  }
});
const skip = PREFIX.length + 4;
nc.subscribe(`${PREFIX}.ch.>`, {
  callback: (_err, msg) => {
    const channel = msg.subject.slice(skip);
    let head = heads.get(channel);
    if (!head) heads.set(channel, (head = Buffer.from(`{"type":"message","channel":${JSON.stringify(channel)},"data":`)));
    app.publish(channel, Buffer.concat([head, msg.data, TAIL]), false, false);
  },
});
