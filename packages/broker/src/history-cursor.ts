/**
 * The one history pager: reads a channel's stored messages page by page
 * after a moving position and gives each the `prev` it must carry. Both the
 * fan-out's gap catch-up and a connection's recovery read through it, so the
 * page size and the `prev` rule exist once.
 */
import type { BrokerHistory } from "./broker.js";

/** Messages read from the history per round trip. */
export const HISTORY_PAGE = 100;

export interface HistoryMessage {
  seq: number;
  prev: number;
  data: Uint8Array;
}

export class HistoryCursor {
  private last: number;
  private pagesRead = 0;
  /** Whether the last read returned a whole page (more may be stored after it). */
  lastPageFull = false;

  /**
   * @param from position after which to read
   * @param maxPages read budget: once spent, reads return nothing
   * @param trusted a position known to be continuous (a recovery's start,
   *   already checked by its caller): no `reaches` round trip for a page read from it
   */
  constructor(
    private readonly history: BrokerHistory,
    private readonly subject: string,
    from: number,
    private readonly maxPages: number,
    private readonly trusted?: number,
  ) {
    this.last = from;
  }

  /** Position of the last message read. */
  get position(): number {
    return this.last;
  }

  /**
   * The next page after `position` (at most `size` messages: every one is a
   * round trip to the history). Its messages follow on from each other;
   * the first follows on from `position` unless the window no longer
   * reaches back to it: then its `prev` shows the gap (seq − 1) instead of
   * hiding it, so clients resume and are told `recovered: false`.
   */
  async read(size = HISTORY_PAGE): Promise<HistoryMessage[]> {
    if (this.pagesRead >= this.maxPages) {
      this.lastPageFull = false;
      return [];
    }
    this.pagesRead++;
    const from = this.last;
    const stored = await this.history.read(this.subject, from, size);
    this.lastPageFull = stored.length === size;
    // Asked after the read: if the window still reaches back now, it did
    // when the page was read, so nothing the page skipped had been dropped.
    const continuous = stored.length === 0 || from === this.trusted || (await this.history.reaches(this.subject, from));
    const page: HistoryMessage[] = [];
    for (const m of stored) {
      if (m.seq <= this.last) continue;
      const prev = continuous || page.length > 0 ? this.last : m.seq - 1;
      page.push({ seq: m.seq, prev, data: m.data });
      this.last = m.seq;
    }
    return page;
  }

  /**
   * Pages for as long as `more()` says so before each read; ends at the
   * first read that finds nothing stored (or when the budget is spent).
   */
  async *pages(more: () => boolean): AsyncGenerator<HistoryMessage[]> {
    while (more()) {
      const page = await this.read();
      if (page.length === 0 && !this.lastPageFull) return;
      yield page;
    }
  }
}
