/**
 * Static server for the demo page (demo/), used by `npm start`.
 *
 *   /             demo/index.html (and demo/*.js, demo/*.css)
 *   /sdk/...      the built browser SDK: packages/client/dist
 *   /config.json  { gatewayUrl, publisherUrl, channels, token | tokenUrl }
 *   /token        a fresh token, when `token` is a function
 *
 * The page reads /config.json and connects itself. Nothing here knows about
 * the gateway beyond its URL: the page talks to it with @herald/client.
 *
 * Run alone (gateway and token from elsewhere):
 *   DEMO_GATEWAY_URL=ws://localhost:8080/ws DEMO_TOKEN=<jwt> node scripts/demo-server.mjs
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const DEMO_DIR = join(ROOT, "demo");
const SDK_DIR = join(ROOT, "packages", "client", "dist");

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/**
 * @typedef {object} DemoServerOptions
 * @property {number} [port] TCP port (0 = any free port; default 8082)
 * @property {string} [host] interface to bind (default: every interface, like the services)
 * @property {string} gatewayUrl WebSocket URL the page connects to, e.g. ws://localhost:8080/ws
 * @property {string | (() => string | Promise<string>)} token a JWT for the page, or a function minting a fresh one (served at /token; the page then uses a token provider)
 * @property {string} [publisherUrl] shown in the page's curl example
 * @property {string[]} [channels] channels the page subscribes to at start (default ["demo"])
 */

/**
 * Starts the demo server.
 * @param {DemoServerOptions} options
 * @returns {Promise<{ port: number, url: string, close(): Promise<void> }>}
 */
export async function startDemoServer(options) {
  const { gatewayUrl, token, publisherUrl, host } = options ?? {};
  if (typeof gatewayUrl !== "string" || !/^wss?:\/\//.test(gatewayUrl)) {
    throw new TypeError("startDemoServer: gatewayUrl must be a ws:// or wss:// URL");
  }
  if (typeof token !== "string" && typeof token !== "function") {
    throw new TypeError("startDemoServer: token must be a JWT string or a function returning one");
  }
  try {
    await stat(join(SDK_DIR, "index.js"));
  } catch {
    throw new Error(`startDemoServer: ${SDK_DIR}/index.js is missing; run npm run build first`);
  }
  const channels = Array.isArray(options.channels) && options.channels.length > 0 ? options.channels : ["demo"];
  const config = {
    gatewayUrl,
    publisherUrl: publisherUrl ?? null,
    channels,
    ...(typeof token === "string" ? { token } : { tokenUrl: "/token" }),
  };

  const server = createServer((req, res) => {
    handle(req, res, config, token).catch((err) => {
      if (!res.headersSent) send(res, 500, "text/plain; charset=utf-8", "internal error\n");
      else res.destroy(err);
    });
  });
  server.keepAliveTimeout = 5_000;
  const port = options.port ?? 8082;
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(undefined);
    });
  });
  const address = server.address();
  const bound = typeof address === "object" && address ? address.port : port;
  return {
    port: bound,
    url: `http://localhost:${bound}/`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve(undefined));
        server.closeAllConnections?.();
      }),
  };
}

async function handle(req, res, config, token) {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return send(res, 405, "text/plain; charset=utf-8", "method not allowed\n", { Allow: "GET, HEAD" });
  }
  let path;
  try {
    path = decodeURIComponent(new URL(req.url ?? "/", "http://demo").pathname);
  } catch {
    return send(res, 400, "text/plain; charset=utf-8", "bad request\n");
  }
  if (path === "/config.json") {
    return send(res, 200, TYPES[".json"], JSON.stringify(config));
  }
  if (path === "/token") {
    const value = typeof token === "function" ? await token() : token;
    return send(res, 200, "text/plain; charset=utf-8", String(value));
  }
  if (path === "/healthz") return send(res, 200, "text/plain; charset=utf-8", "ok\n");
  if (path === "/favicon.ico") return send(res, 204, "text/plain", "");
  if (path.startsWith("/sdk/")) return serveFile(res, req, SDK_DIR, path.slice("/sdk/".length));
  return serveFile(res, req, DEMO_DIR, path === "/" ? "index.html" : path.slice(1));
}

async function serveFile(res, req, dir, relative) {
  const file = normalize(join(dir, relative));
  // No escaping the directory (../), no dotfiles, no build info.
  if (!file.startsWith(dir + sep) || relative.split("/").some((p) => p.startsWith("."))) {
    return send(res, 404, "text/plain; charset=utf-8", "not found\n");
  }
  const type = TYPES[extname(file)];
  let info;
  try {
    info = await stat(file);
  } catch {
    info = undefined;
  }
  if (!type || !info?.isFile()) return send(res, 404, "text/plain; charset=utf-8", "not found\n");
  res.writeHead(200, { ...securityHeaders(), "Content-Type": type, "Content-Length": info.size });
  if (req.method === "HEAD") return res.end();
  createReadStream(file).pipe(res);
}

function securityHeaders() {
  return {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy":
      "default-src 'self'; connect-src 'self' ws: wss: http: https:; img-src 'self' data:; style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  };
}

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { ...securityHeaders(), "Content-Type": type, "Content-Length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

// `node scripts/demo-server.mjs`: serve the page for a gateway started elsewhere.
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const gatewayUrl = process.env.DEMO_GATEWAY_URL ?? "ws://localhost:8080/ws";
  const token = process.env.DEMO_TOKEN;
  if (!token) {
    console.error("demo-server: set DEMO_TOKEN to a JWT the gateway accepts (npm start prints one)");
    process.exit(2);
  }
  const srv = await startDemoServer({
    port: Number(process.env.DEMO_PORT ?? 8082),
    gatewayUrl,
    token,
    publisherUrl: process.env.DEMO_PUBLISHER_URL,
  });
  console.log(`demo: ${srv.url}  (gateway ${gatewayUrl}; its ALLOWED_ORIGINS must include http://localhost:${srv.port})`);
  const stop = () => srv.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
