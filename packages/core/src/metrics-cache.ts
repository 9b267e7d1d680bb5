/**
 * The rendered Prometheus text, kept for a moment and shared by concurrent
 * scrapes (issue 8). Rendering walks every metric, including prom-client's
 * process and GC metrics, and costs milliseconds of event-loop time; a burst
 * of scrapes (a misconfigured scraper, several Prometheus replicas, or anyone
 * who can reach the port) otherwise renders once per request and stalls every
 * WebSocket on the process. With the cache, the event-loop time spent on
 * rendering is bounded by one render per METRICS_CACHE_MS, however many
 * requests arrive.
 *
 * Prometheus scrapes every 10 s or more, so text up to a second old changes
 * nothing for it: the samples carry the scrape's timestamp either way.
 */

/** How long a render is reused. Well below any sensible scrape interval. */
export const METRICS_CACHE_MS = 1000;

/** What is needed from a prom-client Registry. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export class MetricsCache {
  private body: Buffer | undefined;
  /** performance.now() when the cached render finished. */
  private renderedAt = 0;
  private inFlight: Promise<Buffer> | undefined;

  constructor(
    private readonly source: MetricsSource,
    private readonly maxAgeMs = METRICS_CACHE_MS,
  ) {}

  get contentType(): string {
    return this.source.contentType;
  }

  /** The cached body while it is fresh, so a handler can answer synchronously. */
  fresh(): Buffer | undefined {
    return this.body !== undefined && performance.now() - this.renderedAt < this.maxAgeMs ? this.body : undefined;
  }

  /**
   * The cached body, or one render shared by every caller that arrives while
   * it runs. A failed render is not cached: the next scrape tries again.
   */
  get(): Promise<Buffer> {
    const body = this.fresh();
    if (body) return Promise.resolve(body);
    if (this.inFlight) return this.inFlight;
    const render = this.source.metrics().then(
      (text) => {
        // A Buffer, so each response copies bytes instead of re-encoding the text.
        const encoded = Buffer.from(text, "utf8");
        this.body = encoded;
        // Counted from the end of the render, so that even a render slower
        // than the window leaves the event loop a full window to itself.
        this.renderedAt = performance.now();
        this.inFlight = undefined;
        return encoded;
      },
      (err: unknown) => {
        this.inFlight = undefined;
        throw err;
      },
    );
    this.inFlight = render;
    return render;
  }
}
