/**
 * Issue 8: a scrape of /metrics renders every metric (~4 ms of event-loop
 * time), so a burst of pipelined scrapes used to stall every WebSocket on the
 * gateway for seconds. The rendered text is now cached briefly and concurrent
 * scrapes share one render (packages/core/src/metrics-cache.ts). These tests
 * run a real gateway and publisher and check what a client can observe:
 * scrapes inside the cache window return the same bytes although a counter
 * moved in between, and a burst of 2,000 pipelined scrapes is answered in
 * full while a WebSocket ping sent during the burst is answered before the
 * burst's last response arrives.
 */
import assert from "node:assert/strict";
import { connect as tcpConnect, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import { METRICS_CACHE_MS } from "@herald/core";
import { GATEWAY_MAIN, PUBLISHER_MAIN, missingBuild, startGateway, startPublisher, waitFor, withTimeout, type ServiceProcess } from "./helpers/procs.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";
import { closeAll, connect, expectRejected, type Client } from "./helpers/ws.js";

const skip = missingBuild(GATEWAY_MAIN) ?? missingBuild(PUBLISHER_MAIN);

const BURST = 2_000;
const CONNECTIONS = 4;

/** Milliseconds since an arbitrary origin, monotonic. */
const now = () => performance.now();

interface Burst {
  /** Resolves when every response has arrived, with the statuses seen and the time the last one arrived. */
  done: Promise<{ statuses: Map<number, number>; lastAt: number }>;
  /** Responses received so far. */
  readonly received: number;
  /** Resolves once the first response has arrived. */
  first: Promise<number>;
  destroy(): void;
}

/**
 * `total` pipelined `GET <path>` requests over `connections` keep-alive TCP
 * connections, all written at once (as a misbehaving or hostile client
 * would). Responses are counted by parsing status lines and Content-Length.
 */
function pipelinedBurst(port: number, path: string, total: number, connections: number): Burst {
  const sockets: Socket[] = [];
  const statuses = new Map<number, number>();
  let received = 0;
  let resolveDone!: (v: { statuses: Map<number, number>; lastAt: number }) => void;
  let rejectDone!: (err: Error) => void;
  let resolveFirst!: (at: number) => void;
  const done = new Promise<{ statuses: Map<number, number>; lastAt: number }>((res, rej) => {
    resolveDone = res;
    rejectDone = rej;
  });
  const first = new Promise<number>((res) => (resolveFirst = res));
  const counted = () => {
    received++;
    if (received === 1) resolveFirst(now());
    if (received === total) resolveDone({ statuses, lastAt: now() });
  };
  const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
  for (let i = 0; i < connections; i++) {
    const n = Math.floor(total / connections) + (i < total % connections ? 1 : 0);
    const sock = tcpConnect(port, "127.0.0.1");
    sockets.push(sock);
    let pending: Buffer = Buffer.alloc(0);
    let bodyLeft = 0;
    let mine = 0;
    sock.on("connect", () => sock.write(request.repeat(n)));
    sock.on("error", (err) => rejectDone(err));
    sock.on("close", () => {
      if (mine < n) rejectDone(new Error(`connection ${i} closed after ${mine} of ${n} responses`));
    });
    sock.on("data", (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      for (;;) {
        if (bodyLeft > 0) {
          const take = Math.min(bodyLeft, pending.length);
          bodyLeft -= take;
          pending = pending.subarray(take);
          if (bodyLeft > 0) return;
          mine++;
          counted();
        }
        const end = pending.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = pending.subarray(0, end).toString("latin1");
        pending = pending.subarray(end + 4);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1]);
        if (!Number.isFinite(length) || length === 0) {
          rejectDone(new Error(`response without a body length: ${head}`));
          sock.destroy();
          return;
        }
        bodyLeft = length;
      }
    });
  }
  return {
    done,
    first,
    get received() {
      return received;
    },
    destroy: () => {
      for (const s of sockets) s.destroy();
    },
  };
}

async function scrapeText(url: string): Promise<string> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  return res.text();
}

/** A counter line of the Prometheus text, e.g. herald_upgrades_total{result="rejected",reason="missing_token"}. */
function sample(text: string, name: string, labels: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{${labels}} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("metrics scrapes: cached render, bursts do not stall the gateway", { skip }, () => {
  const services: ServiceProcess[] = [];
  const clients: Client[] = [];
  after(async () => {
    await closeAll(clients);
    await Promise.all(services.map((s) => s.stop()));
  });

  test("gateway: scrapes inside the cache window are byte-identical although a counter moved in between", async () => {
    const gw = await startGateway({ JWT_SECRET: TEST_SECRET });
    services.push(gw);
    const counter = ["herald_upgrades_total", 'result="rejected",reason="missing_token"'] as const;
    // Retried until both scrapes fall inside one window (a loaded machine may
    // take longer than METRICS_CACHE_MS between them); the counter check
    // below proves the cache expired in between otherwise.
    const [a, b] = await waitFor(
      async () => {
        const t0 = now();
        const first = await scrapeText(`${gw.url}/metrics`);
        assert.equal((await expectRejected(gw.wsUrl, {})).status, 401);
        const second = await scrapeText(`${gw.url}/metrics`);
        return now() - t0 < METRICS_CACHE_MS ? [first, second] : undefined;
      },
      { timeoutMs: 20_000, intervalMs: METRICS_CACHE_MS, message: "two scrapes inside one cache window" },
    );
    assert.equal(b, a, "a scrape inside the cache window returns the cached text");
    // The refused upgrades are counted: once the window has passed, a scrape shows them.
    const before = sample(await scrapeText(`${gw.url}/metrics`), ...counter);
    assert.equal((await expectRejected(gw.wsUrl, {})).status, 401);
    await waitFor(async () => sample(await scrapeText(`${gw.url}/metrics`), ...counter) > before, {
      timeoutMs: 10 * METRICS_CACHE_MS,
      intervalMs: METRICS_CACHE_MS / 4,
      message: "a fresh render after the cache window",
    });
  });

  test("publisher: the same cache (a refused publish is counted, but not inside the window)", async () => {
    const pub = await startPublisher({ PUBLISHER_API_KEY: "metrics-test-publisher-key-0123456789" });
    services.push(pub);
    const refused = async () => {
      const r = await fetch(`${pub.url}/v1/channels/news/messages`, {
        method: "POST",
        headers: { authorization: "Bearer wrong-key-wrong-key-wrong", "content-type": "application/json" },
        body: "{}",
      });
      await r.arrayBuffer();
      assert.equal(r.status, 401);
    };
    const counter = ["herald_publisher_requests_total", 'route="channel",status="401"'] as const;
    const [a, b] = await waitFor(
      async () => {
        const t0 = now();
        const first = await scrapeText(`${pub.url}/metrics`);
        await refused();
        const second = await scrapeText(`${pub.url}/metrics`);
        return now() - t0 < METRICS_CACHE_MS ? [first, second] : undefined;
      },
      { timeoutMs: 20_000, intervalMs: METRICS_CACHE_MS, message: "two scrapes inside one cache window" },
    );
    assert.equal(b, a, "a scrape inside the cache window returns the cached text");
    const before = sample(await scrapeText(`${pub.url}/metrics`), ...counter);
    await refused();
    await waitFor(async () => sample(await scrapeText(`${pub.url}/metrics`), ...counter) > before, {
      timeoutMs: 10 * METRICS_CACHE_MS,
      intervalMs: METRICS_CACHE_MS / 4,
      message: "a fresh render after the cache window",
    });
  });

  test(`gateway: ${BURST} pipelined scrapes are all answered, and a WebSocket ping sent during the burst is answered before it ends`, async (t) => {
    const gw = await startGateway({ JWT_SECRET: TEST_SECRET });
    services.push(gw);
    const c = await connect(gw.wsUrl, { token: await hsToken({ sub: "pinger", channels: ["x"] }) });
    clients.push(c);
    // Warm: one ping before the burst.
    const idle0 = now();
    assert.equal((await c.request({ type: "ping", id: "warm" })).type, "pong");
    const idleRtt = now() - idle0;

    const started = now();
    const burst = pipelinedBurst(gw.port, "/metrics", BURST, CONNECTIONS);
    t.after(() => burst.destroy());
    await burst.first;
    const pingAt = now();
    const sentAfter = burst.received;
    const pong = c.request({ type: "ping", id: "during" }, 60_000).then(() => now());
    const [{ statuses, lastAt }, pongAt] = await withTimeout(Promise.all([burst.done, pong]), 60_000, "burst and ping");
    t.diagnostic(
      `idle ping ${idleRtt.toFixed(1)} ms; burst of ${BURST} took ${(lastAt - started).toFixed(0)} ms; ` +
        `ping during burst ${(pongAt - pingAt).toFixed(1)} ms (sent ${(pingAt - started).toFixed(0)} ms into it, after ${sentAfter} responses)`,
    );
    assert.deepEqual([...statuses], [[200, BURST]], "every scrape answered 200");
    assert.ok(pongAt < lastAt, `the ping was answered only ${(pongAt - lastAt).toFixed(1)} ms after the burst's last response: the scrapes held the event loop`);
  });
});
