/**
 * Which transport the next attempt uses. Attempts go in rounds: the
 * transport welcomed last in this client's life first (the network it is on
 * lets it through), then the others in preference order. An attempt that
 * fails as a transport (closed before its welcome: network error, refused
 * handshake, connect timeout) moves on to the next one at once, without
 * backoff; a round whose every transport failed is one failed attempt for
 * the backoff and the close policy, and the next round starts over.
 */
import { CloseCodes } from "./protocol.js";
import type { ResolvedTransports } from "./transport-options.js";
import type { TransportName } from "./types.js";

/** What the choice needs to know of a closed attempt. */
export interface ClosedAttempt {
  welcomed: boolean;
  /** HTTP status of a refused handshake, when the runtime tells. */
  httpStatus: number | undefined;
  /** Herald's own error code of a refused SSE stream (its JSON body): a clear answer from the gateway. */
  refusal: string | undefined;
}

export class TransportChoice {
  private remembered: TransportName | undefined;
  /** Position of the current attempt in this round. */
  private index = 0;

  private readonly preference: readonly TransportName[];

  /** `resolved`: what each transport needs to open, kept here for the client. */
  constructor(readonly resolved: ResolvedTransports) {
    this.preference = resolved.transports;
  }

  /** The transport of the next attempt. */
  get current(): TransportName {
    return this.round()[this.index] ?? this.preference[0]!;
  }

  /** The transport welcomed last, used first in every round. */
  get preferred(): TransportName | undefined {
    return this.remembered;
  }

  /** Where `transport` connects to (for errors). */
  urlOf(transport: TransportName): string {
    return transport === "sse" && this.resolved.sse ? this.resolved.sse.url : this.resolved.wsUrl;
  }

  /** `transport` was welcomed: it leads every round from now on. */
  welcomed(transport: TransportName): void {
    this.remembered = transport;
    this.index = 0;
  }

  /**
   * An attempt closed with `code`: true (and the choice moved on) when it
   * failed as a transport and another transport is left in this round, so
   * the client tries that one at once. False: the close policy decides, and
   * the next round starts from the top.
   */
  moveOn(attempt: ClosedAttempt, code: number): boolean {
    if (transportFailed(attempt, code) && this.index + 1 < this.round().length) {
      this.index++;
      return true;
    }
    this.index = 0;
    return false;
  }

  /** A new start (connect() after closed): the first transport of a round, remembered one first. */
  restart(): void {
    this.index = 0;
  }

  private round(): TransportName[] {
    const first = this.remembered;
    return first === undefined ? [...this.preference] : [first, ...this.preference.filter((t) => t !== first)];
  }
}

/**
 * Closed before the welcome, without a clear answer of the gateway: 1006
 * (network error, timeout, or a refusal a browser hides) or a refused
 * handshake (some HTTP status; a proxy that does not pass WebSocket upgrades
 * answers one). A Herald refusal of an SSE stream (401 with its JSON error)
 * or a close code the gateway chose is an answer: the close policy takes it.
 */
export function transportFailed(attempt: ClosedAttempt, code: number): boolean {
  if (attempt.welcomed || attempt.refusal !== undefined) return false;
  return code === CloseCodes.Abnormal || attempt.httpStatus !== undefined;
}
