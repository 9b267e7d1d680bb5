/**
 * Blocked users and revoked tokens in force on this gateway: a copy of the
 * server API's bucket, kept by watching it. A new entry closes the matching
 * live connections with 4011 at once; an upgrade that matches is refused
 * with 401 `revoked_token`. Entries lapse at their `until` whatever the
 * bucket says. Until the bucket has been read once the gateway refuses
 * upgrades (503): a restart must not let a revoked token in for a moment.
 * With no bucket to read (NATS without JetStream) nothing is revoked, and
 * the log says so.
 */
import {
  AuthError,
  BrokerUnavailableError,
  CloseCode,
  REVOCATION_BUCKET_MAX_AGE_SECONDS,
  parseRevocation,
  revocationBucket,
  type GatewayMetrics,
  type Identity,
  type Logger,
  type Revocation,
} from "@herald/core";
import type { Broker } from "@herald/broker";
import type { Connection } from "./connection.js";
import type { ConnectionsByUser } from "./connections-by-user.js";

/** Delay before watching again after the watch could not start or ended. */
const RETRY_MS = 1000;
/** Lapsed entries are dropped from memory this often. */
const PRUNE_EVERY_MS = 60_000;

export interface RevocationsContext {
  broker: Broker;
  historyStream: string;
  users: ConnectionsByUser;
  connections: () => Iterable<Connection>;
  metrics: GatewayMetrics;
  logger: Logger;
}

export class Revocations {
  /** Blocked users and revoked token ids, with when they lapse (epoch seconds). */
  private users = new Map<string, number>();
  private tokens = new Map<string, number>();
  private loadedOnce = false;
  private stopWatch: (() => void) | undefined;
  private retry: NodeJS.Timeout | undefined;
  private readonly prune: NodeJS.Timeout;
  private offStatus: (() => void) | undefined;
  private stopped = false;
  /** A watch is being set up: a second one would race it. */
  private starting = false;

  constructor(private readonly ctx: RevocationsContext) {
    this.prune = setInterval(() => this.dropLapsed(), PRUNE_EVERY_MS);
    this.prune.unref();
  }

  /** True once the bucket has been read (or there is none to read). */
  get loaded(): boolean {
    return this.loadedOnce;
  }

  /**
   * Whether upgrades may be taken: once the bucket is read, and while the
   * broker is down (nothing can be read, and nothing reaches the connection
   * but `unavailable`; the connections are checked when the bucket is read).
   * Refused only in the moment between the broker coming up and the read.
   */
  get ready(): boolean {
    return this.loadedOnce || !this.ctx.broker.connected;
  }

  start(): void {
    // Each new connection to the broker gets a fresh watch: the old one ran on the connection that is gone.
    this.offStatus = this.ctx.broker.onStatus((status) => status === "connected" && void this.watch());
    // At once: the embedded broker's bucket is read before the first upgrade can arrive.
    if (this.ctx.broker.connected) void this.watch();
  }

  stop(): void {
    this.stopped = true;
    this.offStatus?.();
    clearTimeout(this.retry);
    clearInterval(this.prune);
    this.stopWatch?.();
  }

  /** The refusal for an upgrade with `identity`, or undefined when it may connect. */
  refusal(identity: Identity): AuthError | undefined {
    const now = Date.now() / 1000;
    if ((this.users.get(identity.sub) ?? 0) > now) return new AuthError("revoked", "this user is blocked");
    if (identity.jti !== undefined && (this.tokens.get(identity.jti) ?? 0) > now) return new AuthError("revoked", "this token was revoked");
    return undefined;
  }

  private watchSoon(delayMs: number): void {
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.watch(), delayMs);
    this.retry.unref();
  }

  private async watch(): Promise<void> {
    if (this.stopped || this.starting) return;
    this.starting = true;
    try {
      await this.startWatch();
    } finally {
      this.starting = false;
    }
  }

  private async startWatch(): Promise<void> {
    const { broker, logger } = this.ctx;
    this.stopWatch?.();
    // The entries of this watch: swapped in once it has read the whole bucket, so a restarted watch never forgets a block for a moment.
    const users = new Map<string, number>();
    const tokens = new Map<string, number>();
    let live = false;
    try {
      const kv = await broker.keyValue(revocationBucket(this.ctx.historyStream), { maxAgeSeconds: REVOCATION_BUCKET_MAX_AGE_SECONDS });
      this.stopWatch = await kv.watch(
        (key, value) => {
          const entry = value === undefined ? undefined : parseRevocation(value);
          if (!live) {
            if (entry) (entry.kind === "user" ? users.set(entry.sub, entry.until) : tokens.set(entry.jti, entry.until));
            return;
          }
          this.apply(key, entry);
        },
        () => !this.stopped && this.watchSoon(RETRY_MS),
      );
      live = true;
      this.users = users;
      this.tokens = tokens;
      this.loadedOnce = true;
      this.gauge();
      // Connections that opened while the bucket could not be read are checked now.
      for (const conn of this.ctx.connections()) this.closeIfRevoked(conn);
    } catch (err) {
      if (err instanceof BrokerUnavailableError && /not in use/.test(err.message)) {
        if (!this.loadedOnce) logger.warn({ err: err.message }, "blocking users and revoking tokens needs JetStream: nothing is revoked on this gateway");
        this.loadedOnce = true;
        return;
      }
      logger.warn({ err: (err as Error).message, retryInMs: RETRY_MS }, "revocation list not readable yet; retrying");
      if (broker.connected) this.watchSoon(RETRY_MS);
    }
  }

  /** A change seen live: a new block or revocation closes its connections now; a deleted one lifts it. */
  private apply(key: string, entry: Revocation | undefined): void {
    if (!entry) {
      // A deleted key names no id in its value: find it by key.
      const [kind, encoded] = key.split(".", 2);
      const id = Buffer.from(encoded ?? "", "base64url").toString("utf8");
      (kind === "u" ? this.users : this.tokens).delete(id);
      this.gauge();
      return;
    }
    if (entry.kind === "user") this.users.set(entry.sub, entry.until);
    else this.tokens.set(entry.jti, entry.until);
    this.gauge();
    if (entry.until <= Date.now() / 1000) return;
    let closed = 0;
    const candidates = entry.kind === "user" ? [...this.ctx.users.of(entry.sub)] : [...this.ctx.connections()];
    for (const conn of candidates) if (this.closeIfRevoked(conn)) closed++;
    if (closed > 0) this.ctx.logger.info({ kind: entry.kind, closed }, "connections closed with 4011: revoked");
  }

  private closeIfRevoked(conn: Connection): boolean {
    const refusal = this.refusal(conn.identity);
    if (!refusal || conn.closed) return false;
    conn.close(CloseCode.Revoked, refusal.message);
    return true;
  }

  private dropLapsed(): void {
    const now = Date.now() / 1000;
    for (const map of [this.users, this.tokens]) for (const [id, until] of map) if (until <= now) map.delete(id);
    this.gauge();
  }

  private gauge(): void {
    this.ctx.metrics.revocations.set({ kind: "user" }, this.users.size);
    this.ctx.metrics.revocations.set({ kind: "token" }, this.tokens.size);
  }
}
