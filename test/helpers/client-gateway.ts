/**
 * For the @herald/client tests against real gateway processes
 * (client-sdk*.test.ts): a harness that starts gateways, publishers and NATS
 * servers for one describe block and stops them (and its clients) in its
 * `after`, and waits on client events.
 */
import { after } from "node:test";
import WebSocket from "ws";
import { HeraldClient, type HeraldClientOptions, type HeraldError, type HeraldEvents, type HeraldMessage, type WebSocketConstructor } from "@herald/client";
import type { NatsServer } from "./nats.js";
import { startGateway, uniqueName, waitFor, withTimeout, type Env, type ServiceProcess } from "./procs.js";
import { TEST_SECRET, hsToken } from "./tokens.js";

export const WS = WebSocket as unknown as WebSocketConstructor;

/** A ws constructor that counts connection attempts. */
export function countingWebSocket(): { WS: WebSocketConstructor; attempts: () => number } {
  let n = 0;
  class Counting extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      n++;
    }
  }
  return { WS: Counting as unknown as WebSocketConstructor, attempts: () => n };
}

export type EventArg<K extends keyof HeraldEvents> = Parameters<HeraldEvents[K]>[0];

/** Resolves on the next `event` whose argument matches `pred`. */
export function nextEvent<K extends keyof HeraldEvents>(
  client: HeraldClient,
  event: K,
  pred: (arg: EventArg<K>) => boolean = () => true,
  timeoutMs = 15_000,
): Promise<EventArg<K>> {
  let off: () => void = () => {};
  const p = new Promise<EventArg<K>>((resolve) => {
    off = client.on(event, ((arg: EventArg<K>) => {
      if (pred(arg)) {
        off();
        resolve(arg);
      }
    }) as HeraldEvents[K]);
  });
  return withTimeout(p, timeoutMs, `client event "${String(event)}"`).finally(() => off());
}

/** Collects channel messages of a client. */
export function inbox(client: HeraldClient, channel?: string): { messages: HeraldMessage[]; waitFor(n: number, timeoutMs?: number): Promise<HeraldMessage[]> } {
  const messages: HeraldMessage[] = [];
  client.on("message", (m) => {
    if (channel === undefined || m.channel === channel) messages.push(m);
  });
  return {
    messages,
    waitFor: (n, timeoutMs = 10_000) =>
      waitFor(() => messages.length >= n && messages, { timeoutMs, intervalMs: 20, message: `${n} messages on ${channel ?? "any channel"} (have ${messages.length})` }),
  };
}

/** Every `error` event of a client, from now on. */
export function errorsOf(client: HeraldClient): HeraldError[] {
  const errors: HeraldError[] = [];
  client.on("error", (e) => errors.push(e));
  return errors;
}

/** Connects, subscribes to `channel`, and collects the client's errors and its messages on the channel. */
export async function subscribedClient(client: HeraldClient, channel: string): Promise<{ errors: HeraldError[]; box: ReturnType<typeof inbox> }> {
  const errors = errorsOf(client);
  await client.connect();
  const box = inbox(client, channel);
  await client.subscribe(channel);
  return { errors, box };
}

/** Call inside a describe block: what it starts is stopped in that block's `after`. */
export function clientGatewayHarness() {
  const gateways: ServiceProcess[] = [];
  const publishers: ServiceProcess[] = [];
  const natsServers: NatsServer[] = [];
  const clients = new Set<HeraldClient>();

  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(gateways.map((g) => g.stop(5_000)));
    await Promise.all(publishers.map((p) => p.stop(5_000)));
    await Promise.all(natsServers.map((n) => n.stop()));
  });

  /** A client with fast backoff and short timeouts, closed in `after`. */
  const client = (url: string, token: HeraldClientOptions["token"], opts: Partial<HeraldClientOptions> = {}) => {
    const c = new HeraldClient({
      url,
      token,
      WebSocket: WS,
      backoff: { baseMs: 50, maxMs: 400 },
      drainReconnectMaxMs: 300,
      connectTimeoutMs: 5_000,
      requestTimeoutMs: 5_000,
      ...opts,
    });
    clients.add(c);
    return c;
  };

  const gateway = async (env: Env = {}) => {
    // Tolerance 0: the 4001 tests count on the close coming right at exp.
    const gw = await startGateway({ JWT_SECRET: TEST_SECRET, DRAIN_SECONDS: "0.3", JWT_CLOCK_TOLERANCE_SECONDS: "0", ...env });
    gateways.push(gw);
    return gw;
  };

  const allChannels = () => hsToken({ sub: uniqueName("user"), channels: [">"], publish: [">"] });

  return { client, gateway, allChannels, publishers, natsServers };
}
