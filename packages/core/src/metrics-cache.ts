/**
 * Bounds what /metrics can cost (issue 8). Rendering walks every metric,
 * including prom-client's process and GC metrics, and takes milliseconds of
 * event-loop time that the process' sockets share; a burst of scrapes (a
 * misconfigured scraper, several Prometheus replicas, anyone who can reach
 * the port) used to render once per request and stall every WebSocket.
 *
 * Two rules:
 * - scrapes that arrive while a render runs share it;
 * - at most METRICS_RENDER_BURST renders per METRICS_CACHE_MS; scrapes beyond
 *   that get the latest render, which is then less than METRICS_CACHE_MS old.
 *
 * An ordinary scraper (Prometheus every 10 s, an operator's curl, a test
 * that checks a counter right after an action) always gets a fresh render:
 * only a burst is served from the cache. A plain time-to-live would hand a
 * second scrape within the window stale numbers even at one scrape a minute.
 */

/** The window over which renders are counted, and the most a cached render can age. */
export const METRICS_CACHE_MS = 1000;
/** Renders allowed per window: at ~4 ms each, 2 % of the event loop at most. */
export const METRICS_RENDER_BURST = 5;

/** What is needed from a prom-client Registry. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export class MetricsCache {
  private body: Buffer | undefined;
  /** performance.now() at the end of each of the last `burst` renders, oldest first. */
  private readonly renderedAt: number[] = [];
  private inFlight: Promise<Buffer> | undefined;

  constructor(
    private readonly source: MetricsSource,
    private readonly windowMs = METRICS_CACHE_MS,
    private readonly burst = METRICS_RENDER_BURST,
  ) {}

  get contentType(): string {
    return this.source.contentType;
  }

  /**
   * The latest render when the budget for this window is spent (so a handler
   * can answer synchronously), else undefined: call get() for a new render.
   */
  cached(): Buffer | undefined {
    if (this.body === undefined || this.renderedAt.length < this.burst) return undefined;
    return performance.now() - this.renderedAt[0]! < this.windowMs ? this.body : undefined;
  }

  /**
   * The cached body when the budget is spent, else the render in flight, else
   * a new one. A failed render is not cached and spends no budget.
   */
  get(): Promise<Buffer> {
    const body = this.cached();
    if (body) return Promise.resolve(body);
    if (this.inFlight) return this.inFlight;
    const render = this.source.metrics().then(
      (text) => {
        // A Buffer, so each response copies bytes instead of re-encoding the text.
        const encoded = Buffer.from(text, "utf8");
        this.body = encoded;
        // Counted at the end of the render, so that even renders slower
        // than the window leave the event loop time between them.
        this.renderedAt.push(performance.now());
        if (this.renderedAt.length > this.burst) this.renderedAt.shift();
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
