/**
 * Chaos test (issue 5): several gateways on a 3-node NATS cluster with
 * JetStream history (R3, one stream per namespace: issue 11), 1,000 SDK
 * clients behind a TCP load balancer (a quarter of them on SSE with
 * commands posted through the balancer to any gateway: issue 13), and
 * numbered messages published throughout while we kill -9 a gateway, SIGTERM
 * another, restart a NATS node and cut client sockets at random. At the end
 * every client must hold every message of its channels exactly once and in
 * order. Prints one summary line:
 *   chaos: <N> messages, <C> clients (<S> on SSE), <R> recoveries, <L> lost, <D> duplicated, <O> out of order
 * Sizes can be changed with CHAOS_CLIENTS, CHAOS_CHANNELS, CHAOS_MESSAGES.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { connect as natsConnect, type NatsConnection } from "nats";
import WebSocket from "ws";
import { HeraldClient, type WebSocketConstructor } from "@herald/client";
import { startNatsCluster, type NatsCluster } from "./helpers/nats.js";
import { GATEWAY_MAIN, missingBuild, startGateway, uniqueName, waitFor, type ServiceProcess } from "./helpers/procs.js";
import { startTcpProxy, type TcpProxy } from "./helpers/tcp-proxy.js";
import { TEST_SECRET, hsToken } from "./helpers/tokens.js";

const CLIENTS = Number(process.env["CHAOS_CLIENTS"] ?? 1000);
const CHANNELS = Number(process.env["CHAOS_CHANNELS"] ?? 10);
const MESSAGES = Number(process.env["CHAOS_MESSAGES"] ?? 400); // in total, spread over the channels
const CHANNELS_PER_CLIENT = 2;
/** Every SSE_EVERY-th client uses SSE + POST /sse/commands instead of a WebSocket. */
const SSE_EVERY = 4;
const PUBLISH_INTERVAL_MS = 25; // ~40 msg/s: the run spans every fault below
/**
 * Two namespaces with their own windows, so two R3 streams (CHAOS_chaos,
 * CHAOS_alt) carry the channels through the faults; everything else is live
 * only.
 */
const NAMESPACES = JSON.stringify({
  chaos: { history_max_age_seconds: 600, history_max_per_channel: 5000 },
  alt: { history_max_age_seconds: 900, history_max_per_channel: 2000 },
  "": { history: false },
});

interface Tally {
  /** channel -> message numbers in arrival order */
  got: Map<string, number[]>;
}

describe("chaos: gateways and NATS fail while 1,000 clients listen", { skip: missingBuild(GATEWAY_MAIN) }, () => {
  let cluster: NatsCluster;
  let proxy: TcpProxy;
  let nc: NatsConnection;
  const gateways: ServiceProcess[] = [];
  const clients: HeraldClient[] = [];

  const gatewayEnv = () => ({
    NATS_URL: cluster.urls,
    NATS_NAME: uniqueName("chaos-gw"),
    JWT_SECRET: TEST_SECRET,
    HISTORY_REPLICAS: "3",
    HISTORY_STREAM: "CHAOS",
    NAMESPACES,
    DRAIN_SECONDS: "1",
    MAX_CONNECTIONS_PER_IP: "0", // every client comes through the proxy's address
    MAX_CONNECTIONS_PER_USER: "0", // every client is the same user
    LOG_LEVEL: "warn",
  });
  const live = () => gateways.filter((g) => g.alive);
  const routeToLive = () => proxy.setBackends(live().map((g) => g.port));

  before(async () => {
    cluster = await startNatsCluster(3, { jetstream: true });
    // The first gateway creates the R3 stream; the others find it.
    gateways.push(await startGateway(gatewayEnv(), { timeoutMs: 45_000 }));
    gateways.push(...(await Promise.all([startGateway(gatewayEnv()), startGateway(gatewayEnv())])));
    proxy = await startTcpProxy(gateways.map((g) => g.port));
    nc = await natsConnect({ servers: cluster.urls.split(","), name: "chaos-publisher", maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  });

  after(async () => {
    for (const c of clients) c.close();
    await proxy?.close();
    await nc?.close().catch(() => undefined);
    await Promise.all(gateways.map((g) => g.stop(3000)));
    await cluster?.stop();
  });

  test("every client receives every message of its channels exactly once, in order", { timeout: 240_000 }, async () => {
    // Half the channels in each namespace.
    const channels = Array.from({ length: CHANNELS }, (_, i) => `${i % 2 === 0 ? "chaos" : "alt"}.c${i}`);
    const tallies: Tally[] = [];
    let recoveries = 0;
    let windowLosses = 0;
    let sseClients = 0;
    const token = await hsToken({ sub: "chaos", channels: ["chaos.*", "alt.*"] });

    // 1. Connect and subscribe everybody, in batches so the connect storm is bounded.
    for (let i = 0; i < CLIENTS; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, CLIENTS - i) }, async (_, k) => {
          const idx = i + k;
          const client = new HeraldClient({
            url: proxy.url("/ws"),
            token,
            WebSocket: WebSocket as unknown as WebSocketConstructor,
            transports: idx % SSE_EVERY === 0 ? ["sse"] : ["websocket"],
            backoff: { baseMs: 100, maxMs: 2000 },
            drainReconnectMaxMs: 1500,
            connectTimeoutMs: 5000,
            requestTimeoutMs: 5000,
          });
          const tally: Tally = { got: new Map() };
          client.on("recovered", (info) => {
            if (info.recovered) recoveries++;
            else windowLosses++;
          });
          clients.push(client);
          tallies.push(tally);
          await client.connect();
          if (client.transport === "sse") sseClients++;
          for (let j = 0; j < CHANNELS_PER_CLIENT; j++) {
            const channel = channels[(idx + j * 3) % CHANNELS]!;
            const list: number[] = [];
            tally.got.set(channel, list);
            await client.subscribe(channel, { onMessage: (m) => list.push((m.data as { n: number }).n) });
          }
        }),
      );
    }

    // 2. Publish numbered messages (JetStream with retries and a message id:
    //    at-least-once from the publisher, stored exactly once), with faults.
    const js = nc.jetstream({ timeout: 2000 });
    const perChannel = new Map(channels.map((c) => [c, 0]));
    const faults: Array<{ at: number; run: () => Promise<void> }> = [
      {
        at: Math.floor(MESSAGES * 0.2),
        run: async () => {
          const victim = live()[0]!;
          victim.kill("SIGKILL");
          await victim.exited;
          routeToLive();
          gateways.push(await startGateway(gatewayEnv()));
          routeToLive();
        },
      },
      {
        at: Math.floor(MESSAGES * 0.4),
        run: async () => {
          const victim = live()[0]!;
          proxy.setBackends(live().filter((g) => g !== victim).map((g) => g.port));
          const exit = await victim.stop(10_000);
          assert.equal(exit.code, 0, "a SIGTERM drain exits 0");
          gateways.push(await startGateway(gatewayEnv()));
          routeToLive();
        },
      },
      {
        at: Math.floor(MESSAGES * 0.6),
        run: async () => {
          const node = cluster.nodes[1]!;
          await node.kill();
          await node.restart();
        },
      },
    ];
    const pendingFaults: Promise<void>[] = [];
    for (let n = 0; n < MESSAGES; n++) {
      const channel = channels[n % CHANNELS]!;
      const seq = perChannel.get(channel)! + 1;
      perChannel.set(channel, seq);
      const body = new TextEncoder().encode(JSON.stringify({ n: seq }));
      await waitFor(
        async () => {
          try {
            await js.publish(`herald.ch.${channel}`, body, { msgID: `${channel}-${seq}` });
            return true;
          } catch {
            return false; // cluster hiccup: publish again (the msgID prevents a duplicate)
          }
        },
        { timeoutMs: 30_000, intervalMs: 100, message: `publish ${channel} #${seq}` },
      );
      for (const f of faults) if (f.at === n) pendingFaults.push(f.run());
      if (n % 20 === 10) proxy.cutRandom(10);
      await new Promise((r) => setTimeout(r, PUBLISH_INTERVAL_MS)); // publish rate, not a wait for an event
    }
    await Promise.all(pendingFaults);

    // 3. Wait until every client has every message of its channels (or stalls).
    const expected = (channel: string) => perChannel.get(channel)!;
    const complete = () =>
      tallies.every((t) => [...t.got].every(([channel, list]) => new Set(list).size >= expected(channel)));
    await waitFor(complete, { timeoutMs: 90_000, intervalMs: 200, message: "every client has every message" }).catch(() => undefined);

    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    for (const t of tallies) {
      for (const [channel, list] of t.got) {
        const unique = new Set(list);
        lost += expected(channel) - unique.size;
        duplicated += list.length - unique.size;
        for (let i = 1; i < list.length; i++) if (list[i]! < list[i - 1]!) outOfOrder++;
      }
    }
    console.log(`chaos: ${MESSAGES} messages, ${CLIENTS} clients (${sseClients} on SSE), ${recoveries} recoveries, ${lost} lost, ${duplicated} duplicated, ${outOfOrder} out of order`);
    assert.equal(windowLosses, 0, "no resume fell outside the history window");
    assert.equal(lost, 0, "lost");
    assert.equal(duplicated, 0, "duplicated");
    assert.equal(outOfOrder, 0, "out of order");
    assert.ok(recoveries > 0, "the faults made clients resume from their positions");
    assert.equal(sseClients, Math.ceil(CLIENTS / SSE_EVERY), "a quarter of the clients ran on SSE");
  });
});
