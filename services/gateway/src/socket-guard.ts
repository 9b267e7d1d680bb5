/**
 * Closes sockets that hold the gateway up: expired tokens (4001), slow
 * consumers (4009) and stalled frames (1008). One periodic pass over the
 * sockets costs far less than a timer per socket or a check per send; send
 * buffers are also checked as bytes are written to topics, because between
 * two passes a fast channel can fill a stalled socket's buffer far past the
 * bound.
 */
import { CloseCode, type GatewayMetrics, type Logger } from "@herald/core";
import type { Connection } from "./connection.js";

/** What the guard needs of a connection: the frame deadline bookkeeping is WebSocket-only (SSE has no inbound frames and never falls due). */
export interface GuardedConnection extends Connection {
  readonly lastFrameAt: number;
  pinged: boolean;
  ping(): void;
}

/** How often expired tokens, slow consumers and stalled frames are looked for. */
const SWEEP_INTERVAL_MS = 250;
/**
 * Send buffers are checked again whenever this fraction of SLOW_CONSUMER_BYTES
 * has been written to topics since the last check: no socket's buffer can
 * have grown by more than what was written.
 */
const SHED_CHECK_FRACTION = 1 / 8;

/** Hard per-socket send-buffer cap of uWS, well above SLOW_CONSUMER_BYTES. */
export function backpressureCap(slowConsumerBytes: number): number {
  return Math.max(slowConsumerBytes * 8, 8 * 1024 * 1024);
}

/**
 * Largest frame uWS will buffer: frames between the limit and this get a
 * clean 1009; a frame declared larger is refused at its header (uWS closes
 * the TCP connection: the client sees 1006). uWS reserves a frame's whole
 * declared length as soon as part of it arrives, so this, not the limit, is
 * what one socket can make the gateway hold for an unfinished frame.
 */
export function hardFrameCap(maxPayloadBytes: number): number {
  return maxPayloadBytes + Math.max(4096, Math.floor(maxPayloadBytes / 4));
}

export interface SocketGuardOptions {
  slowConsumerBytes: number;
  /** 0 = no frame deadline. */
  frameTimeoutSeconds: number;
  /** The upgrade's clock tolerance: a token accepted just after exp is not closed on the next pass. */
  expiryGraceMs: number;
  metrics: GatewayMetrics;
  logger: Logger;
}

export class SocketGuard {
  private readonly sweep: NodeJS.Timeout;
  private readonly frameTimeoutMs: number;
  private readonly sendBufferCap: number;
  private readonly shedCheckBytes: number;
  private writtenSinceCheck = 0;
  private soonQueued = false;
  private laterQueued = false;

  constructor(
    private readonly sockets: Iterable<GuardedConnection>,
    private readonly opts: SocketGuardOptions,
  ) {
    this.frameTimeoutMs = opts.frameTimeoutSeconds * 1000;
    this.sendBufferCap = backpressureCap(opts.slowConsumerBytes);
    this.shedCheckBytes = Math.max(1, Math.floor(opts.slowConsumerBytes * SHED_CHECK_FRACTION));
    this.sweep = setInterval(() => this.pass(), SWEEP_INTERVAL_MS);
    this.sweep.unref();
  }

  stop(): void {
    clearInterval(this.sweep);
  }

  /** Told the size of every frame written to a topic. */
  onTopicBytes(bytes: number): void {
    this.writtenSinceCheck += bytes;
    if (this.writtenSinceCheck < this.shedCheckBytes) return;
    // Frames of 16 KiB and more are in the sockets' buffers at once: look as
    // soon as the broker read that wrote them is handled (not from inside
    // it: closing sockets there would run into the fan-out that is writing).
    if (!this.soonQueued) {
      this.soonQueued = true;
      queueMicrotask(() => {
        this.soonQueued = false;
        this.writtenSinceCheck = 0;
        this.checkSendBuffers();
      });
    }
    // Smaller frames are moved there when this loop iteration ends: look
    // again in the next one, or those buffers still look empty.
    if (!this.laterQueued) {
      this.laterQueued = true;
      setImmediate(() =>
        setImmediate(() => {
          this.laterQueued = false;
          this.checkSendBuffers();
        }),
      );
    }
  }

  private checkSendBuffers(): void {
    for (const conn of this.sockets) this.shedIfSlow(conn);
  }

  /** Closes a socket whose send buffer passed the bound; true when it did. */
  private shedIfSlow(conn: GuardedConnection): boolean {
    const { slowConsumerBytes, metrics, logger } = this.opts;
    const buffered = conn.bufferedAmount();
    if (buffered <= slowConsumerBytes) return false;
    // At the hard cap uWS has already dropped frames for this socket.
    const reason = buffered >= this.sendBufferCap ? "backpressure" : "slow_consumer";
    metrics.slowConsumerCloses.inc();
    metrics.drops.inc({ reason });
    if (logger.isLevelEnabled("debug")) logger.debug({ connection: conn.id, buffered, reason }, "slow consumer closed");
    conn.close(CloseCode.SlowConsumer, "slow consumer");
    return true;
  }

  private pass(): void {
    const now = Date.now();
    const { expiryGraceMs, metrics } = this.opts;
    for (const conn of this.sockets) {
      if (now >= conn.identity.expiresAt + expiryGraceMs) {
        conn.close(CloseCode.TokenExpired, "token expired");
      } else if (this.shedIfSlow(conn)) {
        // closed
      } else if (this.frameTimeoutMs > 0 && now - conn.lastFrameAt > this.frameTimeoutMs) {
        // A socket in the middle of a frame cannot answer a ping (control
        // frames may not interrupt a frame), and trickled bytes do not count:
        // only complete frames do. Quiet for one timeout: ping; for two: close.
        if (!conn.pinged) {
          conn.pinged = true;
          conn.ping();
        } else if (now - conn.lastFrameAt > 2 * this.frameTimeoutMs) {
          metrics.errors.inc({ code: "frame_timeout" });
          conn.close(CloseCode.PolicyViolation, "frame not completed in time");
        }
      }
    }
  }
}
