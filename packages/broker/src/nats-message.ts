/** A nats.js message as a BrokerMessage (headers read as Herald reads them: empty is absent). */
import type { Msg } from "nats";
import type { BrokerMessage } from "./broker.js";

export class NatsMessage implements BrokerMessage {
  constructor(private readonly msg: Msg) {}
  get subject(): string {
    return this.msg.subject;
  }
  get data(): Uint8Array {
    return this.msg.data;
  }
  header(name: string): string | undefined {
    const h = this.msg.headers;
    if (!h) return undefined;
    const v = h.get(name);
    return v === "" ? undefined : v;
  }
  respond(data: Uint8Array): boolean {
    return this.msg.respond(data);
  }
}
