/**
 * The embedded broker's key-value bucket: a Map with the bucket's maximum
 * age, watched the way a JetStream KV is (every entry now, then changes,
 * delivered asynchronously like the broker's messages).
 */
import type { BrokerKeyValue } from "./broker.js";

export class MemoryKeyValue implements BrokerKeyValue {
  private readonly entries = new Map<string, { value: Uint8Array; at: number }>();
  private readonly watchers = new Set<(key: string, value: Uint8Array | undefined) => void>();

  constructor(private readonly maxAgeMs: number) {}

  async put(key: string, value: Uint8Array): Promise<void> {
    const copy = new Uint8Array(value);
    this.entries.set(key, { value: copy, at: Date.now() });
    this.tell(key, copy);
  }

  async delete(key: string): Promise<void> {
    if (this.entries.delete(key)) this.tell(key, undefined);
  }

  async watch(onEntry: (key: string, value: Uint8Array | undefined) => void): Promise<() => void> {
    const oldest = Date.now() - this.maxAgeMs;
    for (const [key, e] of this.entries) {
      if (e.at < oldest) this.entries.delete(key);
      else onEntry(key, e.value);
    }
    this.watchers.add(onEntry);
    return () => this.watchers.delete(onEntry);
  }

  private tell(key: string, value: Uint8Array | undefined): void {
    for (const w of this.watchers) queueMicrotask(() => w(key, value));
  }
}
