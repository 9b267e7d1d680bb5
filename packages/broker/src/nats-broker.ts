/**
 * The NATS implementation of Broker: the only module that imports `nats`.
 *
 * It listens immediately and connects in the background (so /healthz answers
 * while NATS is still starting), reconnects forever with capped exponential
 * backoff plus jitter, and lets nats.js replay SUBs after every reconnect, so
 * a gateway resumes delivery without restarting.
 */
import { connect, createInbox, headers as natsHeaders, type JetStreamClient, type Msg, type NatsConnection } from "nats";
import { BrokerUnavailableError, Header, HistoryWindows, natsCredentials, redactServers } from "@herald/core";
import {
  handOver,
  type Broker,
  type BrokerKeyValue,
  type BrokerStatus,
  type BrokerSubscription,
  type EpochChange,
  type GatherOptions,
  type MessageHandler,
} from "./broker.js";
import type { NatsHistory } from "./nats-history.js";
import { setUpHistory } from "./history-setup.js";
import { EpochWatch } from "./epoch-watch.js";
import { NATS_DEFAULTS, type NatsBrokerOptions } from "./nats-options.js";
import { NatsMessage } from "./nats-message.js";
import { NatsKeyValue } from "./nats-kv.js";
import { Entry, type SubscriptionOwner } from "./subscription-entry.js";
import { liteSubscriber, type LiteCallback, type LiteSubscription } from "./lite-subscription.js";

export { NATS_DEFAULTS, type NatsBrokerOptions } from "./nats-options.js";

/** Half the ceiling plus a random share of the other half (spreads a fleet's retries). */
function jitter(ceiling: number): number {
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export class NatsBroker implements Broker {
  readonly kind = "nats" as const;
  private nc: NatsConnection | undefined;
  private up = false;
  private closing = false;
  private readonly entries = new Set<Entry>();
  private readonly listeners = new Set<(status: BrokerStatus) => void>();
  private readonly opts: NatsBrokerOptions & { [K in keyof typeof NATS_DEFAULTS]: number };
  private js: JetStreamClient | undefined;
  history: NatsHistory | undefined;
  private readonly epochs: EpochWatch;
  private modeSettled = false;
  private attempt = 0;
  /** When the current outage began (undefined while connected). */
  private downSince: number | undefined;
  /** The confirmation shared by subscriptions of the current event-loop turn (confirmSoon). */
  private pendingConfirm: Promise<void> | undefined;
  /** Subscribes with a LiteSubscription (lite-subscription.ts); undefined when nats.js is not the shape it knows. */
  private lite: ((subject: string, callback: LiteCallback<Msg>) => LiteSubscription<Msg>) | undefined;
  /** Subscriptions made in this event-loop turn, sent to NATS together (attachSoon). */
  private unattached: Entry[] = [];
  private readonly owner: SubscriptionOwner = {
    confirmSoon: () => this.confirmSoon(),
    release: (entry) => this.release(entry),
  };
  /** The server URLs with credentials replaced: what logs and banners may show. */
  readonly shownServers: readonly string[];

  constructor(options: NatsBrokerOptions) {
    this.opts = { ...NATS_DEFAULTS, ...options };
    this.epochs = new EpochWatch(options.logger);
    this.shownServers = redactServers(options.servers);
    void this.connectLoop();
  }

  get connected(): boolean {
    return this.up;
  }

  onEpochChange(listener: (change: EpochChange) => void): () => void {
    return this.epochs.on(listener);
  }

  onStatus(listener: (status: BrokerStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private setStatus(status: BrokerStatus): void {
    const up = status === "connected";
    if (up === this.up && status !== "closed") return;
    this.up = up;
    for (const l of this.listeners) l(status);
  }

  /** Delay before the next first-connect attempt: capped exponential backoff with jitter. */
  private backoff(): number {
    const { reconnectMinMs, reconnectMaxMs } = this.opts;
    return jitter(Math.min(reconnectMaxMs, reconnectMinMs * 2 ** Math.min(this.attempt++, 16)));
  }

  /**
   * nats.js' reconnect delay. It asks on every pass of its dial loop, the
   * passes that only wait included, so counting calls would reach the cap
   * after a few real dials (a 0.2 s NATS restart cost 3-5 s of `unavailable`).
   * The delay follows how long the outage has lasted instead: retried within
   * reconnectMinMs at first, about doubling while NATS stays away.
   */
  private reconnectDelay(): number {
    const { reconnectMinMs, reconnectMaxMs } = this.opts;
    const down = this.downSince === undefined ? 0 : Date.now() - this.downSince;
    return jitter(Math.min(reconnectMaxMs, Math.max(reconnectMinMs, down)));
  }

  private async connectLoop(): Promise<void> {
    const { logger } = this.opts;
    // nats.js' own waitOnFirstConnect retries at a fixed interval; this loop
    // gives the first connection the same backoff as later reconnects.
    while (!this.closing) {
      try {
        this.nc = await connect({
          servers: this.opts.servers,
          // nats.js keeps only host and port of a URL: its user:password@ or token@ goes here.
          ...natsCredentials(this.opts.servers),
          name: this.opts.name,
          maxReconnectAttempts: -1,
          // nats.js otherwise gives up for good after the same auth error
          // twice (e.g. while credentials rotate); Herald keeps trying.
          ignoreAuthErrorAbort: true,
          reconnectDelayHandler: () => this.reconnectDelay(),
          pingInterval: 10_000,
          maxPingOut: 3,
          ignoreClusterUpdates: false,
        });
        break;
      } catch (err) {
        const delay = this.backoff();
        logger.warn({ err: (err as Error).message, servers: this.shownServers, retryInMs: delay }, "NATS connect failed; retrying");
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
    const nc = this.nc;
    if (!nc || this.closing) {
      await nc?.close().catch(() => {});
      return;
    }
    this.attempt = 0;
    this.lite = liteSubscriber<Msg>(nc);
    logger.info({ server: nc.getServer(), liteSubscriptions: this.lite !== undefined }, "NATS connected");
    // Installed first: if nats.js gives up while the stream is being set up,
    // the broker still starts over.
    this.watchClose(nc);
    // The mode (history or core NATS) is settled by the first connection and
    // kept for the process's life. Once history is on, a fresh connection must
    // set it up again (on this connection) before the broker reports ready.
    const historyRequired = this.modeSettled && this.history !== undefined;
    if (!this.modeSettled || historyRequired) await this.setUpHistory(nc, historyRequired);
    if (this.closing || nc.isClosed() || this.nc !== nc) return;
    this.modeSettled = true;
    for (const entry of this.entries) this.attach(entry);
    this.setStatus("connected");
    void this.watchStatus(nc);
  }

  /** Sets up the history streams on `nc` (see setUpHistory); keeps core-NATS mode when it answers none. */
  private async setUpHistory(nc: NatsConnection, required: boolean): Promise<void> {
    const { history, subjects, logger } = this.opts;
    if (!history?.enabled || !subjects) return;
    const windows = this.opts.windows ?? HistoryWindows.single(history);
    const stopped = () => this.closing || nc.isClosed();
    const ready = await setUpHistory(nc, { history, windows, subjects, logger, setupMs: this.opts.historySetupMs, required, stopped });
    if (!ready) return;
    this.history = ready;
    this.js = nc.jetstream({ timeout: this.opts.publishTimeoutMs });
    // A new connection may find another life of the stream (a NATS without persistence restarted).
    for (const change of ready.epochs) this.epochs.note(change);
    this.epochs.start(() => (this.up ? this.history?.refresh() : undefined), this.opts.epochCheckMs);
  }

  private watchClose(nc: NatsConnection): void {
    const { logger } = this.opts;
    void nc.closed().then((err) => {
      if (err) logger.error({ err: err.message }, "NATS connection closed with error");
      if (this.closing) {
        this.setStatus("closed");
        return;
      }
      // Closed without us asking (nats.js gave up): start over rather than
      // sit disconnected for the rest of the process's life.
      logger.warn("NATS connection closed unexpectedly; connecting again");
      this.setStatus("disconnected");
      this.nc = undefined;
      this.js = undefined;
      for (const entry of this.entries) entry.sub = undefined;
      void this.connectLoop();
    });
  }

  private async watchStatus(nc: NatsConnection): Promise<void> {
    const { logger } = this.opts;
    for await (const s of nc.status()) {
      switch (s.type) {
        case "disconnect":
          logger.warn({ server: s.data, servers: this.shownServers }, "NATS disconnected; reconnecting");
          this.downSince ??= Date.now();
          this.setStatus("disconnected");
          break;
        case "reconnect":
          this.downSince = undefined;
          logger.info({ server: s.data }, "NATS reconnected");
          this.setStatus("connected");
          break;
        case "error":
          logger.warn({ err: String(s.data) }, "NATS error");
          break;
        default:
          break;
      }
    }
  }

  /**
   * New subscriptions are sent to NATS together once per event-loop turn.
   * nats.js writes its buffer to the socket in a microtask, and uWS runs
   * microtasks after every socket event: subscribing at once cost one write
   * syscall per connection in a connect storm (a fifth of its CPU).
   */
  private attachSoon(entry: Entry): void {
    this.unattached.push(entry);
    if (this.unattached.length === 1) setImmediate(() => this.attachPending());
  }

  private attachPending(): void {
    const entries = this.unattached;
    if (entries.length === 0) return;
    this.unattached = [];
    for (const entry of entries) this.attach(entry);
  }

  private attach(entry: Entry): void {
    if (!this.nc || this.nc.isClosed() || this.nc.isDraining() || !entry.active || entry.sub) return;
    const { logger } = this.opts;
    const callback: LiteCallback<Msg> = (err, msg) => {
      if (err) {
        logger.warn({ err: err.message, subject: entry.subject }, "NATS subscription error");
        return;
      }
      // nats.js calls this from inside its protocol parser: an exception
      // escaping here ends the connection's reader for good ("reader
      // closed"), while the socket stays up and the broker keeps reporting
      // connected. Every subscription of the process would then go silent
      // and every flush hang until the ping timeout. One message that a
      // handler cannot take must cost that message only.
      try {
        handOver(entry.handler, new NatsMessage(msg));
      } catch (handlerErr) {
        logger.error({ err: handlerErr, subject: entry.subject }, "NATS message handler failed; message dropped");
      }
    };
    entry.sub = this.lite ? this.lite(entry.subject, callback) : this.nc.subscribe(entry.subject, { callback });
  }

  subscribe(subject: string, handler: MessageHandler): BrokerSubscription {
    const entry = new Entry(subject, handler, this.owner);
    this.entries.add(entry);
    this.attachSoon(entry);
    return entry;
  }

  private release(entry: Entry): void {
    if (!entry.active) return;
    entry.active = false;
    this.entries.delete(entry);
    if (entry.sub && !this.nc?.isClosed()) entry.sub.unsubscribe();
    entry.sub = undefined;
  }

  /**
   * One flush round trip for every subscription asked to confirm in this
   * turn of the event loop: it is sent after all of them (setImmediate runs
   * once the loop has handled every socket event of the turn), so it covers
   * them all. A connect storm then costs NATS one PING per turn, not one per
   * connection.
   */
  private confirmSoon(): Promise<void> {
    if (!this.pendingConfirm) {
      this.pendingConfirm = new Promise<void>((resolve) => {
        setImmediate(() => {
          this.pendingConfirm = undefined;
          this.attachPending(); // the PING must follow every SUB it confirms
          void this.confirm().then(resolve, resolve);
        });
      });
    }
    return this.pendingConfirm;
  }

  /** A flush round-trip: after it the server has processed everything we sent. */
  private async confirm(): Promise<void> {
    const nc = this.nc;
    if (!nc || !this.up || nc.isClosed()) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      nc.flush().catch(() => {}),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.opts.publishTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  async keyValue(bucket: string, opts: { maxAgeSeconds: number }): Promise<BrokerKeyValue> {
    const nc = this.nc;
    if (!nc || !this.up || nc.isClosed() || !this.history) throw new BrokerUnavailableError(this.history ? undefined : "JetStream is not in use (HISTORY off or unavailable): no key-value buckets");
    const kv = await nc.jetstream({ timeout: this.opts.publishTimeoutMs }).views.kv(bucket, { history: 1, ttl: opts.maxAgeSeconds * 1000, replicas: this.opts.history?.replicas ?? 1 });
    return new NatsKeyValue(kv);
  }

  async gather(subject: string, data: Uint8Array, opts: GatherOptions): Promise<Uint8Array[]> {
    const nc = this.nc;
    if (!nc || !this.up || nc.isClosed() || nc.isDraining()) throw new BrokerUnavailableError();
    const inbox = nc.subscribe(createInbox());
    const answers: Uint8Array[] = [];
    const timer = setTimeout(() => inbox.unsubscribe(), opts.timeoutMs);
    try {
      nc.publish(subject, data, { reply: inbox.getSubject() });
      for await (const m of inbox) {
        answers.push(m.data);
        if (opts.done?.(m.data)) break;
      }
    } finally {
      clearTimeout(timer);
      inbox.unsubscribe();
    }
    return answers;
  }

  async publish(subject: string, data: Uint8Array, headers?: Readonly<Record<string, string>>): Promise<void> {
    const nc = this.nc;
    if (!nc || !this.up || nc.isClosed() || nc.isDraining()) throw new BrokerUnavailableError();
    let hdrs;
    if (headers) {
      hdrs = natsHeaders();
      for (const [k, v] of Object.entries(headers)) hdrs.set(k, v);
    }
    const js = this.js;
    if (js && this.history?.stores(subject)) {
      // Stored subjects: the PubAck proves the message is in the history window.
      try {
        const id = headers?.[Header.Id];
        await js.publish(subject, data, { ...(hdrs ? { headers: hdrs } : {}), ...(id ? { msgID: id } : {}) });
        return;
      } catch (err) {
        throw new BrokerUnavailableError(`history stream did not confirm the publish: ${(err as Error).message}`, { cause: err });
      }
    }
    try {
      nc.publish(subject, data, hdrs ? { headers: hdrs } : undefined);
    } catch (err) {
      throw new BrokerUnavailableError(`publish failed: ${(err as Error).message}`, { cause: err });
    }
    // A flush round-trip confirms the server has the message, so a 202 from
    // the publisher means NATS accepted it rather than "sat in a buffer".
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        nc.flush(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("flush timeout")), this.opts.publishTimeoutMs);
        }),
      ]);
    } catch (err) {
      throw new BrokerUnavailableError(`broker did not confirm the publish: ${(err as Error).message}`, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  async drain(): Promise<void> {
    this.closing = true;
    this.epochs.stop();
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    if (!this.up) return this.close();
    try {
      await nc.drain();
    } catch {
      await this.close();
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    this.epochs.stop();
    const nc = this.nc;
    if (nc && !nc.isClosed()) await nc.close().catch(() => {});
    this.setStatus("closed");
  }
}
