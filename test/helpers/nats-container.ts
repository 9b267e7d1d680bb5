/**
 * The Docker fallback of the NATS lookup (test/helpers/nats-source.ts): a
 * `nats:2.10` container started by testcontainers, with JetStream (`-js`) and
 * the monitor on 8222, both mapped to free host ports. Ready when the monitor's
 * /healthz answers 200. testcontainers' reaper (Ryuk) removes the container
 * when the test process dies without stopping it.
 *
 * The container is not controllable: kill() and restart() throw, so the
 * fault tests skip, as for an external NATS_URL.
 */
import type { NatsServer } from "./nats.js";
import { NatsControlUnsupported } from "./nats-errors.js";

const CLIENT_PORT = 4222;
const MONITOR_PORT = 8222;

export async function startNatsContainer(image: string, opts: { args?: string[]; timeoutMs?: number } = {}): Promise<NatsServer> {
  let tc: typeof import("testcontainers");
  try {
    tc = await import("testcontainers");
  } catch (err) {
    throw new Error(
      `No NATS: NATS_URL is unset, no nats-server binary was found (NATS_SERVER_BIN, PATH, /usr/sbin, /usr/local/bin) ` +
        `and testcontainers could not be loaded (${(err as Error).message}). Install nats-server, set NATS_URL, or run npm ci.`,
    );
  }
  const { GenericContainer, Wait } = tc;
  // The image's entrypoint is nats-server; the command replaces its default `--config nats-server.conf`.
  const container = await new GenericContainer(image)
    .withCommand(["-js", "-m", String(MONITOR_PORT), ...(opts.args ?? [])])
    .withExposedPorts(CLIENT_PORT, MONITOR_PORT)
    .withWaitStrategy(Wait.forHttp("/healthz", MONITOR_PORT).forStatusCode(200))
    .withStartupTimeout(opts.timeoutMs ?? 60_000)
    .start();
  const host = container.getHost();
  const logs: string[] = [];
  return {
    url: `nats://${host}:${container.getMappedPort(CLIENT_PORT)}`,
    monitorUrl: `http://${host}:${container.getMappedPort(MONITOR_PORT)}`,
    pid: undefined,
    controllable: false,
    logs,
    stop: async () => {
      await container.stop();
    },
    kill: async () => {
      throw new NatsControlUnsupported("kill() on a container");
    },
    restart: async () => {
      throw new NatsControlUnsupported("restart() on a container");
    },
  };
}
