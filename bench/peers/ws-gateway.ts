/**
 * Baseline peer: a WebSocket gateway written the way most Node projects
 * write one — `ws` + `nats` + `jose`, Herald's JSON protocol, and a
 * per-socket send loop. Kept minimal and idiomatic (no deliberate slowness):
 * JWT checked before the upgrade, NATS subscription per channel while anyone
 * listens, the message frame built once per NATS message, slow consumers
 * (> SLOW_CONSUMER_BYTES buffered) closed with 4009 like Herald.
 *
 *   PORT=9000 NATS_URL=nats://127.0.0.1:4222 JWT_SECRET=... node --import tsx bench/peers/ws-gateway.ts
 */
import http from "node:http";
import { jwtVerify } from "jose";
import { connect, type Subscription } from "nats";
import { WebSocketServer, type WebSocket } from "ws";

const PORT = Number(process.env["PORT"] ?? 9000);
const PREFIX = process.env["SUBJECT_PREFIX"] ?? "herald";
const SLOW = Number(process.env["SLOW_CONSUMER_BYTES"] ?? 1 << 20);
const key = new TextEncoder().encode(process.env["JWT_SECRET"] ?? "");
const nc = await connect({ servers: process.env["NATS_URL"] ?? "nats://127.0.0.1:4222", name: "ws-baseline" });

interface Client {
  sub: string;
  allowed: RegExp[];
  channels: Set<string>;
}
const clients = new Map<WebSocket, Client>();
const channels = new Map<string, { sockets: Set<WebSocket>; sub: Subscription }>();

const patternToRegExp = (p: string) =>
  new RegExp("^" + p.split(".").map((t) => (t === "*" ? "[^.]+" : t === ">" ? ".+" : t.replace(/[-\\^$+?()|[\]{}]/g, "\\$&"))).join("\\.") + "$");

function join(ws: WebSocket, channel: string): void {
  let ch = channels.get(channel);
  if (!ch) {
    const sockets = new Set<WebSocket>();
    const sub = nc.subscribe(`${PREFIX}.ch.${channel}`, {
      callback: (_err, msg) => {
        const frame = `{"type":"message","channel":${JSON.stringify(channel)},"data":${msg.string()}}`;
        for (const s of sockets) {
          if (s.bufferedAmount > SLOW) s.close(4009, "slow consumer");
          else s.send(frame);
        }
      },
    });
    ch = { sockets, sub };
    channels.set(channel, ch);
  }
  ch.sockets.add(ws);
}

function leave(ws: WebSocket, channel: string): void {
  const ch = channels.get(channel);
  if (!ch) return;
  ch.sockets.delete(ws);
  if (ch.sockets.size === 0) {
    ch.sub.unsubscribe();
    channels.delete(channel);
  }
}

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 65536 });
const server = http.createServer((req, res) => {
  if (req.url === "/readyz" || req.url === "/healthz") {
    res.writeHead(200, { "content-type": "application/json" }).end(`{"connections":${clients.size}}`);
  } else res.writeHead(404).end();
});

server.on("upgrade", (req, socket, head) => {
  const auth = req.headers.authorization ?? "";
  const token = auth.startsWith("Bearer ") ? auth.slice(7) : "";
  jwtVerify(token, key, { algorithms: ["HS256"] }).then(
    ({ payload }) => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        const client: Client = {
          sub: String(payload.sub),
          allowed: (Array.isArray(payload["channels"]) ? (payload["channels"] as string[]) : []).map(patternToRegExp),
          channels: new Set(),
        };
        clients.set(ws, client);
        ws.send(JSON.stringify({ type: "welcome", sub: client.sub, connection: String(clients.size) }));
        ws.on("message", (data) => {
          let m: { type?: string; channel?: string; id?: unknown };
          try {
            m = JSON.parse(data.toString()) as typeof m;
          } catch {
            ws.send(JSON.stringify({ type: "error", code: "bad_request", message: "invalid JSON" }));
            return;
          }
          const channel = String(m.channel ?? "");
          if (m.type === "subscribe") {
            if (!client.allowed.some((r) => r.test(channel))) {
              ws.send(JSON.stringify({ type: "error", id: m.id, code: "forbidden", message: "not allowed" }));
              return;
            }
            client.channels.add(channel);
            join(ws, channel);
            // the reply follows the NATS round trip, so the subscription is live on the server
            nc.flush().then(() => ws.send(JSON.stringify({ type: "subscribed", channel, id: m.id })));
          } else if (m.type === "unsubscribe") {
            client.channels.delete(channel);
            leave(ws, channel);
            ws.send(JSON.stringify({ type: "unsubscribed", channel, id: m.id }));
          } else if (m.type === "ping") {
            ws.send(JSON.stringify({ type: "pong", id: m.id }));
          }
        });
        ws.on("close", () => {
          for (const c of client.channels) leave(ws, c);
          clients.delete(ws);
        });
        ws.on("error", () => {});
      });
    },
    () => {
      socket.end("HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    },
  );
});

server.listen(PORT, process.env["HOST"] ?? "127.0.0.1", 4096);
process.on("SIGTERM", () => process.exit(0));
