/**
 * What an integration suite starts, and its cleanup in one call: NATS,
 * gateway and publisher processes, WebSocket clients, and anything else
 * registered with `defer`. `close()` runs the deferred cleanups (newest
 * first), then closes every client, then stops the services, then NATS —
 * each group at once. Use one per describe: `after(() => stack.close())`.
 */
import type { TestContext } from "node:test";
import { natsControlSkipReason, startNats, startNatsCluster, type NatsCluster, type NatsOptions, type NatsServer } from "./nats.js";
import { startGateway, startPublisher, uniqueName, type Env, type ServiceProcess, type StartOptions } from "./procs.js";
import { TEST_SECRET } from "./tokens.js";
import { closeAll, connect, type Client, type ConnectOptions } from "./ws.js";

export class TestStack {
  readonly clients: Client[] = [];
  readonly services: ServiceProcess[] = [];
  readonly natsServers: NatsServer[] = [];
  readonly clusters: NatsCluster[] = [];
  private readonly deferred: Array<() => unknown> = [];

  async nats(opts: NatsOptions = {}): Promise<NatsServer> {
    const nats = await startNats(opts);
    this.natsServers.push(nats);
    return nats;
  }

  /** A NATS cluster of `size` nodes (stopped last, with the single servers); give each service one of `nodes`. */
  async natsCluster(size = 3, opts: NatsOptions = {}): Promise<NatsCluster> {
    const cluster = await startNatsCluster(size, opts);
    this.clusters.push(cluster);
    return cluster;
  }

  /**
   * NATS the test may kill and restart; undefined (and `t` skipped with the
   * reason) when it is external or a container.
   */
  async controllableNats(t: TestContext, opts: NatsOptions = {}): Promise<NatsServer | undefined> {
    const nats = await this.nats(opts);
    const reason = natsControlSkipReason(nats);
    if (reason === undefined) return nats;
    t.skip(reason);
    return undefined;
  }

  /**
   * A gateway process on `nats` (NATS_URL, a unique NATS_NAME) with
   * JWT_SECRET = TEST_SECRET; `env` adds to or overrides that.
   */
  async gateway(nats: NatsServer | undefined, env: Env = {}, opts: StartOptions = {}): Promise<ServiceProcess> {
    const base: Env = { JWT_SECRET: TEST_SECRET, ...(nats ? { NATS_URL: nats.url, NATS_NAME: uniqueName("herald-gw") } : {}) };
    return this.service(await startGateway({ ...base, ...env }, opts));
  }

  /** A publisher process on `nats` with JWT_SECRET = TEST_SECRET; `env` adds to or overrides that. */
  async publisher(nats: NatsServer | undefined, env: Env = {}, opts: StartOptions = {}): Promise<ServiceProcess> {
    return this.service(await startPublisher({ JWT_SECRET: TEST_SECRET, ...(nats ? { NATS_URL: nats.url } : {}), ...env }, opts));
  }

  /** Stops `svc` with the others (for services started some other way). */
  service(svc: ServiceProcess): ServiceProcess {
    this.services.push(svc);
    return svc;
  }

  /** A WebSocket client, closed by close(). */
  async connect(url: string, opts: ConnectOptions = {}): Promise<Client> {
    const c = await connect(url, opts);
    this.clients.push(c);
    return c;
  }

  /** Runs `fn` first in close() (NATS connections, raw sockets, scripts). */
  defer(fn: () => unknown): void {
    this.deferred.push(fn);
  }

  async close(): Promise<void> {
    for (const fn of this.deferred.splice(0).reverse()) await Promise.resolve(fn()).catch(() => undefined);
    await closeAll(this.clients.splice(0));
    await Promise.all(this.services.splice(0).map((s) => s.stop()));
    await Promise.all([...this.natsServers.splice(0).map((n) => n.stop()), ...this.clusters.splice(0).map((c) => c.stop())]);
  }
}
