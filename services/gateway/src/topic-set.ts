/**
 * The topics one connection is on. Most connections are on two or three
 * (their user topic and a channel or two), and a Set's hash table costs
 * about 170 bytes even then; a short array is a fifth of that. Past
 * ARRAY_MAX topics it switches to a Set, so a connection on hundreds of
 * channels keeps constant-time lookups.
 */
const ARRAY_MAX = 8;

export class TopicSet implements Iterable<string> {
  private items: string[] | Set<string> = [];

  get size(): number {
    return Array.isArray(this.items) ? this.items.length : this.items.size;
  }

  has(topic: string): boolean {
    return Array.isArray(this.items) ? this.items.includes(topic) : this.items.has(topic);
  }

  add(topic: string): void {
    const items = this.items;
    if (!Array.isArray(items)) {
      items.add(topic);
    } else if (!items.includes(topic)) {
      // concat() makes an array of the exact length; push() or a spread
      // would leave room for 17.
      this.items = items.length < ARRAY_MAX ? items.concat(topic) : new Set(items.concat(topic));
    }
  }

  /** False when the topic was not in the set. */
  delete(topic: string): boolean {
    const items = this.items;
    if (!Array.isArray(items)) return items.delete(topic);
    const at = items.indexOf(topic);
    if (at < 0) return false;
    this.items = items.slice(0, at).concat(items.slice(at + 1));
    return true;
  }

  clear(): void {
    this.items = [];
  }

  [Symbol.iterator](): Iterator<string> {
    return this.items[Symbol.iterator]();
  }
}
