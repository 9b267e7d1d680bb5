/** A JetStream KV bucket as a BrokerKeyValue (one value per key). */
import type { KV } from "nats";
import type { BrokerKeyValue } from "./broker.js";

export class NatsKeyValue implements BrokerKeyValue {
  constructor(private readonly kv: KV) {}

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.kv.put(key, value);
  }

  async delete(key: string): Promise<void> {
    // A purge leaves no older value behind a delete marker.
    await this.kv.purge(key);
  }

  async watch(onEntry: (key: string, value: Uint8Array | undefined) => void, onEnd?: () => void): Promise<() => void> {
    let initialized!: () => void;
    const ready = new Promise<void>((resolve) => (initialized = resolve));
    const entries = await this.kv.watch({ initializedFn: () => initialized() });
    let stopped = false;
    void (async () => {
      try {
        for await (const e of entries) onEntry(e.key, e.operation === "PUT" ? e.value : undefined);
      } catch {
        // Ended with its connection: told below.
      }
      initialized();
      if (!stopped) onEnd?.();
    })();
    await ready;
    return () => {
      stopped = true;
      entries.stop();
    };
  }
}
