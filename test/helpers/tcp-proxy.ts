/**
 * A tiny TCP load balancer for fault tests: each new client connection goes
 * to the next live backend (round robin, skipping backends that refuse), and
 * the test can cut any number of client connections at random — what a
 * flaky network or a restarted load balancer does to real clients.
 */
import { createServer, connect as tcpConnect, type Server, type Socket } from "node:net";

export interface TcpProxy {
  port: number;
  url(path: string): string;
  /** Replaces the backend list (ports on 127.0.0.1). */
  setBackends(ports: number[]): void;
  /** Destroys up to `n` random client connections; returns how many were cut. */
  cutRandom(n: number): number;
  readonly connections: number;
  close(): Promise<void>;
}

export async function startTcpProxy(backends: number[]): Promise<TcpProxy> {
  let ports = [...backends];
  let next = 0;
  const pairs = new Set<{ client: Socket; upstream: Socket }>();

  const tryConnect = (client: Socket, attempt: number): void => {
    if (ports.length === 0 || attempt >= ports.length) {
      client.destroy();
      return;
    }
    const port = ports[next++ % ports.length]!;
    const upstream = tcpConnect({ host: "127.0.0.1", port });
    let connected = false;
    upstream.once("connect", () => {
      connected = true;
      const pair = { client, upstream };
      pairs.add(pair);
      client.pipe(upstream);
      upstream.pipe(client);
      const drop = () => {
        pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.once("close", drop);
      upstream.once("close", drop);
      client.on("error", drop);
      upstream.on("error", drop);
      client.resume();
    });
    upstream.once("error", () => {
      if (!connected) tryConnect(client, attempt + 1);
    });
  };

  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    client.on("error", () => client.destroy());
    tryConnect(client, 0);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;

  return {
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    setBackends(list) {
      ports = [...list];
    },
    cutRandom(n) {
      const all = [...pairs];
      let cut = 0;
      for (let i = 0; i < n && all.length > 0; i++) {
        const idx = Math.floor(Math.random() * all.length);
        const [pair] = all.splice(idx, 1);
        pair!.client.destroy();
        pair!.upstream.destroy();
        cut++;
      }
      return cut;
    },
    get connections() {
      return pairs.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of pairs) {
          p.client.destroy();
          p.upstream.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
