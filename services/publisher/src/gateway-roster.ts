/**
 * The gateways the server API expects answers from: every gateway says hello
 * on `<prefix>.gw.hello` every few seconds (and bye when it stops), so a
 * control request can finish as soon as each of them has answered instead
 * of always waiting CONTROL_TIMEOUT_MS. One that stops saying hello (killed)
 * is forgotten after three missed heartbeats; until then requests wait for
 * it up to the timeout and report it as missing.
 */
import type { Broker, BrokerSubscription } from "@herald/broker";
import type { GatewayHello, Subjects } from "@herald/core";

/** Heartbeats a gateway may miss before it is forgotten (gateways say hello every 5 s). */
export const ROSTER_TTL_MS = 15_000;

export class GatewayRoster {
  private readonly lastSeen = new Map<string, number>();
  private readonly sub: BrokerSubscription;

  /** `onCount`: told how many gateways are known after every hello (the publisher's gauge). */
  constructor(broker: Broker, subjects: Subjects, private readonly onCount: (known: number) => void = () => {}) {
    this.sub = broker.subscribe(subjects.gatewayHello(), (msg) => {
      let hello: GatewayHello;
      try {
        hello = JSON.parse(Buffer.from(msg.data).toString("utf8")) as GatewayHello;
      } catch {
        return;
      }
      if (typeof hello?.gateway !== "string") return;
      if (hello.bye) this.lastSeen.delete(hello.gateway);
      else this.seen(hello.gateway);
      this.onCount(this.known().size);
    });
  }

  /** An answer is as good as a hello. */
  seen(gateway: string): void {
    this.lastSeen.set(gateway, Date.now());
  }

  /** Gateways heard from within ROSTER_TTL_MS. */
  known(): Set<string> {
    const now = Date.now();
    for (const [id, at] of this.lastSeen) if (now - at > ROSTER_TTL_MS) this.lastSeen.delete(id);
    return new Set(this.lastSeen.keys());
  }

  stop(): void {
    this.sub.unsubscribe();
  }
}
