/** WebSocket clients for the gateway tests (the `ws` package). */
import type { IncomingHttpHeaders } from "node:http";
import WebSocket from "ws";

export type Frame = Record<string, unknown> & { type?: string };

export interface ConnectOptions {
  token?: string;
  /** Where the token goes (default header). */
  via?: "header" | "protocol" | "query";
  /** Sent as the Origin header (none when omitted). */
  origin?: string;
  /** Extra request headers; an array value sends one header line per element. */
  headers?: Record<string, string | string[]>;
  /** Source address, e.g. "127.0.0.5" to appear as another client IP. */
  localAddress?: string;
  /** Extra subprotocols (the protocol transport always offers herald.v1 first). */
  protocols?: string[];
  /** Resolve only after the welcome frame arrived (default true). */
  waitWelcome?: boolean;
  timeoutMs?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface Client {
  ws: WebSocket;
  /** Every parsed server frame, in arrival order (never consumed). */
  frames: Frame[];
  /** Text frames that were not JSON, and binary frames, as received. */
  rawFrames: Array<string | Buffer>;
  /** The welcome frame (when waitWelcome). */
  welcome: Frame | undefined;
  /** The subprotocol the server selected. */
  protocol: string;
  /** Response headers of the 101. */
  upgradeHeaders: IncomingHttpHeaders;
  /** Resolves on the first not-yet-consumed frame matching `predicate` (received earlier or later) and consumes it. */
  next(predicate?: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Frames matching `predicate` (consumed or not). */
  all(predicate: (f: Frame) => boolean): Frame[];
  /** Sends a request and waits for the reply carrying the same id (any type). */
  request(obj: Frame & { id: string | number }, timeoutMs?: number): Promise<Frame>;
  send(obj: unknown): void;
  sendRaw(data: string | Buffer, opts?: { binary?: boolean }): void;
  /** The last socket/protocol error the client saw (a 1006 close usually follows one). */
  readonly lastError: Error | undefined;
  /** Resolves once the connection is closed, with the code the client saw. */
  closed: Promise<CloseInfo>;
  readonly isOpen: boolean;
  close(code?: number, reason?: string): Promise<CloseInfo>;
  terminate(): void;
  /** Pauses reading from the TCP socket (simulates a client that stops reading). */
  pauseSocket(): void;
  resumeSocket(): void;
}

interface Waiter {
  predicate: (f: Frame) => boolean;
  resolve: (f: Frame) => void;
}

function buildRequest(url: string, opts: ConnectOptions): { url: string; protocols: string[]; options: WebSocket.ClientOptions } {
  const headers: Record<string, string | string[]> = { ...(opts.headers ?? {}) };
  const protocols = [...(opts.protocols ?? [])];
  let target = url;
  if (opts.token !== undefined) {
    switch (opts.via ?? "header") {
      case "header":
        headers["Authorization"] = `Bearer ${opts.token}`;
        break;
      case "protocol":
        protocols.unshift("herald.v1", `bearer.${opts.token}`);
        break;
      case "query": {
        const u = new URL(url);
        u.searchParams.set("access_token", opts.token);
        target = u.toString();
        break;
      }
    }
  }
  const options: WebSocket.ClientOptions & { localAddress?: string } = {
    // ws hands headers to http.request, which sends an array value as one
    // line per element; its types only admit strings.
    headers: headers as Record<string, string>,
    handshakeTimeout: opts.timeoutMs ?? 5000,
    perMessageDeflate: false,
  };
  if (opts.origin !== undefined) options.origin = opts.origin;
  if (opts.localAddress !== undefined) options.localAddress = opts.localAddress;
  return { url: target, protocols, options };
}

export class UpgradeRejected extends Error {
  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    readonly body: string,
  ) {
    super(`upgrade rejected with HTTP ${status}: ${body.slice(0, 200)}`);
  }
}

/** Opens a WebSocket; rejects with UpgradeRejected when the server answers with a plain HTTP status. */
export function connect(url: string, opts: ConnectOptions = {}): Promise<Client> {
  const req = buildRequest(url, opts);
  const ws = new WebSocket(req.url, req.protocols, req.options);
  const frames: Frame[] = [];
  const rawFrames: Array<string | Buffer> = [];
  const pending: Frame[] = [];
  let waiters: Waiter[] = [];
  let upgradeHeaders: IncomingHttpHeaders = {};
  let welcome: Frame | undefined;

  let closeInfo: CloseInfo | undefined;
  const closed = new Promise<CloseInfo>((resolve) => {
    ws.once("close", (code, reason) => {
      closeInfo = { code, reason: reason.toString("utf8") };
      resolve(closeInfo);
    });
  });
  // Errors after open (e.g. ECONNRESET, an invalid frame) surface as a close; never crash the test process.
  let lastError: Error | undefined;
  ws.on("error", (err) => (lastError = err));
  ws.once("upgrade", (res) => (upgradeHeaders = res.headers));

  ws.on("message", (data, isBinary) => {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (isBinary) {
      rawFrames.push(buf);
      return;
    }
    const text = buf.toString("utf8");
    let frame: Frame;
    try {
      frame = JSON.parse(text) as Frame;
    } catch {
      rawFrames.push(text);
      return;
    }
    frames.push(frame);
    const w = waiters.find((x) => x.predicate(frame));
    if (w) {
      waiters = waiters.filter((x) => x !== w);
      w.resolve(frame);
    } else {
      pending.push(frame);
    }
  });

  const next = (predicate: (f: Frame) => boolean = () => true, timeoutMs = 5000): Promise<Frame> => {
    const i = pending.findIndex(predicate);
    if (i >= 0) {
      const [f] = pending.splice(i, 1);
      return Promise.resolve(f as Frame);
    }
    return new Promise<Frame>((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        waiters = waiters.filter((x) => x !== waiter);
        const tail = frames.slice(-5).map((f) => JSON.stringify(f).slice(0, 200));
        reject(
          new Error(
            `no matching frame within ${timeoutMs} ms (${closeInfo ? `closed ${closeInfo.code} ${closeInfo.reason}` : `state ${ws.readyState}`}` +
              `${lastError ? ` after error: ${lastError.message}` : ""}; ` +
              `${frames.length} frames, last: ${tail.join(" | ")})`,
          ),
        );
      }, timeoutMs);
      waiters.push(waiter);
    });
  };

  const client: Client = {
    ws,
    frames,
    rawFrames,
    get welcome() {
      return welcome;
    },
    get protocol() {
      return ws.protocol;
    },
    get upgradeHeaders() {
      return upgradeHeaders;
    },
    next,
    all: (predicate) => frames.filter(predicate),
    request: (obj, timeoutMs = 5000) => {
      ws.send(JSON.stringify(obj));
      return next((f) => f["id"] === obj.id, timeoutMs);
    },
    send: (obj) => ws.send(JSON.stringify(obj)),
    sendRaw: (data, o) => ws.send(data, { binary: o?.binary ?? Buffer.isBuffer(data) }),
    closed,
    get lastError() {
      return lastError;
    },
    get isOpen() {
      return ws.readyState === WebSocket.OPEN;
    },
    close: (code = 1000, reason = "") => {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
        try {
          ws.close(code, reason);
        } catch {
          ws.terminate();
        }
      }
      // Bounded: terminate when the server does not answer the close handshake.
      const t = setTimeout(() => ws.terminate(), 3000);
      return closed.finally(() => clearTimeout(t));
    },
    terminate: () => ws.terminate(),
    pauseSocket: () => (ws as unknown as { _socket: import("node:net").Socket })._socket.pause(),
    resumeSocket: () => (ws as unknown as { _socket: import("node:net").Socket })._socket.resume(),
  };

  return new Promise<Client>((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      ws.terminate();
      reject(err);
    };
    ws.once("unexpected-response", (_req, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => fail(new UpgradeRejected(res.statusCode ?? 0, res.headers, Buffer.concat(chunks).toString("utf8"))));
      res.on("error", () => fail(new UpgradeRejected(res.statusCode ?? 0, res.headers, "")));
    });
    ws.once("error", (err) => fail(err));
    ws.once("close", (code) => fail(new Error(`closed (code ${code}) before the connection was ready`)));
    ws.once("open", () => {
      if (opts.waitWelcome === false) {
        settled = true;
        resolve(client);
        return;
      }
      next((f) => f.type === "welcome", opts.timeoutMs ?? 5000).then(
        (f) => {
          welcome = f;
          if (settled) return;
          settled = true;
          resolve(client);
        },
        (err: Error) => fail(new Error(`no welcome frame: ${err.message}`)),
      );
    });
  });
}

export interface Rejection {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * Attempts a connection that must be refused with a plain HTTP answer:
 * resolves with the status and headers, rejects when an upgrade (101) or an
 * open happened, or when the connection failed without an HTTP answer.
 */
export function expectRejected(url: string, opts: ConnectOptions = {}): Promise<Rejection> {
  const req = buildRequest(url, opts);
  const ws = new WebSocket(req.url, req.protocols, req.options);
  return new Promise<Rejection>((resolve, reject) => {
    let settled = false;
    const done = (fn: () => void) => {
      if (settled) return;
      settled = true;
      fn();
      try {
        ws.terminate();
      } catch {
        /* ignore */
      }
    };
    const timer = setTimeout(
      () => done(() => reject(new Error("no answer to the upgrade request within the timeout"))),
      (opts.timeoutMs ?? 5000) + 500,
    );
    ws.on("error", (err) => done(() => { clearTimeout(timer); reject(new Error(`connection failed without an HTTP rejection: ${err.message}`)); }));
    ws.once("upgrade", (res) =>
      done(() => {
        clearTimeout(timer);
        reject(new Error(`expected a rejection but the server upgraded (HTTP ${res.statusCode})`));
      }),
    );
    ws.once("open", () => done(() => { clearTimeout(timer); reject(new Error("expected a rejection but the WebSocket opened")); }));
    ws.once("unexpected-response", (_r, res) => {
      const chunks: Buffer[] = [];
      const finish = () =>
        done(() => {
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") });
        });
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", finish);
      res.on("error", finish);
    });
  });
}

/** Closes every client (bounded), ignoring failures; for `after` hooks. */
export async function closeAll(clients: Iterable<Client>): Promise<void> {
  await Promise.all([...clients].map((c) => c.close().catch(() => undefined)));
}
